"""The one method vocabulary: the registry drives configs, optimizers, labels and R^d code."""

from __future__ import annotations

import pytest
import torch

from sam_hallucination import methods
from sam_hallucination.methods import METHODS, Method, get_method, method_labels, method_names


def test_each_scope_keeps_its_historical_names():
    assert method_names("rd") == ("gd", "sam", "usam")
    assert method_names("network") == ("sgd", "sam", "switch", "rho-decay", "switch-signal")
    assert method_names("full-batch") == ("gd", "sam", "switch", "sgd-sam")
    from sam_hallucination.rd import dynamics
    from sam_hallucination.runs import config, fullbatch
    assert dynamics.METHODS == method_names("rd")
    assert config.METHODS == method_names("network")
    assert fullbatch.METHODS == method_names("full-batch")


def test_unknown_method_or_scope_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="sgd"):
        get_method("adam", "network")
    with pytest.raises(ValueError, match="scope"):
        method_names("gpu")


def test_a_new_method_is_one_registry_entry(monkeypatch):
    """A warm-started, decaying-radius SAM: config, run id, optimizer and label, no other edit."""
    from sam_hallucination.optim import SAM
    from sam_hallucination.runs.config import RunConfig
    from sam_hallucination.runs.step import build_optimizer

    new = Method("switch-decay", "SGD→SAM, ρ decayed", ("network",), switch=True,
                 rho_schedule="linear")
    monkeypatch.setitem(METHODS, new.name, new)
    cfg = RunConfig(dataset="synthetic", model="mlp", batch_size=32, method="switch-decay",
                    rho=0.5, switch_frac=0.25)
    assert "switch-decay_rho0.5_sw0.25" in cfg.run_id()
    opt = build_optimizer(cfg, torch.nn.Linear(3, 2), main_steps=8)
    assert isinstance(opt, SAM) and opt.switch_step == 2 and opt.rho_schedule == "linear"
    assert methods.method_labels("network")["switch-decay"] == "SGD→SAM, ρ decayed"


def test_labels_come_from_the_registry():
    from sam_hallucination import report

    assert report.METHOD_LABELS == method_labels("network")
