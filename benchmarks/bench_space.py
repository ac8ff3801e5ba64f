"""Search-space speed: sampling, costing, containment, counting and the exact cheapest architecture.

    python -m benchmarks.bench_space

Prints wall and process CPU time per operation for each shipped space (CPU time is the steadier figure
on a shared machine). The issue asks for 1,000 samples from mixnet.yaml in under a second.

"Within budget" is the analytic budgets only (MACs, parameters): a latency budget (mixnet.yaml's) is a
prediction whose parts are timed on demand on this machine, which is ``bench_latency``'s subject, not the
space's speed (timing a thousand networks' parts would take many minutes).
"""

from __future__ import annotations

import time
from functools import partial

from benchmarks._machine import banner
from nas.search.budgets import min_achievable, target_cost, validate_budgets, violations
from nas.space import load_space

SPACES = ("mixnet.yaml", "tiny.yaml", "ghost_acb.yaml", "cifar.yaml")
N = 1000


def analytic_feasible(space, genotype) -> bool:
    """Within the space's MAC and parameter budgets (a latency budget left out: see the module docstring)."""
    return all(v <= 0 for m, v in violations(space, genotype, latency_ms=0.0).items() if m != "latency_ms")


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    banner("search spaces: sampling, costs, containment, counting")
    print(f"{'space':<15} {'operation':<34} {'wall s':>8} {'cpu s':>8}")
    for name in SPACES:
        space = load_space(name)
        genotypes, w, c = _timed(lambda s=space: [s.sample(i) for i in range(N)])
        rows = [(f"{N} samples", w, c)]
        _, w, c = _timed(lambda s=space, gs=genotypes: [target_cost(s, g) for g in gs])
        rows.append((f"{N} analytic costs (MACs, params)", w, c))
        feas, w, c = _timed(lambda s=space: s.sample_many(N, seed=1, feasible=partial(analytic_feasible, s)))
        rows.append((f"{N} feasible samples (rejection)", w, c))
        ok, w, c = _timed(lambda s=space, gs=genotypes: all(s.contains(g) for g in gs))
        assert ok
        rows.append((f"{N} contains()", w, c))
        params = [space.params_of(g) for g in genotypes[:100]]
        _, w, c = _timed(lambda s=space, ps=params: [s.from_params(p) for p in ps])
        rows.append(("100 from_params()", w, c))
        n, w, c = _timed(space.count)
        rows.append((f"count() = 10^{len(str(n)) - 1}", w, c))
        mins, w, c = _timed(lambda s=space: min_achievable(load_space(s.source)))
        rows.append((f"min_achievable() {mins['macs'] / 1e6:.1f}M MACs", w, c))
        _, w, c = _timed(lambda s=space: validate_budgets(load_space(s.source)))
        rows.append(("validate_budgets() (fresh load)", w, c))
        for op, w, c in rows:
            print(f"{name:<15} {op:<34} {w:8.3f} {c:8.3f}")
        feasible_share = sum(analytic_feasible(space, g) for g in genotypes) / N
        print(f"{name:<15} {'share within the MAC/param budgets':<34} {feasible_share:8.1%}")


if __name__ == "__main__":
    main()
