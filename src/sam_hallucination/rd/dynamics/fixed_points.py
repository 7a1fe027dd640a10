"""Fixed points of the SAM map: its Jacobian and stability, hallucinated points (Newton), branches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import hessian, jacrev, vmap

from ...checks import check_count, check_matrix, check_points, check_single_point, check_tol
from ...checks import check_positive as _check_positive
from ..landscapes import DTYPE, Landscape
from .engine import METHODS, _grad_fn, _single_map

Tensor = torch.Tensor


def _refuse_critical(landscape: Landscape, pts: Tensor, where: str) -> None:
    """ValueError naming the first point of ``pts`` (B, d) with ∇f = 0 (u undefined there)."""
    flat = ~(landscape.grad(pts) != 0).any(-1)
    if flat.any():
        raise ValueError(f"{where}: x = {pts[flat][0].tolist()} is a critical point of f "
                         "(∇f(x) = 0), where the SAM map is not differentiable; evaluate it at "
                         "a point with ∇f(x) ≠ 0")


def sam_map_jacobian(landscape: Landscape, x, rho: float, eta: float, method: str = "sam") -> Tensor:
    """DT(x) by ``torch.func.jacrev``: shape (d, d) for x of shape (d,), (B, d, d) for (B, d).

    For SAM, DT = I − η ∇²f(x⁺) (I + ρ (I − uuᵀ) ∇²f(x)/‖∇f(x)‖); see
    :func:`sam_map_jacobian_formula`. Undefined where ∇f(x) = 0.
    """
    if method not in METHODS:  # an unknown method used to give GD's Jacobian
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_positive("rho", rho, "1.5") if method != "gd" else None
    _check_positive("eta", eta, "0.1")
    pts = check_points(x, landscape.dim, "x")
    if method == "sam":  # u = ∇f/‖∇f‖ is undefined where ∇f = 0: the Jacobian would be NaN
        _refuse_critical(landscape, pts, "sam_map_jacobian")
    J = jacrev(_single_map(landscape, float(rho), float(eta), method))
    out = vmap(J)(pts) if torch.as_tensor(x).ndim == 2 else J(pts[0])
    if not torch.isfinite(out).all():  # e.g. ‖∇f(x)‖ so small that 1/‖∇f‖ overflows
        raise ValueError("sam_map_jacobian: the Jacobian is not finite at x (∇f(x) is too close "
                         "to 0, or x too large); evaluate it away from critical points of f")
    return out


def sam_map_jacobian_formula(landscape: Landscape, x, rho: float, eta: float) -> Tensor:
    """DT(x) for SAM from the closed formula with autograd Hessians, for one point x (d,)."""
    x = check_single_point(x, landscape.dim, "x")
    rho, eta = float(_check_positive("rho", rho, "1.5")), float(_check_positive("eta", eta, "0.1"))
    _refuse_critical(landscape, x.reshape(1, -1), "sam_map_jacobian_formula")
    g = _grad_fn(landscape)(x)
    gn = torch.linalg.vector_norm(g)
    u = g / gn
    eye = torch.eye(x.shape[-1], dtype=DTYPE)
    H = hessian(landscape.f)(x)
    Hp = hessian(landscape.f)(x + rho * u)
    return eye - eta * Hp @ (eye + rho * (eye - torch.outer(u, u)) @ H / gn)


def sam_map_generator(landscape: Landscape, x, rho: float) -> Tensor:
    """A(x) with DT(x) = I − η A(x) for SAM: A = ∇²f(x⁺) (I + ρ (I − uuᵀ) ∇²f(x)/‖∇f(x)‖).

    A does not depend on η, so it decides local attraction for every step size at once
    (:func:`attraction_eta_max`). One point x of shape (d,).
    """
    x = check_single_point(x, landscape.dim, "x")
    eye = torch.eye(x.shape[-1], dtype=DTYPE)
    return (eye - sam_map_jacobian(landscape, x, rho, 1.0)).detach()


def attraction_eta_max(A: Tensor, zero_tol: float = 1e-9) -> float:
    """Largest η with spectral radius of I − ηA below 1 on the non-zero spectrum of A.

    |1 − ημ| < 1 iff η < 2 Re μ / |μ|², so the answer is min over eigenvalues μ of A with
    |μ| > ``zero_tol`` of 2 Re μ/|μ|², and 0.0 if some such μ has Re μ ≤ 0 (no step size
    attracts). Eigenvalues μ = 0 give |1 − ημ| = 1 for every η: they belong to directions
    along a manifold of fixed points (the ring's circle) and are skipped.
    """
    A = check_matrix(A, "attraction_eta_max: A",
                     "pass sam_map_generator(...) at a converged point")
    check_tol("zero_tol", zero_tol)
    mu = torch.linalg.eigvals(A)
    mu = mu[mu.abs() > zero_tol]
    if mu.numel() == 0:
        return math.inf
    if (mu.real <= 0).any():
        return 0.0
    return float((2 * mu.real / mu.abs() ** 2).min())


def spectral_radius(J: Tensor) -> float | Tensor:
    """max |λ| of a (d, d) matrix (a float) or of each of a batch (B, d, d) (a tensor)."""
    J = check_matrix(J, "spectral_radius: J", "a NaN Jacobian comes from a point where it is "
                     "undefined (sam_map_jacobian at a critical point of f)", batched=True)
    r = torch.linalg.eigvals(J).abs().amax(dim=-1)
    return float(r) if r.ndim == 0 else r


# ------------------------------------------------------------------------------ solver

class HallucinationSolveError(RuntimeError):
    """Raised by :func:`solve_hallucinated` with ``strict=True`` when the solve fails."""


@dataclass
class HallucinationSolve:
    """Result of :func:`solve_hallucinated`.

    converged is True only if ‖∇f(x⁺)‖ ≤ tol AND ‖∇f(x)‖ > grad_tol, i.e. x is a genuine
    hallucinated point to the requested accuracy. Otherwise x is the last iterate, which must
    not be used as a hallucinated point; ``message`` says why.
    """

    x: Tensor
    x_plus: Tensor
    converged: bool
    residual: float  # ‖∇f(x⁺)‖
    grad_norm: float  # ‖∇f(x)‖
    iterations: int
    rho: float
    message: str

    def raise_if_failed(self) -> HallucinationSolve:
        if not self.converged:
            raise HallucinationSolveError(
                f"no hallucinated point: {self.message} (residual ‖∇f(x⁺)‖ = {self.residual:.3e}, "
                f"‖∇f(x)‖ = {self.grad_norm:.3e}, {self.iterations} Newton iterations)")
        return self


def solve_hallucinated(
    landscape: Landscape,
    x0,
    rho: float,
    *,
    tol: float = 1e-12,
    grad_tol: float = 1e-8,
    max_iter: int = 60,
    strict: bool = False,
) -> HallucinationSolve:
    """Solve G(x) = ∇f(x + ρ ∇f(x)/‖∇f(x)‖) = 0 with ∇f(x) ≠ 0, from the guess ``x0`` (d,).

    The fixed points of the SAM map T(x) = x − ηG(x) are exactly the zeros of G, for any η.
    Newton's method uses DG from ``torch.func.jacrev``; the step is the minimum-norm
    least-squares solution (pseudo-inverse), so it also converges onto *manifolds* of
    hallucinated points (the ring's circle, where DG is singular along the circle), and it is
    damped by backtracking on ‖G‖. If the iteration fails, or ends at a point with
    ‖∇f(x)‖ ≤ ``grad_tol`` (a true critical point, not a hallucination), the result has
    ``converged=False``; with ``strict=True`` a :class:`HallucinationSolveError` is raised.
    """
    rho = float(_check_positive("rho", rho, "1.5"))
    check_tol("tol", tol, positive=True)  # tol=0 can never be met: Newton runs to the end
    check_tol("grad_tol", grad_tol)
    check_count("max_iter", max_iter)
    x = check_single_point(x0, landscape.dim)
    g = _grad_fn(landscape)

    def G(z: Tensor) -> Tensor:
        gz = g(z)
        return g(z + rho * gz / torch.linalg.vector_norm(gz))

    DG = jacrev(G)

    def res(z: Tensor) -> float:
        r = float(torch.linalg.vector_norm(G(z)))
        return r if math.isfinite(r) else math.inf

    r = res(x)
    it = 0
    msg = "maximum number of iterations reached"
    while it < max_iter:
        if r <= tol:
            msg = "ok"
            break
        if float(torch.linalg.vector_norm(g(x))) <= grad_tol:
            msg = "iterate reached a critical point of f, where u(x) is undefined"
            break
        it += 1
        J = DG(x)
        if not torch.isfinite(J).all():
            msg = "non-finite Jacobian"
            break
        dx = torch.linalg.pinv(J, rtol=1e-12) @ G(x)
        t, improved = 1.0, False
        for _ in range(40):  # backtracking: accept the first step that lowers ‖G‖
            xn = x - t * dx
            rn = res(xn)
            if rn < r:
                x, r, improved = xn, rn, True
                break
            t *= 0.5
        if not improved:
            msg = "Newton step cannot reduce the residual (no zero nearby)"
            break
    gn = float(torch.linalg.vector_norm(g(x)))
    if r <= tol and gn <= grad_tol:
        msg = "converged to a critical point of f, not a hallucinated point"
    ok = r <= tol and gn > grad_tol
    if ok:
        msg = "ok"
    u = g(x) / max(gn, 1e-300)
    out = HallucinationSolve(x=x, x_plus=x + rho * u, converged=ok, residual=r, grad_norm=gn,
                             iterations=it, rho=rho, message=msg)
    return out.raise_if_failed() if strict else out


@dataclass
class Branch:
    """A branch of hallucinated points followed in ρ by :func:`continue_branch`."""

    rho: np.ndarray
    x: np.ndarray
    grad_norm: np.ndarray
    residual: np.ndarray
    radius: np.ndarray  # spectral radius of DT at eta (nan if eta is None)
    rho_interval: tuple[float, float]  # refined ends of the branch (to ``refine_tol``)


def continue_branch(
    landscape: Landscape,
    x0,
    rho0: float,
    *,
    d_rho: float = 0.01,
    rho_min: float = 1e-3,
    rho_max: float = 5.0,
    eta: float | None = None,
    refine_tol: float = 1e-6,
    max_jump: float = 0.2,
) -> Branch:
    """Follow the hallucinated point through ``x0`` at ``rho0`` in both directions of ρ.

    A step of the continuation is accepted if the solve converges and the point moves by at
    most ``max_jump`` (so the branch cannot hop to another one). Each end of the branch, where
    the solve first fails, is then located by bisection in ρ to ``refine_tol``.
    """
    check_tol("d_rho", d_rho, positive=True)  # 0 would never leave rho0
    check_tol("refine_tol", refine_tol, positive=True)  # 0 would bisect forever
    check_tol("max_jump", max_jump, positive=True)
    check_tol("rho_min", rho_min, positive=True)
    if not check_tol("rho_max", rho_max) > rho_min:
        raise ValueError(f"rho_max={rho_max!r} must be > rho_min={rho_min!r}")
    if eta is not None:
        _check_positive("eta", eta, "0.1")
    first = solve_hallucinated(landscape, x0, rho0, strict=True)
    pts: dict[float, HallucinationSolve] = {rho0: first}
    ends = []
    for sgn in (-1.0, 1.0):
        prev, rho = first, rho0
        while True:
            nxt = rho + sgn * d_rho
            if not (rho_min <= nxt <= rho_max):
                ends.append(rho)
                break
            s = solve_hallucinated(landscape, prev.x, nxt)
            if s.converged and float(torch.linalg.vector_norm(s.x - prev.x)) <= max_jump:
                pts[nxt], prev, rho = s, s, nxt
                continue
            lo, hi, good = rho, nxt, prev  # bisection between last success and first failure
            while abs(hi - lo) > refine_tol:
                mid = 0.5 * (lo + hi)
                s = solve_hallucinated(landscape, good.x, mid)
                if s.converged and float(torch.linalg.vector_norm(s.x - good.x)) <= max_jump:
                    lo, good = mid, s
                else:
                    hi = mid
            pts[lo] = good
            ends.append(lo)
            break
    rhos = np.array(sorted(pts))
    sols = [pts[r] for r in rhos]
    xs = np.stack([s.x.numpy() for s in sols])
    radius = (np.array([spectral_radius(sam_map_jacobian(landscape, s.x, s.rho, eta))
                        for s in sols]) if eta is not None else np.full(len(sols), np.nan))
    return Branch(rho=rhos, x=xs, grad_norm=np.array([s.grad_norm for s in sols]),
                  residual=np.array([s.residual for s in sols]), radius=radius,
                  rho_interval=(float(min(ends)), float(max(ends))))


def refine_critical_point(landscape: Landscape, x0, *, tol: float = 1e-13,
                          max_iter: int = 50) -> tuple[Tensor, Tensor]:
    """Newton on ∇f = 0 from ``x0`` (d,); returns (point, Hessian eigenvalues)."""
    check_tol("tol", tol)
    check_count("max_iter", max_iter)
    x = check_single_point(x0, landscape.dim)
    g, H = _grad_fn(landscape), hessian(landscape.f)
    for _ in range(max_iter):
        gx = g(x)
        if float(torch.linalg.vector_norm(gx)) <= tol:
            break
        x = x - torch.linalg.solve(H(x), gx)
    return x, torch.linalg.eigvalsh(H(x))


def critical_points_on_grid(landscape: Landscape, lo: float, hi: float, n: int, *,
                            grad_tol: float = 1e-10, distinct: float = 1e-6) -> list[Tensor]:
    """Every critical point that Newton (:func:`refine_critical_point`) reaches from an
    ``n`` x ``n`` grid of starts in the square [lo, hi]² of R², in the order found (first
    coordinate outer): starts whose end has ‖∇f‖ ≥ ``grad_tol`` are dropped, points closer than
    ``distinct`` to one already found count once. A search, not a proof: a critical point
    no start reaches is missed."""
    n = check_count("n", n)
    check_tol("grad_tol", grad_tol, positive=True)
    check_tol("distinct", distinct, positive=True)
    if landscape.dim != 2:
        raise ValueError(f"the grid search is on R², but {landscape.name} has dim {landscape.dim}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi for the grid square, got lo={lo!r}, hi={hi!r}")
    found: list[Tensor] = []
    for a in np.linspace(lo, hi, n):
        for b in np.linspace(lo, hi, n):
            x, _ = refine_critical_point(landscape, [a, b])
            if float(torch.linalg.vector_norm(landscape.grad(x))) >= grad_tol:
                continue
            if all(float(torch.linalg.vector_norm(x - q)) > distinct for q in found):
                found.append(x)
    return found
