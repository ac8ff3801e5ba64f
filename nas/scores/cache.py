"""Training-free scores of genotypes, computed once per network and kept.

A :class:`ScoreCache` answers a genotype's single scores (``naswot``, ``depth``, ...) from memory, then from its
JSONL file (one line per network: ``{"hash", "scorer", "values"}``), and only then computes them with its
:class:`~nas.scores.registry.Scorer`, appending the new line. The file may hold networks of several scorers
(resolution, width, classes, seeds, batch size): a line is used only by the scorer that wrote it. Users of many
scores of the same networks (the predictor sampler's score features, a benchmark over a whole table) pay for
each network once, and a search that resumes does not score its networks again.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from nas.errors import InputError
from nas.genotype import Genotype
from nas.scores.registry import Scorer, components


def scorer_key(scorer: Scorer) -> str:
    """What makes two scorers' values comparable; a scorer with a fixed input batch has no key (not cached on
    disk: the batch is not part of the key)."""
    return (f"r{scorer.resolution}-w{scorer.width:g}-c{scorer.num_classes}-i{scorer.in_chans}"
            f"-s{','.join(map(str, scorer.seeds))}-b{scorer.batch_size}")


class ScoreCache:
    """``cache(genotype)`` -> ``{name: value}`` for the single scores ``names`` (a score name or list: its
    components), computed by ``scorer`` at most once per network and kept in ``path`` when given."""

    def __init__(self, scorer: Scorer, names: str | Sequence[str], path: str | os.PathLike[str] | None = None
                 ) -> None:
        self.scorer = scorer
        self.names = components(names, "score_features")
        self.key = scorer_key(scorer) if scorer.batch is None else None
        self.path = Path(path) if path is not None and self.key is not None else None
        self._values: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self.computed = 0  # networks scored by this cache (not read back)
        self.seconds = 0.0
        if self.path is not None and self.path.exists():
            self._read(self.path)

    def _read(self, path: Path) -> None:
        with open(path, "rb+") as fb:  # a last line cut short by a kill is dropped: the next run scores it again
            data = fb.read()
            if data and not data.endswith(b"\n"):
                fb.truncate(data.rfind(b"\n") + 1)
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    h, key = row["hash"], row["scorer"]
                    values = {k: float(v) if v is not None else -math.inf for k, v in row["values"].items()}
                    if not isinstance(h, str) or not isinstance(key, str):
                        raise TypeError("hash and scorer must be strings")
                    if key == self.key:
                        self._values.setdefault(h, {}).update(values)
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    raise InputError(f"{path}: line {n}: not a score record ({e})") from e

    def __len__(self) -> int:
        return len(self._values)

    def __call__(self, genotype: Genotype) -> dict[str, float]:
        h = genotype.hash
        with self._lock:
            have = self._values.get(h, {})
            missing = [n for n in self.names if n not in have]
        if missing:
            res = self.scorer.scores(genotype, missing)
            new = {n: r.value for n, r in res.items()}
            with self._lock:
                self.computed += 1
                self.seconds += max(r.seconds for r in res.values())
                self._values.setdefault(h, {}).update(new)
                if self.path is not None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    row = {"hash": h, "scorer": self.key,
                           "values": {k: (v if math.isfinite(v) else None) for k, v in new.items()}}
                    with open(self.path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row, sort_keys=True) + "\n")
                have = self._values[h]
        return {n: have[n] for n in self.names}


def feature_values(cache: ScoreCache, genotype: Genotype) -> dict[str, float]:
    """The score features of one network as cost-like entries ``score:NAME`` (non-finite values left out: the
    model reads them as absent)."""
    out = {}
    for n, v in cache(genotype).items():
        if v is not None and math.isfinite(v):
            out[f"score:{n}"] = float(v)
    return out
