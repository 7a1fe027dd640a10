"""SAM's checks of its param groups and of a checkpoint (``SAM.state_dict()["sam"]``)."""

from __future__ import annotations

import math
from typing import Any

from ..checks import check_bool, check_lr, check_radius, is_int, is_real, plain
from .perturbation import VARIANTS

SCHEDULES = ("constant", "linear")
KEYS = ("step_count", "switch_step", "total_steps", "rho_schedule", "variant")


def check_sam_state(sam: Any) -> None:
    """Raise ValueError naming the entry if ``sam`` is not a valid SAM checkpoint part."""
    if not isinstance(sam, dict) or not set(KEYS) <= set(sam):
        raise ValueError(f"state_dict['sam'] must hold {sorted(KEYS)}; pass the dict "
                         "SAM.state_dict() returned")
    if sam["variant"] not in VARIANTS:
        raise ValueError(f"state_dict['sam']['variant'] must be one of {VARIANTS}, got "
                         f"{sam['variant']!r}; the checkpoint is not from this SAM")
    if sam["rho_schedule"] not in SCHEDULES:
        raise ValueError(f"state_dict['sam']['rho_schedule'] must be one of {SCHEDULES}, "
                         f"got {sam['rho_schedule']!r}; the checkpoint is not from this SAM")
    for k in ("step_count", "switch_step"):
        if not is_int(sam[k]) or sam[k] < 0:
            raise ValueError(f"state_dict['sam'][{k!r}] must be an int >= 0, got "
                             f"{sam[k]!r}; the checkpoint is corrupted")
    t = sam["total_steps"]
    if t is not None and (not is_int(t) or t < 1):
        raise ValueError(f"state_dict['sam']['total_steps'] must be None or an int >= 1, "
                         f"got {t!r}; the checkpoint is corrupted")
    if sam["rho_schedule"] == "linear" and t is None:
        raise ValueError("state_dict['sam']: rho_schedule 'linear' needs total_steps; "
                         "the checkpoint is corrupted")


def check_base_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The base optimizer's keyword arguments, numpy scalars made Python numbers; a real
    one must be finite (torch's SGD takes momentum=nan and weight_decay=nan silently)."""
    out = {k: plain(v) for k, v in kwargs.items()}
    check_lr(out.get("lr"), "lr")
    for k, v in out.items():
        if is_real(v) and not math.isfinite(v):
            raise ValueError(f"{k}={v!r}: must be a finite number (it would make the weights NaN)")
    return out


def check_group(group: dict[str, Any], where: str) -> None:
    """A param group's rho (made a float), adaptive and lr; errors name ``where``."""
    group["rho"] = check_radius(group["rho"], f"rho ({where})")
    check_bool(group["adaptive"], f"adaptive ({where})")
    check_lr(group.get("lr"), f"lr ({where})")


def check_checkpoint_groups(base: Any) -> None:
    """The param groups of ``state_dict['base']``, checked on copies before anything loads."""
    groups = base.get("param_groups") if isinstance(base, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("state_dict['base'] must hold 'param_groups' (a list of dicts); "
                         "pass the dict SAM.state_dict() returned")
    for i, group in enumerate(groups):
        if "rho" not in group or "adaptive" not in group:
            raise ValueError(f"state_dict['base']['param_groups'][{i}] lacks 'rho' or "
                             "'adaptive'; the checkpoint is not from SAM")
        check_group(dict(group), f"checkpoint param group {i}")


def resolve_switch(switch_at: int | float, total_steps: int | None) -> int:
    """The switch step k: an int switch_at, or round(q * total_steps) for a fraction q."""
    if not is_real(switch_at):
        raise TypeError(f"switch_at must be an int step or a float fraction in [0, 1), "
                        f"got {switch_at!r}")
    switch_at = plain(switch_at)  # np.int64 is a step, np.float32 a fraction
    if isinstance(switch_at, float):
        if not (0.0 <= switch_at < 1.0):
            raise ValueError(f"switch_at as a fraction must lie in [0, 1), got {switch_at!r}; "
                             "pass an int for a step index")
        if total_steps is None:
            raise ValueError("switch_at as a fraction needs total_steps; pass total_steps=... "
                             "or an int switch_at")
        k = round(switch_at * total_steps)
    else:
        k = int(switch_at)
    if k < 0:
        raise ValueError(f"switch_at must be >= 0, got {switch_at!r}")
    if total_steps is not None and k >= total_steps:
        raise ValueError(f"switch_at={switch_at!r} gives switch step {k} >= total_steps="
                         f"{total_steps}: SAM would never run; use a smaller switch_at")
    return k
