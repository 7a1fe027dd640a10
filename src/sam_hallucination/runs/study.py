"""The CPU recipes: the CPU-scale tier (issue 18) and the CPU study (issue 23).

The study's recipe is a regime where SAM may help at small rho, on 2 cores.

Calibrated in ``results/benchmarks/cpu_study_calibration.txt`` (sweep ``cifar10-cpu-calib``);
the study's sweeps (``cifar10-cpu-study*`` in :mod:`.sweeps`) use fresh seeds, so the
recipe's choice does not inflate the effects they report.
"""

from __future__ import annotations

from .config import RunConfig
from .grid import _seed_major, grid

CPU_TIER_WIDTH = 12  # airbench groups (12, 48, 48): 72,504 parameters
CPU_TIER_TEXT = (f"airbench CNN at width {CPU_TIER_WIDTH} (~72k parameters), 10k-image "
                 "class-balanced subset of the CIFAR-10 JPEG copy, full test set, "
                 "8 epochs, batch 128, one-cycle peak 0.2, then 1 epoch at LR 0.01 and the probe")


def cpu_tier_base() -> RunConfig:
    """The CPU-scale tier's recipe (calibrated in results/benchmarks/cpu_tier.txt)."""
    return RunConfig(model_width=CPU_TIER_WIDTH, n_train=10_000, epochs=8, batch_size=128,
                     lr=0.2, probe=True, final_constant_lr_epochs=1, eval_every=4)


def calibration_runs() -> list[RunConfig]:
    """Recipe candidates, SGD and SAM at rho 0.1: every candidate at the first calibration
    seed, then the remaining seeds for the candidate kept (the first; the others were
    pruned after one seed, results/benchmarks/cpu_study_calibration.txt)."""
    first, *others = calibration_candidates()
    pairs = lambda c, seeds: grid(c, rhos=(0.1,), seeds=seeds, methods=("sgd", "sam"))  # noqa: E731
    return _seed_major([r for c in (first, *others) for r in pairs(c, CALIB_SEEDS[:1])]
                       + pairs(first, CALIB_SEEDS[1:]))


STUDY_TEXT = ("airbench CNN at width 16 (~127k parameters), 5,000-image class-balanced subset "
              "of the CIFAR-10 JPEG copy, no augmentation, full test set, 40 epochs, batch 128, "
              "one-cycle peak 0.2")
CALIB_SEEDS = (100, 101, 102)  # calibration only; the study's grid uses fresh seeds


def cpu_study_base() -> RunConfig:
    """The CPU study's candidate recipe (issue 23): a regime where SAM may help at small rho."""
    return RunConfig(model_width=16, n_train=5_000, epochs=40, batch_size=128, lr=0.2,
                     augment=False, eval_every=10)


STUDY_SEEDS = (10, 11, 12)  # fresh: neither the pilot's (0-2) nor the calibration's
STUDY_RHOS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def calibration_candidates() -> list[RunConfig]:
    """The recipe (40 epochs), a shorter one (25 epochs), a smaller subset (2,500, 60)."""
    a = cpu_study_base()
    return [a, a.replace(epochs=25), a.replace(n_train=2_500, epochs=60, eval_every=20)]
