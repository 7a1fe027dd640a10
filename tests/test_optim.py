"""Tests for the PyTorch SAM optimizer (sam_hallucination.optim)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sam_hallucination.optim import (
    SAM,
    disable_running_stats,
    enable_running_stats,
    frozen_bn_stats,
    global_norm,
)

torch.set_num_threads(1)


def mlp(dtype: torch.dtype = torch.float32, seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(4, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers).to(dtype)


def data(n_batches: int = 8, dtype: torch.dtype = torch.float32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 4, generator=g, dtype=dtype), torch.randint(0, 3, (16,), generator=g))
            for _ in range(n_batches)]


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y)


def sam_train(model, opt, batches, bn_freeze=False, calls=None):
    """davda54-style loop; returns the list of closure call counts per step."""
    for x, y in batches:
        loss_fn(model, x, y).backward()
        n = [0]

        def closure(x=x, y=y, n=n):
            n[0] += 1
            if bn_freeze:
                with frozen_bn_stats(model):
                    loss = loss_fn(model, x, y)
            else:
                loss = loss_fn(model, x, y)
            loss.backward()
            return loss

        opt.step(closure)
        opt.zero_grad()
        if calls is not None:
            calls.append(n[0])


def plain_train(model, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        opt.step()


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


BASES = [
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
    (torch.optim.AdamW, dict(lr=1e-2, weight_decay=1e-2)),
]


@pytest.mark.parametrize("base,kw", BASES)
def test_rho_zero_is_bit_identical_to_base(base, kw):
    batches = data(5)
    m1, m2 = mlp(), mlp()
    plain_train(m1, base(m1.parameters(), **kw), batches)
    sam_train(m2, SAM(m2.parameters(), base, rho=0.0, **kw), batches)
    assert params_equal(m1, m2)
    m3 = mlp()  # rho > 0 really changes the trajectory (the test can fail)
    sam_train(m3, SAM(m3.parameters(), base, rho=0.1, **kw), batches)
    assert not params_equal(m1, m3)


def test_perturbation_norm_is_rho_with_one_global_norm():
    model = mlp()
    groups = [{"params": model[0].parameters(), "lr": 0.1},
              {"params": model[2].parameters(), "lr": 0.01}]
    opt = SAM(groups, torch.optim.SGD, rho=0.07, lr=0.1)
    x, y = data(1)[0]
    loss_fn(model, x, y).backward()
    w0 = [p.detach().clone() for p in model.parameters()]
    g = [p.grad.clone() for p in model.parameters()]
    opt.first_step()
    e = [p.detach() - w for p, w in zip(model.parameters(), w0, strict=True)]
    assert float(global_norm(e)) == pytest.approx(0.07, rel=1e-6)
    gn = torch.linalg.vector_norm(torch.cat([gi.flatten() for gi in g]))
    for ei, gi in zip(e, g, strict=True):  # direction g/‖g‖ with the global norm, not per group
        torch.testing.assert_close(ei, 0.07 * gi / gn, rtol=1e-5, atol=1e-8)
    opt.second_step()


def test_per_group_rho():
    model = mlp(torch.float64)
    groups = [{"params": model[0].parameters(), "rho": 0.1}, {"params": model[2].parameters()}]
    opt = SAM(groups, torch.optim.SGD, rho=0.3, lr=0.1)
    assert opt.group_rhos() == [0.1, 0.3]
    x, y = data(1, torch.float64)[0]
    loss_fn(model, x, y).backward()
    g = [p.grad.clone() for p in model.parameters()]
    gn = torch.linalg.vector_norm(torch.cat([gi.flatten() for gi in g]))
    w0 = [p.detach().clone() for p in model.parameters()]
    opt.first_step()
    rhos = [0.1, 0.1, 0.3, 0.3]
    for p, w, gi, r in zip(model.parameters(), w0, g, rhos, strict=True):
        torch.testing.assert_close(p.detach() - w, r * gi / gn)


@pytest.mark.parametrize("manual", [False, True])
def test_weights_restored_exactly_with_zero_lr(manual):
    model = mlp()
    w0 = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.0)
    for x, y in data(3):
        loss_fn(model, x, y).backward()
        if manual:
            opt.first_step(zero_grad=True)
            assert not all(torch.equal(p, w) for p, w in zip(model.parameters(), w0, strict=True))
            loss_fn(model, x, y).backward()
            opt.second_step(zero_grad=True)
        else:
            opt.step(lambda x=x, y=y: loss_fn(model, x, y).backward())
            opt.zero_grad()
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w0, strict=True))
    assert opt.step_count == 3


def test_matches_handwritten_two_pass_reference_float64():
    rho, lr, mu, wd = 0.05, 0.1, 0.9, 1e-2
    batches = data(4, torch.float64)
    model = mlp(torch.float64)
    ref = [p.detach().clone() for p in model.parameters()]
    ref_model = copy.deepcopy(model)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr, momentum=mu, weight_decay=wd)
    sam_train(model, opt, batches)

    bufs = None
    for x, y in batches:  # the reference: explicit two passes + SGD with momentum
        def grads_at(ws, x=x, y=y):
            with torch.no_grad():
                for p, w in zip(ref_model.parameters(), ws, strict=True):
                    p.copy_(w)
            return torch.autograd.grad(loss_fn(ref_model, x, y), list(ref_model.parameters()))

        g = grads_at(ref)
        gn = torch.sqrt(sum((gi**2).sum() for gi in g))
        h = grads_at([w + rho * gi / gn for w, gi in zip(ref, g, strict=True)])
        d = [hi + wd * w for hi, w in zip(h, ref, strict=True)]
        bufs = d if bufs is None else [mu * b + di for b, di in zip(bufs, d, strict=True)]
        ref = [w - lr * b for w, b in zip(ref, bufs, strict=True)]
    for p, w in zip(model.parameters(), ref, strict=True):
        torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-14)


def test_zero_gradient_gives_no_nan():
    model = mlp()
    w0 = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    x, _ = data(1)[0]
    for _ in range(2):
        (model(x) * 0).sum().backward()
        opt.step(lambda: (model(x) * 0).sum().backward())
        opt.zero_grad()
    assert float(opt.last_grad_norm) == 0.0
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w0, strict=True))


@pytest.mark.parametrize("freeze", [True, False])
def test_batchnorm_stats_update_once_per_sam_step(freeze):
    model = mlp(bn=True)
    bn = model[1]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    for x, y in data(3):
        expected = copy.deepcopy(model)
        expected(x)  # one forward at the unperturbed weights
        sam_train(model, opt, [(x, y)], bn_freeze=freeze)
        same = torch.equal(bn.running_mean, expected[1].running_mean) and torch.equal(
            bn.running_var, expected[1].running_var)
        assert same == freeze
    assert int(bn.num_batches_tracked) == (3 if freeze else 6)
    assert bn.track_running_stats  # restored


def test_disable_enable_running_stats_restores_flags():
    model = mlp(bn=True)
    model[1].track_running_stats = True
    disable_running_stats(model)
    assert not model[1].track_running_stats
    stats = model[1].running_mean.clone()
    model(torch.randn(5, 4))
    assert torch.equal(model[1].running_mean, stats)
    enable_running_stats(model)
    assert model[1].track_running_stats


@pytest.mark.parametrize("switch_at,total,k", [(3, None, 3), (3, 8, 3), (0.3, 10, 3), (0.0, 5, 0)])
def test_switch_happens_at_exactly_step_k(switch_at, total, k):
    n = 8 if total is None else total
    batches = data(n)
    model, plain = mlp(), mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9,
              switch_at=switch_at, total_steps=total)
    assert opt.switch_step == k
    popt = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    calls, active, pnorm = [], [], []
    for t, (x, y) in enumerate(batches):
        active.append(opt.sam_active)
        sam_train(model, opt, [(x, y)], calls=calls)
        pnorm.append(opt.last_perturbed_grad_norm)
        if t < k:
            plain_train(plain, popt, [(x, y)])
            assert params_equal(model, plain)  # base steps only before the switch
    assert calls == [0] * k + [1] * (n - k)
    assert active == [False] * k + [True] * (n - k)
    assert all(p is None for p in pnorm[:k]) and all(p is not None for p in pnorm[k:])
    assert opt.step_count == n


def test_linear_schedule_reaches_zero_at_last_step():
    rho, T, k = 0.2, 6, 2
    model = mlp(torch.float64)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=0.1, switch_at=k, total_steps=T,
              rho_schedule="linear")
    seen, pert = [], []
    for x, y in data(T, torch.float64):
        seen.append(opt.current_rho)
        w0 = [p.detach().clone() for p in model.parameters()]
        loss_fn(model, x, y).backward()

        def closure(x=x, y=y, w0=w0):
            pert.append(float(global_norm([p.detach() - w for p, w in zip(model.parameters(), w0, strict=True)])))
            loss_fn(model, x, y).backward()

        opt.step(closure)
        opt.zero_grad()
    expected = [0.0, 0.0] + [rho * (T - 1 - t) / (T - 1 - k) for t in range(k, T)]
    assert seen == pytest.approx(expected, abs=1e-15)
    assert seen[k] == rho and seen[-1] == 0.0
    assert pert == pytest.approx(expected[k:], rel=1e-9, abs=0.0)
    assert pert[-1] == 0.0


def test_checkpoint_resume_gives_identical_steps():
    batches = data(8)
    kw = dict(rho=0.1, lr=0.1, momentum=0.9, weight_decay=1e-3, switch_at=2, total_steps=8,
              rho_schedule="linear")
    model = mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, **kw)
    sam_train(model, opt, batches[:3])
    ckpt_model = copy.deepcopy(model.state_dict())
    ckpt_opt = copy.deepcopy(opt.state_dict())
    sam_train(model, opt, batches[3:])

    resumed = mlp(seed=123)  # different init: everything must come from the checkpoint
    ropt = SAM(resumed.parameters(), torch.optim.SGD, rho=0.5, lr=1.0, momentum=0.9)
    resumed.load_state_dict(ckpt_model)
    ropt.load_state_dict(ckpt_opt)
    assert ropt.step_count == 3 and ropt.current_rho == pytest.approx(0.1 * 4 / 5)
    sam_train(resumed, ropt, batches[3:])
    assert params_equal(model, resumed)
    assert ropt.step_count == 8 and ropt.current_rho == 0.0


def test_usam_perturbation_is_rho_times_gradient():
    model = mlp(torch.float64)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.3, variant="usam", lr=0.1)
    x, y = data(1, torch.float64)[0]
    loss_fn(model, x, y).backward()
    w0 = [p.detach().clone() for p in model.parameters()]
    g = [p.grad.clone() for p in model.parameters()]
    opt.first_step()
    for p, w, gi in zip(model.parameters(), w0, g, strict=True):
        torch.testing.assert_close(p.detach() - w, 0.3 * gi)


def test_asam_perturbation_scales_by_weight():
    model = mlp(torch.float64)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.3, adaptive=True, lr=0.1)
    x, y = data(1, torch.float64)[0]
    loss_fn(model, x, y).backward()
    w0 = [p.detach().clone() for p in model.parameters()]
    g = [p.grad.clone() for p in model.parameters()]
    opt.first_step()
    tn = torch.sqrt(sum(((w * gi) ** 2).sum() for w, gi in zip(w0, g, strict=True)))
    for p, w, gi in zip(model.parameters(), w0, g, strict=True):
        torch.testing.assert_close(p.detach() - w, 0.3 * w * w * gi / tn)
    opt.second_step()
    assert all(not torch.equal(p, w) for p, w in zip(model.parameters(), w0, strict=True))


def test_step_contract_and_norms():
    model = mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    x, y = data(1)[0]
    loss_fn(model, x, y).backward()
    with pytest.raises(TypeError, match="closure"):
        opt.step()
    gn = global_norm([p.grad for p in model.parameters()])
    w0 = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="backward"):  # a closure without backward()
        opt.step(lambda: loss_fn(model, x, y))
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w0, strict=True))
    loss_fn(model, x, y).backward()

    def closure():
        loss = loss_fn(model, x, y)
        loss.backward()
        return loss

    out = opt.step(closure)  # the closure's value is returned
    assert isinstance(out, torch.Tensor)
    assert opt.last_grad_norm.dtype == torch.float32 and opt.last_grad_norm.ndim == 0
    assert torch.equal(opt.last_grad_norm, gn)
    with pytest.raises(RuntimeError, match="second_step"):
        opt.second_step()


def test_bf16_autocast_step():
    model = mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    x, y = data(1)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_fn(model, x, y).backward()

        def closure():
            loss_fn(model, x, y).backward()

        opt.step(closure)
    assert opt.last_grad_norm.dtype == torch.float32
    assert opt.last_perturbed_grad_norm.dtype == torch.float32
    assert torch.isfinite(opt.last_perturbed_grad_norm)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bf16_parameters_norm_in_fp32():
    model = mlp(torch.bfloat16)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    x, y = data(1, torch.bfloat16)[0]
    loss_fn(model, x, y).backward()
    opt.step(lambda: loss_fn(model, x, y).backward())
    assert opt.last_grad_norm.dtype == torch.float32


def test_grad_scaler_is_rejected():
    model = mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    x, y = data(1)[0]
    scaler.scale(loss_fn(model, x, y)).backward()
    with pytest.raises(TypeError, match="GradScaler"):
        scaler.step(opt)


def test_add_param_group_is_shared_with_base():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    opt = SAM(a.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    opt.add_param_group({"params": b.parameters(), "rho": 0.2})
    assert opt.param_groups is opt.base_optimizer.param_groups
    assert opt.group_rhos() == [0.1, 0.2]


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(rho=-0.1), ValueError, "rho"),
        (dict(rho=float("nan")), ValueError, "rho"),
        (dict(rho=float("inf")), ValueError, "rho"),
        (dict(rho="0.1"), TypeError, "rho"),
        (dict(base_optimizer_cls=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1)),
         TypeError, "base_optimizer_cls"),
        (dict(base_optimizer_cls=dict), TypeError, "base_optimizer_cls"),
        (dict(params=[]), ValueError, "params"),
        (dict(switch_at=-1), ValueError, "switch_at"),
        (dict(switch_at=10, total_steps=10), ValueError, "switch_at"),
        (dict(switch_at=1.0, total_steps=10), ValueError, "switch_at"),
        (dict(switch_at=-0.1, total_steps=10), ValueError, "switch_at"),
        (dict(switch_at=0.99, total_steps=10), ValueError, "switch_at"),
        (dict(switch_at=0.1), ValueError, "total_steps"),
        (dict(switch_at="5"), TypeError, "switch_at"),
        (dict(switch_at=True), TypeError, "switch_at"),
        (dict(total_steps=0), ValueError, "total_steps"),
        (dict(variant="asam"), ValueError, "variant"),
        (dict(rho_schedule="cosine"), ValueError, "rho_schedule"),
        (dict(rho_schedule="linear"), ValueError, "total_steps"),
        (dict(params=[{"params": [torch.zeros(1, requires_grad=True)], "rho": -1.0}]),
         ValueError, "rho"),
    ],
)
def test_bad_inputs_raise(kwargs, exc, match):
    args = dict(params=nn.Linear(2, 2).parameters(), base_optimizer_cls=torch.optim.SGD, lr=0.1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        SAM(args.pop("params"), args.pop("base_optimizer_cls"), **args)


def test_first_step_before_switch_raises():
    model = mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, lr=0.1, switch_at=2)
    x, y = data(1)[0]
    loss_fn(model, x, y).backward()
    with pytest.raises(RuntimeError, match="base_step"):
        opt.first_step()


def test_lr_scheduler_drives_the_shared_param_groups():
    model = mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for x, y in data(2):
        loss_fn(model, x, y).backward()
        opt.step(lambda x=x, y=y: loss_fn(model, x, y).backward())
        opt.zero_grad()
        sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert opt.param_groups[0]["rho"] == 0.1


def test_frozen_bn_stats_restores_on_error():
    model = mlp(bn=True)
    with pytest.raises(RuntimeError, match="boom"), frozen_bn_stats(model):
        assert not model[1].track_running_stats
        raise RuntimeError("boom")
    assert model[1].track_running_stats


@pytest.mark.parametrize("variant,adaptive", [("sam", False), ("sam", True), ("usam", False)])
def test_first_step_moves_by_the_one_perturbation(variant, adaptive):
    """SAM.first_step and optim.perturbation compute the same e, bit for bit."""
    from sam_hallucination.optim import perturbation

    torch.manual_seed(3)
    model = nn.Linear(5, 3)
    model(torch.randn(4, 5)).pow(2).sum().backward()
    params = list(model.parameters())
    w0 = [p.detach().clone() for p in params]
    e = perturbation([p.detach() for p in params], [p.grad for p in params], 0.3,
                     variant=variant, adaptive=adaptive)
    opt = SAM(params, torch.optim.SGD, rho=0.3, lr=0.1, variant=variant, adaptive=adaptive)
    opt.first_step()
    for p, w, d in zip(params, w0, e, strict=True):
        assert torch.equal(p.detach(), w + d)
