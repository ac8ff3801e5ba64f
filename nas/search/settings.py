"""What a search runs with: the caller's options merged into the space's validated settings.

:class:`SearchOptions` are overrides (``None``: the space's ``search:`` or
``tracking:`` value); :func:`prepare` merges them with pydantic, so an
override is checked exactly as the same value in the space file would be, and
checks everything else a search needs before anything is written. A bad
option is an :class:`~nas.errors.OptionError` naming its field (``sampler``,
``trials``, ...); the CLI turns the field into its flag.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from nas.errors import InputError, OptionError
from nas.results.front import objective_spec
from nas.results.store import StudyDir
from nas.search import budgets
from nas.search.resources import EXECUTION_FIELDS, check_request

log = logging.getLogger(__name__)

OBJECTIVE_MODES = ("train", "cost")
REFERENCE_SAMPLES = 64  # architectures sampled for the hypervolume reference of an unbudgeted cost


@dataclass
class SearchOptions:
    """A search: the space and the caller's overrides of its settings (``nas search`` flags)."""

    space: str | Path
    trials: int | None = None
    sampler: str | None = None
    concurrency: int | None = None
    out: Path | None = None
    study: str | None = None
    address: str | None = None
    seed: int | None = None
    wandb: str | None = None
    objective: str = "train"  # train | cost (costs only, nothing trained)
    screen: int | None = None  # train the best of K proposals per tier under a training-free score
    storage: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None  # None: the space's, or chosen from the cluster (nas.search.resources)
    scheduler: str | None = None
    grace_period: int | None = None

    def execution_overrides(self) -> dict[str, Any]:
        """The overrides of where and how trials run (recorded with each run of the study)."""
        return {k: getattr(self, k) for k in EXECUTION_FIELDS}


@dataclass
class SearchRun:
    """A search checked and resolved, before anything is written."""

    opts: SearchOptions
    space: Any  # the SearchSpace
    settings: Any  # SearchSettings with the overrides merged (the driver fills in the automatic values)
    wandb: str
    objectives: list[dict[str, str]]
    name: str
    sd: StudyDir
    latency_fn: Callable | None

    @property
    def cost_only(self) -> bool:
        return self.opts.objective == "cost"

    @property
    def looked_up(self) -> bool:
        """Accuracy from a published table (``proxy: {kind: table}``): nothing trains."""
        return not self.cost_only and self.space.proxy.kind == "table"

    @property
    def scored(self) -> bool:
        """A training-free score in place of accuracy (``proxy: {kind: score}``): nothing trains."""
        return not self.cost_only and self.space.proxy.kind == "score"

    @property
    def in_process(self) -> bool:
        """Nothing trains, so the search runs in this process, without Ray and its per-trial overhead."""
        return self.cost_only or self.looked_up or self.scored


def prepare(opts: SearchOptions) -> SearchRun:
    """Load the space, merge the options, check the budgets, the address and the study name."""
    from nas.space import load_space

    space = load_space(opts.space)
    settings = merged(space.search, sampler=opts.sampler, trials=opts.trials, seed=opts.seed, storage=opts.storage,
                      screen=opts.screen,
                      **opts.execution_overrides())
    check_request(settings)
    if opts.objective not in OBJECTIVE_MODES:
        raise OptionError("objective", f"{opts.objective!r} is not one of {', '.join(OBJECTIVE_MODES)}")
    wandb = merged(space.tracking, wandb=opts.wandb).wandb
    budgets.validate_budgets(space)
    if space.proxy.kind == "score" and opts.objective != "cost":
        from nas.scores import SCORES

        if space.proxy.score not in SCORES:
            raise InputError(f"{space.source}: proxy.score: {space.proxy.score!r} is not a single score (one of "
                             f"{', '.join(SCORES)}; a combination ranks a group and has no value for one network)")
    if settings.screen > 1:
        from nas.scores import components

        try:
            components(settings.screen_score, "search.screen_score")
        except InputError as e:
            raise InputError(f"{space.source}: {e}") from None
    if settings.score_features is not None:
        from nas.scores import components

        if settings.sampler != "predictor":
            raise InputError(f"{space.source}: search.score_features: only the predictor sampler models accuracy "
                             f"from features (the sampler is {settings.sampler!r})")
        try:
            components(settings.score_features, "search.score_features")
        except InputError as e:
            raise InputError(f"{space.source}: {e}") from None
    objectives = search_objectives(space, opts.objective)
    check_address(opts.address)
    name = opts.study or space.name
    if not name or "/" in name or name in (".", ".."):
        raise OptionError("study", f"{name!r} is not a usable study name (one directory name)")
    if len(name.encode()) > 200 or any(ord(ch) < 32 or ch == "\x7f" for ch in name):
        raise OptionError("study", f"{name[:60]!r} is not a usable study name (at most 200 bytes, no control "
                          "characters)")
    latency_fn = _latency_fn(space, objectives)  # a bad latency table fails before the study directory exists
    return SearchRun(opts=opts, space=space, settings=settings, wandb=wandb, objectives=objectives, name=name,
                     sd=StudyDir(Path(opts.out or "results") / name), latency_fn=latency_fn)


def merged(model: BaseModel, **overrides: Any) -> Any:
    """``model`` with the given (not None) overrides, validated as its fields are; errors name the field."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return model
    try:
        return type(model).model_validate({**model.model_dump(), **given})
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        name = str(err["loc"][0])
        if err["type"] == "literal_error":
            allowed = get_args(type(model).model_fields[name].annotation)
            problem = f"{err['input']!r} is not one of {', '.join(map(str, allowed))}"
        else:
            problem = str(err["msg"]).removeprefix("Value error, ")
            if "got " not in problem:
                problem += f", got {err['input']!r}"
        raise OptionError(name, problem) from None


def search_objectives(space: Any, mode: str) -> list[dict[str, str]]:
    """The space's objectives; in cost-only mode without accuracy (MACs when nothing else is left); with a score
    proxy (``proxy: {kind: score}``) the accuracy objective is the score (maximised), named so."""
    objs = objective_spec(space.objectives)
    if mode != "cost" and space.proxy.kind == "score":
        if any(o["metric"] == "reward" for o in objs):
            raise InputError(f"{space.source}: objectives: a reward needs an accuracy, and a score proxy has none")
        objs = [{"metric": "score", "direction": "maximize"} if o["metric"] == "accuracy" else o for o in objs]
    if mode == "cost":
        # A reward without an accuracy is its cost alone.
        costs = [o["cost"] if o["metric"] == "reward" else o["metric"] for o in objs if o["metric"] != "accuracy"]
        objs = [{"metric": m, "direction": "minimize"} for m in dict.fromkeys(costs)] or [
            {"metric": "macs", "direction": "minimize"}]
    return objs


#: What a Ray GCS (a gRPC server) answers first: an HTTP/2 SETTINGS frame (RFC 9113, section 3.4).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4
ADDRESS_TIMEOUT_S = 5.0


def check_address(address: str | None, timeout: float | None = None) -> None:
    """Fail fast, before anything is written, on an address that is no Ray cluster: nothing listening (Ray would
    retry for minutes), a service that does not speak HTTP/2 as a Ray GCS does (Ray would hang for more than
    ten minutes), or a ``ray://`` address (Ray Client, which nas does not use)."""
    if not address or address == "auto":
        return
    if address.startswith("ray://"):
        raise OptionError("address", f"{address!r}: Ray Client (ray://) is not supported; run nas search on a node "
                          "of the cluster and give the head's GCS address, HOST:PORT (or auto)")
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError("address", f"{address!r} is not auto or HOST:PORT of a Ray head (its GCS, port 6379 "
                          "by default)")
    host = host.strip("[]")
    timeout = ADDRESS_TIMEOUT_S if timeout is None else timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_H2_PREFACE)
            head = _read(sock, 9)
    except TimeoutError:
        raise OptionError("address", f"{address} does not answer as a Ray cluster (no reply within {timeout:g} s; "
                          "is it the head's GCS port?)") from None
    except OSError as e:
        raise OptionError("address", f"no Ray cluster answers at {address} ({e.strerror or e})") from None
    if len(head) < 9 or head[3] != _SETTINGS:
        seen = head[:12].decode("ascii", "replace").strip() or "nothing"
        raise OptionError("address", f"{address} is not a Ray cluster: it does not speak gRPC as a Ray GCS does "
                          f"(it answered {seen!r})")


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _latency_fn(space: Any, objectives: list[dict[str, str]]) -> Callable | None:
    """The latency predictor when the space names a target/LUT; required when latency is budgeted or an objective."""
    b = space.budgets
    needed = (b.latency_ms is not None or any("latency_ms" in (o["metric"], o.get("cost")) for o in objectives)
              or any(t.latency_ms is not None for t in space.family.values()))
    if not (needed or b.target or b.lut):
        return None
    try:
        return budgets.latency_predictor(space)
    except InputError:
        if needed:
            raise
        log.warning("latency prediction unavailable; latency_ms is not recorded")
        return None


def reference_point(space: Any, objectives: list[dict[str, str]], latency_fn: Callable | None = None) -> list[float]:
    """Hypervolume reference: accuracy 0; each cost at its budget, or else the largest of a fixed sample
    of the space (deterministic, so hypervolumes of one space compare across runs)."""
    ref: list[float] = []
    sample = None
    for o in objectives:
        m = o["metric"]
        if o["direction"] == "maximize":
            ref.append(0.0)
            continue
        budget = getattr(space.budgets, m, None)
        if budget is not None:
            ref.append(float(budget))
            continue
        if sample is None:
            sample = [space.sample(i) for i in range(REFERENCE_SAMPLES)]
        if m == "latency_ms":
            vals = [latency_fn(g) for g in sample] if latency_fn else [1.0]
        else:
            vals = [getattr(budgets.target_cost(space, g), m) for g in sample]
        ref.append(float(max(vals)))
    return ref
