"""The tiers a CIFAR chapter can show, in words once: titles, leads and the banner read them."""

from __future__ import annotations

TIERS = ("smoke", "cpu", "gpu")  # what a chapter can show, weakest first
SMOKE_LABEL = "CPU smoke run — not the experiment"
CPU_TIER_LABEL = "CPU scale: small CNN, 10k-image subset"
CPU_TIER_TEXT = ("real training runs of a small CNN (about 72k parameters) on a 10,000-image "
                 "subset of CIFAR-10, run on a 2-core CPU")
CPU_SWEEP_PREFIX = "cifar10-cpu-"  # the CPU-scale sweeps (runs/sweeps.cpu_tier_base)


def tier_of(sweep: str) -> str:
    """The tier of a sweep's own records: "cpu" for the CPU-scale sweeps (``cifar10-cpu-*``,
    run on a 2-core CPU), "gpu" otherwise."""
    return "cpu" if sweep.startswith(CPU_SWEEP_PREFIX) else "gpu"
