"""SAM dynamics on test landscapes: a batched engine, hallucinated points, stability, end states.

Everything is float64 torch.

* :func:`iterate` runs deterministic or stochastic GD, SAM and USAM from many starting points
  at once (optionally a different ρ and η per point), with closed-form gradients where the
  landscape has them.
* :func:`solve_hallucinated` finds a hallucinated point, a solution of ∇f(x⁺) = 0 with
  ∇f(x) ≠ 0, by Newton's method with the Jacobian from ``torch.func.jacrev``. It returns a
  :class:`HallucinationSolve` whose ``converged`` flag is False (never a silent wrong point)
  when the residual is not met or when the iteration lands on a true critical point of f.
* :func:`sam_map`, :func:`sam_map_jacobian` and :func:`spectral_radius` analyse the SAM map
  T(x) = x − η ∇f(x + ρ u(x)).
* :func:`classify` sorts final iterates into :class:`EndState` classes.

Noise model (stochastic SAM). Each gradient evaluation may be replaced by ∇f(z) + σ ξ with
ξ ~ N(0, I_d), drawn afresh for every point and every evaluation. ``noise_on`` chooses which
evaluation is noisy: ``"perturbation"`` (the gradient that defines u), ``"step"`` (the
gradient at x⁺ used for the update) or ``"both"`` (independent draws). With
``shared_noise=True`` and ``"both"`` the same ξ is used for both evaluations of a step, which
mimics one minibatch used twice, with noise that does not depend on the point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import torch
from torch.func import hessian, jacrev, vmap

from .landscapes import DTYPE, Landscape
from .sam import ascent_direction

Tensor = torch.Tensor

METHODS = ("gd", "sam", "usam")
NOISE_TARGETS = ("perturbation", "step", "both")

# Settings for chapters 2 and 3, by profile.
PROFILES: dict[str, dict] = {
    "quick": {
        "phase_n_rho": 120, "phase_n_eta": 100, "phase_starts": 10, "phase_steps": 1500,
        "noise_points": 400, "noise_steps": 3000, "noise_levels": 13,
        "ring_rhos": (1.1, 1.25, 1.5, 1.75, 1.9), "continuation_step": 0.01,
    },
    "full": {
        "phase_n_rho": 240, "phase_n_eta": 200, "phase_starts": 25, "phase_steps": 4000,
        "noise_points": 2000, "noise_steps": 10000, "noise_levels": 25,
        "ring_rhos": (1.05, 1.1, 1.25, 1.5, 1.75, 1.9, 1.95), "continuation_step": 0.002,
    },
}


# ------------------------------------------------------------------------------ input checks

def _check_positive(name: str, value, example: str) -> Tensor:
    """A positive finite scalar or tensor (float64); ValueError naming the argument otherwise."""
    try:
        t = torch.as_tensor(value, dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a real number or a tensor of them, got {value!r}") from None
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"{name} must be finite and > 0, got {value!r}; pass e.g. {name}={example}")
    return t


def _check_points(x0, dim: int, name: str = "x0") -> Tensor:
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


def _per_point(t: Tensor, batch: int, name: str) -> Tensor:
    """Broadcast a scalar or (B,) parameter to shape (B, 1)."""
    if t.ndim == 0:
        return t.reshape(1, 1).expand(batch, 1).clone()
    if t.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return t.reshape(batch, 1).clone()


# ------------------------------------------------------------------------------ the SAM map

def perturbed(landscape: Landscape, x: Tensor, rho, method: str = "sam") -> Tensor:
    """x⁺ = x + ρ ∇f(x)/‖∇f(x)‖ (SAM), x + ρ ∇f(x) (USAM) or x (GD); batched."""
    if method == "gd":
        return x
    g = landscape.grad(x)
    return x + rho * (ascent_direction(g) if method == "sam" else g)


def step_direction(landscape: Landscape, x: Tensor, rho, method: str = "sam") -> Tensor:
    """The direction the method steps against: ∇f(x⁺) (∇f(x) for GD); batched."""
    return landscape.grad(perturbed(landscape, x, rho, method))


def sam_map(landscape: Landscape, x: Tensor, rho: float, eta: float, method: str = "sam") -> Tensor:
    """T(x) = x − η ∇f(x⁺): one deterministic step of ``method``; batched."""
    return x - eta * step_direction(landscape, x, rho, method)


def _grad_fn(landscape: Landscape) -> Callable[[Tensor], Tensor]:
    """A gradient for one point (d,) that composes with torch.func transforms."""
    if landscape.grad_closed_form is not None:
        return landscape.grad_closed_form
    return torch.func.grad(landscape.f)


def _single_map(landscape: Landscape, rho: float, eta: float, method: str) -> Callable:
    g = _grad_fn(landscape)

    def T(x: Tensor) -> Tensor:
        gx = g(x)
        if method == "sam":
            xp = x + rho * gx / torch.linalg.vector_norm(gx)
        elif method == "usam":
            xp = x + rho * gx
        else:
            xp = x
        return x - eta * g(xp)

    return T


def sam_map_jacobian(landscape: Landscape, x, rho: float, eta: float, method: str = "sam") -> Tensor:
    """DT(x) by ``torch.func.jacrev``: shape (d, d) for x of shape (d,), (B, d, d) for (B, d).

    For SAM, DT = I − η ∇²f(x⁺) (I + ρ (I − uuᵀ) ∇²f(x)/‖∇f(x)‖); see
    :func:`sam_map_jacobian_formula`. Undefined where ∇f(x) = 0.
    """
    _check_positive("rho", rho, "1.5") if method != "gd" else None
    _check_positive("eta", eta, "0.1")
    x = torch.as_tensor(x, dtype=DTYPE)
    J = jacrev(_single_map(landscape, float(rho), float(eta), method))
    return vmap(J)(x) if x.ndim == 2 else J(x)


def sam_map_jacobian_formula(landscape: Landscape, x, rho: float, eta: float) -> Tensor:
    """DT(x) for SAM from the closed formula with autograd Hessians, for one point x (d,)."""
    x = torch.as_tensor(x, dtype=DTYPE)
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
    x = torch.as_tensor(x, dtype=DTYPE)
    eye = torch.eye(x.shape[-1], dtype=DTYPE)
    return (eye - sam_map_jacobian(landscape, x, rho, 1.0)).detach()


def attraction_eta_max(A: Tensor, zero_tol: float = 1e-9) -> float:
    """Largest η with spectral radius of I − ηA below 1 on the non-zero spectrum of A.

    |1 − ημ| < 1 iff η < 2 Re μ / |μ|², so the answer is min over eigenvalues μ of A with
    |μ| > ``zero_tol`` of 2 Re μ/|μ|², and 0.0 if some such μ has Re μ ≤ 0 (no step size
    attracts). Eigenvalues μ = 0 give |1 − ημ| = 1 for every η: they belong to directions
    along a manifold of fixed points (the ring's circle) and are skipped.
    """
    mu = torch.linalg.eigvals(A)
    mu = mu[mu.abs() > zero_tol]
    if mu.numel() == 0:
        return math.inf
    if (mu.real <= 0).any():
        return 0.0
    return float((2 * mu.real / mu.abs() ** 2).min())


def spectral_radius(J: Tensor) -> float | Tensor:
    """max |λ| of a (d, d) matrix (a float) or of each of a batch (B, d, d) (a tensor)."""
    r = torch.linalg.eigvals(J).abs().amax(dim=-1)
    return float(r) if r.ndim == 0 else r


# ------------------------------------------------------------------------------ batched engine

@dataclass
class RunResult:
    """Output of :func:`iterate`.

    x: final iterates (B, d). steps: steps each point actually took (B,); points frozen early
    (converged or diverged, with ``early_stop``) took fewer. history: (T, B, d) iterates every
    ``record_every`` steps (step 0 included), or None.
    """

    x: Tensor
    steps: Tensor
    method: str
    history: Tensor | None = None
    meta: dict = field(default_factory=dict)


def iterate(
    landscape: Landscape,
    x0,
    *,
    rho=1.0,
    eta=0.1,
    steps: int = 1000,
    method: str = "sam",
    noise: float = 0.0,
    noise_on: str = "both",
    shared_noise: bool = False,
    seed: int = 0,
    record_every: int | None = None,
    early_stop: bool = True,
    tol: float = 1e-12,
    check_every: int = 50,
    div_radius: float = 1e6,
) -> RunResult:
    """Run ``method`` ∈ {"gd", "sam", "usam"} from every row of ``x0`` (B, d) in parallel.

    ``rho``, ``eta`` and ``noise`` (σ) are scalars or per-point tensors of shape (B,). With ``early_stop``
    (deterministic runs without a history only) a point is frozen once its step direction
    has norm ≤ ``tol`` (a fixed point to rounding) or once it leaves the ball of radius
    ``div_radius`` or becomes non-finite (diverged); the batch shrinks as points finish, which
    makes phase diagrams cheap. Noise: see the module docstring.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if noise_on not in NOISE_TARGETS:
        raise ValueError(f"noise_on must be one of {NOISE_TARGETS}, got {noise_on!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x = _check_points(x0, landscape.dim)
    B = x.shape[0]
    noise_t = torch.as_tensor(noise, dtype=DTYPE)
    if not torch.isfinite(noise_t).all() or (noise_t < 0).any():
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}; pass e.g. noise=0.1")
    noise_t = _per_point(noise_t, B, "noise")
    eta_t = _per_point(_check_positive("eta", eta, "0.1"), B, "eta")
    rho_t = (_per_point(_check_positive("rho", rho, "1.5"), B, "rho") if method != "gd"
             else torch.zeros(B, 1, dtype=DTYPE))
    gen = torch.Generator().manual_seed(seed)
    noisy = bool((noise_t > 0).any())
    early_stop = early_stop and not noisy and record_every is None
    grad = landscape.grad
    d = landscape.dim

    def one_step(x: Tensor, rho_a: Tensor, eta_a: Tensor) -> Tensor:
        xi = torch.randn(x.shape, generator=gen, dtype=DTYPE) if noisy else None
        if method == "gd":
            g = grad(x)
            if noisy:
                g += noise_t * xi
            return x.sub_(eta_a * g)
        g = grad(x)
        if noisy and noise_on in ("perturbation", "both"):
            g += noise_t * xi
        if method == "sam":
            # g/‖g‖; at an exact critical point g = 0 stays 0 (u = 0, x⁺ = x)
            g.div_(torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min_(1e-300))
        gp = grad(g.mul_(rho_a).add_(x))
        if noisy and noise_on in ("step", "both"):
            if noise_on == "both" and not shared_noise:
                xi = torch.randn(x.shape, generator=gen, dtype=DTYPE)
            gp += noise_t * xi
        return x.sub_(gp.mul_(eta_a))

    taken = torch.zeros(B, dtype=torch.long)
    history = [x.clone()] if record_every else None
    if not early_stop:
        for k in range(1, steps + 1):
            x = one_step(x, rho_t, eta_t)
            if history is not None and k % record_every == 0:
                history.append(x.clone())
        taken[:] = steps
        hist = torch.stack(history) if history is not None else None
        return RunResult(x=x, steps=taken, method=method, history=hist,
                         meta={"rho": rho, "eta": eta, "noise": noise, "noise_on": noise_on})

    active = torch.arange(B)
    xa, ra, ea = x.clone(), rho_t.clone(), eta_t.clone()
    done = 0
    while done < steps and active.numel() > 0:
        n_chunk = min(check_every, steps - done)
        for _ in range(n_chunk):
            xa = one_step(xa, ra, ea)
        done += n_chunk
        taken[active] = done
        x[active] = xa
        finite = torch.isfinite(xa).all(-1)
        big = ~finite | (torch.linalg.vector_norm(torch.nan_to_num(xa, nan=0.0), dim=-1) > div_radius)
        resid = torch.linalg.vector_norm(
            step_direction(landscape, torch.nan_to_num(xa), ra, method), dim=-1)
        keep = ~big & ~(resid <= tol)
        active, xa, ra, ea = active[keep], xa[keep], ra[keep], ea[keep]
    assert x.shape[-1] == d
    return RunResult(x=x, steps=taken, method=method, history=None,
                     meta={"rho": rho, "eta": eta, "noise": noise, "noise_on": noise_on})


def naive_sam_loop(landscape: Landscape, x0: Sequence[float], rho: float, eta: float,
                   steps: int) -> list[float]:
    """Reference implementation: one point, plain Python floats, autograd-free closed form.

    Only for benchmarking the batched engine against a per-point loop.
    """
    x = [float(v) for v in x0]
    for _ in range(steps):
        g = landscape.grad(torch.tensor(x, dtype=DTYPE)).tolist()
        n = math.sqrt(sum(v * v for v in g))
        xp = [xi + rho * gi / n for xi, gi in zip(x, g, strict=True)] if n > 0 else x
        gp = landscape.grad(torch.tensor(xp, dtype=DTYPE)).tolist()
        x = [xi - eta * gi for xi, gi in zip(x, gp, strict=True)]
    return x


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
    x = _check_points(x0, landscape.dim)[0]
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
    x = _check_points(x0, landscape.dim)[0]
    g, H = _grad_fn(landscape), hessian(landscape.f)
    for _ in range(max_iter):
        gx = g(x)
        if float(torch.linalg.vector_norm(gx)) <= tol:
            break
        x = x - torch.linalg.solve(H(x), gx)
    return x, torch.linalg.eigvalsh(H(x))


# ------------------------------------------------------------------------------ classifier

class EndState(IntEnum):
    """End states of a run (see :func:`classify` for the tolerances)."""

    MINIMIZER = 0
    HALLUCINATED = 1
    STATIONARY_NON_MIN = 2
    DIVERGED = 3
    NOT_CONVERGED = 4


END_STATE_LABELS = {
    EndState.MINIMIZER: "true minimizer",
    EndState.HALLUCINATED: "hallucinated point",
    EndState.STATIONARY_NON_MIN: "stationary non-minimum",
    EndState.DIVERGED: "diverged",
    EndState.NOT_CONVERGED: "not converged",
}


def classify(
    landscape: Landscape,
    x,
    *,
    rho=1.0,
    method: str = "sam",
    tol_step: float = 1e-8,
    tol_grad: float = 1e-6,
    tol_curv: float = 1e-6,
    div_radius: float = 1e6,
) -> Tensor:
    """Classify final iterates x (B, d) into :class:`EndState` codes (B,) (torch.long).

    1. DIVERGED: x non-finite or ‖x‖ > ``div_radius``.
    2. ‖∇f(x)‖ ≤ ``tol_grad``: x is a critical point of f. It is a MINIMIZER if the smallest
       eigenvalue of ∇²f(x) is ≥ −``tol_curv`` (degenerate minimizers such as the ring's circle
       count) and a STATIONARY_NON_MIN otherwise (saddles, maximizers). SAM treats u(x) as 0
       where ∇f(x) = 0 (x⁺ = x), so critical points are its fixed points; at a rounding-level
       gradient u would be a random unit vector, hence this test comes before the next.
    3. Otherwise x is a fixed point of the method if its step direction (∇f(x⁺) for SAM/USAM,
       ∇f(x) for GD) has norm ≤ ``tol_step``: HALLUCINATED; if not, NOT_CONVERGED.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x = torch.as_tensor(x, dtype=DTYPE)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    out = torch.full((x.shape[0],), int(EndState.NOT_CONVERGED), dtype=torch.long)
    norm = torch.linalg.vector_norm(torch.nan_to_num(x, nan=np.inf), dim=-1)
    div = ~torch.isfinite(x).all(-1) | (norm > div_radius)
    out[div] = int(EndState.DIVERGED)
    ok = ~div
    if not ok.any():
        return out
    xs = x[ok]
    r = rho if torch.as_tensor(rho).ndim == 0 else torch.as_tensor(rho, dtype=DTYPE)[ok, None]
    resid = torch.linalg.vector_norm(step_direction(landscape, xs, r, method), dim=-1)
    gn = torch.linalg.vector_norm(landscape.grad(xs), dim=-1)
    stat = gn <= tol_grad
    cls = torch.full((xs.shape[0],), int(EndState.NOT_CONVERGED), dtype=torch.long)
    cls[~stat & (resid <= tol_step)] = int(EndState.HALLUCINATED)
    if stat.any():
        lam = torch.linalg.eigvalsh(vmap(hessian(landscape.f))(xs[stat]))[:, 0]
        cls[stat] = torch.where(lam >= -tol_curv, int(EndState.MINIMIZER),
                                int(EndState.STATIONARY_NON_MIN))
    out[ok] = cls
    return out


# ------------------------------------------------------------------------------ experiments

def ring_radial_map(r, rho: float, eta: float):
    """The ring's SAM map in radius for 0 < r < 1: r ↦ r + 4η((ρ−r)³ − (ρ−r))."""
    s = rho - r
    return r + 4.0 * eta * (s**3 - s)


def disk_starts(n: int, radius: float, seed: int = 0, r_min: float = 0.0) -> Tensor:
    """n points uniform in the annulus r_min < ‖x‖ < radius of R² (float64, seeded)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=DTYPE)
    r = torch.sqrt(r_min**2 + u * (radius**2 - r_min**2))
    th = 2 * math.pi * torch.rand(n, generator=g, dtype=DTYPE)
    return torch.stack((r * torch.cos(th), r * torch.sin(th)), -1)


@dataclass
class PhaseDiagram:
    """Outcome counts over a (ρ, η) grid: counts[i, j, c] = #starts of cell (ρ_i, η_j) in class c."""

    rho: np.ndarray
    eta: np.ndarray
    counts: np.ndarray
    n_starts: int
    steps: int

    def fraction(self, state: EndState) -> np.ndarray:
        return self.counts[..., int(state)] / self.n_starts


def phase_diagram(
    landscape: Landscape,
    rhos: np.ndarray,
    etas: np.ndarray,
    *,
    n_starts: int = 10,
    steps: int = 1500,
    start_radius: float = 1.0,
    near_width: float | None = None,
    seed: int = 0,
) -> PhaseDiagram:
    """Run SAM from ``n_starts`` points per (ρ, η) cell and classify the end states.

    Starts are uniform in the disk of radius ``start_radius`` (the same starts in every cell)
    or, with ``near_width`` = w, "local" starts at radius clip(ρ − 1, w, 1 − w) + w·U(−1, 1),
    uniform angle: next to the ring's hallucinated circle where it exists (1 < ρ < 2).
    """
    rhos, etas = np.asarray(rhos, float), np.asarray(etas, float)
    nr, ne = len(rhos), len(etas)
    R, E, S = np.meshgrid(rhos, etas, np.arange(n_starts), indexing="ij")
    rho_t, eta_t = torch.as_tensor(R.ravel()), torch.as_tensor(E.ravel())
    if near_width is None:
        starts = disk_starts(n_starts, start_radius, seed=seed)
        x0 = starts[torch.as_tensor(S.ravel())]
    else:
        g = torch.Generator().manual_seed(seed)
        n = rho_t.numel()
        r = ((rho_t - 1).clamp(near_width, 1 - near_width)
             + near_width * (2 * torch.rand(n, generator=g, dtype=DTYPE) - 1))
        th = 2 * math.pi * torch.rand(n, generator=g, dtype=DTYPE)
        x0 = torch.stack((r * torch.cos(th), r * torch.sin(th)), -1)
    res = iterate(landscape, x0, rho=rho_t, eta=eta_t, steps=steps, method="sam")
    cls = classify(landscape, res.x, rho=rho_t).numpy().reshape(nr, ne, n_starts)
    counts = np.stack([(cls == int(c)).sum(-1) for c in EndState], -1)
    return PhaseDiagram(rho=rhos, eta=etas, counts=counts, n_starts=n_starts, steps=steps)


def measured_rate(landscape: Landscape, x_star, rho: float, eta: float, *, offset: float = 1e-4,
                  steps: int = 2000, window: tuple[float, float] = (1e-12, 1e-6),
                  seed: int = 0) -> float:
    """Linear rate of SAM towards the fixed point ``x_star``, measured by running it.

    Starts at x_star + offset·v (v a seeded random unit vector) and records ‖x_k − x_star‖.
    The steps where it lies inside ``window`` (well above rounding, well inside the linear
    regime) qualify; the slope of its logarithm is fitted over the later half of them, where
    the components along the smaller eigenvalues have died out further. NaN if fewer than
    10 steps qualify.
    """
    x_star = torch.as_tensor(x_star, dtype=DTYPE)
    v = torch.randn(x_star.shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    x0 = (x_star + offset * v / v.norm()).reshape(1, -1)
    h = iterate(landscape, x0, rho=rho, eta=eta, steps=steps, record_every=1).history[:, 0]
    dist = torch.linalg.vector_norm(h - x_star, dim=-1).numpy()
    idx = np.flatnonzero((dist > window[0]) & (dist < window[1]))
    if idx.size < 10:
        return math.nan
    return linear_rate(dist, (int(idx[idx.size // 2]), int(idx[-1]) + 1))


def linear_rate(dist: np.ndarray, window: tuple[int, int]) -> float:
    """Linear convergence rate from distances to the limit: exp(slope of log dist over window)."""
    k = np.arange(*window)
    slope = np.polyfit(k, np.log(dist[window[0]:window[1]]), 1)[0]
    return float(np.exp(slope))


def noise_study(
    landscape: Landscape,
    x_star_radius: float,
    *,
    rho: float,
    eta: float,
    sigmas: np.ndarray,
    noise_on: str = "step",
    n_points: int = 400,
    steps: int = 3000,
    burn_in: int = 1000,
    seed: int = 0,
    escape_radius: float = 1e3,
) -> dict[str, np.ndarray]:
    """Stochastic SAM on a radially symmetric landscape, started on the hallucinated circle.

    All noise levels run in one batch (``n_points`` per σ, evenly spread in angle). For each σ
    returns the mean and standard deviation of ‖x‖ over bounded runs and recorded steps after
    ``burn_in``, and the fraction of runs that left the ball of radius ``escape_radius``
    (on the ring this means divergence) or became non-finite.
    """
    sig = np.asarray(sigmas, float)
    th = torch.linspace(0, 2 * math.pi, n_points + 1, dtype=DTYPE)[:-1]
    ring = x_star_radius * torch.stack((torch.cos(th), torch.sin(th)), -1)
    x0 = ring.repeat(len(sig), 1)
    noise = torch.as_tensor(sig, dtype=DTYPE).repeat_interleave(n_points)
    every = 10
    res = iterate(landscape, x0, rho=rho, eta=eta, steps=steps, method="sam", noise=noise,
                  noise_on=noise_on, seed=seed, record_every=every)
    r = torch.linalg.vector_norm(res.history[burn_in // every:], dim=-1)  # (T, B)
    r_all = torch.linalg.vector_norm(res.history, dim=-1)
    bad = (~torch.isfinite(r_all) | (r_all.nan_to_num(np.inf) > escape_radius)).any(0)
    out = {k: np.empty(len(sig)) for k in ("mean_r", "std_r", "escaped")}
    for i in range(len(sig)):
        sl = slice(i * n_points, (i + 1) * n_points)
        rb = r[:, sl][:, ~bad[sl]]
        out["escaped"][i] = float(bad[sl].double().mean())
        out["mean_r"][i] = float(rb.mean()) if rb.numel() else np.nan
        out["std_r"][i] = float(rb.std()) if rb.numel() > 1 else np.nan
    return out | {"sigma": sig}


def hallucination_edges(pd: PhaseDiagram, min_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """Empirical boundaries of the region where some start ends on a hallucinated point.

    A cell "hallucinates" if its hallucinated fraction exceeds ``min_fraction``. For every η
    row: the lower edge of the first and the upper edge of the last hallucinating cell in ρ
    (NaN if none). For every ρ column: the upper edge in η of the last hallucinating cell.
    Uniform grids are assumed (edges at centre ± half a cell).
    """
    hit = pd.fraction(EndState.HALLUCINATED) > min_fraction  # (n_rho, n_eta)
    h_rho, h_eta = np.diff(pd.rho).mean() / 2, np.diff(pd.eta).mean() / 2
    lo = np.full(len(pd.eta), np.nan)
    hi = np.full(len(pd.eta), np.nan)
    top = np.full(len(pd.rho), np.nan)
    for j in range(len(pd.eta)):
        idx = np.flatnonzero(hit[:, j])
        if idx.size:
            lo[j], hi[j] = pd.rho[idx[0]] - h_rho, pd.rho[idx[-1]] + h_rho
    for i in range(len(pd.rho)):
        idx = np.flatnonzero(hit[i])
        if idx.size:
            top[i] = pd.eta[idx[-1]] + h_eta
    return {"rho_low": lo, "rho_high": hi, "eta_top": top}
