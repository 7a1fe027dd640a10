"""netfixed: the fixed-point residual, its dense Jacobian, and the all-dead hallucinated points."""

import math

import torch

from sam_hallucination.runs import netfixed as nf
from sam_hallucination.runs.fullbatch import Problem


def tiny_net(hidden: int = 3) -> nf.SmallNet:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.arange(12) % 3
    prob = Problem(x, y, x, y, 4, 3, "tiny")
    return nf.SmallNet(nf.NetFixedConfig(n_train=12, hidden=hidden), problem=prob)


def test_jacobian_matches_finite_differences():
    net = tiny_net()
    w = net.w0.clone()
    J = net.DG(w, 0.3)
    v = torch.randn(len(w), generator=torch.Generator().manual_seed(1), dtype=w.dtype)
    v = v / v.norm()
    h = 1e-6
    fd = (net.G(w + h * v, 0.3) - net.G(w - h * v, 0.3)) / (2 * h)
    assert float((fd - J @ v).norm() / fd.norm()) < 1e-6


def test_all_dead_network_gradient_lives_in_the_output_bias():
    """The proposition of chapter 4's last section: with every hidden unit off, ∇L is zero except
    in b2, where it is softmax(b2) − ȳ; so ∇L = 0 iff b2 is constant (balanced classes)."""
    net = tiny_net()
    names = list(net.net.unflatten(net.w0))
    w = net.w0.clone()
    parts = dict(zip(names, torch.split(w, net.net.sizes), strict=True))
    parts[names[1]].fill_(-50.0)        # b1 = -50: every unit off on every input
    parts[names[3]].copy_(torch.tensor([0.3, -0.2, 0.5], dtype=w.dtype))
    assert net.dead_units_plus(w, 1e-9) == 3
    g = net.grad(w)
    b2 = parts[names[3]]
    assert g[:-3].abs().max() == 0
    assert torch.allclose(g[-3:], torch.softmax(b2, 0) - 1 / 3, atol=1e-15)
    parts[names[3]].fill_(0.7)
    assert net.grad(w).norm() < 1e-15
    assert abs(float(net.loss(w)) - math.log(3)) < 1e-14
    assert torch.linalg.matrix_rank(net.hess(w)) == 2


def test_levenberg_marquardt_reduces_the_residual():
    net = tiny_net()
    w0 = net.w0.clone()
    w, hist = nf.levenberg_marquardt(net, w0, 0.3, iters=5)
    assert hist[-1]["residual"] <= hist[0]["residual"]
    assert all(h2["residual"] <= h1["residual"] for h1, h2 in zip(hist, hist[1:], strict=False))
