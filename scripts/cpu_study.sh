#!/usr/bin/env bash
# The CPU study's queue (Chapters 5-6), in order (the dose control before the label-noise
# and ASAM arms: it decides Chapter 6's question); every step resumes and skips what is done.
# Start one worker per core (each one process, --jobs 1, one torch thread); they share the work through per-run locks:
#   for i in 1 2; do bash scripts/cpu_study.sh ../shared/data > worker$i.log 2>&1 & done
# Run it from a clean checkout: each record names its commit. Cost per run and totals:
# results/benchmarks/cpu_study_calibration.txt.
set -euo pipefail
DATA=${1:-../shared/data}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
sweep() { $PY -m sam_hallucination.runs "$1" --device cpu --data "$DATA" --threads 1 \
  --no-progress --jobs 1 "${@:2}"; }
ends() { $PY -m sam_hallucination.runs.endpoints "$1" --data "$DATA" --threads 1 "${@:2}"; }
sweep cifar10-cpu-calib
sweep cifar10-cpu-study --save-models
ends cifar10-cpu-study --upgrade --controls
sweep cifar10-cpu-dose
sweep cifar10-cpu-study-noise --save-models
ends cifar10-cpu-study-noise
sweep cifar10-cpu-study-asam --save-models
ends cifar10-cpu-study-asam
sweep cifar10-cpu-switch
sweep cifar10-cpu-rule
