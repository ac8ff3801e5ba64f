"""Do two trainings of one network, seed and split give the same test accuracy? On the same threads, and on
another thread count (what ``final_eval.jsonl`` now records with each run).

    python -m benchmarks.repro_threads [--epochs N] [--nets K] > benchmarks/logs/repro_threads.log

Trains ``K`` random networks of tiny.yaml with its proxy recipe (``--epochs`` overrides its epoch count) on
seed 1, twice with torch on 1 thread and twice on 2 threads, and prints each run's validation and test accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import time

from benchmarks._machine import cpu_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--nets", type=int, default=3)
    args = ap.parse_args()
    import torch

    from nas.space import load_space
    from nas.train import train

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {cpu_model()}, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}", flush=True)
    space = load_space("tiny.yaml")
    cfg = dataclasses.replace(space.proxy, seed=1, device="cpu", epochs=args.epochs)
    print(f"# recipe: {cfg}", flush=True)
    worst_same, worst_other = 0.0, 0.0
    for k in range(args.nets):
        g = space.sample(random.Random(100 + k))
        runs = []
        for threads in (1, 1, 2, 2):
            torch.set_num_threads(threads)
            r = train(g, cfg, test=True)
            runs.append((threads, r.test_accuracy, r.accuracy))
            print(f"net {k} ({g.hash}) threads {threads}: test {100 * r.test_accuracy:.2f}% "
                  f"val {100 * r.accuracy:.2f}% ({r.train_s:.1f} s)", flush=True)
        worst_same = max(worst_same, abs(runs[0][1] - runs[1][1]), abs(runs[2][1] - runs[3][1]))
        worst_other = max(worst_other, abs(runs[0][1] - runs[2][1]))
    print(f"largest test-accuracy difference, same threads: {100 * worst_same:.2f} points; "
          f"1 vs 2 threads: {100 * worst_other:.2f} points")


if __name__ == "__main__":
    main()
