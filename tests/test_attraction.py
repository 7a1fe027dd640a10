"""attraction: surrogate vs SAM at hallucinated points, quartic closed forms, enumeration, births."""

import numpy as np
import pytest
import torch

from sam_hallucination.rd import attraction as AT
from sam_hallucination.rd import dynamics as D
from sam_hallucination.rd import sam
from sam_hallucination.rd.landscapes import ASYM_PARAMS, ASYMMETRIC, DTYPE

C_ASYM = AT.coefficients_of_asymmetric(ASYM_PARAMS)


@pytest.fixture(scope="module")
def asym_crit():
    cps = AT.critical_points(C_ASYM[None])[0]
    return cps


def test_quartic_closed_forms_match_landscape_and_autograd():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 2))
    assert np.abs(AT.q_value(C_ASYM, X) - ASYMMETRIC.f(torch.tensor(X)).numpy()).max() < 1e-12
    assert np.abs(AT.q_grad(C_ASYM, X) - ASYMMETRIC.grad(torch.tensor(X)).numpy()).max() < 1e-12
    C = rng.normal(size=15)
    ls = AT.quartic_landscape(C)
    for x in X[:5]:
        H = torch.func.hessian(ls.f)(torch.tensor(x))
        assert np.allclose(AT.q_hess(C, x), H.numpy(), atol=1e-10)
        assert np.allclose(AT.q_grad(C, x), ls.grad(torch.tensor(x)).numpy(), atol=1e-12)


def test_critical_points_of_asymmetric(asym_crit):
    types = sorted(t for t, _, _ in asym_crit)
    assert types == ["max", "min", "min", "saddle", "saddle"]
    for label, ref in ASYMMETRIC.extras["critical_points"]:
        assert min(np.linalg.norm(p - np.array(ref)) for _, p, _ in asym_crit) < 1e-7, label


def test_enumeration_finds_the_chapter3_points(asym_crit):
    left = next(p for t, p, _ in asym_crit if t == "min" and p[0] < 0)
    xs = AT.hallucinated_on_circle(C_ASYM, left, 1.5)
    s = D.solve_hallucinated(ASYMMETRIC, [0.55, 0.2], 1.5, strict=True)
    assert len(xs) == 1 and np.linalg.norm(xs[0] - s.x.numpy()) < 1e-9
    assert AT.fixed_point_residual(C_ASYM, xs, np.array([1.5])).max() < 1e-12


def test_surrogate_hessian_is_congruent_to_hessian_behind(asym_crit):
    """Proposition 3b.1: ∇²f^SAM(x*) = Bᵀ H_c B, by autograd through u(x)."""
    left = next(p for t, p, _ in asym_crit if t == "min" and p[0] < 0)
    for rho in (1.0, 1.5):
        for x in AT.hallucinated_on_circle(C_ASYM, left, rho):
            an = AT.point_analysis(C_ASYM[None], x[None], left[None], np.array([rho]))
            la = AT.local_analysis(ASYMMETRIC, x, rho, 0.05)
            assert np.allclose(la.surrogate_eigs, an["surrogate_eigs"][0], rtol=1e-8)
            assert la.surrogate_min  # behind a minimizer: a strict local minimizer of f_SAM
            # det A = det H_c (1 − ρκ)
            detA = np.prod(an["mu"][0]).real
            assert detA == pytest.approx(np.linalg.det(AT.q_hess(C_ASYM, left)) * (1 - an["rho_kappa"][0]),
                                         rel=1e-8)


def test_birth_labels_and_the_mismatch(asym_crit):
    crit = np.array([p for _, p, _ in asym_crit])
    types = [t for t, _, _ in asym_crit]
    left = next(p for t, p, _ in asym_crit if t == "min" and p[0] < 0)
    x_max = AT.hallucinated_on_circle(C_ASYM, left, 1.0)   # only the maximizer-born point exists here
    x_sad = AT.hallucinated_on_circle(C_ASYM, left, 1.5)   # only the saddle-born one
    x = np.concatenate([x_max, x_sad])
    n = len(x)
    lab, rb = AT.birth_labels(np.repeat(C_ASYM[None], n, 0), x, np.repeat(left[None], n, 0), [crit], [types],
                              np.zeros(n, int))
    assert [AT.BIRTH_TYPES[k] for k in lab] == ["max", "saddle"]
    d_max = np.linalg.norm(left - next(p for t, p, _ in asym_crit if t == "max"))
    assert rb[0] == pytest.approx(d_max, abs=1e-12)
    an = AT.point_analysis(np.repeat(C_ASYM[None], n, 0), x, np.repeat(left[None], n, 0), np.array([1.0, 1.5]))
    assert an["rho_kappa"][0] > 1 and an["rho_kappa"][1] < 1
    assert AT.eta_max_sam(an["mu"])[0] == 0 and AT.eta_max_sam(an["mu"])[1] > 0.1
    # GD on f_SAM converges to the maximizer-born point, SAM at the same eta leaves it
    x0 = x[:1] + 1e-3 * np.array([[0.6, 0.8]])
    eta = np.array([0.02])
    gd = AT.surrogate_gd_quartic(C_ASYM[None], x0, np.array([1.0]), eta, 3000)
    sm = AT.sam_runs_quartic(C_ASYM[None], x0, np.array([1.0]), eta, 3000)
    assert np.linalg.norm(gd - x[:1]) < 1e-10
    assert not np.linalg.norm(sm - x[:1]) < 1e-2


def test_surrogate_gradient_closed_form_matches_autograd():
    x = torch.tensor([[0.41, -0.23], [0.2, 0.6]], dtype=DTYPE)
    g_auto = sam.sam_objective_grad(ASYMMETRIC.f, x, 1.3).numpy()
    g_cf = AT.surrogate_grad_quartic(np.repeat(C_ASYM[None], 2, 0), x.numpy(), np.array([1.3, 1.3]))
    assert np.allclose(g_auto, g_cf, atol=1e-10)
    # torch GD on the surrogate and the numpy one agree
    a = AT.surrogate_gd(ASYMMETRIC, x, 1.3, 0.01, 20).numpy()
    b = AT.surrogate_gd_quartic(np.repeat(C_ASYM[None], 2, 0), x.numpy(), np.array([1.3, 1.3]),
                                np.array([0.01, 0.01]), 20)
    assert np.allclose(a, b, atol=1e-10)


def test_random_quartics_have_one_min_one_max_one_saddle():
    C, cps, drawn = AT.random_quartics(2, seed=3, batch=40)
    assert C.shape == (2, 15) and drawn >= 2
    for c, cp in zip(C, cps, strict=True):
        assert sorted(t for t, _, _ in cp) == ["max", "min", "saddle"]
        for _, p, _ in cp:
            assert np.linalg.norm(AT.q_grad(c, p)) < 1e-9


def test_wilson_interval():
    lo, hi = AT.wilson_interval(0, 306)
    assert lo == 0 and hi == pytest.approx(0.0124, abs=2e-4)
    lo, hi = AT.wilson_interval(15, 19)
    assert lo < 15 / 19 < hi and 0.5 < lo and hi < 0.95
    assert all(np.isnan(AT.wilson_interval(0, 0)))
