"""Landscapes: closed-form gradients against autograd, and the documented critical points."""

import pytest
import torch

from sam_hallucination.rd.dynamics import refine_critical_point
from sam_hallucination.rd.landscapes import (
    ASYMMETRIC,
    ASYMMETRIC_CRITICAL_POINTS,
    DOUBLE_WELL,
    DTYPE,
    LANDSCAPES,
    RING,
    as_tensor,
    grad,
)


@pytest.mark.parametrize("ls", [RING, DOUBLE_WELL, ASYMMETRIC], ids=lambda l: l.name)
def test_closed_form_gradient_matches_autograd(ls):
    x = torch.randn(50, ls.dim, generator=torch.Generator().manual_seed(1), dtype=DTYPE) * 1.5
    torch.testing.assert_close(ls.grad(x), grad(ls.f, x), rtol=1e-12, atol=1e-12)


def test_ring_and_double_well_values():
    assert float(RING(torch.tensor([0.6, 0.8], dtype=DTYPE))) == pytest.approx(0.0, abs=1e-15)
    assert float(RING(torch.zeros(2, dtype=DTYPE))) == 1.0
    assert float(DOUBLE_WELL(torch.tensor([2.0], dtype=DTYPE))) == 9.0


def test_asymmetric_critical_points_documented():
    kinds = []
    for label, c in ASYMMETRIC_CRITICAL_POINTS:
        x, ev = refine_critical_point(ASYMMETRIC, c)
        assert torch.linalg.vector_norm(ASYMMETRIC.grad(x)) < 1e-12
        assert torch.linalg.vector_norm(x - torch.tensor(c, dtype=DTYPE)) < 1e-7, label
        kind = "min" if ev.min() > 0 else ("max" if ev.max() < 0 else "saddle")
        assert kind in label
        kinds.append(kind)
    assert sorted(kinds) == ["max", "min", "min", "saddle", "saddle"]


def test_asymmetric_has_no_symmetry():
    x = torch.tensor([0.4, 0.3], dtype=DTYPE)
    f0 = float(ASYMMETRIC(x))
    for img in ([-0.4, 0.3], [0.4, -0.3], [-0.4, -0.3], [0.3, 0.4]):
        assert abs(float(ASYMMETRIC(torch.tensor(img, dtype=DTYPE))) - f0) > 1e-3


def test_registry_and_as_tensor():
    assert set(LANDSCAPES) == {"ring", "double-well", "asymmetric"}
    with pytest.raises(ValueError, match="x"):
        as_tensor([float("nan"), 0.0])
