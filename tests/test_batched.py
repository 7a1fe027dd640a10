"""The batched engine: K runs as one stacked computation equal one-by-one training."""

from __future__ import annotations

import pytest
import torch

from sam_hallucination.data import synthetic_dataset
from sam_hallucination.experiments import RunConfig
from sam_hallucination.runs.batched import batch_groups, batch_key, train_batched
from sam_hallucination.train import train

torch.set_num_threads(1)
SYN12 = synthetic_dataset(n_train=256, n_test=64, size=12, seed=3)
NET = {"widths": (8, 16, 16), "stem": 8}  # a tiny airbench-style CNN
BASE = RunConfig(dataset="synthetic", model="airbench", epochs=2, batch_size=32, n_train=128,
                 n_test=64, lr=0.05, augment=True, amp=False)
CONFIGS = [BASE, BASE.replace(method="sam", rho=0.05),
           BASE.replace(method="switch", rho=0.5, switch_frac=0.3),
           BASE.replace(method="rho-decay", rho=0.2)]


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def compare(one: dict, bat: dict) -> float:
    """Largest difference in per-epoch losses, weights and BatchNorm buffers."""
    assert one["status"] == bat["status"] == "ok"
    assert len(one["epochs"]) == len(bat["epochs"])
    d = max_diff(one["model"].state_dict(), bat["model"].state_dict())
    for e1, e2 in zip(one["epochs"], bat["epochs"], strict=True):
        d = max(d, abs(e1["train_loss"] - e2["train_loss"]), abs(e1["train_acc"] - e2["train_acc"]))
        for key in ("rho", "sam_active", "step", "lr"):
            assert e1[key] == e2[key], key
        assert e2["grad_norm"] == pytest.approx(e1["grad_norm"], rel=1e-6)
        assert (e1["perturbed_grad_norm"] is None) == (e2["perturbed_grad_norm"] is None)
        if e1["perturbed_grad_norm"] is not None:
            assert e2["perturbed_grad_norm"] == pytest.approx(e1["perturbed_grad_norm"], rel=1e-6)
        assert (e1["test_acc"] is None) == (e2["test_acc"] is None)
        if e1["test_acc"] is not None:
            assert e2["test_loss"] == pytest.approx(e1["test_loss"], rel=1e-6)
    return d


@pytest.mark.parametrize("seeds", [(0, 0, 0, 0), (0, 1, 2, 3)], ids=["one-seed", "four-seeds"])
def test_batched_equals_one_by_one_float64(seeds):
    configs = [c.replace(seed=s) for c, s in zip(CONFIGS, seeds, strict=True)]
    bat = train_batched(configs, SYN12, device="cpu", dtype=torch.float64, model_kw=NET)
    worst = 0.0
    for c, b in zip(configs, bat, strict=True):
        one = train(c, SYN12, device="cpu", progress=False, dtype=torch.float64, model_kw=NET)
        worst = max(worst, compare(one, b))
    print(f"max |batched - one by one| = {worst:.2e}")
    assert worst < 1e-10
    # the runs really differ from each other (SAM moved the weights, the switch waited)
    assert max_diff(bat[0]["model"].state_dict(), bat[1]["model"].state_dict()) > 1e-4
    assert [e["sam_active"] for e in bat[2]["epochs"]] == [True, True]


def test_nan_in_one_model_marks_only_that_run():
    bat = train_batched(CONFIGS, SYN12, device="cpu", dtype=torch.float64, model_kw=NET,
                        _poison=(1, 5))
    assert [o["status"] for o in bat] == ["ok", "diverged", "ok", "ok"]
    assert bat[1]["diverged_at"] == {"step": 5, "epoch": 1}
    assert bat[1]["epochs"][-1]["test_acc"] is None and len(bat[1]["epochs"]) == 2
    for k in (0, 2, 3):
        one = train(CONFIGS[k], SYN12, device="cpu", progress=False, dtype=torch.float64,
                    model_kw=NET)
        assert compare(one, bat[k]) < 1e-10


def test_groups_keep_order_and_split_incompatible_configs():
    a = [BASE.replace(seed=s) for s in (0, 1)]
    other = BASE.replace(lr=0.1)
    runs = [a[0], CONFIGS[1], other, CONFIGS[2], a[1], CONFIGS[3]]
    groups = batch_groups(runs, max_k=3)
    assert groups == [[a[0], CONFIGS[1], CONFIGS[2]], [other], [a[1], CONFIGS[3]]]
    assert batch_key(BASE) == batch_key(CONFIGS[2].replace(seed=4))
    asam = CONFIGS[1].replace(adaptive=True)
    assert batch_key(asam) != batch_key(asam.replace(seed=1))  # ASAM: never batched
    with pytest.raises(ValueError, match="differ only"):
        train_batched([BASE, other], SYN12, device="cpu")
