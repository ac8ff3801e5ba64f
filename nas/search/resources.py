"""Where trials run: CPUs and GPUs per trial and how many at once, chosen from the Ray cluster; the run log.

A space's ``search:`` section (or ``nas search --gpus-per-trial/--concurrency``) may leave ``gpus_per_trial``
and ``concurrency`` unset, the default. Once Ray is up (started here or joined with ``--address``) the driver
reads its live nodes and :func:`place` chooses:

* ``gpus_per_trial``: 0 when no node has a GPU (trials train on CPU, as without Ray); otherwise a share of
  one GPU from the proxy's size (:func:`gpu_share`): a quarter for the small proxies (every shipped space's),
  a half up to four times their size, a whole GPU above. An explicit 0 trains on CPU whatever the nodes have.
* ``concurrency``: the number of trials that fit at once, per node the smaller of GPUs / ``gpus_per_trial``
  and CPUs / ``cpus_per_trial``, summed over the nodes (at least 1).

A request no node can hold (``--gpus-per-trial 0.5`` on a machine without a GPU, 8 CPUs per trial on 4-CPU
nodes) would leave Ray waiting for ever: on a local Ray it is an :class:`~nas.errors.OptionError` before anything
starts; on a joined cluster, where an autoscaler may still add the node, a warning the driver passes on.

Every run appends what it ran with to ``<study>/runs.json`` (:func:`record_run`), so a resumed study says
how its earlier runs were placed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import InputError, OptionError
from nas.io import atomic_write_json

#: ``batch_size * resolution**2 * width`` of a proxy up to which a trial gets a quarter, then a half of a GPU
#: (above: a whole one). A quarter covers a 32-px batch of 128 at full width: the proxies of every shipped space.
GPU_SHARES = ((128 * 32 * 32, 0.25), (4 * 128 * 32 * 32, 0.5))
#: The search settings that say where and how trials run (recorded per run, overridable by flags).
EXECUTION_FIELDS = ("concurrency", "cpus_per_trial", "gpus_per_trial", "scheduler", "grace_period")
RUNS_FILE = "runs.json"
_EPS = 1e-9  # 1 / 0.25 must count 4 trials, not 3.9999


@dataclass(frozen=True)
class Node:
    cpus: float
    gpus: float


@dataclass(frozen=True)
class Cluster:
    """The live nodes of the Ray the search uses; ``local``: started here (or already running here), not joined."""

    nodes: tuple[Node, ...]
    local: bool = True

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)

    @property
    def name(self) -> str:
        return "the local Ray" if self.local else "the Ray cluster"

    def describe(self) -> str:
        """``2 CPUs, 0 GPUs`` or ``3 nodes, 32 CPUs, 8 GPUs``."""
        what = f"{_count(self.cpus, 'CPU')}, {_count(self.gpus, 'GPU')}"
        return what if self.local else f"{_count(len(self.nodes), 'node')}, {what}"

    def to_dict(self) -> dict[str, Any]:
        return {"local": self.local, "nodes": len(self.nodes), "cpus": self.cpus, "gpus": self.gpus}


@dataclass(frozen=True)
class Placement:
    """The search settings with every automatic value chosen, and why."""

    settings: Any  # SearchSettings, concurrency and gpus_per_trial set
    cluster: Cluster | None  # None: cost-only, nothing placed
    auto: tuple[str, ...] = ()  # the fields chosen here
    warning: str | None = None  # a request no node holds now, on a joined cluster

    def describe(self) -> str:
        """One line: how many trials at once, on what (and what was chosen automatically)."""
        st = self.settings
        if self.cluster is None:
            return "cost only: nothing is trained"
        line = (f"trials: {st.concurrency} at a time, each {_count(st.cpus_per_trial, 'CPU')} and "
                f"{_count(st.gpus_per_trial, 'GPU') if st.gpus_per_trial else 'no GPU (CPU training)'}")
        if self.auto:
            line += f" ({' and '.join(self.auto)} chosen for {self.cluster.name}: {self.cluster.describe()})"
        return line


def gpu_share(proxy: Any) -> float:
    """The share of one GPU a trial of this proxy gets when ``gpus_per_trial`` is automatic (see the module doc)."""
    size = proxy.batch_size * proxy.resolution ** 2 * proxy.width
    return next((share for limit, share in GPU_SHARES if size <= limit), 1.0)


def trials_that_fit(nodes: tuple[Node, ...], cpus: float, gpus: float) -> int:
    """Trials of ``cpus`` CPUs and ``gpus`` GPUs that Ray can run at once on these nodes."""
    total = 0
    for n in nodes:
        fit = math.floor(n.cpus / cpus + _EPS)
        if gpus > 0:
            fit = min(fit, math.floor(n.gpus / gpus + _EPS))
        total += max(0, fit)
    return total


def check_request(settings: Any) -> None:
    """What Ray refuses whatever the cluster: more than one GPU per trial must be a whole number."""
    g = settings.gpus_per_trial
    if g is not None and g > 1 and not float(g).is_integer():
        raise OptionError("gpus_per_trial", f"above 1 a trial takes whole GPUs (Ray's rule), got {g:g}")


def place(settings: Any, proxy: Any, cluster: Cluster) -> Placement:
    """Choose the automatic ``gpus_per_trial`` and ``concurrency`` for ``cluster`` and check that a trial fits."""
    check_request(settings)
    auto: list[str] = []
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = gpu_share(proxy) if any(n.gpus > 0 for n in cluster.nodes) else 0.0
        auto.append("gpus_per_trial")
    cpus = settings.cpus_per_trial
    fit = trials_that_fit(cluster.nodes, cpus, gpus)
    warning = None
    if fit == 0:
        problem = _unfit(cluster, cpus, gpus)
        if cluster.local:
            raise OptionError("gpus_per_trial" if gpus > 0 and not _holds_gpus(cluster, gpus) else "cpus_per_trial",
                              problem)
        warning = f"{problem}: trials wait until such a node joins (Ctrl-C stops the search)"
    concurrency = settings.concurrency
    if concurrency is None:
        concurrency = max(1, fit)
        auto.append("concurrency")
    resolved = settings.model_copy(update={"gpus_per_trial": float(gpus), "concurrency": int(concurrency)})
    return Placement(resolved, cluster, tuple(auto), warning)


def cost_only(settings: Any) -> Placement:
    """Nothing is trained: no GPUs, and one proposal at a time unless the settings say otherwise."""
    resolved = settings.model_copy(update={"gpus_per_trial": settings.gpus_per_trial or 0.0,
                                           "concurrency": settings.concurrency or 1})
    return Placement(resolved, None)


def _holds_gpus(cluster: Cluster, gpus: float) -> bool:
    return any(n.gpus + _EPS >= gpus for n in cluster.nodes)


def _unfit(cluster: Cluster, cpus: float, gpus: float) -> str:
    ask = f"a trial asks for {_count(gpus, 'GPU') + ' and ' if gpus > 0 else ''}{_count(cpus, 'CPU')}"
    if gpus > 0 and cluster.gpus == 0:
        return f"{ask}, but {cluster.name} has no GPU ({cluster.describe()}; gpus_per_trial 0 trains on CPU)"
    return f"{ask}, but no node of {cluster.name} has that much ({cluster.describe()})"


def _count(x: float, unit: str) -> str:
    return f"{x:g} {unit}" + ("" if x == 1 or (0 < x < 1) else "s")


def ray_cluster(local: bool) -> Cluster:
    """The live nodes of the initialised Ray and their CPUs and GPUs (logical, as Ray schedules them)."""
    import ray

    nodes = tuple(Node(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
                  for n in ray.nodes() if n.get("Alive"))
    return Cluster(nodes, local)


# -- the run log ----------------------------------------------------------------------------------------------


def run_entry(placement: Placement, objective: str, address: str | None,
              overrides: Mapping[str, Any]) -> dict[str, Any]:
    """What one run of a study ran with: its search settings, which were automatic, the flags, the cluster."""
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "objective": objective, "address": address,
            "search": placement.settings.model_dump(), "auto": list(placement.auto),
            "overrides": {k: v for k, v in overrides.items() if v is not None},
            "cluster": placement.cluster.to_dict() if placement.cluster else None}


def read_runs(study_dir: Path) -> list[dict[str, Any]]:
    """The runs recorded in ``<study>/runs.json``, oldest first (none for a study older than the file)."""
    import json

    path = Path(study_dir) / RUNS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a run log ({e.__class__.__name__}: {e}); move it away to go on") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise InputError(f"{path}: runs: expected a list of runs; move the file away to go on")
    return doc["runs"]


def record_run(study_dir: Path, entry: dict[str, Any],
               earlier: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Append ``entry`` to ``<study>/runs.json`` (to ``earlier``, the runs read before, if given); returns every
    run, this one last."""
    runs = [*(read_runs(study_dir) if earlier is None else earlier), entry]
    atomic_write_json(Path(study_dir) / RUNS_FILE, {"runs": runs})
    return runs


def describe_run(entry: Mapping[str, Any]) -> str:
    """One line for a recorded run."""
    s = entry.get("search") or {}
    if entry.get("objective") == "cost":
        return f"{entry.get('started')}: cost only"
    gpus = s.get("gpus_per_trial") or 0
    return (f"{entry.get('started')}: {s.get('concurrency')} at a time, {_count(s.get('cpus_per_trial', 1), 'CPU')} "
            f"and {_count(gpus, 'GPU') if gpus else 'no GPU'} per trial, sampler {s.get('sampler')}, scheduler "
            f"{s.get('scheduler')}" + (f", on {entry['address']}" if entry.get("address") else ""))
