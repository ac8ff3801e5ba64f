"""The package's layers (docs/architecture.md): a module imports only from its own layer or lower ones.

Read from the source with :mod:`ast`, lazy imports inside functions included, so that a new import
against the grain fails here rather than as a cycle at run time. Layers 0-4 and ``nas.results`` are
also the torch-free part of the package (what a cost-only search and the results tools load).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "nas"

#: Lowest first; a module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, ...]] = [
    ("nas.errors", "nas.io", "nas.channels"),
    ("nas.genotype", "nas.genotype_check", "nas.genotype_io", "nas.scaling", "nas.config"),
    ("nas.options", "nas.rules"),
    ("nas.space", "nas.tables"),
    ("nas.cost",),
    ("nas.ops", "nas.model", "nas.proxy", "nas.latency", "nas.scores"),
    ("nas.data", "nas.train"),
    ("nas.results",),
    ("nas.search", "nas.fidelity"),
    ("nas.plots", "nas.tracking", "nas.export"),
    ("nas.cli",),
]
TORCH_FREE = [p for layer in LAYERS[:5] for p in layer] + ["nas.results"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), i)
    return None if best is None else best[1]


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from nas import x`` imports the module nas.x when x is one.
            found += [(node.lineno, f"{base}.{a.name}" if _layer(f"{base}.{a.name}") is not None else base)
                      for a in node.names]
    return found


FILES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    assert [m for m in map(_module_name, FILES) if m != "nas" and _layer(m) is None] == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_go_down_the_layers(path: Path):
    module = _module_name(path)
    own = _layer(module)
    if own is None:  # the package's own __init__
        return
    against = [f"{path.name}:{line}: {module} (layer {own}) imports {target} (layer {_layer(target)})"
               for line, target in _imports(path, module)
               if target.startswith("nas.") and (_layer(target) or 0) > own]
    assert against == []


@pytest.mark.parametrize("path", [p for p in FILES if _layer(_module_name(p)) is not None
                                  and any(_module_name(p) == t or _module_name(p).startswith(t + ".")
                                          for t in TORCH_FREE)],
                         ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_the_cost_side_never_imports_torch(path: Path):
    module = _module_name(path)
    assert [f"{path.name}:{line}: {t}" for line, t in _imports(path, module)
            if t == "torch" or t.startswith("torch.")] == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path):
    """The checker itself: an import inside a function and a relative import are both found."""
    pkg = tmp_path / "nas" / "cost"
    pkg.mkdir(parents=True)
    f = pkg / "x.py"
    f.write_text("from ..search import driver\n\ndef f():\n    import nas.cli.common\n    from . import macs\n")
    global ROOT
    old, ROOT = ROOT, tmp_path / "nas"
    try:
        found = dict((t, line) for line, t in _imports(f, "nas.cost.x"))
    finally:
        ROOT = old
    assert found == {"nas.search.driver": 1, "nas.cli.common": 4, "nas.cost.macs": 5}
