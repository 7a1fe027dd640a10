"""Result files: one JSON document a run, written atomically, with provenance.

Schema (``schema_version``):

* 1: the first CIFAR runs;
* 2: adds the end-of-training ``probe`` (None when the run had ``probe=False``);
* 3: per-epoch and final ``trainable_weight_norm``, the norm of the parameters the optimizer
  updates (``requires_grad``); ``weight_norm``, which also counted the frozen BatchNorm
  scales, is no longer written.

:func:`read_result` reads every version; records older than 3 get ``schema_notes``, a list
of sentences saying what they lack.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..checks import repo_root
from .config import RunConfig

SCHEMA_VERSION = 3
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


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

def result_record(config: RunConfig, out: dict[str, Any], sweep: str,
                  device: str | torch.device) -> dict[str, Any]:
    """The JSON document for one run (see the schema in the module's README)."""
    dev = torch.device(out["device"])
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


def read_result(path: Path) -> dict[str, Any] | None:
    """A finished run's record, or None if the file is missing or does not parse."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("status") not in ("ok", "diverged"):
        return None
    version = rec.get("schema_version", 1)
    notes = [note for v, note in SCHEMA_NOTES.items() if version < v]
    if notes:
        rec["schema_notes"] = notes
    return rec
