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
