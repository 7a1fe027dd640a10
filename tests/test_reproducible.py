"""Committed results are reproducible: re-run committed smoke runs at HEAD and compare.

Each record of ``results/smoke/`` (Fashion-MNIST MLP, 3 epochs on 2048 images: seconds on a
CPU) is re-trained from its recorded config with its recorded thread count, and the
per-epoch metrics the training loop produces are compared with the committed ones.
Probe fields are not compared (the probe may change without changing the training).

Tolerance: losses, gradient norms and weight norms to a relative 1e-3 (float rounding
differs between CPUs, and grows over 48 steps, but stays far below that); accuracies to
0.5 percentage points (a few images of 1000-2048 may flip on another CPU). On the machine
that wrote the record the run is bit-for-bit identical. A change to the data pipeline, the
model, the optimizer or the schedule moves these by far more.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.loop import train
from sam_hallucination.runs.sweeps import get_sweep

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "results" / "smoke"
RTOL = 1e-3
ACC_ATOL = 0.005
RELATIVE = ("train_loss", "test_loss", "grad_norm", "perturbed_grad_norm",
            "trainable_weight_norm")
ABSOLUTE = ("train_acc", "test_acc")
EXACT = ("epoch", "step", "sam_active")


def committed(method: str) -> Path:
    """The committed smoke record of the first run of ``method`` in the sweep's order."""
    for c in get_sweep("smoke").runs:
        path = SMOKE / f"{c.run_id()}.json"
        if c.method == method and path.exists():
            return path
    pytest.fail(f"no committed results/smoke record for method {method!r}: run "
                "`python -m sam_hallucination.runs smoke` and commit results/smoke/")


@pytest.fixture(scope="module")
def fashion(fashion_mnist):
    return fashion_mnist


@pytest.mark.parametrize("method", ["sgd", "sam"])
def test_committed_smoke_run_reproduces(method, fashion):
    rec = json.loads(committed(method).read_text())
    assert rec["status"] == "ok"
    config = RunConfig(**rec["config"])
    assert config.run_id() == rec["run_id"]
    threads = rec["provenance"]["torch_threads"]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = train(config, fashion, device="cpu", progress=False)
    finally:
        torch.set_num_threads(before)
    assert out["status"] == "ok" and out["steps"] == rec["steps"]
    assert len(out["epochs"]) == len(rec["epochs"])
    for got, want in zip(out["epochs"], rec["epochs"], strict=True):
        where = f"{rec['run_id']} epoch {want['epoch']}"
        for k in EXACT:
            assert got[k] == want[k], f"{where}: {k} {got[k]!r} != committed {want[k]!r}"
        for k in RELATIVE:
            if want.get(k) is None:
                assert got.get(k) is None, f"{where}: {k} is {got[k]!r}, committed None"
                continue
            assert math.isclose(got[k], want[k], rel_tol=RTOL), (
                f"{where}: {k} {got[k]!r} differs from the committed {want[k]!r} by more than "
                f"rel {RTOL}")
        for k in ABSOLUTE:
            if want.get(k) is None:
                continue
            assert abs(got[k] - want[k]) <= ACC_ATOL, (
                f"{where}: {k} {got[k]!r} differs from the committed {want[k]!r} by more "
                f"than {ACC_ATOL}")


def test_records_hold_the_thread_count():
    recs = [json.loads(p.read_text()) for p in sorted(SMOKE.glob("*.json"))]
    assert recs and all(isinstance(r["provenance"]["torch_threads"], int) for r in recs)
