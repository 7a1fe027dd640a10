"""SAM on functions of R^d: the perturbation, the surrogate gradient and the update."""

import math

import pytest
import torch

from sam_hallucination.checks import check_radius
from sam_hallucination.rd import sam
from sam_hallucination.rd.landscapes import RING


def tilted(x):
    return (x[..., 0] ** 2 + 2 * x[..., 1] ** 2 - 1) ** 2 + 0.3 * x[..., 0]


def test_perturbation_has_length_rho_and_points_uphill():
    x = torch.tensor([[0.3, -0.7], [1.2, 0.4]], dtype=torch.float64)
    xp = sam.perturbed_point(tilted, x, 0.4)
    assert torch.allclose((xp - x).norm(dim=-1), torch.full((2,), 0.4, dtype=torch.float64), rtol=1e-12)
    assert (tilted(xp) > tilted(x)).all()


def test_usam_perturbation_is_rho_times_gradient():
    x = torch.tensor([0.3, -0.7], dtype=torch.float64)
    g = RING.grad(x)
    assert torch.allclose(sam.perturbed_point(RING, x, 0.1, variant="usam"), x + 0.1 * g)


def test_chain_rule_identity_matches_autograd():
    x = torch.tensor([0.4, 0.6], dtype=torch.float64)
    auto = sam.sam_objective_grad(tilted, x, 0.5)
    formula = sam.sam_objective_grad_formula(tilted, x, 0.5)
    assert torch.allclose(auto, formula, atol=1e-12)
    # and it is not SAM's direction
    assert (auto - sam.sam_direction(tilted, x, 0.5)).norm() > 1e-3


def test_sam_step_vanishes_on_the_hallucinated_ring():
    x = torch.tensor([0.5, 0.0], dtype=torch.float64)  # r = rho - 1 with rho = 1.5
    assert sam.sam_direction(RING, x, 1.5).norm() < 1e-12
    assert math.isclose(RING.grad(x).norm().item(), 1.5, rel_tol=1e-12)


def test_zero_gradient_gives_no_perturbation_and_no_nan():
    x = torch.tensor([1.0, 0.0], dtype=torch.float64)  # a minimizer: grad = 0
    xp = sam.perturbed_point(RING, x, 0.5)
    assert torch.equal(xp, x)


def test_gd_converges_to_the_unit_circle():
    path = sam.run(RING, [0.2, 0.1], rho=1.5, lr=0.1, steps=200, variant="gd")
    assert abs(path[-1].norm().item() - 1.0) < 1e-10


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_rho_is_rejected_with_its_name(bad):
    with pytest.raises(ValueError, match="rho"):
        sam.perturbed_point(RING, torch.zeros(2, dtype=torch.float64), bad)


def test_bad_lr_and_variant_are_rejected():
    with pytest.raises(ValueError, match="lr"):
        sam.run(RING, [0.2, 0.1], rho=1.0, lr=0.0, steps=1)
    with pytest.raises(ValueError, match="variant"):
        sam.perturbed_point(RING, torch.ones(2, dtype=torch.float64), 0.1, variant="asam")
    with pytest.raises(TypeError, match="rho"):
        check_radius("big")
