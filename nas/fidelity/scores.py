"""Fidelity of training-free scores against a table of trained networks (``nas fidelity --reference table:FILE``).

Each recipe is a score (``{score: naswot}``, ``{score: default}``, or a list of names for their rank average,
optionally with a ``name``). Over ``n`` distinct networks drawn from the table (all of them when ``n`` is at least
the table's size), every single score a recipe needs is computed once per network on the space's proxy network
(:class:`nas.scores.Scorer`), and each recipe is compared with the table's mean accuracy: Kendall tau, Spearman
rho and the overlap of the top 5%, with the seconds one network's score takes (a combination: the sum of its
members', NASWOT, gradient norm and SNIP counted once: they share one pass). Computed scores are appended to
``out_dir/scores.jsonl`` (one line per network and score, with the scorer's settings), so a rerun, or another
recipe over the same scores, computes only what is missing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import InputError
from nas.fidelity import stats
from nas.genotype import Genotype
from nas.io import atomic_write, atomic_write_json

SCORES_FILE = "scores.jsonl"
REPORT_FILE = "report.json"
TABLE_PREFIX = "table:"
TOP_SHARE = 0.05


def top_k(n: int) -> int:
    """The top 5% of ``n`` networks, at least one."""
    return max(1, round(TOP_SHARE * n))


@dataclass(frozen=True)
class ScoreRecipe:
    name: str
    scores: tuple[str, ...]  # one name: that score; several: their rank average

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": list(self.scores) if len(self.scores) > 1 else self.scores[0]}


def parse_score_recipe(value: Any, where: str) -> ScoreRecipe:
    """``{score: NAME}`` / ``{score: [A, B], name: ab}`` -> a recipe over single scores (``default`` expanded)."""
    from nas.scores import components

    if not isinstance(value, Mapping) or "score" not in value:
        raise InputError(f"{where}: expected a score recipe such as '{{score: naswot}}', got {value!r}")
    extra = set(value) - {"score", "name"}
    if extra:
        raise InputError(f"{where}.{sorted(extra)[0]}: a score recipe takes only score and name")
    spec = value["score"]
    if not isinstance(spec, (str, list)):
        raise InputError(f"{where}.score: expected a score name or a list of names, got {spec!r}")
    names = components(spec, f"{where}.score")
    name = value.get("name") or (spec if isinstance(spec, str) else "+".join(spec))
    if not isinstance(name, str):
        raise InputError(f"{where}.name: expected a string, got {name!r}")
    return ScoreRecipe(name, names)


@dataclass(frozen=True)
class ScoreStats:
    """One recipe against the table's mean accuracy."""

    recipe: str
    scores: tuple[str, ...]
    agreement: stats.Agreement
    seconds_per_network: float

    def to_dict(self) -> dict[str, Any]:
        a = self.agreement
        return {"recipe": self.recipe, "score": list(self.scores), "kendall_tau": a.kendall_tau,
                "spearman_rho": a.spearman_rho, "top_5pct_overlap": a.top_k_overlap, "k": a.k,
                "seconds_per_network": self.seconds_per_network}


@dataclass(frozen=True)
class ScoreFidelityReport:
    settings: Mapping[str, Any]
    n: int
    recipes: tuple[ScoreStats, ...]
    networks: tuple[str, ...] = ()  # the drawn networks' hashes, in the order drawn
    table_accuracy: tuple[float, ...] = ()  # their mean accuracy in the table (the reference, not a score)
    notes: tuple[str, ...] = ()
    paths: Mapping[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "nas.fidelity.scores/1", "settings": dict(self.settings), "n": self.n,
                "recipes": [r.to_dict() for r in self.recipes], "notes": list(self.notes),
                "networks": [{"hash": h, "table_accuracy": a}
                             for h, a in zip(self.networks, self.table_accuracy, strict=True)]}

    def rows(self) -> list[dict[str, str]]:
        def f(x: float | None, spec: str) -> str:
            return "-" if x is None else format(x, spec)

        return [{"recipe": r.recipe, "scores": ", ".join(r.scores), "tau": f(r.agreement.kendall_tau, ".3f"),
                 "rho": f(r.agreement.spearman_rho, ".3f"), f"top-{r.agreement.k}": f(r.agreement.top_k_overlap, ".2f"),
                 "s/network": f(r.seconds_per_network, ".3f")} for r in self.recipes]


def _draw(items: Sequence[tuple[Genotype, Mapping[str, Any]]], n: int, seed: int) -> list[tuple[Genotype, float]]:
    pairs = [(g, float(m["accuracy"])) for g, m in items]
    if n >= len(pairs):
        return pairs
    # A prefix of one permutation: a smaller n draws a subset of a larger one's networks (and reuses its scores).
    return [pairs[i] for i in np.random.default_rng(seed).permutation(len(pairs))[:n]]


class _Cache:
    """``scores.jsonl``: ``{arch, score, settings, value, per_seed, seconds}`` per line, appended as computed."""

    def __init__(self, path: Path, settings_key: str) -> None:
        self.path, self.key = path, settings_key
        self.values: dict[tuple[str, str], dict[str, Any]] = {}
        self.notes: list[str] = []
        self._f: Any = None
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines[-1].strip():  # cut short mid-write: dropped and computed again
            self.notes.append(f"{path}: last line cut short (a crash?); that score is computed again")
            atomic_write(path, "\n".join(lines[:-1]) + ("\n" if len(lines) > 1 else ""), fsync=True)
            lines = lines[:-1]
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                k = (str(rec["arch"]), str(rec["score"]))
                float(rec["value"]), float(rec["seconds"])
            except (ValueError, TypeError, KeyError) as e:
                raise InputError(f"{path}: line {i}: not a score record ({e.__class__.__name__}); repair or remove "
                                 "the line to resume") from None
            if rec.get("settings") == self.key:
                self.values.setdefault(k, rec)

    def append(self, rec: dict[str, Any]) -> None:
        if self._f is None:
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.values[(rec["arch"], rec["score"])] = rec

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _seconds(by_score: Mapping[str, float]) -> float:
    """One network's seconds for a set of scores: NASWOT, gradient norm and SNIP share one pass (each is charged
    all of it), so the group counts once; the others add up."""
    from nas.scores.measures import BATCH_MEASURES

    shared = [t for s, t in by_score.items() if s in BATCH_MEASURES]
    return sum(t for s, t in by_score.items() if s not in BATCH_MEASURES) + (max(shared) if shared else 0.0)


def _value(x: float) -> float | None:
    return x if math.isfinite(x) else None


def score_fidelity(space_path: str | Path, table: Any, out_dir: str | Path, recipes: Sequence[Any], *,
                   n: int = 1000, sample_seed: int = 0, scorer: Any = None,
                   on_network: Callable[[int, int], None] | None = None) -> ScoreFidelityReport:
    """Rank agreement of each score recipe with ``table``'s mean accuracy over ``n`` of its distinct networks.

    ``table``: a table spec for ``nas.tables.load`` (a file or a shipped name; a leading ``table:`` is
    dropped) or a loaded table (anything with ``items()`` yielding ``(Genotype, {"accuracy": ...})``).
    ``scorer``: a :class:`nas.scores.Scorer` (default: the space's proxy, ``Scorer.for_space``).
    Writes ``out_dir/report.json`` and returns the report.
    """
    from nas.scores import Scorer, rank_average
    from nas.space import load_space

    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InputError(f"n: at least 2 networks are needed to rank them, got {n!r}")
    if not recipes:
        raise InputError("recipes: at least one score recipe is needed, e.g. '{score: default}'")
    parsed = [parse_score_recipe(r, f"recipes[{i}]") for i, r in enumerate(recipes)]
    if len({r.name for r in parsed}) != len(parsed):
        raise InputError("recipes: each recipe needs its own name")
    space = load_space(space_path)
    spec = None
    if isinstance(table, (str, Path)):
        from nas.tables import load

        spec = str(table).removeprefix(TABLE_PREFIX)
        table = load(spec)
    items = list(table.items())
    n_table = len(items)
    pairs = _draw(items, n, sample_seed)
    if len(pairs) < 2:
        raise InputError(f"reference: the table holds {len(pairs)} network(s); at least 2 are needed to rank")
    scorer = scorer or Scorer.for_space(space)
    key = json.dumps({k: v for k, v in asdict(scorer).items() if k != "batch"} | {"batch": scorer.batch is not None},
                     sort_keys=True)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out}: cannot create the output directory ({e.strerror})") from None
    needed = list(dict.fromkeys(s for r in parsed for s in r.scores))
    cache = _Cache(out / SCORES_FILE, key)
    try:
        for i, (g, _) in enumerate(pairs):
            for s in needed:
                if (g.hash, s) not in cache.values:
                    res = scorer.score(g, s)
                    cache.append({"arch": g.hash, "score": s, "settings": key, "value": _value(res.value),
                                  "per_seed": [_value(v) for v in res.per_seed], "seconds": res.seconds})
            if on_network is not None:
                on_network(i + 1, len(pairs))
    finally:
        cache.close()
    acc = np.array([a for _, a in pairs])
    k = top_k(len(pairs))

    def column(s: str) -> np.ndarray:
        v = [cache.values[(g.hash, s)]["value"] for g, _ in pairs]
        return np.array([-np.inf if x is None else x for x in v], dtype=float)

    rows = []
    for r in parsed:
        vals = column(r.scores[0]) if len(r.scores) == 1 else rank_average({s: column(s) for s in r.scores})
        vals = np.where(np.isfinite(vals), vals, np.nanmin(np.where(np.isfinite(vals), vals, np.nan)) - 1)
        secs = float(np.mean([_seconds({s: cache.values[(g.hash, s)]["seconds"] for s in r.scores})
                              for g, _ in pairs]))
        rows.append(ScoreStats(r.name, r.scores, stats.agreement(vals[:, None], acc[:, None], k), secs))
    settings = {"space": str(space_path), "reference": f"{TABLE_PREFIX}{spec}" if spec else "table",
                "table_networks": n_table, "n": len(pairs),
                "sample_seed": sample_seed, "scorer": json.loads(key), "recipes": [r.to_dict() for r in parsed]}
    rep = ScoreFidelityReport(settings, len(pairs), tuple(rows), tuple(g.hash for g, _ in pairs),
                              tuple(float(a) for a in acc), tuple(cache.notes))
    path = atomic_write_json(out / REPORT_FILE, rep.to_dict())
    return replace(rep, paths={"json": path})
