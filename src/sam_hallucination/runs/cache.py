"""Cached results for the analytic chapters: JSON with provenance, written atomically.

``load_or_compute(path, compute, recompute=...)`` returns the ``data`` of ``path`` when it
exists and ``recompute`` is False; otherwise it calls ``compute()`` (a JSON-able dict),
writes ``{"config", "data", "provenance"}`` with the git commit, the device, torch's
version and the wall time, and returns the data. The chapters' ``quick`` profile loads,
``full`` recomputes.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .store import device_name, git_info, json_safe, write_json_atomic


def to_jsonable(x: Any) -> Any:
    """numpy arrays and scalars to lists and floats, recursively, then :func:`json_safe`."""
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.generic):
        return to_jsonable(x.item())
    if isinstance(x, complex):
        return [x.real, x.imag]
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    return json_safe(x)


def load_or_compute(path: str | Path, compute: Callable[[], dict], *, config: dict,
                    recompute: bool = False) -> dict:
    """The cached ``data`` of ``path``, or compute, write and return it (see module docstring)."""
    path = Path(path)
    if path.exists() and not recompute:
        rec = json.loads(path.read_text())
        if rec.get("config") != to_jsonable(config):
            raise ValueError(f"{path}: cached config {rec.get('config')} differs from {config}; "
                             "recompute with profile='full'")
        return rec["data"]
    t0 = time.time()
    data = to_jsonable(compute())
    rec = {
        "config": to_jsonable(config),
        "data": data,
        "provenance": {
            "git": git_info(), "device": device_name("cpu"), "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - t0, 2),
        },
    }
    write_json_atomic(path, rec)
    return data
