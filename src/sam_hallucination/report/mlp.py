"""Chapter 4's summaries of full-batch records: curves, tail medians, stalls, table rows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..runs.fullbatch.chapter import STALL_RATIO, TAIL_FRAC


# ----------------------------------------------------------------------------- summaries
def curve(record: dict[str, Any], key: str, continuation: bool = False
          ) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a logged metric; ``continuation=True`` appends the GD phase."""
    rows = record["log"] + (record["continuation_log"][1:] if continuation else [])
    steps = np.array([r["step"] for r in rows])
    vals = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
    return steps, vals


def tail_medians(record: dict[str, Any], frac: float = TAIL_FRAC) -> dict[str, Any]:
    """Medians over the logged points of the last ``frac`` of the run (SAM's norms oscillate
    from step to step, so one iterate is a noisy summary): ``*_tail`` keys."""
    start = (1 - frac) * record["config"]["steps"]
    rows = [r for r in record["log"] if r["step"] >= start]
    out = {}
    for key in ("grad_norm", "sam_norm", "ratio", "drift"):
        v = [r[key] for r in rows if r.get(key) is not None]
        out[f"{key}_tail"] = float(np.median(v)) if v else None
    return out


def stalled_steps(record: dict[str, Any], threshold: float = STALL_RATIO) -> int:
    """Iterations (to the logging resolution) with ‖∇f(w⁺)‖ < threshold·‖∇f(w)‖ in the run."""
    rows = [r for r in record["log"] if r["step"] > 0 and r.get("sam_active", True)]
    cfg = record["config"]
    every = cfg["log_every"] * (4 if cfg["method"] == "sgd-sam" else 1)
    return every * sum(r["ratio"] is not None and r["ratio"] < threshold for r in rows)


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """Final state and decisive-test numbers of one run, flat."""
    fin, cont, cfg = record["final"], record["continuation"], record["config"]
    last = record["log"][-1]
    tail = tail_medians(record)
    return {"method": cfg["method"], "rho": cfg["rho"], "weight_decay": cfg["weight_decay"],
            "steps": cfg["steps"], "f": fin["f"], "acc": fin["acc"], "test_acc": fin["test_acc"],
            "grad_norm": fin["grad_norm"], "sam_norm": fin["sam_norm"], "ratio": fin["ratio"],
            "f_plus": fin["f_plus"], "drift": last.get("drift"), **tail,
            "stalled_steps": stalled_steps(record),
            "ratio_min": min((r["ratio"] for r in record["log"][1:] if r["ratio"] is not None),
                             default=None),
            "f_after": cont["f"], "f_drop": cont["f_drop"],
            "rel_drop": cont["f_drop"] / fin["f"] if fin["f"] else math.nan,
            "acc_after": cont["acc"], "test_acc_after": cont["test_acc"],
            "grad_norm_after": cont["grad_norm"], "continue_steps": cont["steps"]}


def provenance_line(name: str, record: dict[str, Any]) -> str:
    """Where a record came from: file, source, commit, wall time, torch, device."""
    p = record.get("provenance", {})
    git = p.get("git", {}) or {}
    return (f"{name:>12}: {record.get('source', '?'):8} {Path(record.get('path', '?')).name}  "
            f"commit {str(git.get('commit', 'unknown'))[:10]}  torch {p.get('torch', '?')}  "
            f"{p.get('device_name', '?')}  wall time {record['wall_time_s']:.1f} s")
