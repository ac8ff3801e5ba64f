#!/usr/bin/env bash
# The runs behind RESULTS.md's "Search strategies against NAS-Bench-Macro" (2026-12-07): the predictor first (its
# refits make it the slowest: 30 seeds single-objective at 60 queries, 10 seeds two-objective at 50), then every
# other strategy on 30 seeds (100 queries; random 400). Rerunning resumes from benchmarks/logs/table_search/runs.jsonl.
set -e
B="python -m benchmarks.bench_table_search --out benchmarks/logs/table_search"
$B --samplers predictor --modes so --seeds 30 --budget 60
$B --samplers predictor --modes mo --seeds 10 --mo-budget 50
$B --samplers random,tpe,nsga2,optuna-random,optuna-tpe,optuna-nsga2,gbm-onehot --seeds 30 --budget 100 --mo-budget 100 --random-budget 400
$B --samplers predictor,random,tpe,nsga2,optuna-random,optuna-tpe,optuna-nsga2,gbm-onehot --seeds 30 --modes so,mo
