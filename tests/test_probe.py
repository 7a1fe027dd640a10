"""The probe's matched-loss control: SGD snapshots, the closest one, its continuation."""

from __future__ import annotations

import pytest
import torch

from sam_hallucination.data import load_dataset
from sam_hallucination.runs import probe as P
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.sweeps import Sweep, grid, load_results, run_sweep

torch.set_num_threads(1)
SYN = {"synthetic": load_dataset("synthetic")}
BASE = RunConfig(dataset="synthetic", model="mlp", hidden=16, epochs=3, batch_size=32,
                 n_train=128, n_test=32, lr=0.05, warmup_frac=0.0, probe=True, probe_batches=2,
                 final_constant_lr_epochs=1)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_CACHE_DIR", str(tmp_path / "cache"))
    P._LADDERS.clear()
    yield tmp_path
    P._LADDERS.clear()


def test_matched_control_uses_the_closest_sgd_snapshot(fresh_cache):
    sweep = Sweep("p", "x", grid(BASE, rhos=(0.05, 2.0), seeds=(0,), methods=("sgd", "sam")))
    run_sweep(sweep, results_dir=fresh_cache / "r", device="cpu", progress=False, datasets=SYN)
    recs = {r["config"]["method"] + str(r["config"]["rho"]): r for r in
            load_results(sweep, fresh_cache / "r")}
    sgd = recs["sgd0.0"]["probe"]
    ladder = sgd["sgd_ladder"]
    assert [e["epoch"] for e in ladder] == [0, 1, 2, 3, 4]  # init + every epoch
    assert ladder[-1]["loss"] == pytest.approx(sgd["sgd_continuation"]["loss_before"], rel=1e-9)
    assert sgd["sgd_control"] is None and sgd["rho_over_weight_norm"] == 0.0
    assert sgd["steps"] == 4  # one epoch of 128 images at batch 32
    assert P.snapshot_path(recs["sgd0.0"]["run_id"]).exists()
    for key in ("sam0.05", "sam2.0"):
        p = recs[key]["probe"]
        c = p["sgd_control"]
        loss = p["sgd_continuation"]["loss_before"]
        gaps = [abs(e["loss"] - loss) for e in ladder]
        assert c["sgd_run_id"] == recs["sgd0.0"]["run_id"] and c["optimizer"] == "sgd"
        assert abs(c["loss_gap"]) == pytest.approx(min(gaps))
        assert c["epoch"] == ladder[gaps.index(min(gaps))]["epoch"]
        # the continuation really started from that snapshot
        assert c["loss_before"] == pytest.approx(c["snapshot_loss"], rel=1e-9)
        assert c["steps"] == p["sgd_continuation"]["steps"] == 4
        assert c["excess_drop"] == pytest.approx(p["sgd_continuation"]["loss_drop"]
                                                 - c["loss_drop"])
        w = p["weight_norm"]
        assert p["rho_over_weight_norm"] == pytest.approx(recs[key]["config"]["rho"] / w)
        assert w == pytest.approx(recs[key]["final"]["trainable_weight_norm"], rel=1e-6)


def test_control_from_disk_and_missing(fresh_cache):
    sgd_cfg, sam_cfg = BASE, BASE.replace(method="sam", rho=0.1)
    sweep = Sweep("p", "x", [sgd_cfg])
    run_sweep(sweep, results_dir=fresh_cache / "r", device="cpu", progress=False, datasets=SYN)
    P._LADDERS.clear()  # a later process: the ladder comes from the snapshot cache
    run_sweep(Sweep("q", "x", [sam_cfg]), results_dir=fresh_cache / "r", device="cpu",
              progress=False, datasets=SYN)
    c = load_results("q", fresh_cache / "r")[0]["probe"]["sgd_control"]
    assert c["status"] == "ok" and c["sgd_run_id"] == sgd_cfg.run_id()
    P._LADDERS.clear()
    P.snapshot_path(sgd_cfg.run_id()).unlink()
    run_sweep(Sweep("z", "x", [sam_cfg.replace(seed=1)]), results_dir=fresh_cache / "r",
              device="cpu", progress=False, datasets=SYN)
    c = load_results("z", fresh_cache / "r")[0]["probe"]["sgd_control"]
    assert c["status"] == "missing" and c["sgd_run_id"] == sgd_cfg.replace(seed=1).run_id()


def test_report_uses_the_matched_control():
    from test_analysis import probe, record

    from sam_hallucination import report as an

    sgd_c, sam_c = BASE, BASE.replace(method="sam", rho=2.0)
    stalled = probe(2.0, step=0.01, step_se=0.01, sgd_drop=0.05)
    # the end-point baseline (SGD drop 0.01) says "escapes"; the matched control, which also
    # drops 0.05 from a snapshot at that loss, says SGD does that anyway
    stalled["sgd_control"] = {"status": "ok", "loss_drop": 0.05, "loss_gap": 0.02, "epoch": 1}
    stalled["rho_over_weight_norm"] = 0.25
    recs = [record(sgd_c, 0.8, "x", pr=probe(0.0)), record(sam_c, 0.3, "x", pr=stalled)]
    rows = an.probe_rows(recs)
    sam = rows[1]
    assert sam["stalled"] and sam["escapes"] is False and sam["ctl_gap"] == 0.02
    table = an.format_probe_table(rows, "t")
    diag, cont = table.split("\n\n")  # two tables: stall diagnostics, continuation test
    assert "ctl drop" in cont and "0.25" in diag.splitlines()[-1]
    del stalled["sgd_control"]  # an older record: the end-point baseline
    assert an.probe_rows(recs)[1]["escapes"] is True
