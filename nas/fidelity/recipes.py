"""Recipes: named sets of ``TrainConfig`` overrides applied to a space's proxy.

A recipe is written as one mapping, ``{"name": "e4", "epochs": 4}``: the name
keys its runs in ``runs.jsonl`` and its row in the table, every other key is a
``TrainConfig`` field. A length (``epochs`` or ``steps``) replaces the base's
length, whichever way the base gives it (``nas.config.with_overrides``). The
seed is not a recipe's to choose (every recipe is trained on the study's
seeds), so ``seed`` is refused.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from nas.config import DEFAULT_EPOCHS, TrainConfig, check_config, with_overrides
from nas.errors import InputError

REFERENCE_NAME = "reference"
PROXY_NAME = "proxy"  # the space's own proxy, unchanged
#: How many times the proxy's length (epochs or steps) the default reference trains.
REFERENCE_EPOCHS_FACTOR = 4
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$")
_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_TRAIN_CONFIG = pydantic.TypeAdapter(TrainConfig)


@dataclass(frozen=True)
class Recipe:
    """One way to train: ``overrides`` replace fields of the base ``TrainConfig``."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.overrides}

    def config(self, base: TrainConfig, seed: int) -> TrainConfig:
        """``base`` with this recipe's overrides, trained on ``seed``."""
        return with_overrides(base, **self.overrides, seed=int(seed))


def default_recipes(proxy: TrainConfig) -> tuple[list[Recipe], Recipe]:
    """The space's proxy, one cheaper and one longer variant; a reference of 4x the proxy's length.

    The cheaper variant halves the epochs (steps), or the width when the proxy trains a single epoch (step).
    The reference names the proxy's resolution and width explicitly so that ``fidelity.json`` shows them.
    """
    key, tag = ("steps", "s") if proxy.steps is not None else ("epochs", "e")
    e = proxy.steps if proxy.steps is not None else (proxy.epochs or DEFAULT_EPOCHS)
    cheaper = (Recipe(f"{tag}{e // 2}", {key: e // 2}) if e >= 2
               else Recipe(f"w{proxy.width / 2:g}", {"width": proxy.width / 2}))
    candidates = [Recipe(PROXY_NAME, {}), cheaper, Recipe(f"{tag}{2 * e}", {key: 2 * e})]
    reference = Recipe(REFERENCE_NAME, {key: REFERENCE_EPOCHS_FACTOR * e, "resolution": proxy.resolution,
                                        "width": proxy.width})
    return candidates, reference


def parse_recipe(value: Recipe | Mapping[str, Any], where: str, base: TrainConfig) -> Recipe:
    """A validated recipe; a bad one is an ``InputError`` naming ``where`` (e.g. ``recipes[1]``) and the field."""
    if isinstance(value, Recipe):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: expected a mapping such as {{name: e4, epochs: 4}}, got {type(value).__name__}")
    name = value.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{where}.name: expected a short name of letters, digits and _.+- (e.g. e4), got {name!r}")
    overrides = {k: v for k, v in value.items() if k != "name"}
    for key in overrides:
        if key == "seed":
            raise InputError(f"{where}.seed: a recipe does not choose the seed; every recipe is trained on the "
                             "study's seeds")
        if key not in _FIELDS:
            raise InputError(f"{where}.{key}: not a training setting (known: {', '.join(f for f in _FIELDS)})")
    try:
        merged = _TRAIN_CONFIG.validate_python(dataclasses.asdict(with_overrides(base, **overrides)))
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{where}.{loc}: {err['msg']}, got {err.get('input')!r}") from None
    try:
        check_config(merged)
    except InputError as e:
        raise InputError(f"{where}.{str(e).removeprefix('proxy.')}") from None
    # Keep what validation made of each value (e.g. "4" -> 4) so that fidelity.json compares like with like.
    return Recipe(name, {k: getattr(merged, k) for k in overrides})


def resolve_recipes(base: TrainConfig, recipes: Sequence[Recipe | Mapping[str, Any]] | None,
                    reference: Recipe | Mapping[str, Any] | None) -> tuple[list[Recipe], Recipe]:
    """The candidate recipes and the reference, validated against ``base``; ``None`` takes the defaults."""
    default_candidates, default_reference = default_recipes(base)
    if recipes is None:
        candidates = default_candidates
    else:
        if isinstance(recipes, (str, bytes, Mapping)) or not isinstance(recipes, Sequence):
            raise InputError("recipes: expected a list of recipes such as [{name: e4, epochs: 4}]")
        candidates = [parse_recipe(r, f"recipes[{i}]", base) for i, r in enumerate(recipes)]
    if not candidates:
        raise InputError("recipes: at least one candidate recipe is needed")
    ref = default_reference if reference is None else parse_recipe(reference, "reference", base)
    seen: set[str] = set()
    for i, r in enumerate([*candidates, ref]):
        if r.name in seen:
            where = "reference" if i == len(candidates) else f"recipes[{i}]"
            raise InputError(f"{where}.name: {r.name!r} is used twice; each recipe needs its own name")
        seen.add(r.name)
    return candidates, ref


def data_overrides(data: str | Path | None) -> dict[str, Any]:
    """The proxy fields a ``data`` argument sets: an existing path is read in the format its contents show;
    anything else names a data set (such as ``digits``) that needs no path."""
    if data is None:
        return {}
    p = Path(data).expanduser()
    if p.exists():
        return {"dataset": "auto", "path": str(p.resolve())}
    text = str(data)
    if "/" in text or "\\" in text or "." in Path(text).name:
        raise InputError(f"data: {text}: no such file or directory")
    return {"dataset": text, "path": None}
