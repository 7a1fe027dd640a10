#!/usr/bin/env bash
# One prepared GPU session for Chapters 5 and 6: runs the CIFAR sweeps in priority order
# within a time budget, resuming from the committed results, and writes to $OUT/results.
#
# Caller (a session with the device tool), from the repo root:
#   mkdir -p .data && cp /work/shared/data/cifar10_jpeg.npz .data/    # .data/ is git-ignored
#   run(command="SAM_GIT_COMMIT=<git rev-parse HEAD> bash scripts/gpu_session.sh 540",
#       carry=[".data"], timeout_s=600)
# then copy the new files back and commit them:
#   cp -rn <files_at>/results/. results/ && make execute && make test
#
# Usage: bash scripts/gpu_session.sh [BUDGET_SECONDS]   (default 540; never exceeded)
# Environment (all optional):
#   OUT            output folder (the device tool sets it; default /tmp/gpu_out)
#   GPU_PLAN       space-separated steps, "sweep:seeds" or "bench" (default below)
#   GPU_DEVICE     cuda (default) or cpu (to test this script's logic on a CPU)
#   GPU_SEED_RESULTS  results folder copied into $OUT/results first (default results)
#   GPU_MARGIN_S   seconds kept in reserve for the summary (default 25)
#   PYTHON         interpreter (default python3)
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

BUDGET=${1:-540}
OUT=${OUT:-/tmp/gpu_out}
PY=${PYTHON:-python3}
DEVICE=${GPU_DEVICE:-cuda}
SEED_RESULTS=${GPU_SEED_RESULTS:-results}
MARGIN=${GPU_MARGIN_S:-25}
PLAN=${GPU_PLAN:-"cifar10-rho:0 cifar10-remedy:0 bench cifar10-resnet18:0 cifar10-rho:1,2 cifar10-remedy:1,2 cifar10-resnet18:1"}
DATA=${SAM_DATA_DIR:-$PWD/.data}
export SAM_DATA_DIR=$DATA
export SAM_CACHE_DIR=${SAM_CACHE_DIR:-/tmp/sam_hallucination_cache}  # not under $OUT
RES="$OUT/results"
START=$(date +%s)
DEADLINE=$((START + BUDGET - MARGIN))

left() { echo $((DEADLINE - $(date +%s))); }
log() { echo "[gpu_session +$(($(date +%s) - START))s] $*"; }

# Copy runs that two sweeps share (same config => same run id) into the other's folder.
share_runs() {
    "$PY" - "$RES" <<'EOF'
import shutil, sys
from pathlib import Path
from sam_hallucination.experiments import get_sweep
res = Path(sys.argv[1])
names = ("cifar10-rho", "cifar10-remedy")
ids = {n: {c.run_id() for c in get_sweep(n).runs} for n in names}
for a in names:
    for b in names:
        if a != b:
            for rid in ids[a] & ids[b]:
                src, dst = res / a / f"{rid}.json", res / b / f"{rid}.json"
                if src.exists() and not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
EOF
}

mkdir -p "$RES"
if [ -d "$SEED_RESULTS" ]; then cp -rp "$SEED_RESULTS"/. "$RES"/; fi
find "$RES" -name '*.pt' -delete
log "budget ${BUDGET}s (margin ${MARGIN}s), device $DEVICE, plan: $PLAN"
if [ "$DEVICE" = cuda ]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"
fi
if ! ls "$DATA"/cifar10_jpeg.npz >/dev/null 2>&1; then
    echo "ERROR: $DATA/cifar10_jpeg.npz missing: copy /work/shared/data/cifar10_jpeg.npz to .data/ and pass carry=[\".data\"]" >&2
    exit 2
fi
"$PY" -c "import sam_hallucination.experiments"  # fails early (e.g. a missing dependency)

for step in $PLAN; do
    rem=$(left)
    if [ "$rem" -lt 30 ]; then log "stop: ${rem}s left"; break; fi
    if [ "$step" = bench ]; then
        mkdir -p "$RES/benchmarks"
        bench="$RES/benchmarks/train_step_${DEVICE}.txt"
        if [ -s "$bench" ] || [ "$rem" -lt 150 ]; then log "bench: skipped (done or ${rem}s left)"; continue; fi
        log "bench: benchmarks/train_step.py --full-runs (limit ${rem}s)"
        rc=0
        timeout --kill-after=5 "$rem" "$PY" benchmarks/train_step.py --full-runs > "$bench.tmp" 2>&1 || rc=$?
        cat "$bench.tmp"
        if [ "$rc" -eq 0 ]; then mv "$bench.tmp" "$bench"; else log "bench: exit $rc (kept $bench.tmp)"; fi
        continue
    fi
    sweep=${step%%:*}
    seeds=${step#*:}
    [ "$seeds" = "$step" ] && seeds=""
    share_runs
    log "$sweep seeds ${seeds:-all}: time budget $((rem - 10))s"
    rc=0
    timeout --kill-after=5 "$rem" "$PY" -m sam_hallucination.experiments "$sweep" \
        --device "$DEVICE" --results "$RES" --time-budget "$((rem - 10))" --no-progress \
        ${seeds:+--seeds "$seeds"} || rc=$?
    if [ "$rc" -ne 0 ]; then log "$sweep: exit $rc (a killed run leaves no file; finished runs are kept)"; fi
done
share_runs

log "summary"
hard=$((START + BUDGET - $(date +%s) - 1))
if [ "$hard" -gt 2 ]; then
    timeout --kill-after=1 "$hard" "$PY" - "$RES" "$START" <<'EOF' || true
import sys
from pathlib import Path
from sam_hallucination.experiments import get_sweep, load_results
res, start = Path(sys.argv[1]), float(sys.argv[2])
for name in ("cifar10-rho", "cifar10-remedy", "cifar10-resnet18"):
    runs = get_sweep(name).runs
    recs = {r["run_id"]: r for r in load_results(name, res)}
    have = [c for c in runs if c.run_id() in recs]
    div = sum(recs[c.run_id()]["status"] == "diverged" for c in have)
    per = ", ".join(f"seed {s}: {sum(c.seed == s for c in have)}/{sum(c.seed == s for c in runs)}"
                    for s in sorted({c.seed for c in runs}))
    wall = sum(recs[c.run_id()]["wall_time_s"] for c in have)
    print(f"  {name:18s} {len(have):3d}/{len(runs)} runs ({per}); {div} diverged; "
          f"{wall:.0f} s of run time")
new = sorted(p.relative_to(res).as_posix() for p in res.rglob("*")
             if p.is_file() and p.stat().st_mtime >= start)
print(f"  new or updated files: {len(new)}")
for f in new:
    print("   ", f)
EOF
fi
log "done in $(($(date +%s) - START))s of ${BUDGET}s; copy $RES back into results/ and commit"
