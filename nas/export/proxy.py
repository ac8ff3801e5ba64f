"""The trained proxy of a family member: ``proxy.json`` beside ``proxy_weights.pt``, and :func:`load_proxy`.

A search trains proxies, never the target network: ``proxy_weights.pt`` is the ``state_dict`` of the member's
proxy (the genotype at the proxy's resolution and width, :func:`nas.proxy.proxy_genotype`, with a head of the
proxy data set's classes) as its trial left it. ``proxy.json`` says how to rebuild that network, so one call
loads it::

    from nas.export import load_proxy
    net = load_proxy("results/mixnet/family/s")   # an nn.Module in eval mode, ready for proxy-sized inputs

Studies written before the proxy's head had the data's classes (a 1000-way head on 10 digits) still load: the
class count is read from the weights themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.errors import InputError
from nas.genotype import Genotype, load
from nas.io import atomic_write_json, read_text
from nas.proxy import MIN_FEATURE, proxy_genotype

PROXY_JSON = "proxy.json"
WEIGHTS = "proxy_weights.pt"


def _state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: one line naming it
        raise InputError(f"{path}: not a proxy state_dict ({type(e).__name__}: {e})") from None
    if not isinstance(sd, dict):
        raise InputError(f"{path}: not a proxy state_dict (a {type(sd).__name__})")
    return sd


def weights_classes(proxy: Genotype, state: dict[str, Any]) -> int:
    """The class count a proxy's weights were trained with: the size of the head's tensors that change with it."""
    from nas.model import build

    one = build(proxy, 1).state_dict()
    for k, v in state.items():
        if k in one and tuple(one[k].shape) != tuple(v.shape) and one[k].shape[0] == 1:
            return int(v.shape[0])
    return 1


def proxy_info(genotype: Genotype, recipe: Any, weights: Path) -> dict[str, Any]:
    """What :func:`load_proxy` needs to rebuild the network ``weights`` belong to (``recipe``: the study's
    proxy ``TrainConfig``)."""
    proxy = proxy_genotype(genotype, recipe.resolution, recipe.width, min_feature=MIN_FEATURE)
    try:
        classes: int | None = weights_classes(proxy, _state_dict(weights))
        problem = None
    except InputError as e:  # exported as kept; load_proxy names the problem when asked to load them
        classes, problem = None, str(e)
    return {"what": "the trained proxy network (not the target network); see family.md",
            "resolution": int(recipe.resolution), "width": float(recipe.width), "min_feature": MIN_FEATURE,
            "num_classes": classes, **({"problem": problem} if problem else {}), "dataset": recipe.dataset,
            "path": Path(recipe.path).name if getattr(recipe, "path", None) else None,
            "epochs": getattr(recipe, "epochs", None), "seed": recipe.seed, "proxy_hash": proxy.hash}


def write_proxy_info(member_dir: Path, genotype: Genotype, recipe: Any) -> None:
    atomic_write_json(member_dir / PROXY_JSON, proxy_info(genotype, recipe, member_dir / WEIGHTS), indent=1)


def load_proxy(member_dir: str | Path):
    """The trained proxy of an exported member (a folder with ``genotype.yaml``, ``proxy.json`` and
    ``proxy_weights.pt``) as an ``nn.Module`` in eval mode; an :class:`~nas.errors.InputError` names what is
    missing."""
    from nas.model import build

    d = Path(member_dir)
    for name in ("genotype.yaml", PROXY_JSON, WEIGHTS):
        if not (d / name).is_file():
            raise InputError(f"{d / name}: missing; the study kept no proxy weights for this member (a scaled "
                             "member was never trained)" if name != "genotype.yaml" else
                             f"{d / name}: missing; not an exported member folder")
    try:
        info = json.loads(read_text(d / PROXY_JSON, what="proxy.json"))
        int(info["resolution"]), float(info["width"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{d / PROXY_JSON}: not a proxy description ({type(e).__name__}: {e})") from None
    g = load(d / "genotype.yaml")
    proxy = proxy_genotype(g, int(info["resolution"]), float(info["width"]),
                           min_feature=int(info.get("min_feature", MIN_FEATURE)))
    state = _state_dict(d / WEIGHTS)
    net = build(proxy, int(info.get("num_classes") or weights_classes(proxy, state)))
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"{d / WEIGHTS}: does not fit the proxy of {d / 'genotype.yaml'} "
                         f"({str(e).splitlines()[0]})") from None
    return net.eval()
