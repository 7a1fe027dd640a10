"""The CPU-scale tier (issue 18): its sweeps, run-id stability, its estimate, shared runs
computed once, and which tier a chapter shows (fake records; no CIFAR training)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from sam_hallucination import report as an
from sam_hallucination.data import load_dataset
from sam_hallucination.models import count_parameters, make_model
from sam_hallucination.report.cifar import CPU_TIER_LABEL, pick_set
from sam_hallucination.runs.cli import main
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.estimate import cpu_calibration, group_seconds
from sam_hallucination.runs.store import validate_record, write_json_atomic
from sam_hallucination.runs.sweeps import (
    CPU_TIER_WIDTH,
    SWEEPS,
    Sweep,
    cpu_tier_base,
    get_sweep,
    grid,
    load_results,
    run_sweep,
)

ROOT = Path(__file__).resolve().parents[1]
RHO, REMEDY = "cifar10-cpu-rho", "cifar10-cpu-remedy"


def test_tier_sizes_and_shared_runs():
    rho, remedy = get_sweep(RHO).runs, get_sweep(REMEDY).runs
    assert len(rho) == 14 and len(remedy) == 26  # (1 + 6) x 2 seeds; (1 + 3 x 4) x 2 seeds
    assert sorted((c.method, c.rho) for c in rho if c.seed == 0) == [
        ("sam", 0.05), ("sam", 0.1), ("sam", 0.2), ("sam", 0.5), ("sam", 1.0), ("sam", 2.0),
        ("sgd", 0.0)]
    cells = {(c.method, c.rho, c.switch_frac) for c in remedy}
    assert {(m, r, f) for m, r, f in cells if m == "switch"} == {
        ("switch", r, f) for r in (0.5, 1.0, 2.0) for f in (0.1, 0.3)}
    assert {r for m, r, _ in cells if m == "rho-decay"} == {0.5, 1.0, 2.0}
    # SGD and SAM at rho 0.5, 1, 2: the same configs (run ids) in both sweeps
    rho_ids = {c.run_id(): c for c in rho}
    shared = [c for c in remedy if c.run_id() in rho_ids]
    assert len(shared) == 8 and all(rho_ids[c.run_id()] == c for c in shared)
    assert {(c.method, c.rho) for c in shared} == {("sgd", 0.0), ("sam", 0.5), ("sam", 1.0),
                                                   ("sam", 2.0)}
    for c in rho + remedy:  # the recipe, the probe on, the full test set
        assert (c.model, c.model_width, c.n_train, c.n_test) == ("airbench", CPU_TIER_WIDTH,
                                                                 10_000, None)
        assert c.probe and c.probe_epochs >= 1 and c.final_constant_lr_epochs == 1
    assert {c.seed for c in rho} == {c.seed for c in remedy} == {0, 1}


def test_tier_model_size():
    m = make_model("airbench", 10, widths=(CPU_TIER_WIDTH, 4 * CPU_TIER_WIDTH,
                                           4 * CPU_TIER_WIDTH))
    assert count_parameters(m) == 72_504  # within the issue's ~0.05-0.15M
    ds = load_dataset("synthetic")
    from sam_hallucination.runs.loop import build_model
    built = build_model(cpu_tier_base().replace(dataset="synthetic", n_train=None), ds)
    assert built.head.in_features == 4 * CPU_TIER_WIDTH
    assert count_parameters(build_model(RunConfig(dataset="synthetic"), ds)) > 1_000_000


def test_model_width_leaves_old_run_ids_alone():
    # the default (None) is not hashed: pre-existing ids, committed results included, hold
    assert RunConfig().run_id() == RunConfig(model_width=None).run_id()
    assert RunConfig(model_width=12).run_id() != RunConfig().run_id()
    assert get_sweep("smoke").runs[0].run_id() == "fashion-mnist_mlp_sgd_s0_080dd8d1"
    n = 0
    for name in SWEEPS:
        for path in sorted((ROOT / "results" / name).glob("*.json")):
            rec = json.loads(path.read_text())
            c = RunConfig(**rec["config"])
            assert c.run_id() == rec["run_id"] == path.stem
            assert validate_record(path, c, name) == (rec, "")  # stored records stay valid
            n += 1
    assert n >= 10  # the committed smoke and smoke-cifar results were checked
    for bad in (0, 1.5, "12"):
        with pytest.raises(ValueError, match=r"RunConfig\.model_width="):
            RunConfig(model_width=bad)
    with pytest.raises(ValueError, match="only model 'airbench'"):
        RunConfig(model="resnet18", model_width=12)


def test_calibrated_cpu_estimate(tmp_path, capsys):
    c = cpu_tier_base()
    cal = cpu_calibration(c)
    assert cal is not None and cpu_calibration(c.replace(batch_size=256)) is None
    sgd = group_seconds([c], "cpu", None)
    sam = group_seconds([c.replace(method="sam", rho=1.0)], "cpu", None)
    sw = group_seconds([c.replace(method="switch", rho=1.0, switch_frac=0.3)], "cpu", None)
    # 9 epochs, 3 evaluations (epochs 4, 8, 9), the probe
    assert sgd == pytest.approx(9 * cal["sgd"] + 3 * cal["eval"] + cal["probe_sgd"])
    assert sam == pytest.approx(9 * cal["sam"] + 3 * cal["eval"] + cal["probe_sam"])
    assert sgd < sw < sam
    assert main([RHO, REMEDY, "--device", "cpu", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    total = float(out.split("estimated ")[-1].split(" s in all")[0])
    assert f"[{RHO}] 14 runs: 0 done" in out
    assert f"[{REMEDY}] 18 runs" in out  # shared runs planned once
    assert 1800 < total < 3600  # the tier fits the hour, with margin
    assert "measured for the CPU tier" in out


def test_shared_runs_are_copied_not_recomputed(tmp_path, capsys):
    torch.set_num_threads(1)
    syn = {"synthetic": load_dataset("synthetic")}
    tiny = RunConfig(dataset="synthetic", model="mlp", hidden=16, epochs=1, batch_size=32,
                     n_train=64, n_test=32, lr=0.05, warmup_frac=0.0)
    a = Sweep("a", "x", grid(tiny, rhos=(0.5,), seeds=(0,)))
    b = Sweep("b", "x", grid(tiny, rhos=(0.5, 1.0), seeds=(0,)))
    run_sweep(a, results_dir=tmp_path, device="cpu", progress=False, datasets=syn)
    dry = run_sweep(b, results_dir=tmp_path, device="cpu", progress=False, dry_run=True)
    assert dry["left"] == 1 and not (tmp_path / "b").exists()  # dry run copies nothing
    out = run_sweep(b, results_dir=tmp_path, device="cpu", progress=False, datasets=syn)
    assert out["ran"] == [b.runs[-1].run_id()] and out["done"] == 3
    assert "2 run(s) reused" in capsys.readouterr().out
    recs = {r["run_id"]: r for r in load_results(b, tmp_path)}
    assert len(recs) == 3
    for c in a.runs:
        src = json.loads((tmp_path / "a" / f"{c.run_id()}.json").read_text())
        got = recs[c.run_id()]
        assert got["sweep"] == "b" and got["provenance"]["reused_from"] == "a"
        assert got["final"] == src["final"] and got["epochs"] == src["epochs"]


def fake(c: RunConfig, sweep: str, acc: float = 0.6) -> dict:
    eps = [{"epoch": e + 1, "test_acc": acc} for e in range(c.epochs + 1)]
    return {"run_id": c.run_id(), "sweep": sweep, "config": asdict(c), "status": "ok",
            "final": {"test_acc": acc}, "epochs": eps, "wall_time_s": 1.0, "probe": None,
            "provenance": {"device": "cpu", "device_name": "Fake CPU", "torch": "9.9",
                           "git": {"commit": "abcdef1234567890", "dirty": False}}}


def put(root: Path, sweep: str, configs: list[RunConfig]) -> None:
    for c in configs:
        write_json_atomic(root / sweep / f"{c.run_id()}.json", fake(c, sweep))


def test_pick_set_prefers_gpu_then_cpu_tier_then_smoke(tmp_path):
    assert pick_set("cifar10-rho", tmp_path).records == []  # nothing at all: empty smoke set
    put(tmp_path, "smoke-cifar", get_sweep("smoke-cifar").runs)
    rs = pick_set("cifar10-rho", tmp_path)
    assert rs.tier == "smoke" and rs.smoke and rs.label == an.SMOKE_LABEL
    put(tmp_path, RHO, get_sweep(RHO).runs[:7])  # seed 0 of the CPU tier
    rs = pick_set("cifar10-rho", tmp_path)
    assert rs.tier == "cpu" and rs.label == CPU_TIER_LABEL and not rs.smoke
    assert rs.sweep == RHO and len(rs.records) == 7 and rs.present() == 7
    assert an.coverage_text(rs) == f"{RHO}: 7/14 runs present (seed 1: 7 missing)"
    assert an.provenance_text(rs).startswith(CPU_TIER_LABEL)
    assert an.provenance(rs)["tier"] == "cpu"
    assert pick_set("cifar10-remedy", tmp_path).tier == "smoke"  # its own tier is empty
    put(tmp_path, "cifar10-rho", get_sweep("cifar10-rho").runs[:1])
    rs = pick_set("cifar10-rho", tmp_path)
    assert rs.tier == "gpu" and rs.label == "sweep cifar10-rho" and len(rs.records) == 1
    assert not an.provenance_text(rs).startswith(CPU_TIER_LABEL)


def test_a_result_set_has_one_tier_of_three():
    assert an.tier_of("cifar10-cpu-probe") == "cpu" and an.tier_of("cifar10-rho") == "gpu"
    rs = an.ResultSet("cifar10-rho", [], tier="smoke")
    assert rs.smoke and rs.label == an.SMOKE_LABEL
    assert an.ResultSet("cifar10-cpu-rho", [], tier="cpu").label == CPU_TIER_LABEL
    with pytest.raises(ValueError, match="tier must be one of"):
        an.ResultSet("cifar10-rho", [], tier="tpu")
