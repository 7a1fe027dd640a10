"""Result files: one JSON document a run, written atomically, with provenance.

Schema (``schema_version``):

* 1: the first CIFAR runs;
* 2: adds the end-of-training ``probe`` (None when the run had ``probe=False``);
* 3: per-epoch and final ``trainable_weight_norm``, the norm of the parameters the optimizer
  updates (``requires_grad``); ``weight_norm``, which also counted the frozen BatchNorm
  scales, is no longer written.

:func:`read_result` reads every version; records older than 3 get ``schema_notes``, a list
of sentences saying what they lack.

A file is trusted only after :func:`validate_record` checked it against the config it should
hold (run id, config, sweep, schema, required fields and types, metrics consistent with the
config; ``NaN`` literals refused): sweeps keep a failing file aside (:mod:`.keep`:
``finished_records``), the chapters refuse it (``served_records``), and both name it.
Sweeps also check the folder is writable first (:func:`check_writable`), hold a per-run
``flock`` while computing (:func:`run_lock`) and remove stale temporary files
(:func:`clean_stale_tmp`). Result files are written world-readable (mode 0644).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..checks import repo_root
from .config import OPTIONAL_FIELDS, RunConfig

SCHEMA_VERSION = 3
# Fields every record of every schema version has; a record missing one is refused.
REQUIRED_FIELDS = ("run_id", "config", "status", "epochs", "final", "wall_time_s", "provenance")
FILE_MODE = 0o644  # result files are world-readable (mkstemp creates 0600)
STALE_TMP_S = 3600.0  # temporary files older than this are left-overs of a killed writer
SCHEMA_NOTES: dict[int, str] = {
    3: ("written before schema 3: no trainable_weight_norm; its weight_norm also counts the "
        "frozen BatchNorm scales"),
}


# ----------------------------------------------------------------------------- provenance


def device_name(device: str | torch.device) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_info() -> dict[str, Any]:
    """Commit hash, and whether src/ differs from it.

    Without a git checkout (e.g. a copied working tree on a GPU machine) the commit is
    taken from $SAM_GIT_COMMIT when set (``dirty`` then unknown), else "unknown".
    """
    root = repo_root()
    fallback = {"commit": os.environ.get("SAM_GIT_COMMIT") or "unknown", "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return fallback
        # dirty: the package source differs from the commit (modified or untracked files)
        status = subprocess.run(["git", "status", "--porcelain", "--", "src"],
                                cwd=root, capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return fallback


def json_safe(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def _finite(model: torch.nn.Module) -> bool:
    ts = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return all(bool(torch.isfinite(t).all()) for t in ts)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

def result_record(config: RunConfig, out: dict[str, Any], sweep: str,
                  device: str | torch.device) -> dict[str, Any]:
    """The JSON document for one run (see the schema in the module's README).

    The weights are checked once more here: a run whose final weights are not finite is
    recorded as diverged (never "ok"), with no probe.
    """
    dev = torch.device(out["device"])
    model = out.get("model")
    if out["status"] == "ok" and model is not None and not _finite(model):
        out = {**out, "status": "diverged", "probe": None,
               "diverged_at": {"step": out["steps"] - 1, "epoch": len(out["epochs"]) - 1}}
    return json_safe({
        "schema_version": SCHEMA_VERSION,
        "sweep": sweep,
        "run_id": config.run_id(),
        "config": asdict(config),
        "status": out["status"],
        "diverged_at": out["diverged_at"],
        "dataset_name": out["dataset"],
        "n_train": out["n_train"],
        "n_test": out["n_test"],
        "n_params": out["n_params"],
        "steps": out["steps"],
        "steps_per_epoch": out["steps_per_epoch"],
        "final": out["final"],
        "epochs": out["epochs"],
        "wall_time_s": out["wall_time_s"],
        "probe": out.get("probe"),
        "provenance": {
            "device": str(dev),
            "device_name": device_name(dev),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "git": git_info(),
            "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    })


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} literal (records store non-finite numbers as null)")


def parse_record(text: str | bytes) -> Any:
    """JSON as records are written: ``NaN``/``Infinity`` literals are refused (ValueError)."""
    return json.loads(text, parse_constant=_no_constant)


def read_result(path: Path) -> dict[str, Any] | None:
    """A finished run's record, or None if the file is missing or does not parse."""
    try:
        rec = parse_record(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("status") not in ("ok", "diverged"):
        return None
    version = rec.get("schema_version", 1)
    notes = [note for v, note in SCHEMA_NOTES.items() if version < v]
    if notes:
        rec["schema_notes"] = notes
    return rec


# ----------------------------------------------------------------------------- checks


def validate_record(path: Path, config: RunConfig, sweep: str) -> tuple[dict[str, Any] | None, str]:
    """``(record, "")`` if ``path`` is the finished result of ``config`` in ``sweep``.

    Otherwise ``(None, why)``: ``why`` is "" when the file does not exist, else a sentence
    naming the file and what is wrong (unreadable, missing fields, another run's id, config,
    sweep or a newer schema). A record whose status is neither "ok" nor "diverged" is not
    finished.
    """
    path = Path(path)
    if not path.exists():
        return None, ""
    try:
        rec = parse_record(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{path}: unreadable ({type(e).__name__}: {e})"
    why = record_problem(rec, config, sweep)
    if why:
        return None, f"{path}: {why}"
    return read_result(path), ""


def record_problem(rec: Any, config: RunConfig, sweep: str) -> str:
    """What is wrong with ``rec`` as ``config``'s record in ``sweep`` ("" if nothing).

    The one validator of CIFAR records: the sweeps, the chapters and the GPU-result ingest
    all call it (schema, required fields and their types, finite numbers, run id, sweep,
    config, and metrics consistent with the config)."""
    why = _record_problem(rec, config, sweep)
    return why or _metrics_problem(rec, config)


def _metrics_problem(rec: dict[str, Any], config: RunConfig) -> str:
    epochs, final = rec["epochs"], rec["final"]
    if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
        return "epochs is not a list of objects"
    if final is not None and not isinstance(final, dict):
        return f"final is {type(final).__name__}, not an object"
    w = rec["wall_time_s"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
        return f"wall_time_s {w!r} is not a finite number >= 0"
    bad = [k for k, v in (final or {}).items()
           if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if bad:
        return f"final metric(s) {', '.join(bad)} are not numbers"
    n = config.epochs + config.final_constant_lr_epochs
    if rec["status"] == "ok" and len(epochs) != n:
        return f"status 'ok' with {len(epochs)} epochs, but the config trains {n}"
    if len(epochs) > n:
        return f"{len(epochs)} epochs, but the config trains {n}"
    if rec["status"] == "ok" and epochs and isinstance(final, dict) and any(
            final.get(k) != epochs[-1].get(k) for k in final if k in epochs[-1]):
        return "final metrics differ from the last epoch's"
    return ""


def _record_problem(rec: Any, config: RunConfig, sweep: str) -> str:
    if not isinstance(rec, dict):
        return "not a JSON object"
    missing = [k for k in REQUIRED_FIELDS if k not in rec]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    version = rec.get("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        return f"schema_version {version!r} is not one this code reads (1..{SCHEMA_VERSION})"
    if rec["status"] not in ("ok", "diverged"):
        return f"status {rec['status']!r} is neither 'ok' nor 'diverged'"
    rid = config.run_id()
    if rec["run_id"] != rid:
        return f"holds run {rec['run_id']!r}, not {rid!r}"
    if rec.get("sweep", sweep) != sweep:
        return f"belongs to sweep {rec['sweep']!r}, not {sweep!r}"
    want = json_safe(asdict(config))
    got = rec["config"]
    if not isinstance(got, dict):
        return "config is not an object"
    diff = sorted(k for k in set(want) | set(got) if k in got and got[k] != want.get(k))
    # a field added later may be absent from older records while it is unset (None)
    lacking = sorted(k for k in set(want) - set(got)
                     if not (k in OPTIONAL_FIELDS and want[k] is None))
    if version >= SCHEMA_VERSION and lacking:
        diff += lacking
    if diff:
        return f"config differs from the sweep's in {', '.join(diff)}"
    if rec["status"] == "ok" and not isinstance(rec["final"], dict):
        return "status 'ok' without final metrics"
    return ""


def check_writable(folder: str | os.PathLike) -> None:
    """Create ``folder`` and prove a file can be written there, before any training.

    Raises PermissionError (or the OSError) naming the folder and what to do.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise type(e)(e.errno, f"results folder {folder} is not writable ({e.strerror}); fix "
                      "its permissions or pass another results_dir (--results DIR)") from None


def clean_stale_tmp(folder: str | os.PathLike, max_age_s: float = STALE_TMP_S) -> list[Path]:
    """Delete temporary files (``.*.tmp``) a killed writer left, older than ``max_age_s``."""
    now = time.time()
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    if removed:
        print(f"removed {len(removed)} stale temporary file(s) in {folder}: "
              + ", ".join(p.name for p in removed))
    return removed


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, run_id: str) -> Iterator[bool]:
    """Hold ``<folder>/.<run_id>.lock`` (an exclusive ``flock``) while a run computes.

    Yields True when this process holds the lock, False when another process does (the
    caller then skips the run). The lock dies with its process, so a SIGKILL never leaves
    a run blocked (its empty lock file stays and is reused). The caller must re-check the
    record after locking: another process may have finished the run just before.
    """
    import fcntl

    path = Path(folder) / f".{run_id}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            # Removed while held: a process that opened it before sees the finished record
            # once it gets the lock (callers re-check the record after locking).
            path.unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
