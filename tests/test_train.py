"""The training loop: every method, schedules, divergence, determinism (CPU, tiny)."""

from __future__ import annotations

import math

import pytest
import torch

from sam_hallucination.data import load_dataset
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.loop import lr_at, train
from sam_hallucination.runs.step import grad_norm

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
    assert 0 <= ep["test_acc"] <= 1 and ep["trainable_weight_norm"] > 0
    assert "weight_norm" not in ep and "weight_norm" not in out["final"]
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


# ----------------------------------------------------------------------------- the probe


def _strip_times(out: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if not k.endswith("time_s")} for e in out["epochs"]]


@pytest.mark.parametrize("method,rho", [("sam", 0.1), ("sgd", 0.0)])
def test_probe_leaves_the_trained_run_untouched(method, rho):
    c = cfg(model="airbench", method=method, rho=rho, n_train=48, batch_size=16,
            final_constant_lr_epochs=1, final_lr=0.01)
    plain = train(c, SYN, device="cpu", progress=False)
    probed = train(c.replace(probe=True, probe_batches=2, probe_steps=3), SYN, device="cpu",
                   progress=False)
    assert plain["probe"] is None
    # same epochs, same final metrics, bit-identical weights and BN buffers
    assert _strip_times(plain) == _strip_times(probed) and plain["final"] == probed["final"]
    sa, sb = plain["model"].state_dict(), probed["model"].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    p = probed["probe"]
    assert p["n_batches"] == 2 and p["batch_size"] == 16 and p["rho"] == pytest.approx(rho)
    st = p["stall"]
    assert st["n_batches"] == 2 and st["bootstrap"] > 0 and st["grad_norm"] > 0
    assert math.isfinite(st["grad_se"]) and st["sam_step_norm_boot_std"] is not None
    sgd = p["sgd_continuation"]
    assert sgd["optimizer"] == "sgd" and sgd["steps"] == 3 and sgd["lr"] == 0.01
    assert sgd["loss_before"] == pytest.approx(st["loss"], rel=1e-5)  # same fixed batches
    assert sgd["loss_before"] != sgd["loss_after"]  # the copy did move
    assert 0 <= sgd["test_acc_after"] <= 1
    if method == "sgd":
        assert st["ratio"] == pytest.approx(1.0)  # rho = 0: the SAM step is the gradient
        assert p["sam_continuation"] is None
    else:
        sam = p["sam_continuation"]
        assert sam["optimizer"] == "sam" and sam["rho"] == pytest.approx(0.1)
        assert sam["loss_before"] == sgd["loss_before"] and sam["loss_after"] != sgd["loss_after"]


def test_probe_rho_is_the_final_radius_and_sgd_continuation_descends():
    # decayed rho ends at 0, so the probe measures at rho = 0 and runs no SAM continuation
    c = cfg(method="rho-decay", rho=0.5, probe=True, probe_batches=2, probe_steps=2)
    assert train(c, SYN, device="cpu", progress=False)["probe"]["rho"] == 0.0
    # one epoch leaves the MLP far from a minimizer: 30 SGD steps lower the fixed-batch loss
    c = cfg(method="sam", rho=0.05, probe=True, probe_batches=2, probe_steps=30, final_lr=0.05)
    sgd = train(c, SYN, device="cpu", progress=False)["probe"]["sgd_continuation"]
    assert sgd["loss_after"] < sgd["loss_before"] and sgd["loss_drop"] > 0
    assert sgd["objective_drop"] == pytest.approx(sgd["objective_before"] - sgd["objective_after"])


def test_probe_skipped_when_the_run_diverges():
    c = cfg(method="sam", rho=0.5, lr=1e6, epochs=3, n_train=128, probe=True, probe_batches=2)
    out = train(c, SYN, device="cpu", progress=False)
    assert out["status"] == "diverged" and out["probe"] is None


def test_fixed_batches_are_unaugmented_and_seeded():
    from sam_hallucination.runs.probe import fixed_batches

    a = fixed_batches(SYN, 3, 32, torch.device("cpu"), seed=5)
    b = fixed_batches(SYN, 3, 32, torch.device("cpu"), seed=5)
    c = fixed_batches(SYN, 3, 32, torch.device("cpu"), seed=6)
    assert len(a) == 3 and all(x.shape[0] == 32 for x, _ in a)
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b, strict=True))
    assert not torch.equal(a[0][0], c[0][0])
    assert len(fixed_batches(SYN, 1000, 512, torch.device("cpu"), seed=0)) == 2  # capped


def test_trainable_weight_norm_leaves_out_frozen_batchnorm_scales():
    """The recorded norm is over requires_grad parameters; airbench's BN scales are frozen."""
    from sam_hallucination.models import make_model
    from sam_hallucination.runs.step import trainable_weight_norm

    model = make_model("airbench", 10)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen, "the airbench CNN freezes its BatchNorm scales"
    trainable = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])
    everything = torch.cat([p.detach().flatten() for p in model.parameters()])
    got = trainable_weight_norm(model)
    assert got == pytest.approx(float(trainable.double().norm()), rel=1e-4)
    assert got < float(everything.norm())  # the old, buggy value counted the frozen scales


def test_one_train_step_for_sgd_and_sam():
    """train_step is the loop's step: SGD moves by -lr*g; SAM records both gradient norms."""
    from sam_hallucination.optim import SAM
    from sam_hallucination.runs.step import train_step

    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for use_sam in (False, True):
        model = torch.nn.Linear(4, 3)
        w0 = model.weight.detach().clone()
        opt = (SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.5) if use_sam
               else torch.optim.SGD(model.parameters(), lr=0.5))
        r = train_step(model, opt, x, y, torch.nn.functional.cross_entropy, measure=True)
        assert r.grad_norm > 0 and torch.isfinite(r.loss)
        assert (r.perturbed_grad_norm is not None) == use_sam
        assert all(p.grad is None for p in model.parameters())
        assert not torch.equal(model.weight, w0)
