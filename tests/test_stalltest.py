"""The study's statistics (debiased norms, paired intervals) and the stall test's plumbing."""

import math

import numpy as np
import pytest
import torch

from sam_hallucination.data import ImageDataset
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.loop import train
from sam_hallucination.runs.stalltest import stall_test
from sam_hallucination.stats import gram_statistics, paired_interval, sign_test


def grams(g, h):
    return g @ g.T, h @ h.T, g @ h.T


def test_debiased_norm_removes_the_noise_bias():
    # E g = mu with |mu| = 1, noise sd 1 per coordinate in d = 50: |mean| is biased up a lot
    rng = np.random.default_rng(0)
    mu = np.zeros(50)
    mu[0] = 1.0
    ests, naive = [], []
    for _ in range(200):
        g = mu + rng.standard_normal((20, 50))
        s = gram_statistics(*grams(g, g), n_boot=50)
        ests.append(s["grad_sq"].estimate)
        naive.append(float(np.sum(g.mean(0) ** 2)))
    assert abs(np.mean(ests) - 1.0) < 0.15  # unbiased for |mu|^2
    assert np.mean(naive) > 3  # 1 + 50/20 = 3.5: the bias the U-statistic removes


def test_ratio_cosine_projection_and_intervals():
    rng = np.random.default_rng(1)
    mu = rng.standard_normal(30)
    g = mu + 0.05 * rng.standard_normal((40, 30))
    h = -0.5 * mu + 0.05 * rng.standard_normal((40, 30))  # half as long, pointing back
    s = gram_statistics(*grams(g, h), n_boot=500)
    assert s["ratio"].estimate == pytest.approx(0.5, abs=0.02)
    assert s["cosine"].estimate == pytest.approx(-1.0, abs=0.02)
    assert s["progress"].estimate == pytest.approx(-0.5, abs=0.02)
    assert s["ratio"].low <= 0.5 <= s["ratio"].high
    assert s["ratio"].high - s["ratio"].low < 0.05
    with pytest.raises(ValueError, match="n >= 3"):
        gram_statistics(np.eye(2), np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match="not finite"):
        gram_statistics(np.full((3, 3), np.nan), np.eye(3), np.eye(3))


def test_a_vanished_step_has_an_interval_at_zero():
    rng = np.random.default_rng(2)
    g = 1.0 + 0.1 * rng.standard_normal((40, 10))
    h = 0.1 * rng.standard_normal((40, 10))  # E h = 0
    s = gram_statistics(*grams(g, h), n_boot=500)
    assert s["ratio"].high < 0.1


def test_paired_interval_and_sign_test():
    iv = paired_interval([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])
    assert iv.estimate == 2.0 and iv.n == 3
    # t(0.975, 2) = 4.303, se = 1/sqrt(3): the interval still holds 0
    assert iv.low == pytest.approx(2 - 4.3027 / math.sqrt(3), abs=1e-3)
    assert not iv.excludes(0.0)
    assert paired_interval([3.0, 3.2, 2.8], [1.0, 1.0, 1.0]).excludes(0.0)
    assert not paired_interval([1.0, -1.0, 0.5], [0.0, 0.0, 0.0]).excludes(0.0)
    assert sign_test([1, 2, 3, 4, 5, 6]) == (6, 6, pytest.approx(0.03125))
    with pytest.raises(ValueError, match=">= 2 values"):
        paired_interval([1.0], [0.0])
    with pytest.raises(ValueError, match="not finite"):
        paired_interval([1.0, float("nan")], [0.0, 0.0])


def toy(n=128, k=4, hw=16):
    rng = np.random.default_rng(1)
    y = np.sort(rng.integers(0, k, size=n))
    x = rng.integers(0, 256, size=(n, hw, hw, 3), dtype=np.uint8)
    x[..., 0] = (y[:, None, None] * 60).astype(np.uint8)  # learnable
    return ImageDataset("toy", x, y, x[:64], y[:64], tuple("abcd"[:k]))


def test_stall_test_runs_and_leaves_the_model_alone():
    ds = toy()
    c = RunConfig(dataset="cifar10-jpeg", model_width=4, epochs=1, batch_size=32, augment=False,
                  method="sam", rho=0.1)
    out = train(c, ds, device="cpu", progress=False)
    state = {k: v.clone() for k, v in out["model"].state_dict().items()}
    res = stall_test(c, state, ds, epochs=1)
    assert res["n_batches"] == 4 and res["probe_rho"] == 0.1
    for k in ("grad_norm", "step_norm", "ratio", "cosine", "projection", "progress"):
        iv = res["stats"][k]
        assert iv["low"] <= iv["estimate"] <= iv["high"] or not math.isfinite(iv["estimate"]), k
    sgd, sam = res["sgd_continuation"], res["sam_continuation"]
    assert sgd["steps"] == sam["steps"] == 4 and len(sgd["objective"]) == 2
    assert sgd["path_length"] >= sgd["displacement"] > 0
    m = res["mechanism"]
    assert 0 <= m["at_w_plus"]["dead_fraction"] <= 1 and m["at_w"]["logit_spread"] > 0
    assert m["segment"]["objective"][0] == pytest.approx(res["objective"], rel=1e-6)
    assert all(torch.equal(state[k], v) for k, v in out["model"].state_dict().items())


def test_matched_control_searches_and_reuses(tmp_path, monkeypatch):
    from sam_hallucination.runs import control

    monkeypatch.setattr(control, "LADDER_EPOCHS", (1, 2, 3))
    ds = toy()
    base = RunConfig(dataset="cifar10-jpeg", model_width=4, epochs=3, batch_size=32,
                     augment=False, method="sam", rho=1.0, eval_every=3)
    losses = {}
    for e in (1, 2, 3):
        _, losses[e] = control.trained(control.candidate(base, e), tmp_path, ds, "t")
    assert losses[3] < losses[1]  # longer schedules end lower
    target = 0.5 * (losses[1] + losses[2])
    c, _, match = control.matched_control(base, target, ds, tmp_path, "t", log=lambda s: None)
    assert c.method == "sgd" and match["control_run_id"] == c.run_id()
    assert abs(match["gap"]) <= min(abs(t["gap"]) for t in match["tried"])
    assert match["within_tolerance"] == (abs(match["gap"]) <= control.TOLERANCE)
    if not match["within_tolerance"]:
        assert len(match["tried"]) == 2 + control.BISECTIONS  # ladder to 2, then bisection
    n_files = len(list(tmp_path.glob("*.pt")))
    control.matched_control(base, target, ds, tmp_path, "t", log=lambda s: None)
    assert len(list(tmp_path.glob("*.pt"))) == n_files  # found on disk, not retrained
    assert control.candidate(base, 3).run_id() == base.replace(
        method="sgd", rho=0.0).run_id()  # the full-length rung is the study's SGD run


def fake_result(ratio, progress, sam_drop, sgd_drop=1.0, disp=1.0, path=2.0, grad_low=0.5):
    iv = lambda e, lo, hi: {"estimate": e, "low": lo, "high": hi}  # noqa: E731
    return {"stats": {"ratio": iv(*ratio), "progress": iv(*progress),
                      "grad_sq": iv(1.0, grad_low, 2.0)},
            "sam_continuation": {"drop": sam_drop, "displacement": disp, "path_length": path},
            "sgd_continuation": {"drop": sgd_drop}}


def test_the_verdict_rule_can_say_each_class():
    from sam_hallucination.report.stall import classify

    assert classify(fake_result((0.1, 0.05, 0.2), (0.05, 0.0, 0.1), 0.05)) == "stall"
    # the same step but the gradient is not resolved: no stall claimed
    assert classify(fake_result((0.1, 0.05, 0.2), (0.05, 0.0, 0.1), 0.05, grad_low=-0.1)) != "stall"
    # ratio upper bound 0.3 (not < 0.25): not a stall, whatever the drop
    assert classify(fake_result((0.1, 0.05, 0.3), (0.05, 0.0, 0.1), 0.05)) != "stall"
    assert classify(fake_result((0.6, 0.4, 0.8), (0.05, -0.1, 0.2), 0.05)) == "misaligned step"
    assert classify(fake_result((0.2, 0.1, 0.6), (0.3, 0.1, 0.5), 0.05, disp=0.1, path=5)) == "cycle"
    assert classify(fake_result((0.95, 0.8, 1.1), (0.9, 0.7, 1.1), 0.9)) == "no stall"
    assert classify(fake_result((0.6, 0.4, 0.8), (0.5, 0.3, 0.7), 0.5)) == "undecided"


def test_accuracy_effects_are_paired_over_seeds():
    from sam_hallucination.report.study import accuracy_effects

    def rec(method, rho, seed, acc):
        return {"config": {"method": method, "rho": rho, "seed": seed}, "status": "ok",
                "final": {"test_acc": acc}}
    recs = [rec("sgd", 0.0, s, a) for s, a in ((0, 0.60), (1, 0.62), (2, 0.58))]
    recs += [rec("sam", 0.1, s, a) for s, a in ((0, 0.62), (1, 0.64), (2, 0.60))]  # +2 each
    recs += [rec("sam", 1.0, s, a) for s, a in ((0, 0.70), (1, 0.50), (2, 0.61))]  # noisy
    t = accuracy_effects(recs).set_index("rho")
    assert t.loc[0.1, "vs SGD (points)"] == pytest.approx(2.0)
    assert t.loc[0.1, "verdict"] == "helps"
    assert t.loc[1.0, "verdict"] == "undecided"


def test_endpoint_table_verdicts_and_figures_from_real_stall_records():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sam_hallucination.report import stall as rs

    ds = toy()
    recs = {}
    for seed in (0, 1):
        for rho in (1.0,):
            c = RunConfig(dataset="cifar10-jpeg", model_width=4, epochs=1, batch_size=32,
                          augment=False, method="sam", rho=rho, seed=seed)
            out = train(c, ds, device="cpu", progress=False)
            res = stall_test(c, out["model"].state_dict(), ds, epochs=1)
            recs[c.run_id()] = {"result": res, "config": c.__dict__}
    t = rs.endpoint_table(recs)
    assert len(t) == 2 and set(t["class"]) <= set(rs.RULE)
    v = rs.radius_verdicts(t)  # 2 seeds < 3: never a verdict
    assert list(v["verdict"]) == ["undecided"]
    fig, axes = plt.subplots(1, 2)
    rs.plot_drop_ratio(axes[0], t)
    rs.plot_step_ratio(axes[1], t)
    assert len(axes[1].containers) == 1
    plt.close(fig)


def study_record(rho, seed, sgd_drop, sam_drop, dead=0.0, curv=1.0):
    """A stall record in the stored format, with the numbers the report reads."""
    iv = lambda e, lo, hi: {"estimate": e, "low": lo, "high": hi}  # noqa: E731
    cont = lambda d: {"drop": d, "drop_over_predicted": d / 0.1, "displacement": 1.0,  # noqa: E731
                      "path_length": 2.0}
    seg_t = [0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0, 1.125, 1.25]
    logits = {"logit_spread": 2.0, "majority_share": 0.1, "dead_fraction": dead}
    res = {"loss": 0.5, "stats": {"ratio": iv(0.5, 0.4, 0.6), "progress": iv(0.6, 0.5, 0.7),
                                  "grad_sq": iv(1.0, 0.5, 1.5), "grad_norm": iv(1.0, 0.7, 1.2),
                                  "step_sq": iv(0.25, 0.1, 0.4),
                                  "cosine": iv(0.9, 0.8, 1.0)},
           "sgd_continuation": cont(sgd_drop), "sam_continuation": cont(sam_drop),
           "mechanism": {"at_w": logits, "at_w_plus": dict(logits, logit_spread=0.5),
                         "segment": {"t": seg_t, "objective": [0.5 + 0.1 * t for t in seg_t],
                                     "curvature_at_w_plus": curv}}}
    cfg = {"method": "sam" if rho else "sgd", "rho": rho, "seed": seed}
    return {"stall_schema": 2, "run_id": f"r{rho}_s{seed}", "config": cfg, "result": res}


def control_record(rid, target, gap, sgd_drop):
    base = study_record(1.0, 0, sgd_drop, 0.1 * sgd_drop)
    return {"stall_schema": 2, "run_id": rid, "result": base["result"],
            "control": {"target_loss": target, "control_loss": target + gap, "gap": gap,
                        "within_tolerance": abs(gap) <= 0.03, "control_epochs": 4,
                        "control_lr": 0.2}}


def test_control_table_pairs_sam_end_points_with_their_controls():
    from sam_hallucination.report import stall as rs

    stall = {f"r1.0_s{s}": study_record(1.0, s, 0.05 + 0.01 * s, 0.005) for s in range(3)}
    esc = {rid: control_record(rid, 0.5, 0.01, 0.01) for rid in stall}  # SGD finds more at SAM's
    t = rs.control_table(stall, esc)
    assert list(t["excess drop"].round(3)) == [0.04, 0.05, 0.06]
    v = rs.control_verdicts(t)
    assert list(v["verdict"]) == ["escape"] and v.loc[0, "95% low"] > 0
    none = {rid: control_record(rid, 0.5, 0.01, 0.2) for rid in stall}  # the control drops more
    assert list(rs.control_verdicts(rs.control_table(stall, none))["verdict"]) == ["no escape"]
    loose = {rid: control_record(rid, 0.5, 0.1, 0.01) for rid in stall}  # gap 0.1: not matched
    assert list(rs.control_verdicts(rs.control_table(stall, loose))["verdict"]) == ["undecided"]
    two = dict(list(esc.items())[:2])  # 2 seeds: no verdict
    assert list(rs.control_verdicts(rs.control_table(stall, two))["verdict"]) == ["undecided"]


def test_findings_follow_the_intervals_and_load_folder_keeps_controls_apart(tmp_path):
    import json

    from sam_hallucination.report import stall as rs
    from sam_hallucination.report import study as sy

    recs = [{"config": {"method": m, "rho": r, "seed": s}, "status": "ok",
             "final": {"test_acc": a + (0.01 * s if m == "sgd" else 0.01 * s + d)}}
            for m, r, d in (("sgd", 0.0, 0), ("sam", 0.1, 0.02), ("sam", 2.0, -0.2))
            for s in range(3) for a in (0.6,)]
    eff = sy.accuracy_effects(recs)
    stall = {f"r{r}_s{s}": study_record(r, s, 0.05, 0.05 * f)
             for r, f in ((0.1, 0.9), (2.0, 0.02)) for s in range(3)}
    for rid, rec in stall.items():
        (tmp_path / f"{rid}.json").write_text(json.dumps(rec))
    (tmp_path / "control_r2.0_s0.json").write_text(json.dumps(control_record("r2.0_s0", 1, 0, 1)))
    loaded = rs.load_folder(tmp_path)
    assert set(loaded) == set(stall)  # the control file is not an end point
    assert set(rs.load_folder(tmp_path, prefix="control_")) == {"r2.0_s0"}
    ends = rs.endpoint_table(loaded)
    table = sy.findings(eff, rs.radius_verdicts(ends))
    row = table.set_index("rho")
    assert row.loc[0.1, "accuracy"] == "helps" and row.loc[2.0, "accuracy"] == "hurts"
    text = sy.findings_text(table)
    assert "beats SGD" in text and "ρ ∈ {0.1}" in text and "loses to SGD" in text
    assert "undecided" in text  # ratio 0.4-0.6: neither stall nor no stall at any radius
    mech = rs.mechanism_table(loaded)
    assert list(mech["logit spread at w+"]) == [0.5, 0.5] and list(mech["n"]) == [3, 3]
    assert rs.mechanism_table({}).empty and rs.endpoint_table({}).empty
    bad = dict(stall["r0.1_s0"], stall_schema=99)
    (tmp_path / "r0.1_s0.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="stall_schema 99"):
        rs.load_folder(tmp_path)


def test_a_nan_statistic_is_stored_as_null_and_read_back_as_nan(tmp_path, monkeypatch):
    """An unresolved gradient makes the ratio NaN; the record must still be written (once it
    was not: json refused the NaN after the test had run)."""
    import json

    from sam_hallucination.report import stall as rs
    from sam_hallucination.runs import stalltest

    c = RunConfig(dataset="cifar10-jpeg", model_width=4, epochs=1, batch_size=32, seed=3)
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / f"{c.run_id()}.json").write_text(json.dumps(
        {"run_id": c.run_id(), "status": "ok", "final": {"test_acc": 0.5}}))
    torch.save({}, tmp_path / "sw" / f"{c.run_id()}.pt")
    res = study_record(0.0, 3, 0.05, 0.01)["result"]
    res["stats"]["ratio"] = {"estimate": math.nan, "low": math.nan, "high": math.inf}
    monkeypatch.setattr(stalltest, "load_dataset", lambda *a, **k: None)
    monkeypatch.setattr(stalltest, "stall_test", lambda *a, **k: dict(res, wall_time_s=1.0,
                                                                      sam_over_sgd_drop=0.2))
    assert stalltest.run_stall_tests("sw", [c], tmp_path) == [c.run_id()]
    stored = json.loads((tmp_path / "sw-stall" / f"{c.run_id()}.json").read_text())
    assert stored["result"]["stats"]["ratio"] == {"estimate": None, "low": None, "high": None}
    back = rs.load_folder(tmp_path / "sw-stall")[c.run_id()]["result"]["stats"]["ratio"]
    assert all(math.isnan(v) for v in back.values())


def test_run_controls_finds_the_stall_records(tmp_path, monkeypatch):
    """Once it read stall records as run records (which need a status): it found none and
    silently ran no control at all."""
    import json

    from sam_hallucination.runs import control

    c = RunConfig(dataset="cifar10-jpeg", model_width=4, epochs=1, batch_size=32, method="sam",
                  rho=1.0, seed=3)
    (tmp_path / "sw-stall").mkdir()
    rec = study_record(1.0, 3, 0.05, 0.01)
    (tmp_path / "sw-stall" / f"{c.run_id()}.json").write_text(json.dumps(rec))
    small = c.replace(rho=0.1)  # below min_rho: no control
    (tmp_path / "sw-stall" / f"{small.run_id()}.json").write_text(json.dumps(rec))
    seen = []

    def fake_match(base, target, *a, **k):
        seen.append((base.run_id(), target))
        return base.replace(method="sgd", rho=0.0), {}, {"control_run_id": "x", "gap": 0.0}
    monkeypatch.setattr(control, "matched_control", fake_match)
    monkeypatch.setattr(control, "stall_test", lambda *a, **k: dict(rec["result"],
                                                                    sam_over_sgd_drop=0.2))
    assert control.run_controls("sw", [c, small], None, tmp_path) == [c.run_id()]
    assert seen == [(c.run_id(), rec["result"]["loss"])]
    assert (tmp_path / "sw-stall" / f"control_{c.run_id()}.json").is_file()


def test_the_readings_follow_the_tables():
    from sam_hallucination.report import stall as rs

    stall = {f"r{r}_s{s}": study_record(r, s, 0.05, 0.05 * f, curv=-0.5 if r == 2 else 1.0)
             for r, f in ((0.1, 0.9), (2.0, 0.05)) for s in range(3)}
    ends = rs.endpoint_table(stall)
    text = rs.stall_reading(ends)
    assert "descends from there at 0.90 of SGD's rate" in text
    assert "descends at 0.05 at ρ = 2 of SGD's rate" in text
    assert "At ρ = 2, 3 of 3 seeds descend at less than 10%" in text and "0 meet every" in text
    m = rs.mechanism_text(rs.mechanism_table(stall))
    assert "between -0.5 and 1" in m and "within 75%" in m
    ctl = {rid: control_record(rid, 0.5, 0.01, 0.01) for rid in stall if rid.startswith("r2.0")}
    t = rs.control_table(stall, ctl)
    c = rs.control_text(t, rs.control_verdicts(t))
    assert c.startswith("3 of 3 controls end within") and ": escape." in c
    assert rs.control_text(t.iloc[0:0], rs.control_verdicts(t.iloc[0:0])).startswith("No annealed")


def _linear(ds, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))


def test_partitions_estimate_the_step_without_the_one_partition_bias():
    """Without BatchNorm, a partition's mean gradient *is* the full gradient, so over
    independent partitions ‖E g‖² comes out exact; the U-statistic over one partition's
    batches (schema 1) subtracts noise that is not there and comes out low."""
    from sam_hallucination.runs.probe import fixed_batches
    from sam_hallucination.runs.stalltest import batch_vectors, partition_estimate

    ds, dev = toy(), torch.device("cpu")
    model = _linear(ds)
    before = [p.detach().clone() for p in model.parameters()]
    (x, y), = fixed_batches(ds, 1, 128, dev, seed=0)
    full = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y),
                               list(model.parameters()))
    exact = float(sum((g.double() ** 2).sum() for g in full))
    est = partition_estimate(model, ds, 32, 0.1, 0.0, k=5, device=dev)
    assert est["partitions"] == 5 and est["batches_per_partition"] == 4
    assert est["stats"]["grad_sq"]["estimate"] == pytest.approx(exact, rel=1e-6)
    v = batch_vectors(model, fixed_batches(ds, 4, 32, dev, seed=0), 0.1, 0.0)
    one = gram_statistics(v["gg"], v["hh"], v["gh"])
    assert one["grad_sq"].estimate < 0.95 * exact  # the flaw the partitions remove
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_upgrade_gives_what_a_fresh_test_gives(tmp_path):
    """A schema-1 record upgraded at the same weights carries the same step estimate as a
    schema-2 test run now, keeps the measured continuations, and recomputes predictions."""
    import copy
    import json

    from sam_hallucination.runs import endpoints

    ds = toy()
    c = RunConfig(dataset="cifar10-jpeg", model_width=4, epochs=1, batch_size=32, augment=False,
                  method="sam", rho=0.1)
    state = {k: v.clone() for k, v in
             train(c, ds, device="cpu", progress=False)["model"].state_dict().items()}
    fresh = stall_test(c, state, ds, epochs=1)
    old = copy.deepcopy(fresh)  # the same test as schema 1 wrote it
    old["stats"] = old.pop("batch_stats")
    del old["estimator"]
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw-stall").mkdir()
    torch.save(state, tmp_path / "sw" / f"{c.run_id()}.pt")
    path = tmp_path / "sw-stall" / f"{c.run_id()}.json"
    path.write_text(json.dumps({"stall_schema": 1, "run_id": c.run_id(), "config": c.__dict__,
                                "result": old}))
    assert endpoints.upgrade_records("sw", ds, tmp_path, log=lambda s: None) == [path.name]
    new = json.loads(path.read_text())
    assert new["stall_schema"] == 2 and new["result"]["estimator"]["upgraded_from_schema"] == 1
    r = new["result"]
    assert r["stats"] == fresh["stats"] and r["batch_stats"] == fresh["batch_stats"]
    for k in ("sgd_continuation", "sam_continuation"):
        assert r[k]["drop"] == fresh[k]["drop"]
        assert r[k]["predicted_drop"] == pytest.approx(fresh[k]["predicted_drop"], rel=1e-12)
    assert endpoints.upgrade_records("sw", ds, tmp_path) == []  # done once


def test_a_control_that_does_not_replay_is_not_upgraded(tmp_path):
    import json

    from sam_hallucination.runs import endpoints

    ds = toy()
    c = RunConfig(dataset="cifar10-jpeg", model_width=4, epochs=1, batch_size=32, augment=False)
    (tmp_path / "sw-stall").mkdir()
    rec = {"stall_schema": 1, "run_id": "x", "control_config": c.__dict__,
           "control": {"control_loss": 123.0}, "result": {}}
    (tmp_path / "sw-stall" / "control_x.json").write_text(json.dumps(rec))
    with pytest.raises(RuntimeError, match="not reproducible here"):
        endpoints.upgrade_records("sw", ds, tmp_path)
    assert json.loads((tmp_path / "sw-stall" / "control_x.json").read_text()) == rec


def test_the_estimator_change_counts_negative_squared_norms():
    import copy

    from sam_hallucination.report import stall as rs

    stall = {f"r1_s{s}": study_record(1.0, s, 0.05, 0.01) for s in range(3)}
    for i, rec in enumerate(stall.values()):
        old = copy.deepcopy(rec["result"]["stats"])
        old["step_sq"] = {"estimate": -0.2, "low": -0.3, "high": -0.1 if i < 2 else 0.1}
        old["ratio"] = {"estimate": 0.0, "low": 0.0, "high": 0.0}
        rec["result"]["batch_stats"] = old
    stall["sgd"] = study_record(0.0, 0, 0.05, 0.05)  # SGD end points are not counted
    ch = rs.estimator_change(stall)
    assert list(ch["rho"]) == [1.0] and int(ch["n"].iloc[0]) == 3
    assert int(ch["old negative"].iloc[0]) == 2 and int(ch["new negative"].iloc[0]) == 0
    assert rs.estimator_text(ch).startswith("Over one partition, 2 of 3 SAM end points")
    assert "from 0.00 to 0.200" in rs.estimator_text(ch)
    assert "ten partitions" in rs.estimator_view(ch)


def test_the_extra_arms_pair_with_their_own_sgd():
    from sam_hallucination.report import study as sy

    def r(method, rho, seed, acc, noise=0.0, adaptive=False):
        return {"config": {"method": method, "rho": rho, "seed": seed, "switch_frac": 0.0,
                           "label_noise": noise, "adaptive": adaptive},
                "status": "ok", "final": {"test_acc": acc / 100}}
    seeds = (10, 11, 12)
    study = [r("sgd", 0.0, s, 60 + s - 10) for s in seeds]
    noise = [r("sgd", 0.0, s, 40 + s - 10, 0.2) for s in seeds]
    noise += [r("sam", 0.05, s, 45 + s - 10 + (0.1, -0.1, 0.0)[s - 10], 0.2) for s in seeds]
    asam = [r("sam", 0.8, s, 50 + (0.0, 2.0, -1.0)[s - 10], adaptive=True) for s in seeds]
    e = sy.arm_effects(study, noise, asam)
    n = e[(e["arm"] == "20% label noise") & (e["method"] == "sam")].iloc[0]
    assert n["vs SGD (points)"] == pytest.approx(5.0) and n["verdict"] == "helps"
    a = e[e["arm"] == "ASAM"].iloc[0]  # against the clean SGD, 61% on average
    assert a["vs SGD (points)"] == pytest.approx(50 + 1 / 3 - 61) and a["verdict"] == "hurts"
    text = sy.arms_text(e)
    assert "SAM under 20% label noise at ρ = 0.05 minus its SGD: +5.0 [" in text
    assert "ASAM at ρ = 0.8" in text and "(hurts, 3 seeds)" in text
    assert sy.arms_text(sy.arm_effects(study, [], [])) == "Neither arm has run yet."
    assert "label noise" in sy.arms_view(e)


def test_arm_verdicts_per_arm():
    from sam_hallucination.report import stall as rs

    noise = {f"n{s}": study_record(1.0, s, 0.05, 0.001) for s in range(3)}
    t = rs.arm_verdicts({"20% label noise": noise, "ASAM": {}})
    assert list(t["arm"]) == ["20% label noise"] and list(t["rho"]) == [1.0]
    assert t.loc[0, "SAM/SGD drop"] == pytest.approx(0.02)
    assert "0.02 [" in rs.arm_verdict_view(t)
    assert rs.arm_verdicts({}).empty
