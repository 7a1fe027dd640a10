"""Hallucinated points in any dimension: principal curvatures and the determinant identity.

At a hallucinated point x with x⁺ = c, in the basis (u, t₁, …, t_{d−1}) (tᵢ an orthonormal
basis of u⊥), B = I + ρ(I − uuᵀ)∇²f(x)/‖∇f(x)‖ is block lower-triangular with blocks 1 and
I − ρ K, K = −Tᵀ∇²f(x)T/‖∇f(x)‖ the shape operator of the level set (its eigenvalues κᵢ are
the principal curvatures). Hence

    det A = det(H_c B) = det H_c · ∏ᵢ (1 − ρκᵢ),   det ∇²f^SAM = det(BᵀH_cB) = det H_c · ∏ᵢ (1 − ρκᵢ)².

:func:`hallucinated_point` finds a point by Newton on G(x) = ∇f(x + ρu(x)) (whose Jacobian
at a hallucinated point is A); :func:`determinant_check` evaluates both sides.
:func:`unnormalized_saddle_runs` is the check of Kim et al.'s saddle threshold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .quartics import q_grad, q_hess

Vec = Callable[[np.ndarray], np.ndarray]


def _asym():
    from ..landscapes import ASYM_PARAMS
    from .quartics import coefficients_of_asymmetric
    return coefficients_of_asymmetric(ASYM_PARAMS)


C_ASYM = _asym()
EPS3 = 0.1


def quartic3_grad(x: np.ndarray) -> np.ndarray:
    """∇f for the quartic on R³ f(x, y, z) = a(x, y) + z²/2 + ε z (x + y²) + z⁴/20, a the
    asymmetric function of chapters 2–3 and ε = 0.1: the coupling tilts every critical point
    and every hallucinated point out of the plane z = 0."""
    g2 = q_grad(C_ASYM, x[:2])
    z = x[2]
    return np.array([g2[0] + EPS3 * z, g2[1] + 2 * EPS3 * z * x[1],
                     z + EPS3 * (x[0] + x[1] ** 2) + 0.2 * z**3])


def quartic3_hess(x: np.ndarray) -> np.ndarray:
    H = np.zeros((3, 3))
    H[:2, :2] = q_hess(C_ASYM, x[:2])
    z = x[2]
    H[1, 1] += 2 * EPS3 * z
    H[0, 2] = H[2, 0] = EPS3
    H[1, 2] = H[2, 1] = 2 * EPS3 * x[1]
    H[2, 2] = 1 + 0.6 * z**2
    return H


def critical_point(g: Vec, h: Vec, x0, iters: int = 50) -> np.ndarray:
    """Newton on ∇f from x0."""
    x = np.asarray(x0, float)
    for _ in range(iters):
        x = x - np.linalg.solve(h(x), g(x))
    return x


def _parts(g: Vec, h: Vec, x: np.ndarray, rho: float):
    gx, H = g(x), h(x)
    gn = np.linalg.norm(gx)
    u = gx / gn
    B = np.eye(len(x)) + rho * (np.eye(len(x)) - np.outer(u, u)) @ H / gn
    return gx, gn, u, H, B, h(x + rho * u)


def sam_step(g: Vec, x: np.ndarray, rho: float) -> np.ndarray:
    """G(x) = ∇f(x + ρ∇f(x)/‖∇f(x)‖), SAM's step direction."""
    gx = g(x)
    return g(x + rho * gx / np.linalg.norm(gx))


def surrogate_grad(g: Vec, h: Vec, x: np.ndarray, rho: float) -> np.ndarray:
    """∇f^SAM(x) = B(x)ᵀ ∇f(x⁺) (exact, from the chain rule)."""
    _, _, u, _, B, _ = _parts(g, h, x, rho)
    return B.T @ g(x + rho * u)


def fd_jacobian(F: Vec, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite-difference Jacobian of F at x."""
    cols = [(F(x + eps * e) - F(x - eps * e)) / (2 * eps) for e in np.eye(len(x))]
    return np.stack(cols, -1)


def hallucinated_point(g: Vec, h: Vec, x0, rho: float,
                       iters: int = 100) -> np.ndarray:
    """Damped Newton on G(x) = ∇f(x + ρu(x)) = 0 from x0, with the Jacobian H(x⁺)B(x)."""
    x = np.asarray(x0, float)
    for _ in range(iters):
        _, _, _, _, B, Hp = _parts(g, h, x, rho)
        r = sam_step(g, x, rho)
        dx = np.linalg.solve(Hp @ B, r)
        t = 1.0
        while t > 1e-4 and np.linalg.norm(sam_step(g, x - t * dx, rho)) >= np.linalg.norm(r):
            t /= 2
        x = x - t * dx
        if np.linalg.norm(sam_step(g, x, rho)) < 1e-13:
            break
    return x


def determinant_check(g: Vec, h: Vec, x: np.ndarray, rho: float) -> dict:
    """Both sides of the identities at a hallucinated point x, and A's eigenvalues."""
    gx, gn, u, H, B, Hc = _parts(g, h, x, rho)
    T = np.linalg.svd(np.eye(len(x)) - np.outer(u, u))[0][:, : len(x) - 1]  # basis of u⊥
    kappa = np.linalg.eigvalsh(-T.T @ H @ T / gn)
    A = Hc @ B
    prod = float(np.prod(1 - rho * kappa))
    J = fd_jacobian(lambda z: sam_step(g, z, rho), x)  # SAM's A, not from the formula
    S = fd_jacobian(lambda z: surrogate_grad(g, h, z, rho), x)  # ∇²f^SAM, derivatives of B in
    return {"x": x, "rho": rho, "residual": float(np.linalg.norm(g(x + rho * u))),
            "grad_norm": float(gn), "rho_kappa": rho * kappa, "det_Hc": float(np.linalg.det(Hc)),
            "det_A": float(np.linalg.det(J)), "det_A_formula": float(np.linalg.det(Hc)) * prod,
            "det_S": float(np.linalg.det(0.5 * (S + S.T))),
            "det_S_formula": float(np.linalg.det(Hc)) * prod**2,
            "mu": np.linalg.eigvals(A), "mu_fd": np.linalg.eigvals(J), "hc_eigs": np.linalg.eigvalsh(Hc)}


def sam_distance(g: Vec, h: Vec, x: np.ndarray, rho: float, eta: float,
                 steps: int = 4000, offset: float = 1e-3, seed: int = 0,
                 normalized: bool = True) -> float:
    """‖x_steps − x‖ for SAM started ``offset`` away from x (NaN if it diverges).

    ``normalized=False`` runs the unnormalized SAM of Kim et al., x⁺ = x + ρ∇f(x)."""
    v = np.random.default_rng(seed).standard_normal(len(x))
    z = x + offset * v / np.linalg.norm(v)
    for _ in range(steps):
        gz = g(z)
        z = z - eta * g(z + rho * (gz / np.linalg.norm(gz) if normalized else gz))
        if not np.isfinite(z).all() or np.abs(z).max() > 1e6:
            return float("nan")
    return float(np.linalg.norm(z - x))


def unnormalized_saddle_runs(g: Vec, h: Vec, saddle: np.ndarray,
                             factors=(0.8, 1.2), steps: int = 4000) -> list[dict]:
    """Unnormalized SAM near a saddle S at ρ = s·(−1/λ₁) (λ₁ < 0 the negative curvature).

    Its step is ∇f(x + ρ∇f(x)) ≈ H(I + ρH)(x − S): the Jacobian's eigenvalues are
    λᵢ(1 + ρλᵢ), all positive iff ρ > −1/λ₁ (the threshold of Kim et al.). η is half the
    largest stable step at the larger ρ."""
    lam = np.linalg.eigvalsh(h(saddle))
    rho_k = -1.0 / lam[0]
    top = max(abs(v * (1 + s * rho_k * v)) for v in lam for s in factors)
    eta = 1.0 / top
    out = []
    for s in factors:
        rho = s * rho_k
        mult = lam * (1 + rho * lam)
        out.append({"factor": s, "rho": rho, "rho_threshold": rho_k, "eta": eta,
                    "multipliers": 1 - eta * mult,
                    "distance": sam_distance(g, h, saddle, rho, eta, steps=steps, normalized=False)})
    return out


def three_d_study(rho: float = 1.0, steps: int = 4000) -> list[dict]:
    """Every hallucinated point behind a minimizer of the quartic on R³ at radius ρ: Newton
    from the asymmetric function's points (z = 0, :func:`~.survey.branch_scan`), the identities
    there, and a SAM run from 10⁻³ away at η = η_max/2 (if every Re μ > 0) or 1/(2 max|μ|)."""
    from .quartics import critical_points, hallucinated_on_circle
    g, h = quartic3_grad, quartic3_hess
    rows = []
    for t, p, _ in critical_points(C_ASYM[None])[0]:
        if t != "min":
            continue
        m = critical_point(g, h, np.append(p, 0.0))
        for x2 in hallucinated_on_circle(C_ASYM, p, rho):
            x = hallucinated_point(g, h, np.append(x2, 0.0), rho)
            d = determinant_check(g, h, x, rho)
            mu = d["mu"]
            attract = bool((mu.real > 0).all())
            eta = (float(np.min(mu.real / np.abs(mu) ** 2)) if attract
                   else float(0.5 / np.abs(mu).max()))
            d.update(minimizer=m, attract=attract, eta=eta,
                     n_above_one=int((d["rho_kappa"] > 1).sum()),
                     real_negative_mu=bool(((np.abs(mu.imag) < 1e-9) & (mu.real < 0)).any()),
                     distance=sam_distance(g, h, x, rho, eta, steps=steps))
            rows.append(d)
    return rows
