#!/usr/bin/env bash
# One prepared GPU session for Chapters 5 and 6: runs the owed CIFAR sweeps in priority
# order within a time budget, resuming from the committed results, and hands back at most
# a few files in $OUT (the device tool returns at most 8 files, two folders deep):
#
#   $OUT/results_new.tar.gz    the result files that are new relative to results/ (flat
#                              <sweep>/<run_id>.json and benchmarks/<file> members), rewritten
#                              atomically within ~1 s of every finished run, so a kill at the
#                              time limit still leaves a valid archive of everything finished
#   $OUT/session.log           everything this script printed
#   $OUT/bench_train_step.txt  the engine benchmark's output (only when the plan reached it)
#   ($OUT/results_new.tar.gz.part: only if a kill hit a re-pack; ignore it)
#
# Runs go to a scratch folder outside $OUT ($GPU_SCRATCH), seeded from results/ so finished
# runs are skipped. Committed results are never copied into $OUT.
#
# Caller (a session with the device tool), from the root of the checkout the tool sends
# (the session's own checkout), with everything committed:
#   mkdir -p .data && cp ../shared/data/cifar10_jpeg_compact.npz .data/    # git-ignored
#   python scripts/gpu_payload_check.py --carry .data                     # <= 60 MiB or stop
#   run(command="SAM_GIT_COMMIT=$(git rev-parse HEAD) bash scripts/gpu_session.sh 540",
#       carry=[".data"], timeout_s=590)
#   where $(git rev-parse HEAD) is expanded HERE, into the 40-hex commit: the device gets no
#   .git, so the results would name no commit and the ingest would refuse them;
# then, on this side:
#   python scripts/ingest_gpu_results.py <files_at>/results_new.tar.gz && make execute && make test
#
# Usage: bash scripts/gpu_session.sh [BUDGET_SECONDS]   (default 540; never exceeded)
# The logic is in src/sam_hallucination/runs/gpu_session.py (and runs/jobs_calibration.py);
# this script keeps the time budget, the log, and the stopping of its children.
# Environment (all optional):
#   OUT               output folder (the device tool sets it; default /tmp/gpu_out)
#   GPU_PLAN          space-separated steps: "calibrate" (first only: the CUDA smoke and the
#                     choice of GPU_JOBS), "sweep" (all seeds), "sweep:0,1" or "bench"
#   GPU_DEVICE        cuda (default) or cpu (to test this script's logic on a CPU)
#   GPU_SEED_RESULTS  the committed results folder (default results; never written)
#   GPU_SCRATCH       where runs are written (default /tmp/gpu_session_results; kept across
#                     calls on the same machine, so a second call resumes the first)
#   GPU_MAX_RUNS      start at most this many runs per plan step (tests)
#   GPU_BENCH         the benchmark script (default benchmarks/train_step.py; tests stub it)
#   GPU_BENCH_ARGS    its arguments (default --full-runs)
#   GPU_JOBS          runs side by side, one process each (--jobs): a number, or auto
#                     (default): the K that "calibrate" measured best; without that step 4 on
#                     CUDA (4 processes gave 1.37x on an H200 once), 1 on a CPU
#   GPU_CALIBRATE_KS  the K that "calibrate" times (default 1,2,4 on CUDA, 1,2 on a CPU)
#   GPU_CALIBRATE_S   its time limit, worker start-up included (default 35)
#   GPU_MARGIN_S      seconds kept in reserve for the summary and the last pack (default 25)
#   SAM_GIT_COMMIT    the commit the copied tree is at (needed where .git is not copied)
#   PYTHON            interpreter (default python3)
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

BUDGET=${1:-540}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
START=${GPU_SESSION_START:-$(date +%s)}

# Everything printed also goes to $OUT/session.log: re-run this script under tee. tee ignores
# SIGTERM, so the lines printed while stopping at the time limit still reach the log.
if [ -z "${GPU_SESSION_TEED:-}" ]; then
    set +e
    GPU_SESSION_TEED=1 GPU_SESSION_START=$START bash "$0" "$@" 2>&1 \
        | (trap '' TERM; exec tee -a "$OUT/session.log")
    exit "${PIPESTATUS[0]}"
fi

PY=${PYTHON:-python3}
DEVICE=${GPU_DEVICE:-cuda}
COMMITTED=${GPU_SEED_RESULTS:-results}
SCRATCH=${GPU_SCRATCH:-/tmp/gpu_session_results}
MAX_RUNS=${GPU_MAX_RUNS:-}
BENCH=${GPU_BENCH:-benchmarks/train_step.py}
BENCH_ARGS=${GPU_BENCH_ARGS:---full-runs}
MARGIN=${GPU_MARGIN_S:-25}
CALIBRATE_S=${GPU_CALIBRATE_S:-35}  # + start-up and stopping: under 40 s
PLAN=${GPU_PLAN:-"calibrate cifar10-rho:0 cifar10-remedy:0 bench cifar10-rho:1,2 cifar10-remedy:1,2 cifar10-resnet18"}
export SAM_DATA_DIR=${SAM_DATA_DIR:-$PWD/.data}
export SAM_CACHE_DIR=${SAM_CACHE_DIR:-/tmp/sam_hallucination_cache}  # not under $OUT
ARCHIVE="$OUT/results_new.tar.gz"
BENCH_OUT="$OUT/bench_train_step.txt"
DEADLINE=$((START + BUDGET - MARGIN))
CHILD=""
WATCHER=""

left() { echo $((DEADLINE - $(date +%s))); }
log() { echo "[gpu_session +$(($(date +%s) - START))s] $*"; }
die() { echo "ERROR: $*" >&2; exit 2; }

# The session's logic is the module sam_hallucination.runs.gpu_session (tested); this script
# keeps the budget, the log and the stopping of children. Its packer needs no torch, so it
# starts at once; result JSONs appear by atomic rename, so one that parses is complete.
session() { "$PY" -m sam_hallucination.runs.gpu_session "$@"; }
pack() { session pack "$SCRATCH" "$ARCHIVE"; }

# Stop a process: TERM, then KILL after $2 seconds. A caller may start this script with
# SIGTERM ignored (children inherit that), and a TERM alone then never ends the watcher:
# the session would wait for it forever.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < ${2:-5} * 10; i++)); do
        # gone, or a zombie (exited, not yet reaped: kill -0 still succeeds on it)
        kill -0 "$pid" 2>/dev/null && ! grep -q ') Z ' "/proc/$pid/stat" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_watcher() {
    if [ -n "$WATCHER" ]; then
        stop_pid "$WATCHER" 1  # it only re-packs, and the final pack follows
        WATCHER=""
    fi
}

# On any exit (normal, error, or a SIGTERM at the time limit): stop the child, then one
# last pack so the archive holds every finished run.
finish() {
    local rc=$?
    trap - EXIT TERM INT
    if [ -n "$CHILD" ]; then stop_pid "$CHILD" 10; fi
    stop_watcher
    if [ -f "$SCRATCH/.committed.txt" ]; then pack || echo "ERROR: final pack failed" >&2; fi
    log "exit $rc after $(($(date +%s) - START))s of ${BUDGET}s; $OUT holds: $(cd "$OUT" && ls | tr '\n' ' ')"
    exit "$rc"
}
trap finish EXIT
trap 'log "stopped by a signal"; exit 143' TERM INT

# Run a command in the background and wait for it, so a SIGTERM is handled at once.
# (The timeouts below use --foreground: timeout then stays in this process group, so a kill
# of the whole command at the device tool's limit reaches the sweep too.)
run_child() {
    "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

log "budget ${BUDGET}s (margin ${MARGIN}s), device $DEVICE, plan: $PLAN"
log "committed results: $COMMITTED; scratch: $SCRATCH; out: $OUT"
[ "$BUDGET" -gt "$MARGIN" ] || die "budget ${BUDGET}s must exceed the margin ${MARGIN}s (GPU_MARGIN_S)"
case "$SCRATCH" in "$OUT"|"$OUT"/*) die "GPU_SCRATCH ($SCRATCH) must be outside \$OUT ($OUT)";; esac

# Scratch = committed results + whatever earlier calls on this machine finished.
session seed "$COMMITTED" "$SCRATCH"
pack
session pack "$SCRATCH" "$ARCHIVE" --watch $$ &
WATCHER=$!

if [ -n "${SAM_GIT_COMMIT:-}" ] && ! [[ "$SAM_GIT_COMMIT" =~ ^[0-9a-f]{40}$ ]]; then
    die "SAM_GIT_COMMIT='$SAM_GIT_COMMIT' is not a 40-hex commit: put the output of git rev-parse HEAD (run on your side) into the command"
fi
if ! git rev-parse HEAD >/dev/null 2>&1 && [ -z "${SAM_GIT_COMMIT:-}" ]; then
    die "no git checkout here and SAM_GIT_COMMIT unset: call with SAM_GIT_COMMIT=<output of git rev-parse HEAD on your side>, or the ingest refuses every result"
fi
JOBS=${GPU_JOBS:-auto}
[[ "$JOBS" =~ ^([1-9][0-9]*|auto)$ ]] || die "GPU_JOBS='$JOBS' must be a positive integer or auto"

# Check the plan (names, seeds) and list what it needs: the CIFAR data file (printed), the
# sweeps that train on it, and the runs two sweeps share (copied across as they finish).
CIFAR_SWEEPS="$SCRATCH/.cifar_sweeps.txt"
# shellcheck disable=SC2086
DATA_FILE=$(session plan --device "$DEVICE" --data-dir "$SAM_DATA_DIR" --bench-args="$BENCH_ARGS" "$SCRATCH" $PLAN) || exit 2

# First, within the first minute: the CUDA smoke. With "calibrate" first in the plan it also
# times K = 1, 2, 4 runs side by side and picks K (GPU_JOBS=auto); without it, on CUDA, K = 1
# only (a smoke). A broken GPU stops the session here with one line.
FIRST=${PLAN%% *}
if [ "$FIRST" = calibrate ] || [ "$DEVICE" = cuda ]; then
    ks=${GPU_CALIBRATE_KS:-}
    [ "$FIRST" = calibrate ] || ks=1
    t=$(left)
    if [ "$t" -gt "$CALIBRATE_S" ]; then t=$CALIBRATE_S; fi
    [ "$t" -ge 5 ] || die "only ${t}s of the budget left before the CUDA smoke: give a larger budget"
    log "calibrate: $DEVICE smoke, K = ${ks:-default} side by side (limit ${t}s)"
    rm -f "$SCRATCH/.jobs.txt"
    rc=0
    run_child timeout --foreground --kill-after=5 "$((t + 10))" "$PY" -m sam_hallucination.runs.gpu_session \
        calibrate --device "$DEVICE" ${ks:+--ks "$ks"} --limit-s "$t" --jobs "$JOBS" \
        --write-jobs "$SCRATCH/.jobs.txt" || rc=$?
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || die "the $DEVICE smoke did not finish within $((t + 10))s (hung CUDA?): check the GPU with nvidia-smi, or test with GPU_DEVICE=cpu"
    [ "$rc" -eq 0 ] || exit 2  # it printed its one-line ERROR
    if [ "$FIRST" = calibrate ]; then JOBS=$(cat "$SCRATCH/.jobs.txt"); fi
fi

if [ -n "$DATA_FILE" ]; then
    # Load it once now: a file the data layer cannot read stops the session in seconds, not
    # after every sweep has failed in turn; the decoded copy is cached for the sweeps.
    t=$(left)
    if [ "$t" -gt 180 ]; then t=180; fi
    [ "$t" -ge 5 ] || die "only ${t}s of the budget left before loading the data: give a larger budget"
    log "data: $DATA_FILE (loading it once, limit ${t}s)"
    timeout --foreground --kill-after=5 "$t" "$PY" -m sam_hallucination.runs.gpu_session check-data "$DATA_FILE" \
        || die "the data layer cannot load $DATA_FILE (see above; cifar10_jpeg.npz, 53 MiB, does not pass the 60 MiB payload check: carry the compact file)"
fi
DATA_ARG=()
[ -z "$DATA_FILE" ] || DATA_ARG=(--data "$DATA_FILE")

# Independent runs side by side as processes (one result file each, per-run locks).
if [ "$JOBS" = auto ]; then
    if [ "$DEVICE" = cuda ]; then JOBS=4; else JOBS=1; fi  # uncalibrated: 4 gave 1.37x on an H200
fi
log "runs side by side: $JOBS process(es)"

# Copy each finished shared run into the other sweep's folder (temp file + rename: atomic).
share_runs() { session share "$SCRATCH"; }

for step in $PLAN; do
    rem=$(left)
    if [ "$rem" -lt 30 ]; then log "stop: ${rem}s left"; break; fi
    if [ "$step" = calibrate ]; then continue; fi  # done above, before the data
    if [ "$step" = bench ]; then
        done_file="$SCRATCH/benchmarks/train_step_${DEVICE}.txt"
        if [ -s "$done_file" ] || [ "$rem" -lt 150 ]; then log "bench: skipped (done or ${rem}s left)"; continue; fi
        log "bench: $BENCH $BENCH_ARGS (limit ${rem}s) > $BENCH_OUT"
        rc=0
        # shellcheck disable=SC2086
        run_child timeout --foreground --kill-after=5 "$rem" "$PY" "$BENCH" $BENCH_ARGS > "$BENCH_OUT" 2>&1 || rc=$?
        cat "$BENCH_OUT"
        if [ "$rc" -eq 0 ]; then
            mkdir -p "$SCRATCH/benchmarks"
            cp "$BENCH_OUT" "$done_file.tmp" && mv "$done_file.tmp" "$done_file"
        else
            log "bench: exit $rc (its output stays in $BENCH_OUT, not in the archive)"
        fi
        continue
    fi
    sweep=${step%%:*}
    seeds=${step#*:}
    [ "$seeds" = "$step" ] && seeds=""
    share_runs
    args=(--device "$DEVICE" --results "$SCRATCH" --time-budget "$((rem - 10))" --no-progress --jobs "$JOBS")
    [ -n "$seeds" ] && args+=(--seeds "$seeds")
    [ -n "$MAX_RUNS" ] && args+=(--max-runs "$MAX_RUNS")
    if grep -qx "$sweep" "$CIFAR_SWEEPS"; then args+=("${DATA_ARG[@]}"); fi
    log "$sweep seeds ${seeds:-all}: time budget $((rem - 10))s"
    rc=0
    run_child timeout --foreground --kill-after=5 "$rem" "$PY" -m sam_hallucination.runs "$sweep" "${args[@]}" || rc=$?
    if [ "$rc" -ne 0 ]; then log "$sweep: exit $rc (a killed run leaves no file; finished runs are kept)"; fi
done
share_runs

log "summary"
hard=$((START + BUDGET - MARGIN / 2 - $(date +%s)))
if [ "$hard" -gt 2 ]; then
    # shellcheck disable=SC2086
    timeout --foreground --kill-after=1 "$hard" "$PY" -m sam_hallucination.runs.gpu_session summary "$SCRATCH" $PLAN || true
fi
log "done; ingest with: python scripts/ingest_gpu_results.py <files_at>/results_new.tar.gz"
