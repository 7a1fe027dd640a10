"""Tests of chapter 4's robustness additions (issue 14): config fields, label noise, the
initial-weight scale, the displacement from initialisation, and the report helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_fullbatch import TINY, tiny_problem

from sam_hallucination import report as rp
from sam_hallucination.runs import fullbatch as fb
from sam_hallucination.runs.fullbatch import FullBatchConfig, robust
from sam_hallucination.runs.fullbatch.problem import flip_labels


def test_new_fields_leave_the_original_run_ids_unchanged():
    # ids of committed results/mlp/ files, computed before the fields existed
    assert FullBatchConfig().run_id() == "gd_76a2da36"
    assert FullBatchConfig(method="sam", rho=5.0).run_id() == "sam_rho5_915d8ee9"
    d = FullBatchConfig().to_dict()
    assert not {"init_scale", "label_noise", "standardize"} & set(d)
    for kw in (dict(init_scale=2.0), dict(label_noise=0.2), dict(standardize=False)):
        cfg = FullBatchConfig(**kw)
        assert set(kw) <= set(cfg.to_dict()) and cfg.run_id() != "gd_76a2da36"


@pytest.mark.parametrize("kw, match", [
    (dict(init_scale=0.0), "init_scale"), (dict(init_scale=float("inf")), "init_scale"),
    (dict(label_noise=1.0), "label_noise"), (dict(label_noise=-0.1), "label_noise"),
    (dict(standardize=1), "standardize"),
])
def test_bad_robust_fields_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        FullBatchConfig(**kw)


def test_flip_labels_changes_exactly_the_fraction():
    y = torch.arange(200) % 10
    z = flip_labels(y, 0.2, 10, seed=3)
    assert int((z != y).sum()) == 40 and int(z.min()) >= 0 and int(z.max()) <= 9
    assert torch.equal(z, flip_labels(y, 0.2, 10, seed=3))  # seeded
    assert flip_labels(y, 0.0, 10) is y


def test_init_scale_multiplies_every_initial_weight():
    prob = tiny_problem()
    w1 = fb.build_model(FullBatchConfig(**TINY), prob).init_vector()
    w2 = fb.build_model(FullBatchConfig(**TINY, init_scale=2.0), prob).init_vector()
    torch.testing.assert_close(w2, 2 * w1, rtol=0, atol=0)


def test_displacement_from_initialisation_is_logged():
    prob = tiny_problem()
    out = fb.run(FullBatchConfig(method="sam", rho=0.3, **TINY), prob, keep_weights=True)
    w = out["weights"]
    assert out["log"][0]["dist_init"] == 0.0
    assert out["final"]["dist_init"] == pytest.approx(float((w["final"] - w["init"]).norm()))
    assert out["final"]["w0_norm"] == pytest.approx(float(w["init"].norm()))
    assert out["continuation"]["dist_init"] == pytest.approx(
        float((w["continued"] - w["init"]).norm()))
    assert out["continuation_log"][-1]["dist_init"] == out["continuation"]["dist_init"]


def _rec(steps, f, ratio=None, method="sam", cont=None):
    log = [{"step": s, "f": v, "ratio": (ratio or [1.0] * len(f))[i]}
           for i, (s, v) in enumerate(zip(steps, f, strict=True))]
    return {"config": {"steps": steps[-1], "log_every": steps[1] - steps[0],
                       "method": method},
            "log": log, "final": {"f": f[-1]}, "continuation_log": cont or log[-1:]}


def test_ratio_quantiles_cdf_and_window():
    rec = _rec(list(range(0, 110, 10)), [2.0] * 11, ratio=[9.0] * 8 + [0.05, 0.1, 0.2])
    q = rp.ratio_quantiles(rec)  # tail: steps >= 80
    assert q["q50"] == pytest.approx(0.1) and q["q10"] < q["q50"] < q["q90"]
    assert rp.ratio_cdf(rec, np.array([0.01, 0.1, 1.0])).tolist() == [0.0, 1 / 3, 1.0]
    assert rp.window_ratios(rec, 81, 20).tolist() == [0.1, 0.2]


def test_gd_equivalent_steps_and_progress():
    gd = _rec([0, 10, 20], [2.0, 1.0, 0.5])
    assert rp.gd_equivalent_steps(1.5, gd) == pytest.approx(5.0)
    assert rp.gd_equivalent_steps(3.0, gd) == 0.0
    assert rp.gd_equivalent_steps(0.1, gd) == math.inf
    assert rp.progress_fraction(_rec([0, 10, 20, 40], [2, 2, 2, 1.0]), gd) == 0.25


def test_continuation_vs_gd_pairs_equal_step_counts():
    gd = _rec([0, 5, 10], [2.0, 1.0, 0.5])
    run = _rec([0, 10], [2.0, 1.9], cont=[{"step": 10, "f": 1.9}, {"step": 15, "f": 1.2},
                                          {"step": 20, "f": 0.6}])
    rows = rp.continuation_vs_gd(run, gd, ks=(5, 10))
    assert [(r["k"], r["f_cont"], r["f_gd"]) for r in rows] == [(5, 1.2, 1.0), (10, 0.6, 0.5)]
    assert rows[0]["gap"] == pytest.approx(0.2)


def test_settled_step_and_onset():
    assert rp.settled_step(_rec([0, 10, 20, 30], [2.3, 2.1, 1.9, 1.5]), 2.0) == 20
    assert rp.settled_step(_rec([0, 10, 20], [2.3, 2.2, 2.25]), 2.0) == 0
    rows = [{"alpha": a, "ratio": r, "f": f} for a, r, f in
            [(1, 0.1, 1.0), (1, 0.5, 2.2), (1, 1.0, 2.3), (2, 0.1, 1.0), (2, 1.0, 1.5)]]
    assert rp.onset(rows, 2.0) == {1: 0.5, 2: None}


def test_git_dirty_reads_provenance():
    assert rp.git_dirty({"provenance": {"git": {"dirty": True}}}) is True
    assert rp.git_dirty({"provenance": {"git": {"dirty": False}}}) is False
    assert rp.git_dirty({}) is None


def test_robust_grid(monkeypatch):
    monkeypatch.setattr(robust, "init_norm", lambda cfg: 5.0 * cfg.init_scale)
    cfgs = fb.robust_configs()
    assert len([n for n in cfgs if n.startswith("scale-")]) == 3 * (6 + 4 + 1)
    assert cfgs["scale-a0.5-gd"].method == "gd" and cfgs["scale-a0.5-gd"].init_scale == 0.5
    c = cfgs["scale-a2-r0.5"]
    assert c.rho == 5.0 and c.init_scale == 2.0 and c.steps == fb.SCALE_STEPS
    assert cfgs["noise-sam-5"].label_noise == fb.LABEL_NOISE
    assert cfgs["nostd-sam-5"].standardize is False
    assert len({c.run_id() for c in cfgs.values()}) == len(cfgs)
    with pytest.raises(ValueError, match="unknown run names"):
        fb.run_robust("quick", ["scale-a3-r1"])


def test_committed_mlp_results_come_from_clean_commits():
    import json

    from sam_hallucination.checks import repo_root

    root = repo_root() / "results"
    files = sorted((root / "mlp").glob("*.json")) + sorted((root / "mlp-robust").glob("*.json"))
    assert files
    bad = []
    for p in files:
        git = json.loads(p.read_text()).get("provenance", {}).get("git") or {}
        if git.get("dirty") is not False:  # regenerate it from a clean commit
            bad.append(f"{p.parent.name}/{p.name}: dirty={git.get('dirty')!r}")
    assert not bad, "results not from a clean commit:\n" + "\n".join(bad)
