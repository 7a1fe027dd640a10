"""The survey over random quartics and the asymmetric example's branch table."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...checks import check_count, check_tol
from .quartics import (
    BIRTH_TYPES,
    birth_labels,
    critical_points,
    eta_max_sam,
    fixed_point_residual,
    hallucinated_on_circle,
    point_analysis,
    q_grad,
    q_hess,
    random_quartics,
)

Tensor = torch.Tensor


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial fraction k/n ((nan, nan) if n = 0)."""
    n, k = check_count("n", n, minimum=0), check_count("k", k, minimum=0)
    check_tol("z", z, positive=True)
    if k > n:  # used to fail with "math domain error"
        raise ValueError(f"k={k}: must be <= n={n} (successes out of n trials)")
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
