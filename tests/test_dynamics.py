"""Dynamics: engine, hallucination solver, SAM-map Jacobian, classifier, input checks."""

import math

import numpy as np
import pytest
import torch

from sam_hallucination.rd import dynamics as D
from sam_hallucination.rd import sam
from sam_hallucination.rd.landscapes import ASYMMETRIC, DOUBLE_WELL, DTYPE, RING

E = D.EndState


# ---------------------------------------------------------------- solver

@pytest.mark.parametrize("rho", [1.1, 1.5, 1.9])
def test_solver_finds_ring_radius(rho):
    s = D.solve_hallucinated(RING, [0.3, 0.25], rho)
    assert s.converged and s.message == "ok"
    r = float(s.x.norm())
    assert abs(r - (rho - 1)) < 1e-10
    assert s.residual <= 1e-12
    assert s.grad_norm == pytest.approx(4 * r * abs(r * r - 1), rel=1e-10)
    assert abs(float(s.x_plus.norm()) - 1) < 1e-10  # x⁺ on the minimizer circle


def test_solver_double_well_closed_form():
    s = D.solve_hallucinated(DOUBLE_WELL, [-0.3], 1.4)
    assert s.converged and float(s.x) == pytest.approx(-0.4, abs=1e-12)


def test_solver_reports_non_convergence():
    # rho = 2.5: no hallucinated point inside the ring; the solve must say so
    s = D.solve_hallucinated(RING, [0.3, 0.2], 2.5)
    assert not s.converged and s.message != "ok"
    assert s.residual > 1e-3
    with pytest.raises(D.HallucinationSolveError, match="residual"):
        D.solve_hallucinated(RING, [0.3, 0.2], 2.5, strict=True)
    # an iteration budget too small is also reported, never a silent wrong point
    s = D.solve_hallucinated(ASYMMETRIC, [0.2, 0.6], 1.5, max_iter=1)
    assert not s.converged and s.residual > 1e-12


def test_solver_asymmetric_isolated_point_is_attracting():
    s = D.solve_hallucinated(ASYMMETRIC, [0.55, 0.2], 1.5, strict=True)
    assert s.grad_norm > 1.0
    J = D.sam_map_jacobian(ASYMMETRIC, s.x, 1.5, 0.2)
    assert D.spectral_radius(J) < 0.8
    x_min_left = torch.tensor([-0.94992821, 0.28775891], dtype=DTYPE)
    assert torch.linalg.vector_norm(s.x_plus - x_min_left) < 1e-7


# ---------------------------------------------------------------- Jacobian

def test_jacobian_matches_finite_differences_and_formula():
    x = torch.tensor([0.41, -0.23], dtype=DTYPE)
    J = D.sam_map_jacobian(ASYMMETRIC, x, 1.3, 0.2)
    h = 1e-6
    fd = torch.stack([(D.sam_map(ASYMMETRIC, x + h * e, 1.3, 0.2)
                       - D.sam_map(ASYMMETRIC, x - h * e, 1.3, 0.2)) / (2 * h)
                      for e in torch.eye(2, dtype=DTYPE)], -1)
    torch.testing.assert_close(J, fd, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(J, D.sam_map_jacobian_formula(ASYMMETRIC, x, 1.3, 0.2))


@pytest.mark.parametrize("eta", [0.05, 0.2, 0.3])
def test_ring_jacobian_eigenvalues(eta):
    # at the hallucinated circle: radial 1 − 8η, tangential exactly 1 (a circle of fixed points)
    rho, th = 1.5, 0.7
    x = (rho - 1) * torch.tensor([math.cos(th), math.sin(th)], dtype=DTYPE)
    J = D.sam_map_jacobian(RING, x, rho, eta)
    radial = x / x.norm()
    tangential = torch.tensor([-math.sin(th), math.cos(th)], dtype=DTYPE)
    torch.testing.assert_close(J @ radial, (1 - 8 * eta) * radial)
    torch.testing.assert_close(J @ tangential, tangential)


def test_batched_jacobian_shape():
    x = torch.tensor([[0.3, 0.1], [0.2, -0.4]], dtype=DTYPE)
    assert D.sam_map_jacobian(RING, x, 1.5, 0.1).shape == (2, 2, 2)
    assert D.spectral_radius(D.sam_map_jacobian(RING, x, 1.5, 0.1)).shape == (2,)


# ---------------------------------------------------------------- engine

@pytest.mark.parametrize("ls", [RING, ASYMMETRIC], ids=lambda l: l.name)
@pytest.mark.parametrize("method", ["sam", "usam", "gd"])
def test_engine_matches_sam_module(ls, method):
    x0 = D.disk_starts(7, 0.9, seed=3)
    got = D.iterate(ls, x0, rho=0.7, eta=0.05, steps=25, method=method, early_stop=False).x
    ref = sam.run(ls.f, x0, 0.7, 0.05, 25, variant=method)[-1]
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-10)


def test_engine_per_point_parameters_and_early_stop():
    x0 = torch.tensor([[0.3, 0.1], [0.3, 0.1]], dtype=DTYPE)
    res = D.iterate(RING, x0, rho=torch.tensor([1.5, 1.2]), eta=torch.tensor([0.1, 0.05]),
                    steps=2000)
    torch.testing.assert_close(res.x.norm(dim=-1), torch.tensor([0.5, 0.2], dtype=DTYPE))
    assert (res.steps < 2000).all()  # frozen once converged
    one = D.iterate(RING, x0[:1], rho=1.2, eta=0.05, steps=int(res.steps[1]), early_stop=False)
    torch.testing.assert_close(one.x[0], res.x[1])


def test_engine_history_and_noise_reproducible():
    x0 = D.disk_starts(5, 0.8, seed=0)
    a = D.iterate(RING, x0, rho=1.5, eta=0.1, steps=20, noise=0.1, seed=4, record_every=5)
    b = D.iterate(RING, x0, rho=1.5, eta=0.1, steps=20, noise=0.1, seed=4, record_every=5)
    assert a.history.shape == (5, 5, 2)
    torch.testing.assert_close(a.x, b.x)
    c = D.iterate(RING, x0, rho=1.5, eta=0.1, steps=20, noise=0.0, record_every=5)
    assert not torch.allclose(a.x, c.x)


def test_ring_radial_map_matches_engine():
    r0 = 0.8
    x = D.iterate(RING, [r0, 0.0], rho=1.5, eta=0.1, steps=1, early_stop=False).x
    assert float(x[0, 0]) == pytest.approx(D.ring_radial_map(r0, 1.5, 0.1), abs=1e-14)


# ---------------------------------------------------------------- classifier

def test_classifier_each_class():
    pts = torch.tensor([
        [0.6, 0.8],        # on the unit circle: true minimizer
        [0.0, 0.0],        # the maximizer
        [0.3, 0.4],        # r = 0.5 = rho - 1: hallucinated
        [1e7, 0.0],        # diverged
        [0.1, 0.2],        # moving
    ], dtype=DTYPE)
    got = D.classify(RING, pts, rho=1.5).tolist()
    assert got == [E.MINIMIZER, E.STATIONARY_NON_MIN, E.HALLUCINATED, E.DIVERGED, E.NOT_CONVERGED]
    assert D.classify(RING, [[float("nan"), 0.0]], rho=1.5).tolist() == [E.DIVERGED]
    # GD: the hallucinated circle is not a fixed point of GD
    assert D.classify(RING, pts[2:3], method="gd").tolist() == [E.NOT_CONVERGED]
    # the asymmetric function's saddle is a stationary non-minimum
    x, _ = D.refine_critical_point(ASYMMETRIC, [-0.163, -0.6527])
    assert D.classify(ASYMMETRIC, x, rho=1.0).tolist() == [E.STATIONARY_NON_MIN]


def test_phase_diagram_small():
    pd = D.phase_diagram(RING, np.array([0.5, 1.5, 2.5]), np.array([0.1, 0.3]),
                         n_starts=4, steps=400, start_radius=0.9)
    frac = pd.fraction(E.HALLUCINATED)
    assert frac[1, 0] == 1.0 and frac[1, 1] == 0.0
    assert frac[0].max() == 0.0 and frac[2].max() == 0.0
    assert pd.counts.sum() == 3 * 2 * 4
    edges = D.hallucination_edges(pd)
    assert edges["rho_low"][0] == pytest.approx(1.0) and edges["rho_high"][0] == pytest.approx(2.0)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kw,name", [({"rho": 0.0}, "rho"), ({"rho": -1.0}, "rho"),
                                     ({"eta": 0.0}, "eta"), ({"eta": -0.1}, "eta"),
                                     ({"eta": float("inf")}, "eta"), ({"noise": -1.0}, "noise")])
def test_iterate_rejects_bad_parameters(kw, name):
    args = {"rho": 1.5, "eta": 0.1} | kw
    with pytest.raises(ValueError, match=name):
        D.iterate(RING, [[0.3, 0.1]], steps=3, **args)


def test_bad_start_and_options():
    with pytest.raises(ValueError, match="x0"):
        D.iterate(RING, [[float("nan"), 0.1]], rho=1.5, eta=0.1, steps=3)
    with pytest.raises(ValueError, match="x0"):
        D.iterate(RING, [[0.1, 0.2, 0.3]], rho=1.5, eta=0.1, steps=3)
    with pytest.raises(ValueError, match="method"):
        D.iterate(RING, [[0.1, 0.2]], rho=1.5, eta=0.1, steps=3, method="adam")
    with pytest.raises(ValueError, match="rho"):
        D.solve_hallucinated(RING, [0.3, 0.2], 0.0)
    with pytest.raises(ValueError, match="x0"):
        D.solve_hallucinated(RING, [float("inf"), 0.2], 1.5)
    with pytest.raises(ValueError, match="eta"):
        D.sam_map_jacobian(RING, [0.3, 0.2], 1.5, -1.0)
