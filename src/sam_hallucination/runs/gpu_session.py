"""The GPU session's logic; ``scripts/gpu_session.sh`` is its thin shell wrapper (the time
budget, the log, stopping children). One command a step of the session::

    python -m sam_hallucination.runs.gpu_session seed COMMITTED SCRATCH
    python -m sam_hallucination.runs.gpu_session pack SCRATCH ARCHIVE [--watch PID]
    python -m sam_hallucination.runs.gpu_session plan --device D --data-dir DIR
        --bench-args=ARGS SCRATCH STEP...            # prints the data file it needs, if any
    python -m sam_hallucination.runs.gpu_session calibrate --device D [--ks 1,2,4]
        [--limit-s 40] [--jobs auto|N] [--write-jobs FILE]   # see runs/jobs_calibration.py
    python -m sam_hallucination.runs.gpu_session check-data PATH
    python -m sam_hallucination.runs.gpu_session share SCRATCH
    python -m sam_hallucination.runs.gpu_session summary SCRATCH STEP...

A plan step is ``calibrate`` (first only), ``bench``, ``<sweep>`` (all seeds) or
``<sweep>:0,1``. Scratch holds the committed results plus the runs of earlier calls on the
machine; ``.committed.txt`` lists the committed files, which never go into the archive.
A bad call exits 2 with one line ``ERROR: ...`` saying what to do.

``seed``, ``pack`` and ``share`` import no torch, so the packer starts at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

COMMITTED_LIST = ".committed.txt"  # <sweep>/<file> of every committed result, one a line
SHARED_LIST = ".shared.txt"  # "<sweep>/<id>.json <other>/<id>.json": one run in two sweeps
CIFAR_LIST = ".cifar_sweeps.txt"  # the plan's sweeps that train on the CIFAR-10 JPEG copy
DATA_FILES = ("cifar10_jpeg_compact.npz", "cifar10_jpeg.npz")  # the compact one first
SPECIAL_STEPS = ("calibrate", "bench")
NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*").fullmatch  # what the device tool returns

PackedFile = tuple[str, int, int]  # (<folder>/<file>, size, mtime_ns)


class SessionError(Exception):
    """A bad call: its message is the one line the session prints before it stops."""


# ----------------------------------------------------------------------------- scratch
def seed_scratch(committed: Path, scratch: Path) -> list[str]:
    """Copy the committed results into ``scratch`` (earlier calls' runs stay) and list them
    in ``.committed.txt``; drop saved weights (``*.pt``), which never travel back."""
    scratch.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    if committed.is_dir():
        shutil.copytree(committed, scratch, dirs_exist_ok=True)
        names = sorted(f"{d.name}/{f.name}" for d in committed.iterdir() if d.is_dir()
                       for f in d.iterdir() if f.is_file() and not f.is_symlink())
    (scratch / COMMITTED_LIST).write_text("".join(f"{n}\n" for n in names))
    for p in scratch.rglob("*.pt"):
        if p.is_file():
            p.unlink()
    return names


def new_files(scratch: Path) -> list[PackedFile]:
    """The result files in ``scratch`` that are not committed and are complete: ``<sweep>/
    <id>.json`` that parse (they appear by atomic rename, so parsing means finished) and
    ``benchmarks/<name>.txt``; plain names only."""
    committed = set((scratch / COMMITTED_LIST).read_text().split())
    found = []
    for d in sorted(os.listdir(scratch)):
        if not NAME_OK(d) or not (scratch / d).is_dir():
            continue
        for f in sorted(os.listdir(scratch / d)):
            rel, path = f"{d}/{f}", scratch / d / f
            if rel in committed or not NAME_OK(f) or not path.is_file():
                continue
            if d == "benchmarks":
                if not f.endswith(".txt"):
                    continue
            elif f.endswith(".json"):
                try:
                    json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # not complete yet
            else:
                continue
            st = path.stat()
            found.append((rel, st.st_size, st.st_mtime_ns))
    return found


def write_archive(scratch: Path, archive: Path, files: list[PackedFile]) -> None:
    """``files`` as a flat .tar.gz at ``archive``: written to ``.part``, fsynced, renamed, so
    a kill at any moment leaves the previous archive or the new one, never a torn one."""
    tmp = archive.with_name(archive.name + ".part")
    with open(tmp, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for rel, _, _ in files:
                tar.add(scratch / rel, arcname=rel, recursive=False)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, archive)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pack(scratch: Path, archive: Path, watch_pid: int | None = None, every_s: float = 1.0) -> int:
    """Pack the new files once; with ``watch_pid``, again whenever they change, until that
    process is gone (a killed session: the last pack stands). Returns the files packed."""
    last: list[PackedFile] | None = None
    while True:
        files = new_files(scratch)
        if files != last or not archive.exists():
            write_archive(scratch, archive, files)
            last = files
            if watch_pid is None:
                print(f"[pack] {archive}: {len(files)} new file(s)")
        if watch_pid is None or not alive(watch_pid):
            return len(files)
        time.sleep(every_s)


def share_runs(scratch: Path) -> int:
    """Copy each finished run that two sweeps share into the other sweep's folder (temp
    file + rename), where it is missing; returns the copies made."""
    n = 0
    for line in (scratch / SHARED_LIST).read_text().splitlines():
        src, dst = (scratch / p for p in line.split())
        if src.is_file() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
            n += 1
    return n


# ----------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Step:
    """One plan step: ``kind`` is "calibrate", "bench" or "sweep" (``name``, ``seeds``)."""

    kind: str
    name: str = ""
    seeds: tuple[int, ...] = ()


def parse_plan(steps: list[str]) -> list[Step]:
    """The plan's steps, checked (SessionError naming the bad step and what is valid)."""
    from .sweeps import SWEEPS

    out = []
    for i, step in enumerate(steps):
        if step in SPECIAL_STEPS:
            if step == "calibrate" and i != 0:
                raise SessionError(f"plan step {step!r} must be the plan's first step "
                                   f"(it picks GPU_JOBS before the sweeps run)")
            out.append(Step(step))
            continue
        name, _, seeds = step.partition(":")
        if name not in SWEEPS:
            raise SessionError(f"plan step {step!r}: unknown sweep; valid: {', '.join(SWEEPS)}, "
                               f"{', '.join(SPECIAL_STEPS)}")
        if seeds and not all(s.isdigit() for s in seeds.split(",")):
            raise SessionError(f"plan step {step!r}: seeds must be comma-separated integers")
        out.append(Step("sweep", name, tuple(int(s) for s in seeds.split(",")) if seeds else ()))
    return out


def sweep_names(plan: list[Step]) -> list[str]:
    return list(dict.fromkeys(s.name for s in plan if s.kind == "sweep"))


def shared_runs(names: list[str]) -> list[tuple[str, str]]:
    """(file in one sweep, file in another) for every run id two of ``names`` share."""
    from .sweeps import get_sweep

    ids = {n: {c.run_id() for c in get_sweep(n).runs} for n in names}
    return [(f"{a}/{rid}.json", f"{b}/{rid}.json") for a in ids for b in ids if a != b
            for rid in sorted(ids[a] & ids[b])]


def cifar_sweeps(names: list[str]) -> list[str]:
    from .sweeps import get_sweep

    return [n for n in names if any(c.dataset == "cifar10-jpeg" for c in get_sweep(n).runs)]


def data_file(plan: list[Step], device: str, bench_args: str, data_dir: Path) -> Path | None:
    """The CIFAR-10 JPEG copy the plan needs (its sweeps, or the benchmark's ``--full-runs``
    on CUDA), or None; SessionError saying how to carry it when it is missing."""
    needs = bool(cifar_sweeps(sweep_names(plan))) or (
        any(s.kind == "bench" for s in plan) and device == "cuda"
        and "--full-runs" in bench_args.split())
    if not needs:
        return None
    for f in DATA_FILES:
        if (data_dir / f).is_file():
            return data_dir / f
    raise SessionError(f"the plan needs CIFAR-10 but {data_dir} has neither {' nor '.join(DATA_FILES)}: "
                       "mkdir -p .data && cp ../shared/data/cifar10_jpeg_compact.npz .data/ and call "
                       'with carry=[".data"]')


def write_plan(scratch: Path, plan: list[Step]) -> None:
    """The lists the shell reads between steps: shared runs, and the sweeps needing --data."""
    names = sweep_names(plan)
    (scratch / SHARED_LIST).write_text("".join(f"{a} {b}\n" for a, b in shared_runs(names)))
    (scratch / CIFAR_LIST).write_text("".join(f"{n}\n" for n in cifar_sweeps(names)))


def summary(scratch: Path, plan: list[Step]) -> list[str]:
    """One line a sweep of the plan: runs present per seed, new ones, diverged, run time."""
    from .sweeps import get_sweep, load_results

    committed = set((scratch / COMMITTED_LIST).read_text().split())
    lines = []
    for name in sweep_names(plan):
        runs = get_sweep(name).runs
        recs = {r["run_id"]: r for r in load_results(name, scratch)}
        have = [c for c in runs if c.run_id() in recs]
        new = sum(f"{name}/{c.run_id()}.json" not in committed for c in have)
        div = sum(recs[c.run_id()]["status"] == "diverged" for c in have)
        per = ", ".join(f"seed {s}: {sum(c.seed == s for c in have)}/{sum(c.seed == s for c in runs)}"
                        for s in sorted({c.seed for c in runs}))
        wall = sum(recs[c.run_id()]["wall_time_s"] for c in have)
        lines.append(f"  {name:18s} {len(have):3d}/{len(runs)} runs ({per}); {new} new; "
                     f"{div} diverged; {wall:.0f} s of run time")
    return lines


# ----------------------------------------------------------------------------- the CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sam_hallucination.runs.gpu_session",
                                description="The GPU session's steps (scripts/gpu_session.sh).")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed", help="scratch = committed results + earlier calls' runs")
    s.add_argument("committed", type=Path)
    s.add_argument("scratch", type=Path)
    s = sub.add_parser("pack", help="archive the new result files (atomically)")
    s.add_argument("scratch", type=Path)
    s.add_argument("archive", type=Path)
    s.add_argument("--watch", type=int, default=None, metavar="PID",
                   help="re-pack every second while the files change and PID lives")
    s = sub.add_parser("plan", help="check the plan; print the data file it needs")
    s.add_argument("scratch", type=Path)
    s.add_argument("steps", nargs="*")
    s.add_argument("--device", default="cuda")
    s.add_argument("--data-dir", type=Path, default=Path(".data"))
    s.add_argument("--bench-args", default="")
    s = sub.add_parser("calibrate", help="CUDA smoke; pick the runs side by side (K)")
    s.add_argument("--device", default="cuda")
    s.add_argument("--ks", default=None, help="comma-separated K (default 1,2,4; CPU 1,2)")
    s.add_argument("--limit-s", type=float, default=35.0)
    s.add_argument("--round-s", type=float, default=None)
    s.add_argument("--jobs", default="auto", help="auto: the calibrated K; N: keep N")
    s.add_argument("--write-jobs", type=Path, default=None, help="write the K to use here")
    s = sub.add_parser("check-data", help="load the CIFAR-10 JPEG copy once (and cache it)")
    s.add_argument("path")
    s = sub.add_parser("share", help="copy finished shared runs across sweeps")
    s.add_argument("scratch", type=Path)
    s = sub.add_parser("summary", help="one line a sweep of the plan")
    s.add_argument("scratch", type=Path)
    s.add_argument("steps", nargs="*")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "seed":
            if not a.committed.is_dir():
                print(f"no committed results at {a.committed}: every finished run counts as new")
            seed_scratch(a.committed, a.scratch)
        elif a.cmd == "pack":
            if a.watch is not None:  # it only re-packs, atomically: a TERM may stop it any time
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            pack(a.scratch, a.archive, a.watch)
        elif a.cmd == "plan":
            plan = parse_plan(a.steps)
            write_plan(a.scratch, plan)
            path = data_file(plan, a.device, a.bench_args, a.data_dir)
            print(path or "")
        elif a.cmd == "calibrate":
            from .jobs_calibration import calibrate_command

            # a TERM (also where the caller ignored it) stops the workers in its finally
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            return calibrate_command(a.device, a.ks, a.limit_s, a.round_s, a.jobs, a.write_jobs)
        elif a.cmd == "check-data":
            from ..data import load_dataset

            print(load_dataset("cifar10-jpeg", root=a.path))
        elif a.cmd == "share":
            share_runs(a.scratch)
        elif a.cmd == "summary":
            print("\n".join(summary(a.scratch, parse_plan(a.steps))))
    except SessionError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
