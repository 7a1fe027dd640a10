"""SAM on functions of R^d: the perturbation, the surrogate and the update.

For a differentiable f the unit ascent direction is u(x) = ∇f(x)/‖∇f(x)‖ and the
perturbed point is x⁺ = x + ρ u(x). The surrogate is f^SAM(x) = f(x⁺), and

    ∇f^SAM(x) = (I + ρ Du(x))ᵀ ∇f(x⁺),   Du(x) = (I − u uᵀ) ∇²f(x) / ‖∇f(x)‖.

SAM's step uses ∇f(x⁺) alone ("the practical mismatch"). USAM uses the
unnormalised perturbation x + ρ ∇f(x). All functions are batched over leading
dimensions and work in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..checks import check_count, check_radius, check_tol
from .landscapes import DTYPE, as_tensor, grad

Tensor = torch.Tensor
Fn = Callable[[Tensor], Tensor]


def ascent_direction(g: Tensor, eps: float = 0.0) -> Tensor:
    """u = g/‖g‖ over the last axis; zero where ‖g‖ = 0 (no NaN)."""
    n = g.norm(dim=-1, keepdim=True)
    return torch.where(n > eps, g / n.clamp_min(torch.finfo(g.dtype).tiny), torch.zeros_like(g))


def _refuse_critical(g: Tensor, where: str) -> None:
    """u = g/‖g‖ is undefined where ∇f(x) = 0: refuse instead of returning NaN."""
    if (g == 0).all(-1).any():
        raise ValueError(f"{where}: ∇f(x) = 0 at some x (a critical point of f), where "
                         "u(x) and the surrogate's gradient are undefined; move x off it")


def perturbed_point(f: Fn, x: Tensor, rho: float, variant: str = "sam") -> Tensor:
    """x⁺ = x + ρ u(x) (SAM) or x + ρ ∇f(x) (USAM)."""
    rho = check_radius(rho)
    g = grad(f, x)
    if variant == "sam":
        return x + rho * ascent_direction(g)
    if variant == "usam":
        return x + rho * g
    raise ValueError(f"variant must be 'sam' or 'usam', got {variant!r}")


def sam_objective(f: Fn, x: Tensor, rho: float) -> Tensor:
    """The surrogate f^SAM(x) = f(x + ρ u(x)), differentiable in x."""
    rho = check_radius(rho)
    with torch.enable_grad():
        xr = x if x.requires_grad else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(xr).sum(), xr, create_graph=True)
        _refuse_critical(g, "sam_objective")
        return f(xr + rho * g / g.norm(dim=-1, keepdim=True))


def sam_objective_grad(f: Fn, x: Tensor, rho: float) -> Tensor:
    """∇f^SAM(x) by differentiating through u(x) (second-order autograd)."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(sam_objective(f, xr, rho).sum(), xr)
    return g.detach()


def sam_objective_grad_formula(f: Fn, x: Tensor, rho: float) -> Tensor:
    """∇f^SAM(x) = (I + ρ Du(x))ᵀ ∇f(x⁺), with Du = (I − uuᵀ)H/‖∇f‖, for one point x of shape (d,)."""
    rho = check_radius(rho)
    x = x.detach().to(DTYPE)
    g = grad(f, x)
    _refuse_critical(g, "sam_objective_grad_formula")
    gn = g.norm()
    u = g / gn
    hess = torch.autograd.functional.hessian(lambda z: f(z), x)
    eye = torch.eye(x.shape[-1], dtype=DTYPE)
    du = (eye - torch.outer(u, u)) @ hess / gn
    g_plus = grad(f, x + rho * u)
    return (eye + rho * du).T @ g_plus


def sam_direction(f: Fn, x: Tensor, rho: float, variant: str = "sam") -> Tensor:
    """The direction SAM actually steps along: ∇f(x⁺)."""
    return grad(f, perturbed_point(f, x, rho, variant))


def sam_step(f: Fn, x: Tensor, rho: float, lr: float, variant: str = "sam") -> Tensor:
    """One SAM (or USAM) step x − η ∇f(x⁺)."""
    return x - lr * sam_direction(f, x, rho, variant)


def run(f: Fn, x0, rho: float, lr: float, steps: int, variant: str = "sam") -> Tensor:
    """Iterate SAM (``variant='sam'``/``'usam'``) or GD (``variant='gd'``); returns (steps+1, ..., d)."""
    check_tol("lr", lr, positive=True)
    check_count("steps", steps, minimum=0)  # steps=-5 used to return the start alone
    if variant not in ("gd", "sam", "usam"):
        raise ValueError(f"variant must be 'gd', 'sam' or 'usam', got {variant!r}")
    x = as_tensor(x0)  # a NaN start gave a path of NaN
    path = [x]
    for _ in range(steps):
        x = x - lr * grad(f, x) if variant == "gd" else sam_step(f, x, rho, lr, variant)
        path.append(x)
    return torch.stack(path)
