"""The radius schedule, written once: which step is a SAM step and with what radius.

:class:`~.sam.SAM` asks these functions for its radius; nothing else computes ρ(t).
``switch_step``: the first SAM step (0 unless the method switches from SGD); ``total_steps``:
the run length; ``schedule``: "constant" (ρ throughout) or "linear" (ρ decays from the switch
to 0 at the last step).
"""

from __future__ import annotations


def rho_factor(t: int, switch_step: int, total_steps: int | None, schedule: str) -> float:
    """ρ(t)/ρ for a SAM step ``t`` (0-based, ``t >= switch_step``)."""
    if schedule == "constant":
        return 1.0
    span = total_steps - 1 - switch_step
    if span <= 0 or t >= total_steps - 1:
        return 0.0
    return max(0.0, (total_steps - 1 - t) / span)


def rho_at(rho: float, t: int, switch_step: int, total_steps: int | None, schedule: str) -> float:
    """The radius at step ``t``: 0 before the switch, else ``rho * rho_factor(...)``."""
    if t < switch_step:
        return 0.0
    return rho * rho_factor(t, switch_step, total_steps, schedule)
