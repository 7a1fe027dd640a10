"""ring: the line reduction, tail classes, the exact 2-cycle and the critical decay; cache."""

import json
import math

import numpy as np
import pytest
import torch

from sam_hallucination.rd import dynamics as D
from sam_hallucination.rd import ring as RG
from sam_hallucination.rd.landscapes import DTYPE, RING
from sam_hallucination.runs.cache import load_or_compute


def test_line_map_is_sam_on_the_ring():
    th = torch.tensor([0.3, 2.0, 4.0], dtype=DTYPE)
    r0 = torch.tensor([0.2, 0.5, 0.8], dtype=DTYPE)
    x0 = torch.stack((r0 * torch.cos(th), r0 * torch.sin(th)), -1)
    x = D.iterate(RING, x0, rho=1.5, eta=0.1, steps=25, early_stop=False).x
    s = r0.numpy().copy()
    for _ in range(25):
        s = RG.sam_line_map(s, 1.5, 0.1)
    assert np.allclose(x.norm(dim=-1).numpy(), np.abs(s), atol=1e-12)


def test_error_map_is_the_radial_map():
    r = np.linspace(0.05, 0.95, 19)
    for rho, eta in ((1.5, 0.1), (1.3, 0.27)):
        e = r - (rho - 1)
        assert np.allclose(RG.error_map(e, eta), D.ring_radial_map(r, rho, eta) - (rho - 1), atol=1e-13)


@pytest.mark.parametrize("delta", [0.001, 0.002, 0.005, 0.03])
def test_two_cycle_exact_half_amplitude(delta):
    a = RG.two_cycle_half_amplitude(delta)
    assert a == pytest.approx(math.sqrt(delta / (4 * (0.25 + delta))), abs=1e-10)
    assert RG.two_cycle_on_ring(1.5, delta) == pytest.approx(a, abs=1e-10)
    if delta <= 0.005:
        assert abs(a / math.sqrt(delta) - 1) < 0.05


def test_two_cycle_loses_stability_at_golden_eta():
    eta_c = (math.sqrt(5) - 1) / 4
    RG.two_cycle_half_amplitude(eta_c - 0.25 - 0.005)
    with pytest.raises(RuntimeError):
        RG.two_cycle_half_amplitude(eta_c - 0.25 + 0.005)


def test_critical_decay():
    for e0 in (0.05, -0.05):
        d = RG.critical_decay(e0=e0)
        assert abs(d[100_000] - 1) < 0.05
        assert abs(d[100_000] - 1) < abs(d[100] - 1)


def test_tail_map_classes():
    tm = RG.tail_map(np.array([1.5]), np.array([0.1, 0.28, 0.32, 0.36]), n_starts=32, steps=3000)
    frac = tm.counts[0] / 32
    idx = RG.TAIL_CLASSES.index
    assert frac[0, idx("hallucinated circle")] == 1.0
    assert frac[1, idx("period 2")] > 0.8
    assert frac[2, idx("period 4")] > 0.8
    assert frac[3, idx("diverged")] == 1.0
    assert (tm.counts.sum(-1) == 32).all()
    assert tm.basin_fraction[0, 0] == 1.0 and tm.basin_fraction[0, 1] == 0.0


def test_classify_tails_synthetic():
    t = np.arange(9)[:, None]
    hist = np.concatenate([
        np.full((9, 1), 0.5),                       # fixed on the circle (rho = 1.5)
        np.where(t % 2 == 0, 0.4, 0.6),             # period 2
        np.where(t % 4 < 2, 0.1 * (t % 4) + 0.3, 0.1 * (t % 4) + 0.5),  # period 4
        np.sin(np.arange(9.0))[:, None],            # no short period
        np.full((9, 1), np.nan)], axis=1)
    cls = RG.classify_tails(hist, np.full(5, 1.5))
    assert [RG.TAIL_CLASSES[c] for c in cls] == ["hallucinated circle", "period 2", "period 4",
                                                 "bounded, no period ≤ 4", "diverged"]


def test_cache_roundtrip(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(3), "b": float("nan")}

    p = tmp_path / "r.json"
    d = load_or_compute(p, compute, config={"n": 3})
    assert d == {"a": [0, 1, 2], "b": None} and len(calls) == 1
    assert load_or_compute(p, compute, config={"n": 3}) == d and len(calls) == 1
    rec = json.loads(p.read_text())
    assert {"git", "device", "torch", "wall_time_s"} <= set(rec["provenance"])
    with pytest.raises(ValueError, match="config"):
        load_or_compute(p, compute, config={"n": 4})
    load_or_compute(p, compute, config={"n": 4}, recompute=True)
    assert len(calls) == 2
