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


# ----------------------------------------------------------------------------- robustness
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def tail_values(record: dict[str, Any], key: str = "ratio", frac: float = TAIL_FRAC
                ) -> np.ndarray:
    """The logged values of ``key`` over the last ``frac`` of the run."""
    start = (1 - frac) * record["config"]["steps"]
    return np.array([r[key] for r in record["log"] if r["step"] >= start
                     and r.get(key) is not None], dtype=float)


def ratio_quantiles(record: dict[str, Any], qs: tuple[float, ...] = QUANTILES,
                    frac: float = TAIL_FRAC) -> dict[str, float]:
    """Quantiles of the step ratio ‖d(w)‖/‖∇f(w)‖ over the tail: ``q10``, ``q25``, ..."""
    v = tail_values(record, "ratio", frac)
    return {f"q{round(100 * q)}": float(np.quantile(v, q)) for q in qs}


def ratio_cdf(record: dict[str, Any], thresholds: np.ndarray, frac: float = TAIL_FRAC
              ) -> np.ndarray:
    """Fraction of the tail's logged ratios below each threshold (the empirical CDF)."""
    v = tail_values(record, "ratio", frac)
    return (v[None, :] < np.asarray(thresholds, dtype=float)[:, None]).mean(1)


def gd_equivalent_steps(f_value: float, gd_record: dict[str, Any]) -> float:
    """The first GD step (from initialisation, linear interpolation between log points) at
    which GD's loss is at or below ``f_value``; ``inf`` if GD never gets there."""
    s, f = curve(gd_record, "f", continuation=True)
    below = np.nonzero(f <= f_value)[0]
    if len(below) == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        return 0.0
    return float(s[i - 1] + (s[i] - s[i - 1]) * (f[i - 1] - f_value) / (f[i - 1] - f[i]))


def progress_fraction(record: dict[str, Any], gd_record: dict[str, Any]) -> float:
    """Threshold-free stall measure: GD-equivalent steps of SAM's final loss over SAM's
    steps. About 1 when SAM makes GD's progress, near 0 when it has not left the start."""
    return gd_equivalent_steps(record["final"]["f"], gd_record) / record["config"]["steps"]


def continuation_vs_gd(record: dict[str, Any], gd_record: dict[str, Any],
                       ks: tuple[int, ...] = (250, 500, 1500)) -> list[dict[str, float]]:
    """f after k steps of GD continued from the run's endpoint against f after k steps of
    GD from initialisation (``gap`` = the difference), and the two distances from the
    initialisation where logged."""
    steps = record["config"]["steps"]
    cont = {r["step"] - steps: r for r in record["continuation_log"]}
    gd = {r["step"]: r for r in gd_record["log"] + gd_record["continuation_log"]}
    out = []
    for k in ks:
        c, g = cont[k], gd[k]
        out.append({"k": k, "f_cont": c["f"], "f_gd": g["f"], "gap": c["f"] - g["f"],
                    "dist_cont": c.get("dist_init"), "dist_gd": g.get("dist_init")})
    return out


def settled_step(record: dict[str, Any], level: float) -> int:
    """The last logged step at which f was on the other side of ``level`` from the final
    f (0 if never): from then on the verdict "final f above/below level" is fixed."""
    s, f = curve(record, "f")
    above = f > level
    flips = np.nonzero(above != above[-1])[0]
    return int(s[flips[-1] + 1]) if len(flips) else 0


def onset(rows: list[dict[str, Any]], level: float) -> dict[float, float | None]:
    """Per ``alpha``: the smallest ``ratio`` (ρ/‖w₀‖) whose run ends with f > ``level``
    (None if none does). ``rows`` hold ``alpha``, ``ratio`` and ``f``."""
    out: dict[float, float | None] = {}
    for a in sorted({r["alpha"] for r in rows}):
        hit = [r["ratio"] for r in rows if r["alpha"] == a and r["f"] > level]
        out[a] = min(hit) if hit else None
    return out


def window_ratios(record: dict[str, Any], start: int, length: int) -> np.ndarray:
    """The logged step ratios at steps in [start, start + length] (e.g. right after the
    switch of a ``switch`` run)."""
    return np.array([r["ratio"] for r in record["log"]
                     if start <= r["step"] <= start + length], dtype=float)


def git_dirty(record: dict[str, Any]) -> bool | None:
    """Whether the record's provenance says the source tree was dirty (None: unknown)."""
    return ((record.get("provenance") or {}).get("git") or {}).get("dirty")
