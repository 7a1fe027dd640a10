"""How long runs take: per batched group, from a measured calibration when one exists.

The GPU session's engine benchmark (``benchmarks/train_step.py --full-runs`` on CUDA) prints a
line ``calibration {json}`` that lands in ``results/benchmarks/train_step_cuda.txt``:

* ``epoch_s``: seconds per epoch over the full 50k-image training set, one run at a time,
  for ``sgd`` and ``sam`` (model ``airbench``, batch 512, bf16);
* ``group_epoch_s``: seconds per epoch of a batched group of K SAM runs, for a few K;
* ``device_name``, ``torch``.

:func:`group_seconds` prices one group of runs: training as one stack (K models: the measured
group epoch time, interpolated in K; a group with a SAM member runs two passes a step for
all), plus each run's probe, priced from the one-by-one epoch costs (diagnostics, one SGD,
one SAM and one matched-control continuation epoch). Without a calibration file the CUDA
numbers are the guesses of ``EPOCH_COST_S`` with no batching gain, and the estimate says
"uncalibrated (no CUDA benchmark yet)".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..methods import get_method
from .config import RunConfig

CALIBRATION_FILES = ("train_step_cuda.txt",)
# Guessed seconds per epoch (50k images) one run at a time; SAM costs about 2x.
GUESS_EPOCH_S = {
    ("airbench", "cpu"): 800.0, ("resnet18", "cpu"): 6000.0, ("mlp", "cpu"): 5.0,
    ("airbench", "cuda"): 0.6, ("resnet18", "cuda"): 6.0, ("mlp", "cuda"): 0.1,
}


def load_calibration(results_dir: str | os.PathLike = "results") -> dict[str, Any] | None:
    """The last ``calibration {json}`` line of the CUDA engine benchmark, or None."""
    for name in CALIBRATION_FILES:
        path = Path(results_dir) / "benchmarks" / name
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        found = [ln for ln in lines if ln.startswith("calibration ")]
        if found:
            try:
                cal = json.loads(found[-1][len("calibration "):])
            except ValueError:
                continue
            if isinstance(cal, dict) and "epoch_s" in cal:
                cal["source"] = str(path)
                return cal
    return None


def _kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def _interp(table: dict[str, float], k: int) -> float:
    """Group epoch seconds at K, linear between the measured K (extrapolated by the last slope)."""
    pts = sorted((int(a), float(b)) for a, b in table.items())
    if len(pts) == 1:
        return pts[0][1] * k / pts[0][0]
    for (k0, t0), (k1, t1) in zip(pts, pts[1:], strict=False):
        if k <= k1:
            return t0 + (t1 - t0) * (k - k0) / (k1 - k0)
    (k0, t0), (k1, t1) = pts[-2], pts[-1]
    return t1 + (t1 - t0) * (k - k1) / (k1 - k0)


def group_seconds(group: list[RunConfig], device: str,
                  calibration: dict[str, Any] | None) -> float:
    """Estimated seconds for ``group`` trained as one stack (one run: one by one), probes included."""
    c0, k = group[0], len(group)
    kind = _kind(device)
    scale = c0.train_size() / 50_000
    epochs = c0.epochs + c0.final_constant_lr_epochs
    any_sam = any(get_method(c.method, "network").sam for c in group)
    cal = calibration if (kind == "cuda" and calibration and c0.model == "airbench") else None
    if cal:
        sgd_e, sam_e = cal["epoch_s"]["sgd"], cal["epoch_s"]["sam"]
        group_e = (_interp(cal["group_epoch_s"], k) if k > 1 and cal.get("group_epoch_s")
                   else k * sam_e)
        if not any_sam:
            group_e *= sgd_e / sam_e
    else:
        sgd_e = GUESS_EPOCH_S.get((c0.model, kind), 10.0)
        sam_e = 2 * sgd_e
        group_e = k * (sam_e if any_sam else sgd_e)  # no batching gain assumed
    seconds = group_e * epochs * scale
    for c in group:
        if c.probe:
            n_cont = c.probe_steps / (c.train_size() // c.batch_size) if c.probe_steps else (
                c.probe_epochs)
            sam = get_method(c.method, "network").sam
            # diagnostics ~ 4 passes over probe_batches batches; continuations; 3 evaluations
            diag = 4 * c.probe_batches * c.batch_size / 50_000 * sam_e
            cont = n_cont * scale * (sgd_e + (sam_e + sgd_e if c.rho > 0 and sam else 0.0))
            seconds += diag + cont + 0.2 * sgd_e * scale
    return seconds


def calibration_note(device: str, calibration: dict[str, Any] | None) -> str:
    if _kind(device) != "cuda":
        return "CPU estimate from the guessed per-epoch table"
    if calibration is None:
        return "uncalibrated (no CUDA benchmark yet): guessed CUDA epoch costs, no batching gain"
    return (f"calibrated by {calibration['source']} ({calibration.get('device_name', '?')}, "
            f"torch {calibration.get('torch', '?')})")
