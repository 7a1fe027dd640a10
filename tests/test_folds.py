"""Chapter 3b's fold identity, the theorem up to the first fold, the survey that can fail,
the general-dimension identity on R³ and the check of Kim et al.'s saddle threshold."""

import json
from pathlib import Path

import numpy as np
import pytest

from sam_hallucination.rd.attraction import branches as BR
from sam_hallucination.rd.attraction import general as G
from sam_hallucination.rd.attraction import quartics as Q
from sam_hallucination.rd.attraction.folds import curve_report, fold_study

SURVEY = Path(__file__).resolve().parents[1] / "results" / "attraction" / "survey.json"


@pytest.fixture(scope="module")
def quartics30():
    C = np.array(json.loads(SURVEY.read_text())["data"]["coefficients"])[:30]
    return C, fold_study(C)


def test_fold_identity_and_theorem_on_traced_branches(quartics30):
    _, s = quartics30
    assert s["all_hallucinated"] and s["identity_checked"] > 5000
    # sign(ρκ − 1) = sign(dρ/ds) away from folds: ρκ = 1 exactly where ρ turns
    assert s["identity_agree"] == s["identity_checked"]
    assert (s["n_folds"] > 0).any()
    # the theorem: no sample before the first fold attracts SAM
    assert not s["attract_before_fold"].any()


def _planted(C, s, near_max: bool = False):
    """The first folded branch that attracts SAM past its fold: its attracting point (or, with
    ``near_max``, every point behind m at a radius just above ‖m − M‖, before any fold)."""
    b = int(s["run_branch"][0])
    cps = Q.critical_points(C[b][None])[0]
    crit, types = [np.array([p for _, p, _ in cps])], [[t for t, _, _ in cps]]
    m = next(p for t, p, _ in cps if t == "min")
    if near_max:
        rho = 1.02 * float(np.linalg.norm(m - next(p for t, p, _ in cps if t == "max")))
        x = Q.hallucinated_on_circle(C[b], m, rho)
    else:
        rho, x = float(s["run_rho"][0]), s["run_point"][:1]
    n = len(x)
    assert Q.fixed_point_residual(np.repeat(C[b][None], n, 0), x, np.full(n, rho)).max() < 1e-9
    return (np.repeat(C[b][None], n, 0), x, np.repeat(m[None], n, 0), np.array(["min"] * n),
            np.full(n, rho), crit, types, np.zeros(n, int))


def test_planted_counterexample_is_reported(quartics30):
    """A landscape whose maximizer-born branch folds and then attracts SAM: the curve rule
    reports the counterexample to the old conjecture; the old first-fold rule hid it."""
    C, s = quartics30
    assert len(s["run_branch"]) > 0, "no folded branch that attracts among the first 30"
    Cn, x, cn, ct, rho, crit, types, owner = _planted(C, s)
    rep = curve_report(Cn, x, cn, ct, rho, crit, types, owner)
    i = 0
    assert i in rep["conjecture_counterexamples"] and rep["folds_from_max"][i] >= 1
    assert len(rep["theorem_counterexamples"]) == 0
    old, _ = Q.birth_labels(Cn[i:i + 1], x[i:i + 1], cn[i:i + 1], crit, types, owner[:1])
    assert Q.BIRTH_TYPES[old[0]] != "max"  # the old rule called it something else


def test_theorem_check_fails_when_a_no_fold_point_attracts(quartics30):
    C, s = quartics30
    Cn, x, cn, ct, rho, crit, types, owner = _planted(C, s, near_max=True)
    lab = BR.curve_labels(Cn, x, cn, crit, types, owner)
    no_fold = np.flatnonzero(lab["on_max_curve"] & (lab["folds_from_max"] == 0))
    assert no_fold.size
    fake = np.zeros(len(x), bool)
    fake[no_fold[0]] = True
    rep = curve_report(Cn, x, cn, ct, rho, crit, types, owner, attract=fake)
    assert list(rep["theorem_counterexamples"]) == [no_fold[0]]


def test_general_dimension_identity_on_a_3d_quartic():
    rows = G.three_d_study(1.3)
    assert len(rows) >= 3
    for d in rows:
        assert d["residual"] < 1e-10 and (d["hc_eigs"] > 0).all()  # behind a minimizer
        assert d["det_A"] == pytest.approx(d["det_A_formula"], rel=1e-6)
        assert d["det_S"] == pytest.approx(d["det_S_formula"], rel=1e-5)
        if d["n_above_one"] % 2:  # the corollary: a real negative μ, SAM repelled
            assert d["real_negative_mu"] and not d["attract"]
            assert not d["distance"] < 1e-2
    assert any(d["attract"] and d["distance"] < 1e-10 for d in rows)
    assert any(d["n_above_one"] % 2 for d in rows)


def test_kim_threshold_for_unnormalized_sam_at_a_saddle():
    C = Q.coefficients_of_asymmetric(__import__("sam_hallucination.rd.landscapes",
                                                fromlist=["ASYM_PARAMS"]).ASYM_PARAMS)
    S = next(p for t, p, _ in Q.critical_points(C[None])[0] if t == "saddle")
    below, above = G.unnormalized_saddle_runs(lambda z: Q.q_grad(C, z), lambda z: Q.q_hess(C, z), S)
    assert np.abs(below["multipliers"]).max() > 1 and not below["distance"] < 1e-2
    assert np.abs(above["multipliers"]).max() < 1 and above["distance"] < 1e-10
