"""Argument validation: one helper per argument kind, shared by every layer."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import torch

DTYPE = torch.float64


def repo_root() -> Path:
    """The repository checkout this package lives in (``src/`` layout)."""
    return Path(__file__).resolve().parents[2]


def _is_bool(v: Any) -> bool:
    # numpy's bool_ is not a Python bool, and True must never pass as 1
    return isinstance(v, bool) or type(v).__name__ == "bool_"


def is_int(v: Any) -> bool:
    """An integer (Python int or a numpy integer such as ``np.int64``) that is not a bool."""
    return isinstance(v, numbers.Integral) and not _is_bool(v)


def is_real(v: Any) -> bool:
    """A real number (Python int/float or a numpy scalar such as ``np.float32``), not a bool."""
    return isinstance(v, numbers.Real) and not _is_bool(v)


def plain(v: Any) -> Any:
    """A numpy scalar as the Python int/float it holds (JSON and run ids need those);
    anything else unchanged, so Python ints stay ints and run ids do not move."""
    return v.item() if is_real(v) and type(v).__module__ == "numpy" else v


def check_real(value: Any, name: str) -> float:
    """A finite real number as a float; one-line error naming ``name`` otherwise.

    Range checks stay with the caller; this only refuses strings, None, bools, NaN and inf.
    """
    if not is_real(value):
        raise TypeError(f"{name}={value!r}: must be a real number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r}: must be a finite number")
    return float(value)


def check_radius(rho: Any, name: str = "rho", *, allow_zero: bool = True) -> float:
    """A perturbation radius (real, finite, ≥ 0, or > 0 without ``allow_zero``) as a float."""
    if not is_real(rho):
        if not (isinstance(rho, torch.Tensor) and rho.numel() == 1 and not rho.is_complex()):
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



def check_matrix(A: Any, name: str, hint: str, *, batched: bool = False) -> torch.Tensor:
    """A finite square matrix (d, d), or a batch (B, d, d) with ``batched``, as a tensor.

    Checked before any LAPACK call: MKL's eigenvalue routines crash (SIGSEGV) or print an
    error and return NaN on a NaN matrix.
    """
    try:
        t = torch.as_tensor(A)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a square matrix of numbers; {hint}") from None
    ndims = (2, 3) if batched else (2,)
    square = t.ndim in ndims and t.shape[-1] == t.shape[-2]
    if not square or t.is_complex() or not torch.isfinite(t).all():
        what = "has NaN or inf entries" if square else f"has shape {tuple(t.shape)}"
        raise ValueError(f"{name} must be a finite square matrix{' (or a batch)' * batched}, "
                         f"but it {what}; {hint}")
    return t


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An int (not a bool) ≥ ``minimum``; ValueError naming the argument otherwise."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_tol(name: str, value: Any, *, positive: bool = False) -> float:
    """A tolerance: a finite real ≥ 0 (> 0 with ``positive``), as a float."""
    ok = is_real(value) and math.isfinite(value)
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
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite real number >= 0, got {value!r}; "
                         f"pass e.g. {name.split()[0]}=0.1")
