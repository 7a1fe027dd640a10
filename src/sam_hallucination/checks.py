"""Argument validation: one helper per argument kind, shared by every layer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

DTYPE = torch.float64


def repo_root() -> Path:
    """The repository checkout this package lives in (``src/`` layout)."""
    return Path(__file__).resolve().parents[2]


def is_int(v: Any) -> bool:
    """An int that is not a bool (configs reject True as 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def check_radius(rho: Any, name: str = "rho", *, allow_zero: bool = True) -> float:
    """A perturbation radius (real, finite, ≥ 0, or > 0 without ``allow_zero``) as a float."""
    if isinstance(rho, bool) or not isinstance(rho, (int, float)):
        if not (isinstance(rho, torch.Tensor) and rho.numel() == 1):
            raise TypeError(f"{name} must be a real number, got {rho!r}; pass e.g. {name}=0.05")
    r = float(rho)
    if not math.isfinite(r):
        raise ValueError(f"{name} must be finite, got {rho!r}; pass a radius such as {name}=0.05")
    if r < 0 or (r == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        hint = f"; use {name}=0 for the base optimizer" if allow_zero else ""
        raise ValueError(f"{name} must be {bound}, got {rho!r}{hint}")
    return r


def check_positive(name: str, value: Any, example: str) -> torch.Tensor:
    """A positive finite scalar or tensor (float64); ValueError naming the argument otherwise."""
    try:
        t = torch.as_tensor(value, dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a real number or a tensor of them, got {value!r}") from None
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"{name} must be finite and > 0, got {value!r}; pass e.g. {name}={example}")
    return t


def check_points(x0: Any, dim: int, name: str = "x0") -> torch.Tensor:
    """Starting points as a (B, d) float64 tensor; a single point (d,) becomes (1, d)."""
    try:
        x = torch.as_tensor(x0, dtype=DTYPE).clone()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be an array of shape (B, {dim}) or ({dim},)") from None
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}) or ({dim},), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite (got NaN or inf); pass finite starting points")
    return x


def per_point(t: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    """Broadcast a scalar or (B,) parameter to shape (B, 1)."""
    if t.ndim == 0:
        return t.reshape(1, 1).expand(batch, 1).clone()
    if t.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return t.reshape(batch, 1).clone()



def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An int (not a bool) ≥ ``minimum``; ValueError naming the argument otherwise."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_tol(name: str, value: Any, *, positive: bool = False) -> float:
    """A tolerance: a finite real ≥ 0 (> 0 with ``positive``), as a float."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite real number {bound}, got {value!r}")
    return float(value)


def check_single_point(x0: Any, dim: int, name: str = "x0") -> torch.Tensor:
    """One point of R^dim as a (dim,) float64 tensor; a batch of several points is refused."""
    x = check_points(x0, dim, name)
    if x.shape[0] != 1:
        raise ValueError(f"{name} must be ONE point of shape ({dim},), got a batch of "
                         f"{x.shape[0]}; call once per start")
    return x[0]


def check_grid(name: str, values: Any) -> Any:
    """A non-empty 1-D grid of finite values > 0 (numpy float array)."""
    import numpy as np

    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 1-D array of numbers, got {values!r}") from None
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all() or (a <= 0).any():
        raise ValueError(f"{name} must be a non-empty 1-D array of finite values > 0, "
                         f"got {values!r}")
    return a


def check_bool(value: Any, name: str) -> bool:
    """True or False exactly ("False", 0 and None are refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}; pass {name}=True or "
                        f"{name}=False")
    return value


def check_lr(value: Any, name: str = "lr") -> None:
    """A learning rate when given (None and tensors pass): a finite real >= 0.

    torch's optimizers accept lr=nan silently.
    """
    if value is None or isinstance(value, torch.Tensor):
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise ValueError(f"{name} must be a finite real number >= 0, got {value!r}; "
                         f"pass e.g. {name.split()[0]}=0.1")
