"""Random quartic landscapes on R^2 in closed form: critical points, every hallucinated
point over a rho grid, and the critical point each branch is born at."""

from __future__ import annotations

import numpy as np
import torch

from ..landscapes import DTYPE, Landscape

Tensor = torch.Tensor


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
