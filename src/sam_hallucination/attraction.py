"""Which hallucinated points attract SAM: the surrogate f^SAM against the SAM map.

At a hallucinated point x* with perturbed point c = x* + ρ u(x*) (a critical point of f),

    ∇f^SAM(x) = B(x)ᵀ ∇f(x⁺),   B = I + ρ Du = I + ρ (I − uuᵀ) ∇²f(x)/‖∇f(x)‖,

and ∇f(c) = 0, so the terms with derivatives of B drop out and

    ∇²f^SAM(x*) = Bᵀ H_c B,        DT(x*) = I − η H_c B,        H_c = ∇²f(c).

In 2-D, with t ⟂ u and κ = −tᵀ∇²f(x)t/‖∇f(x)‖, det B = 1 − ρκ. If H_c ≻ 0 and ρκ ≠ 1,
x* is a strict local minimizer of f^SAM (GD on the surrogate attracts for small η); SAM
attracts iff every eigenvalue of A = H_c B has a positive real part, which fails whenever
ρκ > 1 (det A < 0).

This module provides

* :func:`local_analysis`: those quantities at one point of any :class:`Landscape`;
* :func:`surrogate_gd`: plain gradient descent on f^SAM (autograd through u);
* random quartic landscapes on R² (:func:`random_quartics`), batched in numpy, with their
  critical points (:func:`critical_points`), every hallucinated point over a ρ grid
  (:func:`hallucinated_points`) and the critical point each one's branch is born at
  (:func:`birth_labels`);
* :func:`wilson_interval` for the fractions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import grad as fgrad
from torch.func import hessian, vmap

from .dynamics import sam_map_jacobian, spectral_radius
from .landscapes import DTYPE, Landscape

Tensor = torch.Tensor

# ------------------------------------------------------------------ one point, any landscape


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
    x = torch.as_tensor(x, dtype=DTYPE)
    g = _grad1(landscape)(x)
    gn = float(torch.linalg.vector_norm(g))
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
    step = vmap(fgrad(surrogate(landscape, float(rho))))
    x = torch.as_tensor(x0, dtype=DTYPE).reshape(-1, landscape.dim).clone()
    for _ in range(steps):
        x = x - eta * step(x)
    return x


def offset_start(x_star, distance: float, seed: int = 0) -> Tensor:
    """x* + distance·v with v a seeded random unit vector."""
    x_star = torch.as_tensor(x_star, dtype=DTYPE)
    v = torch.randn(x_star.shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    return x_star + distance * v / v.norm()


# ------------------------------------------------------------------ quartic polynomials on R²

EXPONENTS = np.array([(i, d - i) for d in range(5) for i in range(d, -1, -1)])  # (15, 2)


def _powers(x: np.ndarray) -> np.ndarray:
    """x^0..x^4 stacked on a new last axis."""
    return np.stack([np.ones_like(x), x, x * x, x**3, x**4], -1)


def q_value(C: np.ndarray, X: np.ndarray) -> np.ndarray:
    """f(X) for coefficients C (..., 15) and points X (..., 2), broadcast."""
    px, py = _powers(X[..., 0]), _powers(X[..., 1])
    return (C * px[..., EXPONENTS[:, 0]] * py[..., EXPONENTS[:, 1]]).sum(-1)


def q_grad(C: np.ndarray, X: np.ndarray) -> np.ndarray:
    px, py = _powers(X[..., 0]), _powers(X[..., 1])
    i, j = EXPONENTS[:, 0], EXPONENTS[:, 1]
    gx = (C * i * px[..., np.maximum(i - 1, 0)] * py[..., j]).sum(-1)
    gy = (C * j * px[..., i] * py[..., np.maximum(j - 1, 0)]).sum(-1)
    return np.stack((gx, gy), -1)


def q_hess(C: np.ndarray, X: np.ndarray) -> np.ndarray:
    px, py = _powers(X[..., 0]), _powers(X[..., 1])
    i, j = EXPONENTS[:, 0], EXPONENTS[:, 1]
    im1, jm1 = np.maximum(i - 1, 0), np.maximum(j - 1, 0)
    hxx = (C * i * (i - 1) * px[..., np.maximum(i - 2, 0)] * py[..., j]).sum(-1)
    hyy = (C * j * (j - 1) * px[..., i] * py[..., np.maximum(j - 2, 0)]).sum(-1)
    hxy = (C * i * j * px[..., im1] * py[..., jm1]).sum(-1)
    return np.stack((np.stack((hxx, hxy), -1), np.stack((hxy, hyy), -1)), -2)


def quartic_landscape(C, name: str = "quartic") -> Landscape:
    """A torch :class:`Landscape` for one coefficient vector (15,) (for SAM runs and autograd)."""
    c = torch.as_tensor(np.asarray(C, float), dtype=DTYPE)
    ex = torch.as_tensor(EXPONENTS)

    def f(z: Tensor) -> Tensor:
        x, y = z[..., 0:1], z[..., 1:2]
        return (c * x ** ex[:, 0] * y ** ex[:, 1]).sum(-1)

    def g(z: Tensor) -> Tensor:
        x, y = z[..., 0:1], z[..., 1:2]
        i, j = ex[:, 0], ex[:, 1]
        gx = (c * i * x ** (i - 1).clamp_min(0) * y**j).sum(-1)
        gy = (c * j * x**i * y ** (j - 1).clamp_min(0)).sum(-1)
        return torch.stack((gx, gy), -1)

    return Landscape(name=name, dim=2, f=f, grad_closed_form=g,
                     description="a quartic polynomial on R²", extras={"coefficients": np.asarray(C)})


def coefficients_of_asymmetric(params: dict) -> np.ndarray:
    """The asymmetric landscape of :mod:`landscapes` as quartic coefficients (15,)."""
    a, s, c, beta, gamma = (params[k] for k in ("a", "s", "c", "beta", "gamma"))
    C = np.zeros(15)
    idx = {tuple(e): k for k, e in enumerate(EXPONENTS)}
    # (x²−1)² + a(x²−s²)y² + c y⁴ − βx + γxy
    for e, v in (((4, 0), 1.0), ((2, 0), -2.0), ((0, 0), 1.0), ((2, 2), a), ((0, 2), -a * s * s),
                 ((0, 4), c), ((1, 0), -beta), ((1, 1), gamma)):
        C[idx[e]] += v
    return C


def _monomial_coeffs(deg: int, coef: np.ndarray) -> np.ndarray:
    """Place coefficients (n, deg+1) of the degree-``deg`` monomials x^deg, x^(deg-1)y, ..."""
    C = np.zeros((coef.shape[0], 15))
    start = deg * (deg + 1) // 2
    C[:, start:start + deg + 1] = coef
    return C


def random_quartic_candidates(n: int, seed: int) -> np.ndarray:
    """Random quartics around an anisotropic ring (coefficients (n, 15)).

    f(x) = (xᵀPx − 1)² + ε₄ q₄(x) + q₃(x) + q₂(x) + q₁(x), P = R(φ) diag(1, a) R(φ)ᵀ with
    a ~ U(0.3, 1), φ ~ U(0, π); q_k a homogeneous polynomial of degree k with i.i.d. normal
    coefficients (standard deviations 0.1, 0.25, 0.25, 0.4 for k = 4, 3, 2, 1). Candidates
    whose quartic part is not positive on the unit circle are dropped later.
    """
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.3, 1.0, n)
    phi = rng.uniform(0, np.pi, n)
    c, s = np.cos(phi), np.sin(phi)
    p11, p22, p12 = c * c + a * s * s, s * s + a * c * c, (1 - a) * c * s
    C = np.zeros((n, 15))
    # (p11 x² + 2 p12 xy + p22 y²)² − 2(p11 x² + 2 p12 xy + p22 y²) + 1
    quad = np.stack((p11, 2 * p12, p22), -1)
    q4 = np.stack((p11 * p11, 4 * p11 * p12, 2 * p11 * p22 + 4 * p12 * p12, 4 * p12 * p22, p22 * p22), -1)
    C += _monomial_coeffs(4, q4) - 2 * _monomial_coeffs(2, quad)
    C[:, 0] += 1.0
    for deg, sd in ((4, 0.1), (3, 0.25), (2, 0.25), (1, 0.4)):
        C += _monomial_coeffs(deg, sd * rng.standard_normal((n, deg + 1)))
    return C


def critical_points(C: np.ndarray, box: float = 3.0, n_grid: int = 25, iters: int = 60,
                    tol: float = 1e-10) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    """Critical points of each quartic by Newton from an n_grid² grid on [−box, box]².

    Returns per landscape a list of (type, point, Hessian eigenvalues), type ∈ {"min", "max",
    "saddle", "degenerate"}, duplicates (closer than 1e-6) removed.
    """
    L = C.shape[0]
    g1 = np.linspace(-box, box, n_grid)
    G = np.stack(np.meshgrid(g1, g1, indexing="ij"), -1).reshape(-1, 2)
    X = np.broadcast_to(G, (L, *G.shape)).copy()
    Cb = C[:, None, :]
    with np.errstate(all="ignore"):
        for _ in range(iters):
            g = q_grad(Cb, X)
            H = q_hess(Cb, X)
            det = H[..., 0, 0] * H[..., 1, 1] - H[..., 0, 1] ** 2
            ok = np.abs(det) > 1e-14
            dx = np.where(ok, (H[..., 1, 1] * g[..., 0] - H[..., 0, 1] * g[..., 1]) / np.where(ok, det, 1), 0)
            dy = np.where(ok, (H[..., 0, 0] * g[..., 1] - H[..., 0, 1] * g[..., 0]) / np.where(ok, det, 1), 0)
            X = X - np.stack((dx, dy), -1)
            X = np.where(np.abs(X) < 1e3, X, np.nan)
        gn = np.linalg.norm(q_grad(Cb, X), axis=-1)
    out = []
    for ell in range(L):
        pts: list[np.ndarray] = []
        for x in X[ell][np.isfinite(gn[ell]) & (gn[ell] < tol)]:
            if all(np.linalg.norm(x - p) > 1e-6 for p in pts):
                pts.append(x)
        rows = []
        for p in pts:
            ev = np.linalg.eigvalsh(q_hess(C[ell], p))
            typ = ("degenerate" if np.abs(ev).min() < 1e-6 else "min" if ev[0] > 0
                   else "max" if ev[1] < 0 else "saddle")
            rows.append((typ, p, ev))
        out.append(rows)
    return out


def random_quartics(n_accept: int, seed: int = 0, batch: int = 400) -> tuple[np.ndarray, list, int]:
    """Draw :func:`random_quartic_candidates` until ``n_accept`` have exactly one local minimizer,
    one local maximizer and one saddle, all non-degenerate, and a quartic part positive on the
    unit circle (so f is coercive and Newton's grid saw every critical point).

    Returns (coefficients (n_accept, 15), their critical points, number of candidates drawn).
    """
    acc_C, acc_cp, drawn, k = [], [], 0, 0
    th = np.linspace(0, 2 * np.pi, 721)
    circ = np.stack((np.cos(th), np.sin(th)), -1)
    while len(acc_C) < n_accept:
        C = random_quartic_candidates(batch, seed * 1000 + k)
        k += 1
        C4 = C.copy()
        C4[:, :10] = 0  # quartic part only
        coercive = q_value(C4[:, None, :], circ).min(-1) > 0.05
        cps = critical_points(C)
        for ell in range(batch):
            drawn += 1
            types = sorted(t for t, _, _ in cps[ell])
            if coercive[ell] and types == ["max", "min", "saddle"]:
                acc_C.append(C[ell])
                acc_cp.append(cps[ell])
                if len(acc_C) == n_accept:
                    break
    return np.array(acc_C), acc_cp, drawn


# ------------------------------------------------------------------ hallucinated points


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def hallucinated_on_circle(C: np.ndarray, c: np.ndarray, rho: float, n_theta: int = 2048,
                           newton_iters: int = 8) -> np.ndarray:
    """Every hallucinated point x with x⁺ = c (a critical point) for one quartic C and radius ρ.

    Fixed points with x⁺ = c are the x = c − ρv, ‖v‖ = 1, where ∇f(x) is a positive multiple of
    v. They are the zeros of the cross product ∇f(c − ρv(θ)) × v(θ) with a positive dot product,
    located by sign changes on an ``n_theta`` grid in θ, refined by bisection and then polished
    by Newton on the fixed-point equation in θ. Returns the points (k, 2).
    """
    th = np.linspace(0, 2 * np.pi, n_theta + 1)

    def phi(t):
        v = np.stack((np.cos(t), np.sin(t)), -1)
        g = q_grad(C, c - rho * v)
        return _cross(g, v), (g * v).sum(-1)

    cr, _ = phi(th)
    idx = np.flatnonzero(np.sign(cr[:-1]) * np.sign(cr[1:]) < 0)
    lo, hi = th[idx], th[idx + 1]
    flo = cr[idx]
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        fm, _ = phi(mid)
        left = np.sign(fm) == np.sign(flo)
        lo, flo = np.where(left, mid, lo), np.where(left, fm, flo)
        hi = np.where(left, hi, mid)
    t = 0.5 * (lo + hi)
    _, dot = phi(t)
    t = t[dot > 0]
    return c - rho * np.stack((np.cos(t), np.sin(t)), -1)


def fixed_point_residual(C: np.ndarray, x: np.ndarray, rho) -> np.ndarray:
    """‖∇f(x + ρ u(x))‖ (SAM's step direction) for points (..., 2)."""
    g = q_grad(C, x)
    u = g / np.linalg.norm(g, axis=-1, keepdims=True)
    return np.linalg.norm(q_grad(C, x + np.asarray(rho)[..., None] * u), axis=-1)


def point_analysis(C: np.ndarray, x: np.ndarray, c: np.ndarray, rho) -> dict[str, np.ndarray]:
    """Batched closed forms at hallucinated points x (N, 2) with x⁺ = c (N, 2), coefficients (N, 15).

    Returns ‖∇f(x)‖, ρκ, the eigenvalues of A = H_c B (SAM: DT = I − ηA) and of the
    surrogate Hessian S = Bᵀ H_c B.
    """
    rho = np.asarray(rho, float)
    g = q_grad(C, x)
    gn = np.linalg.norm(g, axis=-1)
    u = g / gn[:, None]
    t = np.stack((-u[:, 1], u[:, 0]), -1)
    H = q_hess(C, x)
    Hc = q_hess(C, c)
    kappa = -np.einsum("ni,nij,nj->n", t, H, t) / gn
    P = np.eye(2) - np.einsum("ni,nj->nij", u, u)
    B = np.eye(2) + rho[:, None, None] * P @ H / gn[:, None, None]
    A = Hc @ B
    S = np.transpose(B, (0, 2, 1)) @ Hc @ B
    return {"grad_norm": gn, "rho_kappa": rho * kappa, "mu": np.linalg.eigvals(A),
            "surrogate_eigs": np.linalg.eigvalsh(0.5 * (S + np.transpose(S, (0, 2, 1))))}


def eta_max_sam(mu: np.ndarray) -> np.ndarray:
    """Largest η for which SAM attracts (0 if some Re μ ≤ 0): min 2 Re μ/|μ|², per row of μ (N, 2)."""
    e = np.min(2 * mu.real / np.abs(mu) ** 2, axis=-1)
    return np.where((mu.real > 0).all(-1), e, 0.0)


BIRTH_TYPES = ("max", "saddle", "min", "fold", "self", "unresolved")


def birth_labels(C: np.ndarray, x: np.ndarray, c: np.ndarray, crit: list[np.ndarray],
                 crit_types: list[list[str]], owner: np.ndarray, h: float = 2e-3,
                 max_steps: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Where the branch of each hallucinated point is born, by continuation down in ρ.

    The points with x⁺ = c form the curve Γ_c = {x: ∇f(x) × (c − x) = 0, ∇f(x)·(c − x) > 0},
    with ρ = ‖x − c‖ along it. From each point x (N, 2) we follow Γ_c (predictor along the
    tangent, three corrector steps on the cross product) in the direction of decreasing ρ until

    * ∇f(x)·(c − x) changes sign: the curve passed through a critical point of f, the branch
      is born there (label: that critical point's type, "max", "saddle" or "min");
    * ρ stops decreasing: a fold (saddle-node birth of a pair of branches), label "fold";
    * x reaches c itself (ρ → 0; possible only when c is a saddle or a maximizer): "self".

    ``owner`` (N,) indexes each point's landscape in ``crit``/``crit_types`` (lists of arrays
    (k, 2) and type lists). Returns (labels (N,) as indices into :data:`BIRTH_TYPES`, the ρ at
    which the branch is born (N,)).
    """
    N = x.shape[0]
    x = x.copy()
    label = np.full(N, BIRTH_TYPES.index("unresolved"))
    rho_b = np.full(N, np.nan)
    active = np.ones(N, bool)
    tau_prev = None
    for _step in range(max_steps):
        ia = np.flatnonzero(active)
        if ia.size == 0:
            break
        xa, ca, Ca = x[ia], c[ia], C[ia]
        g, H = q_grad(Ca, xa), q_hess(Ca, xa)
        w = np.stack((ca[:, 1] - xa[:, 1], -(ca[:, 0] - xa[:, 0])), -1)
        dpsi = np.einsum("nij,nj->ni", H, w) + np.stack((g[:, 1], -g[:, 0]), -1)
        tau = np.stack((-dpsi[:, 1], dpsi[:, 0]), -1)
        tau /= np.linalg.norm(tau, axis=-1, keepdims=True)
        r_vec = xa - ca
        if tau_prev is None:
            tau *= np.where((tau * r_vec).sum(-1) < 0, 1.0, -1.0)[:, None]
        else:
            tau *= np.where((tau * tau_prev[ia]).sum(-1) >= 0, 1.0, -1.0)[:, None]
        full_prev = np.zeros((N, 2)) if tau_prev is None else tau_prev
        full_prev[ia] = tau
        tau_prev = full_prev
        rho_now = np.linalg.norm(r_vec, axis=-1)
        fold = (tau * r_vec).sum(-1) > 0
        if fold.any():
            label[ia[fold]] = BIRTH_TYPES.index("fold")
            rho_b[ia[fold]] = rho_now[fold]
            active[ia[fold]] = False
        selfb = rho_now < 3 * h
        if selfb.any():
            label[ia[selfb]] = BIRTH_TYPES.index("self")
            rho_b[ia[selfb]] = 0.0
            active[ia[selfb]] = False
        go = ~fold & ~selfb
        ia, xa, ca, Ca, tau = ia[go], xa[go], ca[go], Ca[go], tau[go]
        if ia.size == 0:
            continue
        xn = xa + h * tau
        for _ in range(3):
            g, H = q_grad(Ca, xn), q_hess(Ca, xn)
            w = np.stack((ca[:, 1] - xn[:, 1], -(ca[:, 0] - xn[:, 0])), -1)
            psi = (g * w).sum(-1)
            dpsi = np.einsum("nij,nj->ni", H, w) + np.stack((g[:, 1], -g[:, 0]), -1)
            xn = xn - (psi / (dpsi * dpsi).sum(-1))[:, None] * dpsi
        lam = (q_grad(Ca, xn) * (ca - xn)).sum(-1)
        crossed = lam <= 0
        for k in np.flatnonzero(crossed):
            n = ia[k]
            pts = crit[owner[n]]
            d = np.linalg.norm(pts - 0.5 * (xa[k] + xn[k]), axis=-1)
            j = int(np.argmin(d))
            if d[j] < 5 * h:
                label[n] = BIRTH_TYPES.index(crit_types[owner[n]][j])
                rho_b[n] = float(np.linalg.norm(pts[j] - c[n]))
            active[n] = False
        x[ia] = xn
    return label, rho_b


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial fraction k/n ((nan, nan) if n = 0)."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def sam_runs_quartic(C: np.ndarray, x0: np.ndarray, rho: np.ndarray, eta: np.ndarray,
                     steps: int) -> np.ndarray:
    """Deterministic SAM x ← x − η ∇f(x + ρ u(x)) on quartics, one landscape per row; final x."""
    x = x0.copy()
    with np.errstate(all="ignore"):
        for _ in range(steps):
            g = q_grad(C, x)
            u = g / np.linalg.norm(g, axis=-1, keepdims=True)
            x = x - eta[:, None] * q_grad(C, x + rho[:, None] * u)
            x = np.where(np.abs(x) < 1e6, x, np.nan)
    return x


RHO_FACTORS = tuple((np.arange(12) + 0.5) / 4)  # 0.125 … 2.875: never exactly a birth value


def survey(n_landscapes: int = 200, seed: int = 0, rho_factors=RHO_FACTORS,
           run_steps: int = 4000, run_offset: float = 1e-3) -> dict:
    """Every hallucinated point of ``n_landscapes`` random quartics over a ρ grid, with its birth.

    For each landscape (:func:`random_quartics`) and each ρ = s·‖m − M‖ (s in ``rho_factors``,
    m the minimizer, M the maximizer) and each critical point c, every hallucinated point with
    x⁺ = c (:func:`hallucinated_on_circle`), its residual, ρκ, the eigenvalues of A and of the
    surrogate Hessian, where its branch is born (:func:`birth_labels`), and a SAM run of
    ``run_steps`` steps from ``run_offset`` away at η = η_max/2 (attracting points) or at
    η = 1/(2 max|μ|) (the others). Returns a dict of per-point arrays and per-landscape data.
    """
    C, cps, drawn = random_quartics(n_landscapes, seed=seed)
    rows = {k: [] for k in ("landscape", "rho", "x", "c", "c_type")}
    for ell in range(n_landscapes):
        pts = {t: p for t, p, _ in cps[ell]}
        d_ref = float(np.linalg.norm(pts["min"] - pts["max"]))
        for s in rho_factors:
            rho = s * d_ref
            for t, p, _ in cps[ell]:
                xs = hallucinated_on_circle(C[ell], p, rho)
                for x in xs:
                    rows["landscape"].append(ell)
                    rows["rho"].append(rho)
                    rows["x"].append(x)
                    rows["c"].append(p)
                    rows["c_type"].append(t)
    owner = np.array(rows["landscape"], int)
    x, c, rho = np.array(rows["x"]), np.array(rows["c"]), np.array(rows["rho"])
    Cp = C[owner]
    residual = fixed_point_residual(Cp, x, rho)
    an = point_analysis(Cp, x, c, rho)
    crit = [np.array([p for _, p, _ in cp]) for cp in cps]
    ctypes = [[t for t, _, _ in cp] for cp in cps]
    label, rho_birth = birth_labels(Cp, x, c, crit, ctypes, owner)
    emax = eta_max_sam(an["mu"])
    attract = emax > 0
    eta = np.where(attract, 0.5 * emax, 0.5 / np.abs(an["mu"]).max(-1))
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(x.shape)
    x0 = x + run_offset * v / np.linalg.norm(v, axis=-1, keepdims=True)
    xe = sam_runs_quartic(Cp, x0, rho, eta, run_steps)
    dist = np.linalg.norm(xe - x, axis=-1)
    return {
        "n_landscapes": n_landscapes, "candidates_drawn": drawn, "seed": seed,
        "rho_factors": list(map(float, rho_factors)), "coefficients": C,
        "landscape": owner, "rho": rho, "x": x, "c": c, "c_type": np.array(rows["c_type"]),
        "residual": residual, "grad_norm": an["grad_norm"], "rho_kappa": an["rho_kappa"],
        "mu": an["mu"], "surrogate_eigs": an["surrogate_eigs"], "birth": np.array(BIRTH_TYPES)[label],
        "rho_birth": rho_birth, "eta_max": emax, "run_eta": eta, "run_distance": dist,
    }


def branch_scan(C: np.ndarray, rhos, centres: dict[str, np.ndarray]) -> list[dict]:
    """Every hallucinated point with x⁺ in ``centres`` (name → critical point) on a ρ grid, with
    its birth (type, index of the critical point, ρ at birth) for one quartic C (15,)."""
    cps = critical_points(C[None])[0]
    crit = np.array([p for _, p, _ in cps])
    types = [t for t, _, _ in cps]
    xs, cs, rs, names = [], [], [], []
    for rho in rhos:
        for name, c in centres.items():
            for x in hallucinated_on_circle(C, c, float(rho)):
                xs.append(x), cs.append(c), rs.append(float(rho)), names.append(name)
    if not xs:
        return []
    x, c = np.array(xs), np.array(cs)
    n = len(x)
    lab, rho_b = birth_labels(np.repeat(C[None], n, 0), x, c, [crit], [types], np.zeros(n, int))
    born_at = [int(np.argmin(np.abs(np.linalg.norm(crit - ci, axis=-1) - rb))) if np.isfinite(rb) else -1
               for ci, rb in zip(c, rho_b, strict=True)]
    return [{"x⁺": names[i], "rho": rs[i], "x": x[i], "birth": BIRTH_TYPES[lab[i]],
             "rho_birth": float(rho_b[i]), "born_at_index": born_at[i]} for i in range(n)]


def surrogate_grad_quartic(C: np.ndarray, x: np.ndarray, rho) -> np.ndarray:
    """∇f^SAM(x) = (I + ρ Du)ᵀ ∇f(x⁺) in closed form, for quartics (one landscape per row)."""
    rho = np.asarray(rho, float)
    g = q_grad(C, x)
    gn = np.linalg.norm(g, axis=-1, keepdims=True)
    u = g / gn
    H = q_hess(C, x)
    P = np.eye(2) - u[..., :, None] * u[..., None, :]
    B = np.eye(2) + rho[..., None, None] * (P @ H) / gn[..., None]
    gp = q_grad(C, x + rho[..., None] * u)
    return np.einsum("...ji,...j->...i", B, gp)


def surrogate_gd_quartic(C: np.ndarray, x0: np.ndarray, rho, eta, steps: int) -> np.ndarray:
    """Plain GD on f^SAM for quartics, batched (one landscape, ρ and η per row); final x."""
    x = np.array(x0, float)
    eta = np.asarray(eta, float)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            x = x - eta[..., None] * surrogate_grad_quartic(C, x, rho)
            x = np.where(np.abs(x) < 1e6, x, np.nan)
    return x


def asymmetric_branch_table(C: np.ndarray, centres: dict[str, np.ndarray], *, rho_step: float = 0.01,
                            rho_range=(0.5, 2.6), quantiles=(0.2, 0.5, 0.8), eta_cap: float = 0.05,
                            steps: int = 4000, offset: float = 1e-3, seed: int = 0) -> list[dict]:
    """For every branch of hallucinated points with x⁺ in ``centres`` and three ρ on it: the
    surrogate's Hessian eigenvalues, ρκ, the spectral radius of SAM's map and the distance after
    ``steps`` steps of GD on f^SAM and of SAM, both from ``offset`` away and at the same
    η = min(``eta_cap``, 1/λ_max(∇²f^SAM)) (so that GD on the surrogate is stable)."""
    rows = branch_scan(C, np.arange(*rho_range, rho_step), centres)
    branches: dict[tuple, list] = {}
    for r in rows:
        branches.setdefault((r["x⁺"], r["birth"], r["born_at_index"]), []).append(r)
    picks = []
    for key in sorted(branches):
        v = branches[key]
        rh = np.array([r["rho"] for r in v])
        for q in quantiles:
            target = rh.min() + q * (rh.max() - rh.min())
            picks.append((key, min(v, key=lambda r, t=target: abs(r["rho"] - t))))
    n = len(picks)
    x = np.array([p["x"] for _, p in picks])
    c = np.array([centres[k[0]] for k, _ in picks])
    rho = np.array([p["rho"] for _, p in picks])
    Cn = np.repeat(C[None], n, 0)
    an = point_analysis(Cn, x, c, rho)
    eta = np.minimum(eta_cap, 1.0 / an["surrogate_eigs"].max(-1))
    radius = np.abs(1 - eta[:, None] * an["mu"]).max(-1)
    v = np.random.default_rng(seed).standard_normal(x.shape)
    x0 = x + offset * v / np.linalg.norm(v, axis=-1, keepdims=True)
    d_gd = np.linalg.norm(surrogate_gd_quartic(Cn, x0, rho, eta, steps) - x, axis=-1)
    d_sam = np.linalg.norm(sam_runs_quartic(Cn, x0, rho, eta, steps) - x, axis=-1)
    out = []
    for i, (key, p) in enumerate(picks):
        out.append({"x⁺": key[0], "birth": key[1], "rho": float(rho[i]), "x": x[i],
                    "rho_birth": p["rho_birth"], "eta": float(eta[i]),
                    "surrogate_eigs": an["surrogate_eigs"][i], "rho_kappa": float(an["rho_kappa"][i]),
                    "sam_radius": float(radius[i]), "dist_gd_surrogate": float(d_gd[i]),
                    "dist_sam": float(d_sam[i])})
    return out
