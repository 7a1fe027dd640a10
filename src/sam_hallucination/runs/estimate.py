"""How long runs take: per batched group, from a measured calibration when one exists.

The GPU session's engine benchmark (``benchmarks/train_step.py --full-runs`` on CUDA) prints a
line ``calibration {json}`` that lands in ``results/benchmarks/train_step_cuda.txt``:

* ``epoch_s``: seconds per epoch over the full 50k-image training set, one run at a time,
  for ``sgd`` and ``sam`` (model ``airbench``, batch 512, bf16);
* ``group_epoch_s``: seconds per epoch of a batched group of K SAM runs, for a few K
  (K = 1: the batched engine with one model);
* ``device_name``, ``torch``.

:func:`group_seconds` prices one group of runs: training as one stack (K models: the measured
group epoch time, interpolated in K; a group with a SAM member runs two passes a step for
all), plus the probes: each run's diagnostics, then the group's continuations (SGD and, for
SAM runs, SAM and the matched control) as stacks of at most K. Without a calibration file the CUDA
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
from .loop import evaluates_at

CALIBRATION_FILES = ("train_step_cuda.txt",)
# Guessed seconds per epoch (50k images) one run at a time; SAM costs about 2x.
GUESS_EPOCH_S = {
    ("airbench", "cpu"): 800.0, ("resnet18", "cpu"): 6000.0, ("mlp", "cpu"): 5.0,
    ("airbench", "cuda"): 0.6, ("resnet18", "cuda"): 6.0, ("mlp", "cuda"): 0.1,
}


# Measured CPU costs of the CPU-scale tier's model (results/benchmarks/cpu_tier.txt: 2 torch
# threads, Intel Xeon, 2 CPUs, idle machine), keyed by (model, model_width, batch_size), per
# 10k images: training epoch for SGD and SAM, one test-set evaluation, and the whole
# end-of-training probe (1-epoch continuations) of an SGD and of a SAM run.
CPU_CALIBRATION: dict[tuple[str, int | None, int], dict[str, float]] = {
    ("airbench", 12, 128): {"sgd": 3.70, "sam": 6.78, "eval": 1.62, "probe_sgd": 8.64,
                            "probe_sam": 21.31},
    # the CPU study's width 16, from its fastest whole SGD and SAM runs (159 s, 303 s; one
    # thread, two runs side by side): no probe measured, so a probed run has no estimate
    ("airbench", 16, 128): {"sgd": 7.36, "sam": 14.6, "eval": 2.96},
}
CPU_CALIBRATION_SOURCE = ("results/benchmarks/cpu_tier.txt (width 12) and "
                          "results/benchmarks/cpu_study_calibration.txt (width 16)")


def cpu_calibration(config: RunConfig) -> dict[str, float] | None:
    """The measured CPU costs for ``config``'s model, width and batch size, or None."""
    return CPU_CALIBRATION.get((config.model, config.model_width, config.batch_size))


def cpu_run_seconds(config: RunConfig, cal: dict[str, float]) -> float:
    """One run on the CPU from the measured per-10k-image costs: its SGD and SAM epochs
    (method "switch": the first ``switch_frac`` of the main steps are SGD), its test-set
    evaluations and its probe (scaled by its continuation epochs)."""
    spec = get_method(config.method, "network")
    scale = config.train_size() / 10_000
    n_epochs = config.epochs + config.final_constant_lr_epochs
    sgd_epochs = (n_epochs if not spec.sam
                  else config.switch_frac * config.epochs if spec.switch else 0.0)
    seconds = scale * (sgd_epochs * cal["sgd"] + (n_epochs - sgd_epochs) * cal["sam"])
    n_test = min(config.n_test or 10_000, 10_000)
    n_evals = sum(evaluates_at(config, e, n_epochs) for e in range(1, n_epochs + 1))
    seconds += n_evals * cal["eval"] * n_test / 10_000
    if config.probe:
        n_cont = (config.probe_steps / (config.train_size() // config.batch_size)
                  if config.probe_steps else config.probe_epochs)
        seconds += cal["probe_sam" if spec.sam else "probe_sgd"] * scale * n_cont
    return seconds


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
    if kind == "cpu" and all(cpu_calibration(c) for c in group):  # no batching gain on CPU
        return sum(cpu_run_seconds(c, cpu_calibration(c)) for c in group)  # type: ignore[arg-type]
    scale = c0.train_size() / 50_000
    epochs = c0.epochs + c0.final_constant_lr_epochs
    any_sam = any(get_method(c.method, "network").sam for c in group)
    cal = calibration if (kind == "cuda" and calibration and c0.model == "airbench") else None
    if cal:
        sgd_e, sam_e = cal["epoch_s"]["sgd"], cal["epoch_s"]["sam"]
    else:
        sgd_e = GUESS_EPOCH_S.get((c0.model, kind), 10.0)
        sam_e = 2 * sgd_e

    def stack_epoch(n: int, sam: bool) -> float:
        """Seconds per full-data epoch of ``n`` models as one stack."""
        if n == 1:
            return sam_e if sam else sgd_e
        if not cal:
            return n * (sam_e if sam else sgd_e)  # no batching gain assumed
        t = _interp(cal["group_epoch_s"], n) if cal.get("group_epoch_s") else n * sam_e
        return t if sam else t * sgd_e / sam_e

    seconds = stack_epoch(k, any_sam) * epochs * scale
    # probes: diagnostics one run at a time (~4 passes over the fixed batches), then every
    # continuation of the group (SGD, SAM, control) in stacks of at most K
    jobs = 0
    for c in group:
        if c.probe:
            sam = get_method(c.method, "network").sam
            jobs += 1 + 2 * (sam and c.rho > 0)
            seconds += 4 * c.probe_batches * c.batch_size / 50_000 * sam_e + 0.2 * sgd_e * scale
    if jobs:
        n_cont = (c0.probe_steps / (c0.train_size() // c0.batch_size) if c0.probe_steps
                  else c0.probe_epochs)
        for a in range(0, jobs, k):
            seconds += stack_epoch(min(k, jobs - a), any_sam) * n_cont * scale
    return seconds


def calibration_note(device: str, calibration: dict[str, Any] | None) -> str:
    if _kind(device) != "cuda":
        return (f"CPU estimate: measured for the CPU tier's model ({CPU_CALIBRATION_SOURCE}), "
                "else the guessed per-epoch table")
    if calibration is None:
        return "uncalibrated (no CUDA benchmark yet): guessed CUDA epoch costs, no batching gain"
    return (f"calibrated by {calibration['source']} ({calibration.get('device_name', '?')}, "
            f"torch {calibration.get('torch', '?')})")
