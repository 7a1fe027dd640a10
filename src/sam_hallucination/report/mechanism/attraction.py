"""Chapters 3b and 3c's results: the cached survey of random quartics, its fold study (3b)
and the ring's tail map (3c), loaded, re-derived (a cache is checked, not trusted) and summarised as text.

The configurations below are the caches' keys: ``results/attraction/*.json`` holds them, and
``runs.cache.load_or_compute`` refuses a file made with another one. ``recompute=True`` (the
chapter's ``full`` profile) recomputes and rewrites the files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ...rd import attraction as AT
from ...rd import ring as RG
from ...rd.attraction import folds as FO
from ...runs.cache import load_or_compute

SURVEY_CONFIG = {"n_landscapes": 200, "seed": 0, "rho_factors": [float(s) for s in AT.RHO_FACTORS],
                 "run_steps": 4000, "run_offset": 1e-3}
FOLDS_CONFIG = {"source": "survey.json", "h": 2e-3, "max_steps": 4000, "window": 3, "run_steps": 4000,
                "seed": 0}
TAILS_CONFIG = {"n_rho": 80, "rho_max": 2.5, "n_eta": 64, "eta_max": 0.4, "n_starts": 128, "steps": 4000,
                "tail": 64, "near_tol": 0.05}


def _as_array(v):
    """JSON lists back to arrays; null (a non-finite float) back to NaN."""
    try:
        return np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return np.asarray(v)


def _compute_survey() -> dict:
    s = AT.survey(**SURVEY_CONFIG)
    s["mu_real"], s["mu_imag"] = s["mu"].real, s["mu"].imag
    del s["mu"]
    return s


def load_survey(results: Path, *, recompute: bool = False) -> dict[str, np.ndarray]:
    """The survey (``results/survey.json``) as arrays, checked by :func:`verify_survey`, with
    ``mu`` (the eigenvalues of A, complex), ``attract`` (Re μ > 0 for both: SAM-attracting)
    and ``converged`` (the SAM run ended within 1e-6; a diverged run counts as not)."""
    raw = load_or_compute(Path(results) / "survey.json", _compute_survey, config=SURVEY_CONFIG,
                          recompute=recompute)
    sv = {k: _as_array(v) for k, v in raw.items()}
    sv["landscape"] = sv["landscape"].astype(int)
    sv["mu"] = sv["mu_real"] + 1j * sv["mu_imag"]
    sv["attract"] = (sv["mu_real"] > 0).all(-1)
    sv["converged"] = sv["run_distance"] < 1e-6  # NaN compares False
    verify_survey(sv)
    return sv


def verify_survey(sv: dict, *, every: int = 25) -> None:
    """Re-derive the cached survey from its stored coefficients and raise on a mismatch: the
    fixed-point residuals, the eigenvalues μ and ρκ of every point, and the birth labels of
    every ``every``-th point, traced again."""
    Cp = sv["coefficients"][sv["landscape"]]
    re = AT.point_analysis(Cp, sv["x"], sv["c"], sv["rho"])
    if not AT.fixed_point_residual(Cp, sv["x"], sv["rho"]).max() < 1e-10:
        raise AssertionError("survey cache: a stored point is not a SAM fixed point (residual >= 1e-10)")
    if not np.allclose(np.sort_complex(re["mu"]), np.sort_complex(sv["mu"]), rtol=1e-8, atol=1e-8):
        raise AssertionError("survey cache: stored eigenvalues of A differ from the recomputed ones")
    if not np.allclose(re["rho_kappa"], sv["rho_kappa"], rtol=1e-8, atol=1e-8):
        raise AssertionError("survey cache: stored rho*kappa differs from the recomputed one")
    sub = np.arange(0, len(sv["rho"]), every)
    cps_all = AT.critical_points(sv["coefficients"])
    lab, _ = AT.birth_labels(Cp[sub], sv["x"][sub], sv["c"][sub],
                             [np.array([p for _, p, _ in cp]) for cp in cps_all],
                             [[t for t, _, _ in cp] for cp in cps_all], sv["landscape"][sub])
    if not (np.array(AT.BIRTH_TYPES)[lab] == sv["birth"][sub]).all():
        raise AssertionError("survey cache: a birth label traced again differs from the stored one; "
                             "recompute with profile='full'")


def branch_table_text(table: list[dict]) -> str:
    """The asymmetric function's branch table (``attraction.asymmetric_branch_table``) as the
    chapter prints it: where GD on f^SAM and SAM end, as "x*" (within 1e-10), "left" (farther
    than 1e-2) or the distance."""
    def where(d: float) -> str:
        return "x*  (< 1e-10)" if d < 1e-10 else ("left (> 1e-2)" if d > 1e-2 else f"{d:.0e}")

    lines = ["x⁺     born at  rho   eta     eig(Hess f_SAM)    rho*kappa  rad(DT)  GD on f_SAM    SAM"]
    for r in table:
        e = r["surrogate_eigs"]
        lines.append(f"{r['x⁺']}  {r['birth']:7s} {r['rho']:.2f}  {r['eta']:.4f}  ({e[0]:6.3f}, {e[1]:6.2f})  "
                     f"{r['rho_kappa']:6.3f}     {r['sam_radius']:.3f}    {where(r['dist_gd_surrogate'])}  "
                     f"{where(r['dist_sam'])}")
    return "\n".join(lines)


def survey_summary(sv: dict) -> dict[tuple[str, str], tuple[int, int, float, float]]:
    """(x⁺ type, birth) -> (points attracting SAM, points, 95% Wilson interval), for the groups
    that occur, x⁺ type in the order min, saddle, max."""
    out = {}
    for ctype in ("min", "saddle", "max"):
        for birth in AT.BIRTH_TYPES:
            m = (sv["c_type"] == ctype) & (sv["birth"] == birth)
            if m.any():
                k, n = int(sv["attract"][m].sum()), int(m.sum())
                out[(ctype, birth)] = (k, n, *AT.wilson_interval(k, n))
    return out


def survey_text(sv: dict) -> str:
    """The survey's printout: sizes, the residual and agreement checks, one row per group."""
    attract, converged = sv["attract"], sv["converged"]
    n_pts, n_land = len(sv["rho"]), int(sv["n_landscapes"])
    Cp = sv["coefficients"][sv["landscape"]]
    lines = [f"{n_land} landscapes accepted of {int(sv['candidates_drawn'])} drawn; {n_pts} hallucinated points",
             "largest fixed-point residual below 1e-10: "
             f"{AT.fixed_point_residual(Cp, sv['x'], sv['rho']).max() < 1e-10}",
             f"spectral criterion and SAM runs agree on {int((attract == converged).sum())} of {n_pts} points",
             "",
             "x⁺ is a   born at     points  landscapes  attract SAM  fraction [95% interval]   "
             "rho*kappa > 1  min of f_SAM"]
    for (ctype, birth), (k, n, lo, hi) in survey_summary(sv).items():
        m = (sv["c_type"] == ctype) & (sv["birth"] == birth)
        lines.append(f"{ctype:9s}  {birth:10s}  {n:6d}  {len(set(sv['landscape'][m])):6d}      {k:6d}       "
                     f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]       {int((sv['rho_kappa'][m] > 1).sum()):6d}  "
                     f"{int((sv['surrogate_eigs'][m].min(-1) > 0).sum()):6d}")
    return "\n".join(lines)


def survey_exceptions_text(sv: dict) -> str:
    """The points that break a pattern: maximizer-born with ρκ <= 1 or attracting SAM behind
    the minimizer, saddle-born behind the minimizer that do not attract, and the SAM runs
    that disagree with the spectral criterion."""
    attract, mu = sv["attract"], sv["mu"]
    maxborn = sv["birth"] == "max"
    mm = (sv["c_type"] == "min") & maxborn
    ms = (sv["c_type"] == "min") & (sv["birth"] == "saddle")
    bad_rk = np.flatnonzero(maxborn & ~(sv["rho_kappa"] > 1))
    bad_att = np.flatnonzero(mm & attract)
    lines = [f"maximizer-born points with rho*kappa <= 1: {len(bad_rk)} (of {int(maxborn.sum())})",
             f"maximizer-born points behind the minimizer that attract SAM: {len(bad_att)} (of {int(mm.sum())})"]
    for i in np.concatenate([bad_rk, bad_att]):
        lines.append(f"  landscape {sv['landscape'][i]}, x⁺ a {sv['c_type'][i]}, rho = {sv['rho'][i]:.3f}, "
                     f"rho*kappa = {sv['rho_kappa'][i]:.3f}, attracts SAM: {attract[i]}")
    lines.append("saddle-born points behind the minimizer that do not attract SAM:")
    for i in np.flatnonzero(ms & ~attract):
        lines.append(f"  landscape {sv['landscape'][i]:3d}: rho = {sv['rho'][i]:.3f}, rho*kappa = "
                     f"{sv['rho_kappa'][i]:.3f}, eigenvalues of A: {np.round(np.sort_complex(mu[i]), 3)}")
    lines.append("points where the SAM run disagrees with the spectral criterion:")
    for i in np.flatnonzero(attract != sv["converged"]):
        q = float(np.abs(1 - sv["run_eta"][i] * mu[i]).max())
        lines.append(f"  landscape {sv['landscape'][i]:3d}, x⁺ a {sv['c_type'][i]}, born at {sv['birth'][i]}: "
                     f"attracting: {attract[i]}, spectral radius at the run's eta {q:.4f}, "
                     f"predicted distance after 4000 steps ~{1e-3 * q**4000:.0e}, measured "
                     f"{sv['run_distance'][i]:.0e}")
    return "\n".join(lines)


def load_folds(results: Path, sv: dict, *, recompute: bool = False) -> tuple[dict, dict]:
    """The fold study and the whole-curve labels of the survey's points
    (``results/folds.json``): (study, curves). Raises if the cached counterexamples to the
    old conjecture are not exactly the attracting points on maximizer curves behind the
    minimizer."""
    fd = load_or_compute(Path(results) / "folds.json", lambda: FO.survey_folds(sv), config=FOLDS_CONFIG,
                         recompute=recompute)
    st, cv = fd["study"], fd["curves"]
    behind = (sv["c_type"] == "min") & np.asarray(cv["on_max_curve"], bool)
    if not (np.asarray(cv["conjecture_counterexamples"]) == np.flatnonzero(behind & sv["attract"])).all():
        raise AssertionError("folds cache: its counterexamples differ from the survey's; recompute with "
                             "profile='full'")
    return st, cv


def fold_study_text(st: dict) -> tuple[str, dict[str, float]]:
    """The fold study's printout and the numbers the prose cites (keys: n, fold, rkf-lo,
    rkf-hi, id, after, conv)."""
    rkf = np.asarray(st["rho_kappa_at_fold"])
    runs = np.asarray(st["run_distance"], float)
    n_fold = int(np.sum(np.asarray(st["n_folds"]) > 0))
    pre, post = int(np.sum(st["attract_before_fold"])), int(np.sum(st["attract_after_fold"]))
    conv, slow = int((runs < 1e-6).sum()), ~(runs < 1e-6) & ~np.isnan(runs)
    lines = [f"branches: {st['n_branches']}; other end: {dict(Counter(st['end']))}",
             f"folds per branch: {dict(Counter(np.asarray(st['n_folds']).tolist()))}",
             f"rho*kappa at the sample nearest a fold: {rkf.min():.2f} to {rkf.max():.2f}",
             f"sign(rho*kappa - 1) = sign(d rho/ds) at {st['identity_agree']} of "
             f"{st['identity_checked']} samples more than 3 steps from a fold",
             f"branches attracting before the first fold: {pre}, after it: {post}",
             f"SAM from 1e-3 away at eta_max/2, 4000 steps: {conv} of {len(runs)} within 1e-6, "
             f"{int(np.isnan(runs).sum())} diverged;",
             f"  the other {int(slow.sum())}: spectral radius >= "
             f"{np.asarray(st['run_radius'])[slow].min():.4f} at the run's eta"]
    values = {"n": int(st["n_branches"]), "fold": n_fold, "rkf-lo": float(rkf.min()),
              "rkf-hi": float(rkf.max()), "id": int(st["identity_checked"]), "after": post, "conv": conv}
    return "\n".join(lines), values


def tail_grid(cfg: dict = TAILS_CONFIG) -> tuple[np.ndarray, np.ndarray]:
    """The (ρ, η) cell centres of the ring's tail map."""
    rhos = (np.arange(cfg["n_rho"]) + 0.5) * cfg["rho_max"] / cfg["n_rho"]
    etas = (np.arange(cfg["n_eta"]) + 0.5) * cfg["eta_max"] / cfg["n_eta"]
    return rhos, etas


def tail_options(cfg: dict = TAILS_CONFIG) -> dict:
    """The keyword arguments of ``ring.tail_map`` for the chapter's tail map."""
    return {k: cfg[k] for k in ("n_starts", "steps", "tail", "near_tol")}


def load_ring_tails(results: Path, *, recompute: bool = False) -> dict[str, np.ndarray]:
    """The ring's tail map (``results/ring_tails.json``): ``rhos``, ``etas``, ``counts`` (cell x
    tail class), ``near_min`` and ``basin`` (the hallucinated circle's share). One column, the
    one nearest ρ = 1.5 (``i15``), is recomputed and must match the cache."""
    rhos, etas = tail_grid()
    kw = tail_options()

    def compute() -> dict:
        tm = RG.tail_map(rhos, etas, **kw)
        return {"counts": tm.counts, "near_min": tm.near_min, "tail_dist": tm.tail_dist}

    tails = load_or_compute(Path(results) / "ring_tails.json", compute, config=TAILS_CONFIG,
                            recompute=recompute)
    counts = np.asarray(tails["counts"], dtype=int)
    near_min = np.asarray(tails["near_min"], dtype=int)
    i15 = int(np.argmin(np.abs(rhos - 1.5)))
    col = RG.tail_map(rhos[i15 : i15 + 1], etas, **kw)
    if not ((col.counts[0] == counts[i15]).all() and (col.near_min[0] == near_min[i15]).all()):
        raise AssertionError("ring_tails cache: the column at rho = 1.5, recomputed, differs; recompute "
                             "with profile='full'")
    basin = counts[..., RG.TAIL_CLASSES.index("hallucinated circle")] / TAILS_CONFIG["n_starts"]
    return {"rhos": rhos, "etas": etas, "counts": counts, "near_min": near_min, "basin": basin, "i15": i15}
