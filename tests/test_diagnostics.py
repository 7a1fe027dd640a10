"""Tests for sam_hallucination.diagnostics.stall_diagnostics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sam_hallucination.diagnostics import StallDiagnostics, stall_diagnostics

torch.set_num_threads(1)
F = nn.functional


def bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(8, 3))


def batches(n: int = 4, dtype=torch.float32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(10, 4, generator=g, dtype=dtype), torch.randint(0, 3, (10,), generator=g))
            for _ in range(n)]


@pytest.mark.parametrize("train_mode", [False, True])
@pytest.mark.parametrize("variant,adaptive", [("sam", False), ("usam", False), ("sam", True)])
def test_model_left_untouched(train_mode, variant, adaptive):
    model = bn_net()
    model(torch.randn(10, 4))  # non-trivial running stats
    model[3].eval()  # mixed modes must be restored module by module
    params = [p.detach().clone() for p in model.parameters()]
    bufs = [b.clone() for b in model.buffers()]
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    d = stall_diagnostics(model, F.cross_entropy, batches(), rho=0.1, weight_decay=1e-3,
                          variant=variant, adaptive=adaptive, bootstrap=10, train_mode=train_mode)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params, strict=True))
    assert all(torch.equal(b, c) for b, c in zip(model.buffers(), bufs, strict=True))
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert model[1].track_running_stats
    assert d.n_batches == 4 and d.loss_perturbed > d.loss
    assert all(math.isfinite(v) for v in (d.grad_norm, d.sam_step_norm, d.grad_se, d.sam_step_se))


def direct(model, data, rho, lam, variant="sam"):
    """Hand computation of every quantity with explicit per-batch loops (float64)."""
    ps = list(model.parameters())
    w = torch.cat([p.detach().flatten() for p in ps])

    def f_and_grad(wv, x, y):
        wv = wv.clone().requires_grad_(True)
        out = x @ wv[:8].view(2, 4).T + wv[8:]
        loss = F.cross_entropy(out, y)
        (g,) = torch.autograd.grad(loss, wv)
        return float(loss.detach()), g

    fs, fps, gs, hs = [], [], [], []
    for x, y in data:
        f, g = f_and_grad(w, x, y)
        u = g / g.norm() if variant == "sam" else g
        fp, h = f_and_grad(w + rho * u, x, y)
        fs.append(f), fps.append(fp), gs.append(g), hs.append(h)
    G, H = torch.stack(gs), torch.stack(hs)
    n = len(data)
    se = lambda V: math.sqrt(float(V.var(0, unbiased=True).sum()) / n)
    return dict(
        loss=sum(fs) / n, loss_perturbed=sum(fps) / n,
        loss_se=float(torch.tensor(fs, dtype=torch.float64).std()) / math.sqrt(n),
        grad_norm=float((G.mean(0) + lam * w).norm()),
        sam_step_norm=float((H.mean(0) + lam * w).norm()),
        grad_se=se(G), sam_step_se=se(H),
    ), G, H, w


@pytest.mark.parametrize("variant", ["sam", "usam"])
def test_numbers_match_direct_computation(variant):
    torch.manual_seed(3)
    model = nn.Linear(4, 2).double()
    data = batches(5, torch.float64)
    data = [(x, y % 2) for x, y in data]
    rho, lam = 0.2, 0.05
    d = stall_diagnostics(model, F.cross_entropy, data, rho=rho, weight_decay=lam,
                          variant=variant, bootstrap=50, seed=7)
    ref, G, H, w = direct(model, data, rho, lam, variant)
    for key, val in ref.items():
        assert getattr(d, key) == pytest.approx(val, rel=1e-10), key
    assert d.ratio == pytest.approx(ref["sam_step_norm"] / ref["grad_norm"], rel=1e-10)

    # bootstrap: the same resamples, recomputed directly
    gen = torch.Generator().manual_seed(7)
    idx = torch.randint(0, 5, (50, 5), generator=gen)
    bg = torch.stack([(G[i].mean(0) + lam * w).norm() for i in idx])
    bh = torch.stack([(H[i].mean(0) + lam * w).norm() for i in idx])
    assert d.grad_norm_boot_std == pytest.approx(float(bg.std()), rel=1e-8)
    assert d.sam_step_norm_boot_std == pytest.approx(float(bh.std()), rel=1e-8)
    assert d.ratio_boot_std == pytest.approx(float((bh / bg).std()), rel=1e-8)
    assert d.as_dict()["grad_norm"] == d.grad_norm


def test_rho_zero_and_single_batch():
    model = bn_net()
    d = stall_diagnostics(model, F.cross_entropy, batches(1), rho=0.0)
    assert d.sam_step_norm == d.grad_norm and d.loss_perturbed == d.loss and d.ratio == 1.0
    assert math.isnan(d.grad_se) and d.grad_norm_boot_std is None


def test_zero_gradient_counts_and_no_nan():
    model = nn.Linear(4, 3)
    d = stall_diagnostics(model, lambda out, y: (out * 0).sum(), batches(3), rho=0.1)
    assert d.n_zero_grad == 3 and d.grad_norm == 0.0 and d.sam_step_norm == 0.0
    assert d.ratio == math.inf


def test_looks_stalled():
    base = dict(n_batches=8, rho=0.1, weight_decay=0.0, variant="sam", adaptive=False, loss=1.0,
                loss_perturbed=1.1, loss_se=0.01, loss_perturbed_se=0.01, ratio=0.0)
    stalled = StallDiagnostics(grad_norm=1.0, sam_step_norm=0.01, grad_se=0.05,
                               sam_step_se=0.05, **base)
    moving = StallDiagnostics(grad_norm=1.0, sam_step_norm=0.9, grad_se=0.05,
                              sam_step_se=0.05, **base)
    assert stalled.looks_stalled() and not moving.looks_stalled()


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(rho=-1.0), ValueError, "rho"),
        (dict(rho=float("nan")), ValueError, "rho"),
        (dict(weight_decay=-1.0), ValueError, "weight_decay"),
        (dict(variant="x"), ValueError, "variant"),
        (dict(bootstrap=-1), ValueError, "bootstrap"),
        (dict(bootstrap=1), ValueError, "bootstrap"),
        (dict(batches=[]), ValueError, "batches"),
    ],
)
def test_bad_inputs(kwargs, exc, match):
    args = dict(model=bn_net(), loss_fn=F.cross_entropy, batches=batches(2), rho=0.1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        stall_diagnostics(**args)
