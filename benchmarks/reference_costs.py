"""The shipped reference genotypes against their published parameter counts and MACs (what README.md claims).

    python -m benchmarks.reference_costs > benchmarks/logs/reference_costs.log

Prints, per reference: parameters counted here (equal to the built module's), the published count and the
difference; MACs counted here (conv + linear, equal to ``FlopCounterMode`` on the built module), the published
conv + linear MACs where one exists (``nas.cost.published``) and the figure the paper prints.
"""

from __future__ import annotations

import json
import os
import time

from benchmarks._machine import cpu_model


def main() -> None:
    from nas.cost.macs import REFERENCES, count
    from nas.genotype import load
    from nas.space import find_space_file

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {cpu_model()}")
    print(f"{'reference':24s} {'params':>10s} {'published':>10s} {'diff':>7s} {'MACs':>12s} {'published':>12s} "
          f"{'diff':>7s} {'paper':>12s} {'diff':>7s}")
    rows = []
    for name in sorted(REFERENCES):
        pub = REFERENCES[name]
        c = count(load(find_space_file(f"reference/{name}.yaml")))

        def rel(a, b):
            return None if b is None else 100 * (a - b) / b

        row = {"name": name, "params": c.params, "params_published": pub.params, "params_diff_pct": rel(c.params,
               pub.params), "macs": c.macs, "macs_published": pub.macs, "macs_diff_pct": rel(c.macs, pub.macs),
               "macs_paper": pub.macs_paper, "macs_paper_diff_pct": rel(c.macs, pub.macs_paper)}
        rows.append(row)

        def pct(v):
            return "-" if v is None else f"{v:+.2f}%"

        def num(v):
            return "-" if v is None else f"{v:,}"

        print(f"{name:24s} {c.params:>10,} {pub.params:>10,} {pct(row['params_diff_pct']):>7s} {c.macs:>12,} "
              f"{num(pub.macs):>12s} {pct(row['macs_diff_pct']):>7s} {num(pub.macs_paper):>12s} "
              f"{pct(row['macs_paper_diff_pct']):>7s}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
