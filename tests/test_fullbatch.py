"""Tests of the full-batch GD/SAM runner (chapter 4) on a tiny synthetic problem."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from sam_hallucination import report as rp
from sam_hallucination.runs import fullbatch as fb
from sam_hallucination.runs.fullbatch import FullBatchConfig, Problem, runner

TINY = dict(n_train=12, n_test=6, hidden=3, steps=2, continue_steps=3, log_every=1,
            slice_points=5, grid_points=3, lr=0.1)


def tiny_problem(seed: int = 0) -> Problem:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.arange(12) % 3
    xt = torch.randn(6, 4, generator=g, dtype=torch.float64)
    return Problem(x, y, xt, torch.arange(6) % 3, 4, 3, "tiny")


def mlp_loss(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Hand-written 2-layer ReLU MLP (Linear -> ReLU -> Linear) cross-entropy."""
    w1, b1, w2, b2 = params
    return F.cross_entropy(torch.relu(x @ w1.T + b1) @ w2.T + b2, y)


def split(w: torch.Tensor) -> list[torch.Tensor]:
    # layout of MLP(4, 3, 3): W1 (3,4), b1 (3), W2 (3,3), b2 (3)
    a, b, c, d = torch.split(w, [12, 3, 9, 3])
    return [a.view(3, 4), b, c.view(3, 3), d]


def hand_grad(w: torch.Tensor, x, y) -> torch.Tensor:
    wr = w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(mlp_loss(split(wr), x, y), wr)
    return g


def test_sam_two_steps_match_hand_computation():
    prob = tiny_problem()
    cfg = FullBatchConfig(method="sam", rho=0.3, **TINY)
    out = fb.run(cfg, prob, keep_weights=True)
    w = out["weights"]["init"].clone()
    x, y = prob.x_train, prob.y_train
    for _ in range(2):  # w ← w − η ∇L(w + ρ g/‖g‖)
        g = hand_grad(w, x, y)
        w = w - 0.1 * hand_grad(w + 0.3 * g / g.norm(), x, y)
    torch.testing.assert_close(out["weights"]["final"], w, rtol=0, atol=1e-12)
    assert out["final"]["loss"] == pytest.approx(float(mlp_loss(split(w), x, y)), abs=1e-12)
    g = hand_grad(w, x, y)
    gp = hand_grad(w + 0.3 * g / g.norm(), x, y)
    assert out["final"]["grad_norm"] == pytest.approx(float(g.norm()), rel=1e-10)
    assert out["final"]["sam_norm"] == pytest.approx(float(gp.norm()), rel=1e-10)
    assert [r["step"] for r in out["log"]] == [0, 1, 2]


def test_gd_continuation_is_plain_gd_and_decreases_loss():
    prob = tiny_problem()
    cfg = FullBatchConfig(method="sam", rho=0.3, **TINY)
    out = fb.run(cfg, prob, keep_weights=True)
    w = out["weights"]["final"].clone()
    for _ in range(3):
        w = w - 0.1 * hand_grad(w, prob.x_train, prob.y_train)
    torch.testing.assert_close(out["weights"]["continued"], w, rtol=0, atol=1e-12)
    c = out["continuation"]
    assert c["f_drop"] == pytest.approx(out["final"]["f"] - c["f"], abs=1e-14)
    assert c["f_drop"] > 0  # small steps of GD decrease a smooth loss
    assert [r["step"] for r in out["continuation_log"]] == [2, 3, 4, 5]
    seg = out["slices"]["segment"]
    assert seg["f"][seg["t"].index(0.0)] == pytest.approx(out["final"]["f"], abs=1e-12)
    assert seg["f"][seg["t"].index(1.0)] == pytest.approx(c["f"], abs=1e-12)
    ray = out["slices"]["ray"]
    assert ray["f"][ray["s"].index(0.3)] == pytest.approx(out["final"]["f_plus"], abs=1e-12)


def test_switch_runs_gd_before_sam():
    prob = tiny_problem()
    base = dict(TINY, steps=4, continue_steps=0)
    sw = fb.run(FullBatchConfig(method="switch", rho=0.3, switch_frac=0.5, **base), prob,
                keep_weights=True)
    assert [r["sam_active"] for r in sw["log"]] == [False, False, True, True, True]
    gd = fb.run(FullBatchConfig(method="gd", **dict(base, steps=2)), prob, keep_weights=True)
    w = gd["weights"]["final"].clone()
    for _ in range(2):
        g = hand_grad(w, prob.x_train, prob.y_train)
        w = w - 0.1 * hand_grad(w + 0.3 * g / g.norm(), prob.x_train, prob.y_train)
    torch.testing.assert_close(sw["weights"]["final"], w, rtol=0, atol=1e-12)


def test_weight_decay_convention():
    """Perturb along ∇L only; step with ∇L(w⁺) + λw; f includes λ/2‖w‖²."""
    prob = tiny_problem()
    lam = 0.05
    out = fb.run(FullBatchConfig(method="sam", rho=0.3, weight_decay=lam, **dict(TINY, steps=1)),
                 prob, keep_weights=True)
    w0, x, y = out["weights"]["init"], prob.x_train, prob.y_train
    g = hand_grad(w0, x, y)
    w1 = w0 - 0.1 * (hand_grad(w0 + 0.3 * g / g.norm(), x, y) + lam * w0)
    torch.testing.assert_close(out["weights"]["final"], w1, rtol=0, atol=1e-12)
    f1 = float(mlp_loss(split(w1), x, y)) + lam / 2 * float(w1 @ w1)
    assert out["final"]["f"] == pytest.approx(f1, abs=1e-12)
    g1 = hand_grad(w1, x, y) + lam * w1
    assert out["final"]["grad_norm"] == pytest.approx(float(g1.norm()), rel=1e-10)


def test_stochastic_run_uses_sam_optimizer_and_diagnostics():
    prob = tiny_problem()
    cfg = FullBatchConfig(method="sgd-sam", rho=0.3, batch_size=4, **TINY)
    out = fb.run(cfg, prob)
    d = out["stall_diagnostics"]
    assert d["n_batches"] == 3 and d["rho"] == 0.3
    assert d["loss"] == pytest.approx(out["final"]["loss"], rel=1e-10)  # equal batches
    assert out["final"]["two_step_move"] is None
    assert math.isfinite(out["continuation"]["f"])


def test_cache_hit_does_not_recompute(tmp_path, monkeypatch):
    prob = tiny_problem()
    cfg = FullBatchConfig(method="sam", rho=0.3, **TINY)
    first = fb.run_cached(cfg, tmp_path, problem=prob)
    assert first["source"] == "computed"
    rec = json.loads((tmp_path / f"{cfg.run_id()}.json").read_text())
    assert rec["config"]["rho"] == 0.3 and "git" in rec["provenance"]
    assert rec["provenance"]["torch"] == torch.__version__ and rec["wall_time_s"] > 0

    def boom(*a, **k):
        raise AssertionError("recomputed a cached result")

    monkeypatch.setattr(runner, "run", boom)
    second = fb.run_cached(cfg, tmp_path, problem=prob)
    assert second["source"] == "cache"
    assert second["final"] == first["final"]
    with pytest.raises(AssertionError, match="recomputed"):
        fb.run_cached(cfg, tmp_path, recompute=True, problem=prob)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_run_id_depends_on_config():
    a = FullBatchConfig(method="sam", rho=2.0)
    assert a.run_id().startswith("sam_rho2_")
    assert a.run_id() != FullBatchConfig(method="sam", rho=2.0, lr=0.01).run_id()
    assert a.run_id() == FullBatchConfig(method="sam", rho=2.0, data_root="/elsewhere").run_id()


@pytest.mark.parametrize("kw, exc, match", [
    (dict(method="sam", rho=-0.1), ValueError, "rho"),
    (dict(method="sam", rho=float("nan")), ValueError, "rho"),
    (dict(method="sam", rho=0.0), ValueError, "rho > 0"),
    (dict(method="gd", rho=0.5), ValueError, "method='gd'"),
    (dict(method="sam", rho="big"), TypeError, "rho"),
    (dict(method="adam"), ValueError, "method"),
    (dict(method="gd", lr=0.0), ValueError, "lr"),
    (dict(method="switch", rho=1.0, switch_frac=1.0), ValueError, "switch_frac"),
    (dict(method="gd", n_train=0), ValueError, "n_train"),
    (dict(method="gd", dtype="float16"), ValueError, "dtype"),
])
def test_bad_config_raises(kw, exc, match):
    with pytest.raises(exc, match=match):
        FullBatchConfig(**kw)


def test_chapter_grid_and_profiles():
    cfgs = fb.chapter_configs()
    assert cfgs["gd"].method == "gd" and cfgs["sam-5"].rho == 5.0
    assert {c.method for c in cfgs.values()} == set(fb.METHODS)
    assert len({c.run_id() for c in cfgs.values()}) == len(cfgs)
    with pytest.raises(ValueError, match="profile"):
        fb.run_chapter("medium")
    with pytest.raises(ValueError, match="unknown run names"):
        fb.run_chapter("quick", ["sam-7"])


def test_summary_and_table_from_a_record():
    prob = tiny_problem()
    cfg = FullBatchConfig(method="sam", rho=0.3, **dict(TINY, steps=10, log_every=2))
    rec = {**fb.run(cfg, prob), "config": cfg.to_dict()}
    row = rp.summary_row(rec)
    assert row["rho"] == 0.3 and row["f_drop"] == rec["continuation"]["f_drop"]
    # tail = logged steps >= 8 (last 20% of 10): steps 8 and 10
    tail = [r["ratio"] for r in rec["log"] if r["step"] >= 8]
    assert row["ratio_tail"] == pytest.approx(sum(tail) / 2)
    steps, vals = rp.curve(rec, "f", continuation=True)
    assert steps.tolist() == [0, 2, 4, 6, 8, 10, 12, 13] and vals[-1] == rec["continuation"]["f"]
    table = rp.format_table([row, {**row, "f_drop": None}], [("rho", "rho", ".2f"),
                                                            ("f_drop", "drop", ".3f")])
    lines = table.splitlines()
    assert lines[0].split() == ["rho", "drop"] and lines[2].split() == ["0.30", "—"]
    assert lines[1].split()[1] == f"{row['f_drop']:.3f}"


def test_network_activity_sees_a_dead_network():
    prob = tiny_problem()
    net = fb.build_model(FullBatchConfig(**TINY), prob)
    w = net.init_vector()
    a = fb.network_activity(net, w, prob.x_train)
    assert 0 < a["active_frac"] <= a["live_units"] <= 1 and a["logit_spread"] > 0
    dead = w.clone()
    dead[12:15] = -100.0  # first-layer biases (after W1's 12 entries): every unit off
    d = fb.network_activity(net, dead, prob.x_train)
    assert d == {"live_units": 0.0, "active_frac": 0.0, "logit_spread": 0.0}
