"""Test functions on R^d for studying SAM, in float64 torch.

Every landscape is batched: ``f(x)`` takes a tensor of shape ``(..., d)`` and
returns shape ``(...)``. Gradients come from autograd (:func:`grad`) unless a
closed form is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Tensor = torch.Tensor
DTYPE = torch.float64


@dataclass(frozen=True)
class Landscape:
    """A smooth function f: R^d -> R with known critical structure."""

    name: str
    dim: int
    f: Callable[[Tensor], Tensor]
    grad_closed_form: Callable[[Tensor], Tensor] | None = None
    description: str = ""
    extras: dict = field(default_factory=dict)

    def __call__(self, x: Tensor) -> Tensor:
        return self.f(x)

    def grad(self, x: Tensor) -> Tensor:
        """∇f(x), batched; closed form when available, else autograd."""
        if self.grad_closed_form is not None:
            return self.grad_closed_form(x)
        return grad(self.f, x)


def as_tensor(x, dim: int | None = None) -> Tensor:
    """Convert to a float64 tensor and check that it is finite."""
    t = torch.as_tensor(x, dtype=DTYPE)
    if dim is not None and t.shape[-1] != dim:
        raise ValueError(f"x: last dimension must be {dim}, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("x: start points must be finite (got NaN or inf)")
    return t


def grad(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Batched gradient of a batched scalar function by autograd."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x).sum(), x, create_graph=False)
    return g.detach()


# -- the ring (‖x‖² − 1)²: a circle of minimizers, an isolated maximizer at 0 ---------------

def _ring_f(x: Tensor) -> Tensor:
    return ((x * x).sum(-1) - 1.0) ** 2


def _ring_grad(x: Tensor) -> Tensor:
    return 4.0 * ((x * x).sum(-1, keepdim=True) - 1.0) * x


RING = Landscape(
    name="ring",
    dim=2,
    f=_ring_f,
    grad_closed_form=_ring_grad,
    description="f(x) = (‖x‖² − 1)²: minimizers on the unit circle, a maximizer at 0.",
)


# -- the 1-D double well (x² − 1)² ------------------------------------------------------------

DOUBLE_WELL = Landscape(
    name="double-well",
    dim=1,
    f=_ring_f,
    grad_closed_form=_ring_grad,
    description="f(x) = (x² − 1)²: minimizers ±1, a maximizer at 0.",
)


# -- an asymmetric 2-D landscape with ISOLATED critical points --------------------------------
#
#   f(x, y) = (x² − 1)² + a (x² − s²) y² + c y⁴ − β x + γ x y,
#   a = 1, s = 0.7, c = 0.5, β = 0.3, γ = 0.3.
#
# The double well in x is tilted (−βx) and sheared (γxy), so no reflection, rotation or point
# symmetry survives. The factor (x² − s²) makes y a *maximising* direction near x = 0 (the
# maximizer is isolated and elongated in y, flatter than a circle) and a minimising one near
# x = ±1; the quartic c y⁴ keeps f bounded below. With c > a²/4 there are exactly five critical
# points (found by Newton from a grid; values rounded, see `ASYMMETRIC_CRITICAL_POINTS`):
#   local min (global)  ( 1.0299, −0.2450)   f = −0.3449
#   local min           (−0.9499,  0.2878)   f =  0.2501
#   local max           (−0.0773, −0.0240)   f =  1.0116
#   saddle              (−0.1630, −0.6527)   f =  0.9217
#   saddle              (−0.0296,  0.7039)   f =  0.8813
# SAM with ρ beyond the min–max distance has isolated hallucinated points here; the one whose
# perturbed point x⁺ is the left minimizer attracts for η = 0.2 over an interval of ρ
# (chapter 3 computes it).

ASYM_PARAMS = {"a": 1.0, "s": 0.7, "c": 0.5, "beta": 0.3, "gamma": 0.3}


def _asym_f(z: Tensor) -> Tensor:
    p = ASYM_PARAMS
    x, y = z[..., 0], z[..., 1]
    y2 = y * y
    return ((x * x - 1.0) ** 2 + p["a"] * (x * x - p["s"] ** 2) * y2 + p["c"] * y2 * y2
            - p["beta"] * x + p["gamma"] * x * y)


def _asym_grad(z: Tensor) -> Tensor:
    p = ASYM_PARAMS
    x, y = z[..., 0], z[..., 1]
    y2 = y * y
    gx = 4.0 * x * (x * x - 1.0) + 2.0 * p["a"] * x * y2 - p["beta"] + p["gamma"] * y
    gy = 2.0 * p["a"] * (x * x - p["s"] ** 2) * y + 4.0 * p["c"] * y2 * y + p["gamma"] * x
    return torch.stack((gx, gy), dim=-1)


# (label, rounded location); exact values come from `dynamics.refine_critical_point`.
ASYMMETRIC_CRITICAL_POINTS = (
    ("local min (global)", (1.02988406, -0.24495270)),
    ("local min", (-0.94992821, 0.28775891)),
    ("local max", (-0.07728215, -0.02397820)),
    ("saddle", (-0.16299614, -0.65266480)),
    ("saddle", (-0.02955783, 0.70386460)),
)

ASYMMETRIC = Landscape(
    name="asymmetric",
    dim=2,
    f=_asym_f,
    grad_closed_form=_asym_grad,
    description=(
        "f(x,y) = (x²−1)² + (x²−0.49)y² + y⁴/2 − 0.3x + 0.3xy: two isolated minimizers, an "
        "isolated maximizer and two saddles; no symmetry."
    ),
    extras={"critical_points": ASYMMETRIC_CRITICAL_POINTS, "params": dict(ASYM_PARAMS)},
)

LANDSCAPES = {ls.name: ls for ls in (RING, DOUBLE_WELL, ASYMMETRIC)}
