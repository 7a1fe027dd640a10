"""The signal-driven switch (optim/switch_rule.py): it measures, switches, and stays SGD before."""

import math

import pytest
import torch
import torch.nn.functional as F

from sam_hallucination.optim.switch_rule import SignalSwitchSAM, progress_ratio
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.step import build_optimizer


def problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    xs = [torch.randn(16, 5) for _ in range(40)]
    ys = [torch.randint(0, 3, (16,)) for _ in range(40)]
    return model, list(zip(xs, ys, strict=True))


def run(opt_fn, steps=40, seed=0):
    model, data = problem(seed)
    opt = opt_fn(model)
    for x, y in data[:steps]:
        F.cross_entropy(model(x), y).backward()

        def closure(x=x, y=y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss
        opt.step(closure) if isinstance(opt, SignalSwitchSAM) else opt.step()
        opt.zero_grad()
    return model, opt


def make(threshold, **kw):
    return lambda m: SignalSwitchSAM(m.parameters(), torch.optim.SGD, total_steps=40, rho=0.5,
                                     lr=0.1, momentum=0.9, threshold=threshold, window=4,
                                     check_every=2, **kw)


def test_progress_ratio():
    g = [torch.tensor([1.0, 0.0]) + 0.01 * i for i in range(4)]
    assert progress_ratio(g, g) == pytest.approx(1.0)
    assert progress_ratio(g, [-x for x in g]) == pytest.approx(-1.0)
    assert progress_ratio(g, [0.5 * x for x in g]) == pytest.approx(0.5)
    assert math.isnan(progress_ratio([torch.zeros(2)] * 3, [torch.ones(2)] * 3))


def test_before_the_switch_it_is_plain_sgd_bit_for_bit():
    never = make(float("inf"), max_frac=0.9)  # cap at step 36, after the 30 run
    m1, opt = run(never, steps=30)
    m2, _ = run(lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), steps=30)
    assert not opt.sam_active and opt.switched_by is None and len(opt.history) > 5
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))


def test_the_signal_switches_it_on_and_the_cap_stops_waiting():
    _, opt = run(make(-math.inf))  # any resolved progress passes
    first_full = 2 * (4 - 1)  # checks at steps 0, 2, 4, 6 -> the 4th check is at step 6
    assert opt.history[0][0] == first_full and opt.switched_by == "signal"
    # switched after the first check with a resolved gradient (U_gg > 0); none after that
    assert all(math.isnan(p) for _, p in opt.history[:-1]) and opt.history[-1][1] > -math.inf
    assert opt.switch_step == opt.history[-1][0] + 1
    _, opt = run(make(math.inf, max_frac=0.5))
    assert opt.switched_by == "cap" and opt.switch_step == 20


def test_build_optimizer_makes_it_for_the_named_method():
    model, _ = problem()
    c = RunConfig(method="switch-signal", rho=1.0, dataset="cifar10-jpeg")
    opt = build_optimizer(c, model, 100)
    assert isinstance(opt, SignalSwitchSAM) and opt.switch_step == 70
    assert "switch-signal_rho1_s0" in c.run_id()
    with pytest.raises(ValueError, match="max_frac"):
        SignalSwitchSAM(model.parameters(), torch.optim.SGD, total_steps=10, lr=0.1, max_frac=1.0)
