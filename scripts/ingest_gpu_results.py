"""Check the results archive of a GPU session and unpack it into results/.

    python scripts/ingest_gpu_results.py ARCHIVE [--results results] [--dry-run] [--allow-cpu]

ARCHIVE is the ``results_new.tar.gz`` that ``scripts/gpu_session.sh`` leaves in $OUT. Each
member must be ``<sweep>/<run_id>.json`` or ``benchmarks/<file>.txt`` (no absolute paths,
no ``..``, no links), and a result must:

* pass the loader's own record check (``runs.store.record_problem``: schema version,
  required fields and their types, no NaN/Infinity literals, status "ok" or "diverged",
  metrics consistent with the config);
* name a known sweep, and its folder's sweep must hold the run (a run two sweeps share may
  carry the other sweep's name); its config must be that run's config, and its file name
  its run id;
* have been run on a CUDA device (``--allow-cpu`` lifts this, for tests);
* name a commit of this repository in its provenance;
* not be committed already: an identical file is skipped, a different one is refused.

Members are written atomically, and only when none is refused (or appears twice): a suspect
archive writes nothing. The table says what was added, skipped and refused.
Exit status: 0 when nothing was refused, 1 when something was (then nothing is written), 2
when the archive is missing or unreadable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sam_hallucination.runs.config import RunConfig  # noqa: E402
from sam_hallucination.runs.store import parse_record, record_problem  # noqa: E402
from sam_hallucination.runs.sweeps import SWEEPS, get_sweep  # noqa: E402

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_MEMBER_BYTES = 16 * 2**20


@dataclasses.dataclass
class Verdict:
    member: str
    action: str  # "add", "skip" or "refuse"
    why: str
    data: bytes = b""


def commit_exists(sha: Any, repo: Path = ROOT) -> bool:
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        return False
    r = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=repo,
                       capture_output=True, timeout=30)
    return r.returncode == 0


def check_record(folder: str, stem: str, data: bytes, allow_cpu: bool) -> str | None:
    """Why a result file is not acceptable, or None when it is.

    The record itself is checked by the loader's own validator (``parse_record``, then
    ``record_problem``: schema, required fields, types, finite numbers, config, metrics
    consistent with it), so the ingest accepts exactly what the chapters would read."""
    try:
        rec = parse_record(data)
    except ValueError as e:
        return f"not JSON as records are written ({e})"
    if not isinstance(rec, dict):
        return "not a JSON object"
    if folder not in SWEEPS:
        return f"unknown sweep folder {folder!r}"
    if rec.get("sweep") not in SWEEPS:
        return f"unknown sweep {rec.get('sweep')!r} in the record"
    rid = rec.get("run_id")
    if rid != stem:
        return f"run_id {rid!r} differs from the file name {stem!r}"
    try:
        cfg = RunConfig(**rec["config"])
    except (KeyError, TypeError, ValueError) as e:
        return f"config is not a valid RunConfig ({e})"
    if cfg.run_id() != rid:
        return f"config hashes to {cfg.run_id()}, not {rid} (edited?)"
    for name in dict.fromkeys((folder, rec["sweep"])):
        runs = {c.run_id(): c for c in get_sweep(name).runs}
        if rid not in runs:
            return f"run {rid} is not in sweep {name!r}"
        if runs[rid] != cfg or dataclasses.asdict(cfg) != rec["config"]:
            return f"config differs from sweep {name!r}'s run {rid}"
    why = record_problem(rec, cfg, rec["sweep"])
    if why:
        return why
    prov = rec.get("provenance")
    if not isinstance(prov, dict):
        return "no provenance"
    device = str(prov.get("device", ""))
    if not device.startswith("cuda") and not allow_cpu:
        return f"device {device!r} ({prov.get('device_name')}), not CUDA (--allow-cpu for tests)"
    sha = (prov.get("git") or {}).get("commit") if isinstance(prov.get("git"), dict) else None
    if not commit_exists(sha):
        return f"git commit {sha!r} is not a commit of this repository"
    return None


def check_member(m: tarfile.TarInfo, tar: tarfile.TarFile, results: Path,
                 allow_cpu: bool) -> Verdict:
    name = m.name
    parts = name.split("/")
    if (name.startswith("/") or len(parts) != 2 or not all(NAME.fullmatch(p) for p in parts)
            or ".." in parts):
        return Verdict(name, "refuse", "unsafe path: only <sweep>/<run_id>.json or benchmarks/<file>.txt")
    if not m.isfile():
        return Verdict(name, "refuse", "not a regular file (link, folder or device)")
    if m.size > MAX_MEMBER_BYTES:
        return Verdict(name, "refuse", f"{m.size} bytes, over {MAX_MEMBER_BYTES}")
    folder, fname = parts
    f = tar.extractfile(m)
    data = f.read() if f is not None else b""
    if folder == "benchmarks":
        if not fname.endswith(".txt"):
            return Verdict(name, "refuse", "benchmark outputs must be .txt files")
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return Verdict(name, "refuse", "benchmark output is not UTF-8 text")
        if "CUDA" not in text.replace("CUDA: not available", "") and not allow_cpu:
            return Verdict(name, "refuse", "no CUDA timings in it (--allow-cpu for tests)")
        why = None
    elif not fname.endswith(".json"):
        return Verdict(name, "refuse", "result files must be <run_id>.json")
    else:
        why = check_record(folder, fname[:-5], data, allow_cpu)
    if why:
        return Verdict(name, "refuse", why)
    dest = results / folder / fname
    if dest.exists():
        if dest.read_bytes() == data:
            return Verdict(name, "skip", "already committed, identical")
        return Verdict(name, "refuse", f"{dest} exists with different content: compare them by hand")
    note = ""
    if folder != "benchmarks":
        rec = json.loads(data)
        note = f", shared from {rec['sweep']}" if rec["sweep"] != folder else ""
        acc = (rec.get("final") or {}).get("test_acc")
        note = f"{rec['status']}, test acc {'-' if acc is None else f'{acc:.4f}'}, " \
               f"{rec['provenance'].get('device_name')}{note}"
    return Verdict(name, "add", note or "benchmark output", data)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive", type=Path, help="results_new.tar.gz from the GPU session's $OUT")
    p.add_argument("--results", type=Path, default=ROOT / "results", help="results folder")
    p.add_argument("--dry-run", action="store_true", help="check and report; write nothing")
    p.add_argument("--allow-cpu", action="store_true", help="accept CPU results (tests only)")
    a = p.parse_args(argv)
    if not a.archive.is_file():
        print(f"ERROR: no archive at {a.archive}. Did the GPU session run? Look in its "
              f"session.log; the device tool returns it as <files_at>/results_new.tar.gz.",
              file=sys.stderr)
        return 2
    try:
        with tarfile.open(a.archive, "r:gz") as tar:
            verdicts, seen = [], set()
            for m in tar.getmembers():
                if m.name in seen:
                    verdicts.append(Verdict(m.name, "refuse", "appears twice in the archive"))
                    continue
                seen.add(m.name)
                verdicts.append(check_member(m, tar, a.results, a.allow_cpu))
    except (tarfile.TarError, OSError, EOFError) as e:
        print(f"ERROR: {a.archive} is not a readable .tar.gz ({e}); the session may have been "
              f"killed while writing it: look for results_new.tar.gz.part and session.log.",
              file=sys.stderr)
        return 2
    if not verdicts:
        print(f"{a.archive}: the archive holds no results (no run finished in the session; "
              f"see its session.log). Nothing to add.")
        return 0
    refused = any(v.action == "refuse" for v in verdicts)
    for v in verdicts:  # all or nothing: one refused member and the archive is suspect
        if v.action == "add" and not a.dry_run and not refused:
            write_atomic(a.results / v.member, v.data)
    width = max(len(v.member) for v in verdicts)
    label = {"add": "would add" if a.dry_run or refused else "added", "skip": "skipped",
             "refuse": "REFUSED"}
    for v in sorted(verdicts, key=lambda v: ("refuse", "add", "skip").index(v.action)):
        print(f"{label[v.action]:9s}  {v.member:{width}s}  {v.why}")
    n = {k: sum(v.action == k for v in verdicts) for k in ("add", "skip", "refuse")}
    print(f"{a.archive}: {n['add']} {label['add']} to {a.results}, {n['skip']} skipped, "
          f"{n['refuse']} refused")
    if n["refuse"]:
        print(f"ERROR: {n['refuse']} member(s) refused, so nothing was written: fix or drop "
              f"them (see REFUSED above) and ingest again.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
