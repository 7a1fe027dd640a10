"""The training loop: every method, schedules, divergence, determinism (CPU, tiny)."""

from __future__ import annotations

import math

import pytest
import torch

from sam_hallucination.data import load_dataset
from sam_hallucination.experiments import RunConfig
from sam_hallucination.train import grad_norm, lr_at, train

torch.set_num_threads(1)
SYN = load_dataset("synthetic")


def cfg(**kw) -> RunConfig:
    base = dict(dataset="synthetic", model="mlp", hidden=32, epochs=1, batch_size=32,
                n_train=64, n_test=32, lr=0.05, warmup_frac=0.0)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("method,rho,extra", [
    ("sgd", 0.0, {}),
    ("sam", 0.1, {}),
    ("switch", 0.1, {"switch_frac": 0.5}),
    ("rho-decay", 0.1, {}),
])
def test_each_method_two_steps(method, rho, extra):
    c = cfg(method=method, rho=rho, **extra)
    torch.manual_seed(c.seed)
    out = train(c, SYN, device="cpu", progress=False)
    assert out["status"] == "ok" and out["diverged_at"] is None
    assert out["steps"] == 2 and out["steps_per_epoch"] == 2
    ep = out["epochs"][0]
    assert ep["grad_norm"] > 0 and math.isfinite(ep["train_loss"])
    assert 0 <= ep["test_acc"] <= 1 and ep["weight_norm"] > 0
    if method == "sgd":
        assert ep["perturbed_grad_norm"] is None and ep["rho"] == 0
    else:
        # switch: step 0 is SGD, step 1 is SAM; all others use SAM from the start
        assert ep["perturbed_grad_norm"] > 0
        assert ep["sam_active"]
    if method == "rho-decay":
        assert ep["rho"] == 0.0  # linear decay reaches 0 at the last step
    if method == "sam":
        assert ep["rho"] == pytest.approx(0.1)
    # the trained model comes back and gives the reported test accuracy
    assert isinstance(out["model"], torch.nn.Module)
    assert out["dataset"] == "Synthetic (noisy templates)"


def test_airbench_sam_with_batchnorm_runs():
    c = cfg(model="airbench", method="sam", rho=0.05, n_train=32, batch_size=16)
    out = train(c, SYN, device="cpu", progress=False)
    assert out["status"] == "ok" and out["steps"] == 2
    bn = next(m for m in out["model"].modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 2  # running stats updated once per SAM step


def test_training_learns_and_is_deterministic():
    c = cfg(method="sam", rho=0.05, epochs=4, n_train=256, n_test=128, lr=0.1)
    a = train(c, SYN, device="cpu", progress=False)
    b = train(c, SYN, device="cpu", progress=False)
    strip = lambda ep: {k: v for k, v in ep.items() if not k.endswith("time_s")}
    assert [strip(e) for e in a["epochs"]] == [strip(e) for e in b["epochs"]]
    assert a["epochs"][-1]["train_loss"] < a["epochs"][0]["train_loss"]
    assert a["final"]["test_acc"] > 0.5  # 10 classes: chance is 0.1


def test_lr_schedules():
    # one-cycle: linear warmup to the peak, linear decay to 0
    lrs = [lr_at(t, 100, 0.2, "onecycle", warmup_frac=0.2) for t in range(100)]
    assert lrs[19] == pytest.approx(0.2) and lrs[0] == pytest.approx(0.01)
    assert max(lrs) == pytest.approx(0.2) and lrs[-1] < 0.01
    assert all(b <= a for a, b in zip(lrs[19:], lrs[20:], strict=False))
    cos = [lr_at(t, 100, 0.1, "cosine", warmup_frac=0.0) for t in range(100)]
    assert cos[0] == pytest.approx(0.1) and cos[50] == pytest.approx(0.05)
    assert lr_at(100, 100, 0.2, final_lr=0.003) == 0.003  # the constant final phase
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_at(50, 100, 0.1, "step", warmup_frac=0.0)


def test_final_constant_lr_phase():
    c = cfg(method="sam", rho=0.05, epochs=1, final_constant_lr_epochs=2, final_lr=0.004)
    out = train(c, SYN, device="cpu", progress=False)
    assert [e["epoch"] for e in out["epochs"]] == [1, 2, 3]
    assert [e["lr"] for e in out["epochs"][1:]] == [0.004, 0.004]
    assert out["steps"] == 6 and out["main_steps"] == 2


def test_divergence_is_recorded_not_raised():
    c = cfg(method="sam", rho=0.5, lr=1e6, momentum=0.9, epochs=3, n_train=128)
    out = train(c, SYN, device="cpu", progress=False)
    assert out["status"] == "diverged"
    assert out["diverged_at"]["step"] >= 1 and out["diverged_at"]["epoch"] in (0, 1, 2)
    assert out["diverged_at"]["step"] < out["steps"]
    assert len(out["epochs"]) == out["diverged_at"]["epoch"] + 1  # stopped in that epoch
    assert out["epochs"][-1]["test_acc"] is None


def test_grad_norm_matches_manual():
    m = torch.nn.Linear(3, 2)
    m(torch.randn(4, 3)).square().sum().backward()
    want = torch.sqrt(sum((p.grad ** 2).sum() for p in m.parameters()))
    torch.testing.assert_close(grad_norm(list(m.parameters())), want)


def test_batch_larger_than_subset_rejected():
    c = cfg(n_train=64, batch_size=64)
    small = SYN.__class__(**{**SYN.__dict__, "x_train": SYN.x_train[:40],
                             "y_train": SYN.y_train[:40]})
    with pytest.raises(ValueError, match="batch_size=64 is larger than the training set"):
        train(c, small, device="cpu", progress=False)
