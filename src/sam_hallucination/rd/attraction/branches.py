"""Branches of hallucinated points followed as curves, through folds.

The hallucinated points with x⁺ = c lie on Γ_c = {x: ψ(x) = ∇f(x) × (c − x) = 0,
∇f(x)·(c − x) > 0}, with ρ = ‖x − c‖ along it. In 2-D, with u = ∇f/‖∇f‖, t = Ju
(J the rotation by −90°),

    ∇ψ = ‖∇f‖ (1 − ρκ) t + ρ (uᵀ∇²f t) u,   dρ/ds = −u·x' = ± ‖∇f‖ (1 − ρκ) / ‖∇ψ‖,

so ρ turns back along Γ_c (a fold) exactly where ρκ = 1 (chapter 3b, the fold identity).

* :func:`follow` walks Γ_c (predictor–corrector, arclength step h) from given points in a
  given direction, *through* folds, until it meets a critical point of f, reaches c, leaves
  ρ ≤ ``rho_max`` or runs out of steps; it counts the folds it passes and can record the path.
* :func:`curve_labels` labels each point by both ends of its curve, folds included: a rule
  that does not stop at the first fold, so it does not presuppose that ρκ > 1 on a
  maximizer-born branch.
* :func:`trace_from_maximizer` starts each branch behind c at the maximizer M and records it.
"""

from __future__ import annotations

import numpy as np

from .quartics import BIRTH_TYPES, q_grad, q_hess

ORIGIN_TYPES = BIRTH_TYPES  # "max", "saddle", "min", "fold" (unused here), "self", "unresolved"


def _grad_psi(C: np.ndarray, x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ψ(x) = ∇f(x)·J(c − x) and ∇ψ, batched."""
    g, H = q_grad(C, x), q_hess(C, x)
    w = np.stack((c[:, 1] - x[:, 1], -(c[:, 0] - x[:, 0])), -1)
    return (g * w).sum(-1), np.einsum("nij,nj->ni", H, w) + np.stack((g[:, 1], -g[:, 0]), -1)


def follow(C: np.ndarray, x: np.ndarray, c: np.ndarray, tau0: np.ndarray, *,
           crit: list[np.ndarray], crit_types: list[list[str]], owner: np.ndarray,
           h: float = 2e-3, max_steps: int = 6000, rho_max: float = np.inf,
           record: bool = False) -> dict:
    """Walk Γ_c from each x (N, 2) in the direction closest to ``tau0`` (N, 2), through folds.

    Stops a curve when ∇f·(c − x) changes sign (it passed a critical point of f: ``end`` is
    that point's type, ``end_index`` its index in ``crit[owner]``), when ρ < 3h (it reached c:
    "self"), when ρ > ``rho_max`` or after ``max_steps`` ("unresolved"). Returns ``end`` (N,)
    as indices into :data:`ORIGIN_TYPES`, ``end_index``, ``n_folds`` (sign changes of dρ/ds),
    ``steps`` and, with ``record``, ``path`` (N, max_steps + 1, 2; NaN after the stop).
    """
    N = x.shape[0]
    x = np.array(x, float)
    end = np.full(N, ORIGIN_TYPES.index("unresolved"))
    end_index = np.full(N, -1)
    n_folds = np.zeros(N, int)
    nsteps = np.zeros(N, int)
    active = np.ones(N, bool)
    tau_prev = np.array(tau0, float)
    drho_prev = np.zeros(N)
    path = np.full((N, max_steps + 1, 2), np.nan) if record else None
    if record:
        path[:, 0] = x
    for step in range(max_steps):
        ia = np.flatnonzero(active)
        if ia.size == 0:
            break
        xa, ca, Ca = x[ia], c[ia], C[ia]
        _, dpsi = _grad_psi(Ca, xa, ca)
        tau = np.stack((-dpsi[:, 1], dpsi[:, 0]), -1)
        tau /= np.linalg.norm(tau, axis=-1, keepdims=True)
        tau *= np.where((tau * tau_prev[ia]).sum(-1) >= 0, 1.0, -1.0)[:, None]
        tau_prev[ia] = tau
        r_vec = xa - ca
        drho = (tau * r_vec).sum(-1)
        n_folds[ia] += (drho * drho_prev[ia] < 0)
        drho_prev[ia] = drho
        rho_now = np.linalg.norm(r_vec, axis=-1)
        stop_self = rho_now < 3 * h
        stop_far = rho_now > rho_max
        end[ia[stop_self]] = ORIGIN_TYPES.index("self")
        active[ia[stop_self | stop_far]] = False
        go = ~(stop_self | stop_far)
        ia, xa, ca, Ca, tau = ia[go], xa[go], ca[go], Ca[go], tau[go]
        xn = xa + h * tau
        for _ in range(3):
            psi, dpsi = _grad_psi(Ca, xn, ca)
            xn = xn - (psi / (dpsi * dpsi).sum(-1))[:, None] * dpsi
        crossed = (q_grad(Ca, xn) * (ca - xn)).sum(-1) <= 0
        for k in np.flatnonzero(crossed):
            n = ia[k]
            d = np.linalg.norm(crit[owner[n]] - 0.5 * (xa[k] + xn[k]), axis=-1)
            j = int(np.argmin(d))
            if d[j] < 5 * h:
                end[n] = ORIGIN_TYPES.index(crit_types[owner[n]][j])
                end_index[n] = j
            active[n] = False
        keep = ~crossed
        x[ia[keep]] = xn[keep]
        nsteps[ia[keep]] = step + 1
        if record:
            path[ia[keep], step + 1] = xn[keep]
    return {"end": end, "end_index": end_index, "n_folds": n_folds, "steps": nsteps, "path": path}


def down_direction(C: np.ndarray, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The unit tangent of Γ_c at x (N, 2) along which ρ = ‖x − c‖ decreases."""
    _, dpsi = _grad_psi(C, x, c)
    tau = np.stack((-dpsi[:, 1], dpsi[:, 0]), -1)
    tau /= np.linalg.norm(tau, axis=-1, keepdims=True)
    return tau * np.where((tau * (x - c)).sum(-1) < 0, 1.0, -1.0)[:, None]


def curve_labels(C: np.ndarray, x: np.ndarray, c: np.ndarray, crit: list[np.ndarray],
                 crit_types: list[list[str]], owner: np.ndarray, h: float = 2e-3,
                 max_steps: int = 6000, rho_max: float = 20.0) -> dict[str, np.ndarray]:
    """Both ends of the curve Γ_c through each point x (N, 2), followed through folds.

    The rule looks at the whole curve, not at the direction of ρ, so it does not presuppose
    anything about ρκ. Returns ``ends`` (N, 2) (strings of :data:`ORIGIN_TYPES`: the end met
    going down in ρ from x, then the one going up), ``folds`` (N, 2) (folds passed on the way
    to each end), and ``on_max_curve`` (N,) (an end is the maximizer) with ``folds_from_max``
    (N,) (folds between x and that end; −1 when no end is a maximizer).
    """
    down = down_direction(C, x, c)
    ends, folds = [], []
    for tau in (down, -down):
        o = follow(C, x, c, tau, crit=crit, crit_types=crit_types, owner=owner, h=h,
                   max_steps=max_steps, rho_max=rho_max)
        ends.append(np.array(ORIGIN_TYPES)[o["end"]])
        folds.append(o["n_folds"])
    E, F = np.stack(ends, -1), np.stack(folds, -1)
    at_max = E == "max"
    big = np.iinfo(np.int64).max
    fm = np.where(at_max, F, big).min(-1)
    return {"ends": E, "folds": F, "on_max_curve": at_max.any(-1),
            "folds_from_max": np.where(fm == big, -1, fm)}


def trace_from_maximizer(C: np.ndarray, c: np.ndarray, M: np.ndarray, crit: list[np.ndarray],
                         crit_types: list[list[str]], *, h: float = 2e-3, max_steps: int = 4000,
                         rho_max: float = np.inf) -> dict:
    """The branch of hallucinated points behind c (N, 2) that leaves the maximizer M (N, 2).

    Near M, ∇f(x) ≈ H_M (x − M), so the branch leaves M along d = H_M⁻¹(c − M) (the side with
    ∇f·(c − x) > 0). Returns :func:`follow`'s dict with the recorded ``path``.
    """
    N = c.shape[0]
    d = np.linalg.solve(q_hess(C, M), (c - M)[..., None])[..., 0]
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    x0 = M + h * d
    return follow(C, x0, c, d, crit=crit, crit_types=crit_types, owner=np.arange(N), h=h,
                  max_steps=max_steps, rho_max=rho_max, record=True)
