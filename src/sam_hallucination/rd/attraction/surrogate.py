"""The surrogate f^SAM against the SAM map at one hallucinated point of any landscape."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import grad as fgrad
from torch.func import hessian, vmap

from ...checks import check_count, check_points, check_positive, check_single_point, check_tol
from ..dynamics import sam_map_jacobian, spectral_radius
from ..landscapes import DTYPE, Landscape

Tensor = torch.Tensor

def _grad1(landscape: Landscape):
    return landscape.grad_closed_form if landscape.grad_closed_form is not None else fgrad(landscape.f)


def surrogate(landscape: Landscape, rho: float):
    """f^SAM for one point (d,), composable with torch.func transforms."""
    g = _grad1(landscape)

    def fsam(x: Tensor) -> Tensor:
        gx = g(x)
        return landscape.f(x + rho * gx / torch.linalg.vector_norm(gx))

    return fsam


def surrogate_hessian(landscape: Landscape, x, rho: float) -> Tensor:
    """∇²f^SAM(x) by autograd (third derivatives of f included), one point (d,)."""
    return hessian(surrogate(landscape, float(rho)))(torch.as_tensor(x, dtype=DTYPE))


@dataclass
class LocalAnalysis:
    """Surrogate and SAM map at a hallucinated point (see the module docstring)."""

    x: np.ndarray
    rho: float
    eta: float
    grad_norm: float
    rho_kappa: float
    surrogate_eigs: np.ndarray  # eigenvalues of ∇²f^SAM(x*) = Bᵀ H_c B (autograd)
    sam_mu: np.ndarray  # eigenvalues of A = H_c B (complex)
    sam_radius: float  # spectral radius of DT = I − ηA
    gd_surrogate_radius: float  # spectral radius of I − η ∇²f^SAM

    @property
    def surrogate_min(self) -> bool:
        return bool(self.surrogate_eigs.min() > 0)

    @property
    def sam_attracts_some_eta(self) -> bool:
        return bool((self.sam_mu.real > 0).all())


def local_analysis(landscape: Landscape, x, rho: float, eta: float) -> LocalAnalysis:
    """Hessian of f^SAM, ρκ and both spectral radii at the point x (d = 2)."""
    x = check_single_point(x, landscape.dim, "x")
    g = _grad1(landscape)(x)
    gn = float(torch.linalg.vector_norm(g))
    if gn == 0:  # was a ZeroDivisionError
        raise ValueError(f"local_analysis: x = {x.tolist()} is a critical point of f (∇f(x) = 0), "
                         "where u(x) and the SAM map's Jacobian are undefined")
    u = g / gn
    t = torch.stack((-u[1], u[0]))
    H = hessian(landscape.f)(x)
    kappa = -float(t @ H @ t) / gn
    S = surrogate_hessian(landscape, x, rho)
    S = 0.5 * (S + S.T)
    J = sam_map_jacobian(landscape, x, rho, eta)
    A = (torch.eye(2, dtype=DTYPE) - J) / eta
    return LocalAnalysis(
        x=x.numpy().copy(), rho=float(rho), eta=float(eta), grad_norm=gn, rho_kappa=rho * kappa,
        surrogate_eigs=torch.linalg.eigvalsh(S).numpy(), sam_mu=torch.linalg.eigvals(A).numpy(),
        sam_radius=float(spectral_radius(J)),
        gd_surrogate_radius=float(spectral_radius(torch.eye(2, dtype=DTYPE) - eta * S)))


def surrogate_gd(landscape: Landscape, x0, rho: float, eta: float, steps: int) -> Tensor:
    """Plain GD on f^SAM, x ← x − η ∇f^SAM(x), from every row of x0 (B, d); final iterates."""
    steps = check_count("steps", steps, minimum=0)  # steps=-3 returned the start
    rho, eta = float(check_positive("rho", rho, "1.5")), float(check_positive("eta", eta, "0.1"))
    step = vmap(fgrad(surrogate(landscape, rho)))
    x = check_points(x0, landscape.dim)
    for _ in range(steps):
        x = x - eta * step(x)
    return x


def offset_start(x_star, distance: float, seed: int = 0) -> Tensor:
    """x* + distance·v with v a seeded random unit vector."""
    x_star = torch.as_tensor(x_star, dtype=DTYPE)
    x_star = check_single_point(x_star, x_star.shape[-1] if x_star.ndim else 1, "x_star")
    check_tol("distance", distance, positive=True)  # a negative one flipped v silently
    seed = check_count("seed", seed, minimum=0)
    v = torch.randn(x_star.shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    return x_star + distance * v / v.norm()
