"""The typed trial record: one finished trial, one JSON object per line of ``trials.jsonl``.

The file format is the record's :meth:`TrialRecord.to_dict`, keys in field order; keys a newer or older
version wrote that this one does not know are kept in :attr:`TrialRecord.extra` and written back after the
known ones. A record is frozen: the proposer derives the finished record from the costed one
(:meth:`TrialRecord.with_result`, :meth:`TrialRecord.answered_from`) instead of changing it.

A record also reads as a mapping (``record["macs"]``, ``record.get("accuracy")``), the way scripts written
against the JSON lines read it, so the functions of :mod:`nas.results.front` take records and plain dicts alike.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.config import COST_METRICS  # noqa: F401 - the costs a record carries, re-exported here

if TYPE_CHECKING:
    from nas.genotype import Genotype

#: Every status a finished trial can have. ``complete`` and ``pruned`` were trained (to the end, or stopped early
#: by the scheduler); ``infeasible`` is over a budget and ``refused`` turned away because the search spreads its
#: trials over the family's tiers (:mod:`nas.search.spread`), both never trained; ``failed`` broke.
STATUSES = ("complete", "pruned", "infeasible", "refused", "failed")
#: The statuses of proposals that were never trained: never a measurement (not a label, not a complete trial).
UNTRAINED = ("infeasible", "refused")
#: The ``violations`` key (and Optuna constraint) of a proposal refused for its tier.
TIER = "tier"
#: What each status is called wherever a person reads it (records' ``state``, plots, W&B, the CLI).
STATE_WORDS = {"complete": "trained", "pruned": "stopped early", "infeasible": "over budget",
               "refused": "refused for its tier", "failed": "failed"}
#: The fields a record answered from an earlier one takes from it (nothing trained, so no time or speed).
_ANSWERED = ("status", "accuracy", "best_accuracy", "epochs", "history", "error", "node", "device",
             "latency_ms_measured", "evaluator")


@dataclass(frozen=True)
class TrialRecord(Mapping[str, Any]):
    """One finished trial. ``genotype`` is the genotype's plain form (:meth:`nas.genotype.Genotype.to_dict`)."""

    number: int
    hash: str
    genotype: dict[str, Any]
    status: str  # one of STATUSES
    accuracy: float | None = None  # proxy validation accuracy after the last epoch run
    best_accuracy: float | None = None
    macs: int | None = None  # target network
    params: int | None = None
    latency_ms: float | None = None  # predicted (LUT)
    latency_ms_measured: float | None = None
    latency_table: str | None = None  # id of the latency table latency_ms was predicted from (nas.cost.table)
    epochs: int = 0  # epochs trained (0: answered without training)
    train_s: float | None = None
    images_per_s: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, val_accuracy, train_loss
    violations: dict[str, float] = field(default_factory=dict)  # relative budget excess per metric (<= 0: within)
    tier: str | None = None  # the family tier whose band holds the target network's costs (nas.search.spread)
    duplicate_of: int | None = None  # the trial whose result this architecture was answered with
    error: str | None = None
    node: str | None = None
    device: str | None = None  # where it trained: "cuda:0 (NVIDIA H200)", "cpu (asked for 0.25 GPU, ...)"
    seed: int | None = None
    time: float | None = None  # when it finished (time.time())
    # the predictor sampler's note on the proposal (nas.search.predictor): source, predicted accuracy and
    # spread, the Kendall tau of its latest model on results it had not seen
    predictor: dict[str, Any] | None = None
    # where the accuracy came from when not from training here: "table:NAME (mean)" (nas.tables)
    evaluator: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # keys this version does not know

    # -- building -------------------------------------------------------------------------------------------

    @classmethod
    def costed(cls, number: int, genotype: Genotype, *, macs: int, params: int, latency_ms: float | None,
               violations: dict[str, float], seed: int, tier: str | None = None,
               predictor: dict[str, Any] | None = None) -> TrialRecord:
        """A costed proposal, nothing trained yet: ``complete`` until a result or a budget says otherwise."""
        return cls(number=number, hash=genotype.hash, genotype=genotype.to_dict(), status="complete",
                   macs=int(macs), params=int(params), latency_ms=latency_ms, violations=violations, tier=tier,
                   seed=seed, time=time.time(), predictor=predictor)

    def with_result(self, result: Mapping[str, Any] | None, planned_epochs: int,
                    error: str | None = None) -> TrialRecord:
        """This record finished by a trial's last report: complete, pruned or failed (``error``: the trial
        process failed, unless the report has an error of its own)."""
        result = result or {}
        hist = result.get("history") or []
        history = [{"epoch": int(h["epoch"]), "val_accuracy": float(h["val_accuracy"]),
                    "train_loss": float(h["train_loss"])} for h in hist]
        epoch = int(result.get("epoch") or len(hist) or 0)
        acc = result.get("val_accuracy")
        best = result.get("best_accuracy", acc)
        timing = {k: float(result[k]) for k in ("train_s", "images_per_s") if result.get(k) is not None}
        failure = str(result["error"]) if result.get("error") else error
        if failure:
            status = "failed"
        elif result.get("final") or epoch >= planned_epochs:
            status = "complete"
        else:
            status = "pruned"
        return dataclasses.replace(
            self, history=history, epochs=epoch, accuracy=float(acc) if acc is not None and epoch > 0 else None,
            best_accuracy=float(best) if best is not None and epoch > 0 else None, node=result.get("node"),
            device=result.get("device"), evaluator=result.get("evaluator") or self.evaluator, time=time.time(),
            status=status, error=failure if failure else self.error, **timing)

    def answered_from(self, prior: Mapping[str, Any]) -> TrialRecord:
        """This architecture answered with ``prior``'s result (the same genotype, trained or waited for)."""
        original = prior["number"] if prior.get("duplicate_of") is None else prior["duplicate_of"]
        return dataclasses.replace(self, **{k: prior.get(k) for k in _ANSWERED}, duplicate_of=original,
                                   train_s=None, images_per_s=None, time=time.time())

    # -- the file format ------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """A record from its JSON object; ``ValueError`` (the problem, one line) when it is not one."""
        problem = record_problem(data)
        if problem:
            raise ValueError(problem)
        known = {k: data[k] for k in _FIELDS if k in data}
        if known["status"] == "infeasible" and (known.get("violations") or {}).get(TIER, 0) > 0:
            known["status"] = "refused"  # written before "refused" had its own status: a tier refusal
        return cls(**known, extra={k: v for k, v in data.items() if k not in _FIELD_SET})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``trials.jsonl`` (``predictor`` only on the trials a predictor sampler proposed)."""
        return {k: self[k] for k in self}

    def to_genotype(self, source: str | None = None) -> Genotype:
        """The genotype; errors name ``source`` (default ``trial N``)."""
        from nas.genotype import from_dict

        return from_dict(self.genotype, source or f"trial {self.number}")

    @property
    def measured(self) -> bool:
        """An accuracy was measured for this architecture (here or in the trial it was answered from): a
        label a predictor may learn from, a point a front may hold."""
        return self.status in ("complete", "pruned") and self.accuracy is not None

    @property
    def trained(self) -> bool:
        """Trained here (not answered from another trial's result)."""
        return self.duplicate_of is None and self.epochs > 0 and self.status in ("complete", "pruned", "failed")

    # -- read as a mapping ----------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key in _FIELD_SET:
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:  # the keys of the JSON object
        yield from (k for k in _FIELDS if k not in _OPTIONAL or getattr(self, k) is not None)
        yield from self.extra

    def __len__(self) -> int:
        return sum(1 for _ in self)


_FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord) if f.name != "extra")
_FIELD_SET = frozenset(_FIELDS)
_OPTIONAL = frozenset({"predictor", "evaluator", "latency_table"})  # written only when set, so files of other samplers keep their form


def record_problem(rec: Any) -> str | None:
    """Why ``rec`` (a parsed JSON line) is not a trial record, or None.

    Every field a reader computes with is checked for its type (a record from a shared study directory is
    untrusted: ``"macs": "lots"`` must be this one line, not a traceback in the front or on resume).
    """
    if not isinstance(rec, Mapping):
        return "expected a JSON object"
    for key, types in (("number", int), ("hash", str), ("genotype", dict), ("status", str)):
        if not isinstance(rec.get(key), types) or isinstance(rec.get(key), bool):
            return f"{key}: missing or not a {types.__name__}"
    if rec.get("predictor") is not None and not isinstance(rec["predictor"], Mapping):
        return "predictor: not a JSON object"
    if rec["number"] < 0:
        return f"number: {rec['number']} is negative"
    if rec["status"] not in STATUSES:
        return f"status: {rec['status']!r} is not one of {', '.join(STATUSES)}"
    for key, kind in _TYPES.items():
        v = rec.get(key)
        if v is not None and not _is(v, kind):
            return f"{key}: {_show(v)} is not {_KIND_NAMES[kind]}"
    for i, h in enumerate(rec.get("history") or ()):
        if not isinstance(h, Mapping) or not (_is(h.get("epoch"), "count") and _is(h.get("val_accuracy"), "number")):
            return f"history[{i}]: expected an object with an integer epoch and a numeric val_accuracy"
    if not all(isinstance(k, str) and _is(v, "number") for k, v in (rec.get("violations") or {}).items()):
        return "violations: expected an object of numbers"
    return None


#: The type of every optional field of the file format (checked by :func:`record_problem`).
_TYPES = {"accuracy": "number", "best_accuracy": "number", "macs": "amount", "params": "amount",
          "latency_ms": "number", "latency_ms_measured": "number", "latency_table": "str", "epochs": "count", "train_s": "number",
          "images_per_s": "number", "history": "list", "violations": "object", "tier": "str",
          "duplicate_of": "count", "error": "str", "node": "str", "device": "str", "evaluator": "str", "seed": "int", "time": "number"}
_KIND_NAMES = {"number": "a number", "amount": "a non-negative number", "count": "a non-negative integer",
               "int": "an integer", "list": "a list", "object": "an object", "str": "a string"}


def _is(v: Any, kind: str) -> bool:
    if isinstance(v, bool):
        return False
    if kind in ("number", "amount"):
        return isinstance(v, (int, float)) and (kind == "number" or v >= 0)
    if kind in ("count", "int"):
        return isinstance(v, int) and (kind == "int" or v >= 0)
    return isinstance(v, {"list": list, "object": Mapping, "str": str}[kind])


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def state_text(rec: Mapping[str, Any]) -> str:
    """The state of a finished trial in words, the same wherever a person reads it: ``trained``, ``stopped
    early (epoch 2 of 5)``, ``over budget (macs +12%)``, ``refused for its tier (m: ...)``, ``failed: ...``,
    ``costed (not trained)`` (cost-only searches)."""
    status = rec.get("status")
    violations = rec.get("violations") or {}
    if status == "infeasible":
        over = ", ".join(f"{m} +{100 * v:.0f}%" for m, v in violations.items() if v > 0 and m != TIER)
        return f"over budget ({over})" if over else "over budget"
    if status == "refused":
        tier = rec.get("tier")
        where = f"in tier {tier}" if tier else "in no tier"
        return (f"refused for its tier (not trained: {where}, which had more designs than another; the search "
                "spreads its trials over the family's tiers)")
    if status == "failed":
        err = str(rec.get("error") or "").splitlines()
        return "failed" + (f": {err[0][:120]}" if err else "")
    if status == "pruned":
        return f"stopped early (epoch {rec.get('epochs') or 0})"
    if status == "complete" and not rec.get("epochs") and rec.get("accuracy") is None:
        return "costed (not trained)"
    return "trained"


def as_record(rec: Mapping[str, Any]) -> TrialRecord:
    """``rec`` itself when it is a :class:`TrialRecord`, else the record of that JSON object."""
    return rec if isinstance(rec, TrialRecord) else TrialRecord.from_dict(rec)
