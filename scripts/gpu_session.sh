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
# Environment (all optional):
#   OUT               output folder (the device tool sets it; default /tmp/gpu_out)
#   GPU_PLAN          space-separated steps, "sweep" (all seeds), "sweep:0,1" or "bench"
#   GPU_DEVICE        cuda (default) or cpu (to test this script's logic on a CPU)
#   GPU_SEED_RESULTS  the committed results folder (default results; never written)
#   GPU_SCRATCH       where runs are written (default /tmp/gpu_session_results; kept across
#                     calls on the same machine, so a second call resumes the first)
#   GPU_MAX_RUNS      start at most this many runs per plan step (tests)
#   GPU_BENCH         the benchmark script (default benchmarks/train_step.py; tests stub it)
#   GPU_BENCH_ARGS    its arguments (default --full-runs)
#   GPU_JOBS          runs side by side, one process each (--jobs): a number, or auto
#                     (default: 4 on CUDA, where 4 processes gave 1.37x on an H200; 1 on a CPU)
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
PLAN=${GPU_PLAN:-"cifar10-rho:0 cifar10-remedy:0 bench cifar10-rho:1,2 cifar10-remedy:1,2 cifar10-resnet18"}
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

# Pack the new result files of $SCRATCH into $ARCHIVE (temp file + os.replace), once, or
# with "watch PID" every second while they change and PID (this script) lives. Needs no
# torch, so it starts at once. Result JSONs appear by atomic rename (shared copies too), so
# one that is present and parses is complete.
PACK_PY=$(cat <<'EOF'
import json, os, re, sys, tarfile, time
scratch, archive = sys.argv[1], sys.argv[2]
watch = sys.argv[3:4] == ["watch"]
parent = int(sys.argv[4]) if watch else 0
name_ok = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*").fullmatch
committed = set(open(os.path.join(scratch, ".committed.txt")).read().split())

def new_files() -> list[tuple[str, int, int]]:
    found = []
    for d in sorted(os.listdir(scratch)):
        if not name_ok(d) or not os.path.isdir(os.path.join(scratch, d)):
            continue
        for f in sorted(os.listdir(os.path.join(scratch, d))):
            rel, path = f"{d}/{f}", os.path.join(scratch, d, f)
            if rel in committed or not name_ok(f) or not os.path.isfile(path):
                continue
            if d == "benchmarks":
                if not f.endswith(".txt"):
                    continue
            elif f.endswith(".json"):
                try:
                    with open(path) as fh:
                        json.load(fh)
                except (OSError, ValueError):
                    continue  # not complete yet
            else:
                continue
            st = os.stat(path)
            found.append((rel, st.st_size, st.st_mtime_ns))
    return found

def write(files: list[tuple[str, int, int]]) -> None:
    tmp = archive + ".part"
    with open(tmp, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for rel, _, _ in files:
                tar.add(os.path.join(scratch, rel), arcname=rel, recursive=False)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, archive)

last = None
while True:
    files = new_files()
    if files != last or not os.path.exists(archive):
        write(files)
        last = files
        if not watch:
            print(f"[pack] {archive}: {len(files)} new file(s)")
    if not watch:
        break
    time.sleep(1.0)
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break  # the session is gone (killed): the last pack stands
EOF
)
pack() { "$PY" -c "$PACK_PY" "$SCRATCH" "$ARCHIVE"; }

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
mkdir -p "$SCRATCH"
: > "$SCRATCH/.committed.txt"
if [ -d "$COMMITTED" ]; then
    cp -r "$COMMITTED"/. "$SCRATCH"/
    (cd "$COMMITTED" && find . -mindepth 2 -maxdepth 2 -type f | sed 's|^\./||') > "$SCRATCH/.committed.txt"
else
    log "no committed results at $COMMITTED: every finished run counts as new"
fi
find "$SCRATCH" -name '*.pt' -delete
pack
"$PY" -c "$PACK_PY" "$SCRATCH" "$ARCHIVE" watch $$ &
WATCHER=$!

if [ "$DEVICE" = cuda ]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"
fi
if [ -n "${SAM_GIT_COMMIT:-}" ] && ! [[ "$SAM_GIT_COMMIT" =~ ^[0-9a-f]{40}$ ]]; then
    die "SAM_GIT_COMMIT='$SAM_GIT_COMMIT' is not a 40-hex commit: put the output of git rev-parse HEAD (run on your side) into the command"
fi
if ! git rev-parse HEAD >/dev/null 2>&1 && [ -z "${SAM_GIT_COMMIT:-}" ]; then
    die "no git checkout here and SAM_GIT_COMMIT unset: call with SAM_GIT_COMMIT=<output of git rev-parse HEAD on your side>, or the ingest refuses every result"
fi

# Check the plan (names, seeds) and list what it needs: CIFAR data, and the runs that two
# sweeps share (same config => same run id), copied across as they finish.
SHARED="$SCRATCH/.shared.txt"
CIFAR_SWEEPS="$SCRATCH/.cifar_sweeps.txt"
"$PY" - "$SHARED" "$CIFAR_SWEEPS" $PLAN <<'EOF'
import sys
from sam_hallucination.runs.sweeps import SWEEPS, get_sweep
shared_file, cifar_file, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
names = []
for step in steps:
    if step == "bench":
        continue
    name, _, seeds = step.partition(":")
    if name not in SWEEPS:
        sys.exit(f"ERROR: plan step {step!r}: unknown sweep; valid: {', '.join(SWEEPS)}")
    if seeds and not all(s.isdigit() for s in seeds.split(",")):
        sys.exit(f"ERROR: plan step {step!r}: seeds must be comma-separated integers")
    names.append(name)
names = list(dict.fromkeys(names))
with open(cifar_file, "w") as f:
    f.writelines(f"{n}\n" for n in names if any(c.dataset == "cifar10-jpeg" for c in get_sweep(n).runs))
ids = {n: {c.run_id() for c in get_sweep(n).runs} for n in names}
with open(shared_file, "w") as f:
    for a in ids:
        for b in ids:
            if a != b:
                for rid in sorted(ids[a] & ids[b]):
                    f.write(f"{a}/{rid}.json {b}/{rid}.json\n")
EOF
# The benchmark's --full-runs trains on the CIFAR-10 JPEG copy too (CUDA only).
NEEDS_CIFAR=0
[ -s "$CIFAR_SWEEPS" ] && NEEDS_CIFAR=1
if [[ " $PLAN " == *" bench "* && "$DEVICE" == cuda && " $BENCH_ARGS " == *" --full-runs "* ]]; then NEEDS_CIFAR=1; fi
DATA_ARG=()
if [ "$NEEDS_CIFAR" = 1 ]; then
    for f in cifar10_jpeg_compact.npz cifar10_jpeg.npz; do
        if [ -f "$SAM_DATA_DIR/$f" ]; then DATA_ARG=(--data "$SAM_DATA_DIR/$f"); break; fi
    done
    [ ${#DATA_ARG[@]} -gt 0 ] || die "the plan needs CIFAR-10 but $SAM_DATA_DIR has neither cifar10_jpeg_compact.npz nor cifar10_jpeg.npz: mkdir -p .data && cp ../shared/data/cifar10_jpeg_compact.npz .data/ and call with carry=[\".data\"]"
    # Load it once now: a file the data layer cannot read stops the session in seconds, not
    # after every sweep has failed in turn; the decoded copy is cached for the sweeps.
    t=$(left)
    if [ "$t" -gt 180 ]; then t=180; fi
    [ "$t" -ge 5 ] || die "only ${t}s of the budget left before loading the data: give a larger budget"
    log "data: ${DATA_ARG[1]} (loading it once, limit ${t}s)"
    timeout --foreground --kill-after=5 "$t" "$PY" -c "import sys; from sam_hallucination.data import load_dataset; print(load_dataset('cifar10-jpeg', root=sys.argv[1]))" "${DATA_ARG[1]}" \
        || die "the data layer cannot load ${DATA_ARG[1]} (see above; cifar10_jpeg.npz, 53 MiB, does not pass the 60 MiB payload check: carry the compact file)"
fi

# Independent runs side by side as processes (one result file each, per-run locks).
JOBS=${GPU_JOBS:-auto}
if [ "$JOBS" = auto ]; then
    if [ "$DEVICE" = cuda ]; then JOBS=4; else JOBS=1; fi
fi
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "GPU_JOBS='$JOBS' must be a positive integer or auto"
log "runs side by side: $JOBS process(es)"

# Copy each finished shared run into the other sweep's folder (temp file + mv: atomic).
share_runs() {
    local src dst
    while read -r src dst; do
        if [ -f "$SCRATCH/$src" ] && [ ! -e "$SCRATCH/$dst" ]; then
            mkdir -p "$(dirname "$SCRATCH/$dst")"
            cp -p "$SCRATCH/$src" "$SCRATCH/$dst.tmp" && mv "$SCRATCH/$dst.tmp" "$SCRATCH/$dst"
        fi
    done < "$SHARED"
}

for step in $PLAN; do
    rem=$(left)
    if [ "$rem" -lt 30 ]; then log "stop: ${rem}s left"; break; fi
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
    timeout --foreground --kill-after=1 "$hard" "$PY" - "$SCRATCH" $PLAN <<'EOF' || true
import sys
from pathlib import Path
from sam_hallucination.runs.sweeps import get_sweep, load_results
res = Path(sys.argv[1])
committed = set((res / ".committed.txt").read_text().split())
for name in dict.fromkeys(s.split(":")[0] for s in sys.argv[2:] if s != "bench"):
    runs = get_sweep(name).runs
    recs = {r["run_id"]: r for r in load_results(name, res)}
    have = [c for c in runs if c.run_id() in recs]
    new = sum(f"{name}/{c.run_id()}.json" not in committed for c in have)
    div = sum(recs[c.run_id()]["status"] == "diverged" for c in have)
    per = ", ".join(f"seed {s}: {sum(c.seed == s for c in have)}/{sum(c.seed == s for c in runs)}"
                    for s in sorted({c.seed for c in runs}))
    wall = sum(recs[c.run_id()]["wall_time_s"] for c in have)
    print(f"  {name:18s} {len(have):3d}/{len(runs)} runs ({per}); {new} new; {div} diverged; "
          f"{wall:.0f} s of run time")
EOF
fi
log "done; ingest with: python scripts/ingest_gpu_results.py <files_at>/results_new.tar.gz"
