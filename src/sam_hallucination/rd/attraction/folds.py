"""The maximizer-born branch behind the minimizer, traced upward in ρ past its folds."""

from __future__ import annotations

import numpy as np

from .branches import curve_labels, trace_from_maximizer
from .quartics import critical_points, eta_max_sam, point_analysis, q_grad
from .survey import sam_runs_quartic


def fold_study(C: np.ndarray, *, h: float = 2e-3, max_steps: int = 4000, window: int = 3,
               run_steps: int = 4000, seed: int = 0) -> dict:
    """For each quartic (rows of C, one minimizer m, maximizer M, saddle each), the branch behind
    m that leaves M (:func:`~.branches.trace_from_maximizer`), sampled every h in arclength.

    Returns the branches' ends and fold counts; ρκ at the sample nearest each first fold (a
    sign change of dρ/ds); the check of the identity sign(ρκ − 1) = sign(dρ/ds) at every sample
    more than ``window`` steps from a fold; per branch, whether some sample before the first fold
    attracts SAM (Re μ > 0) and whether some sample after it does; and for each branch with an
    attracting sample past the fold, a SAM run from 10⁻³ away at η = η_max/2 for ``run_steps``
    steps at the sample with the largest η_max.
    """
    cps = critical_points(C)
    crit = [np.array([p for _, p, _ in cp]) for cp in cps]
    types = [[t for t, _, _ in cp] for cp in cps]
    m = np.array([next(p for t, p, _ in cp if t == "min") for cp in cps])
    M = np.array([next(p for t, p, _ in cp if t == "max") for cp in cps])
    out = trace_from_maximizer(C, m, M, crit, types, h=h, max_steps=max_steps)
    P = out["path"]
    N, K = P.shape[:2]
    rho = np.linalg.norm(P - m[:, None], axis=-1)
    idx = np.nonzero(np.isfinite(P[..., 0]))
    an = point_analysis(C[idx[0]], P[idx], m[idx[0]], rho[idx])
    rk = np.full((N, K), np.nan)
    rk[idx] = an["rho_kappa"]
    att = np.zeros((N, K), bool)
    att[idx] = (an["mu"].real > 0).all(-1)
    emax = np.zeros((N, K))
    emax[idx] = eta_max_sam(an["mu"])
    lam = (q_grad(C[idx[0]], P[idx]) * (m[idx[0]] - P[idx])).sum(-1)
    drho = np.diff(rho, axis=1)
    turn = np.isfinite(drho[:, 1:]) & (drho[:, :-1] * drho[:, 1:] < 0)  # fold between j, j+1
    near = np.zeros((N, K - 1), bool)
    for b, j in zip(*np.nonzero(turn), strict=True):
        near[b, max(0, j - window):j + window + 2] = True
    ok = np.isfinite(drho) & np.isfinite(rk[:, :-1]) & ~near
    agree = np.sign(rk[:, :-1] - 1) == np.sign(drho)
    first = np.array([np.flatnonzero(turn[b])[0] + 1 if turn[b].any() else K for b in range(N)])
    rk_fold = np.array([rk[b, first[b]] for b in range(N) if first[b] < K])
    pre = np.array([att[b, :first[b]].any() for b in range(N)])
    post = np.array([att[b, first[b]:].any() for b in range(N)])
    runs = np.flatnonzero(post)
    js = np.array([first[b] + int(np.argmax(np.where(att[b, first[b]:], emax[b, first[b]:], -1)))
                   for b in runs], int)
    x, r, eta = P[runs, js], rho[runs, js], 0.5 * emax[runs, js]
    v = np.random.default_rng(seed).standard_normal(x.shape)
    x0 = x + 1e-3 * v / np.linalg.norm(v, axis=-1, keepdims=True)
    dist = np.linalg.norm(sam_runs_quartic(C[runs], x0, r, eta, run_steps) - x, axis=-1)
    an_r = point_analysis(C[runs], x, m[runs], r)
    radius = np.abs(1 - eta[:, None] * an_r["mu"]).max(-1)
    return {
        "n_branches": N, "end": [types[b][out["end_index"][b]] if out["end_index"][b] >= 0
                                 else "unresolved" for b in range(N)],
        "n_folds": out["n_folds"], "all_hallucinated": bool((lam > 0).all()),
        "n_samples": int(idx[0].size), "rho_kappa_at_fold": rk_fold,
        "identity_checked": int(ok.sum()), "identity_agree": int((agree & ok).sum()),
        "identity_disagree_all": int((~agree & np.isfinite(drho) & np.isfinite(rk[:, :-1])).sum()),
        "attract_before_fold": pre, "attract_after_fold": post, "run_branch": runs,
        "run_rho": r, "run_rho_kappa": an_r["rho_kappa"], "run_eta": eta,
        "run_radius": radius, "run_distance": dist, "run_point": x,
    }


def curve_report(C: np.ndarray, x: np.ndarray, c: np.ndarray, c_type: np.ndarray, rho: np.ndarray,
                 crit: list[np.ndarray], crit_types: list[list[str]], owner: np.ndarray,
                 attract: np.ndarray | None = None) -> dict:
    """Survey points (rows: coefficients C, point x, x⁺ = c of type ``c_type``, radius ρ) labelled
    by the whole curve they lie on (:func:`~.branches.curve_labels`), not by where ρ first
    turns. Reports, behind a minimizer and on a curve with an end at the maximizer:

    * ``conjecture_counterexamples``: the points that attract SAM (the old conjecture, "never
      attracts", is refuted by any one of them);
    * ``theorem_counterexamples``: those with no fold between them and the maximizer (the
      theorem of chapter 3b says there is none; a non-empty list means a bug or a false theorem).

    ``attract`` (N,) overrides the spectral criterion Re μ > 0 (for planting)."""
    lab = curve_labels(C, x, c, crit, crit_types, owner)
    if attract is None:
        attract = (point_analysis(C, x, c, rho)["mu"].real > 0).all(-1)
    behind = (np.asarray(c_type) == "min") & lab["on_max_curve"]
    conj = np.flatnonzero(behind & attract)
    return {**lab, "attract": attract, "behind_min_on_max_curve": int(behind.sum()),
            "conjecture_counterexamples": conj,
            "theorem_counterexamples": conj[lab["folds_from_max"][conj] == 0]}


def survey_folds(sv: dict) -> dict:
    """Chapter 3b's cache: :func:`fold_study` on the survey's quartics and :func:`curve_report`
    on its points (``sv``: the survey's data, arrays or JSON lists)."""
    C = np.asarray(sv["coefficients"], float)
    owner = np.asarray(sv["landscape"], int)
    cps = critical_points(C)
    crit = [np.array([p for _, p, _ in cp]) for cp in cps]
    types = [[t for t, _, _ in cp] for cp in cps]
    rep = curve_report(C[owner], np.asarray(sv["x"], float), np.asarray(sv["c"], float),
                       np.asarray(sv["c_type"]), np.asarray(sv["rho"], float), crit, types, owner)
    study = fold_study(C)
    study.pop("run_point")
    return {"study": study, "curves": {k: rep[k] for k in (
        "ends", "folds", "on_max_curve", "folds_from_max", "conjecture_counterexamples",
        "theorem_counterexamples", "behind_min_on_max_curve")}}
