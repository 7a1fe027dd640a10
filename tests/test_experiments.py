"""Configs, sweeps, resumable execution and result files (CPU, tiny)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sam_hallucination.data import load_dataset
from sam_hallucination.runs.cli import main
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.store import SCHEMA_VERSION
from sam_hallucination.runs.sweeps import SWEEPS, Sweep, get_sweep, grid, load_results, run_sweep

torch.set_num_threads(1)
SYN = {"synthetic": load_dataset("synthetic")}
TINY = RunConfig(dataset="synthetic", model="mlp", hidden=16, epochs=2, batch_size=32,
                 n_train=64, n_test=32, lr=0.05, warmup_frac=0.0)


def tiny_sweep(name: str = "t") -> Sweep:
    return Sweep(name, "tiny", grid(TINY, rhos=(0.05, 0.5), seeds=(0, 1),
                                   methods=("sgd", "sam", "switch"), switch_fracs=(0.5,)))


def strip(rec: dict) -> dict:
    """The parts of a record that must be reproducible (no timings, no timestamps)."""
    eps = [{k: v for k, v in e.items() if not k.endswith("time_s")} for e in rec["epochs"]]
    return {"config": rec["config"], "status": rec["status"], "final": rec["final"],
            "epochs": eps}


@pytest.mark.parametrize("field,value", [
    ("model", "vgg"), ("dataset", "imagenet"), ("method", "adam"), ("rho", -0.1),
    ("rho", math.nan), ("rho", math.inf), ("lr", 0.0), ("lr_schedule", "step"),
    ("epochs", 0), ("batch_size", 0), ("switch_frac", 1.0), ("momentum", 1.5),
    ("n_train", 0), ("seed", -1), ("label_noise", 1.0), ("final_constant_lr_epochs", -1),
])
def test_bad_config_names_field(field, value):
    kw = {"method": "sam", "rho": 0.1} if field not in ("method",) else {}
    kw[field] = value
    with pytest.raises(ValueError, match=rf"RunConfig\.{field}="):
        RunConfig(**kw)


def test_config_cross_field_checks():
    with pytest.raises(ValueError, match=r"RunConfig\.batch_size=.*larger than the training set"):
        RunConfig(dataset="cifar10-jpeg", n_train=100, batch_size=512)
    with pytest.raises(ValueError, match=r"RunConfig\.rho=.*needs rho > 0"):
        RunConfig(method="sam", rho=0.0)
    with pytest.raises(ValueError, match=r"RunConfig\.switch_frac=.*only method 'switch'"):
        RunConfig(method="sam", rho=0.1, switch_frac=0.1)
    with pytest.raises(ValueError, match=r"RunConfig\.nesterov"):
        RunConfig(momentum=0.0)


def test_run_id_readable_and_hashed():
    a = RunConfig(method="switch", rho=1.0, switch_frac=0.1, seed=2)
    assert a.run_id().startswith("cifar10-jpeg_airbench_switch_rho1_sw0.1_s2_")
    assert a.run_id() == RunConfig(method="switch", rho=1.0, switch_frac=0.1, seed=2).run_id()
    assert a.run_id() != a.replace(lr=0.1).run_id()  # any field changes the hash
    assert RunConfig(method="sam", rho=1).run_id() == RunConfig(method="sam", rho=1.0).run_id()


def test_registry_and_ordering():
    rho = get_sweep("cifar10-rho")
    assert len(rho) == 21
    assert {(r.method, r.rho) for r in rho.runs} == {("sgd", 0.0)} | {
        ("sam", x) for x in (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)}
    pilot = rho.runs[0]
    assert (pilot.epochs, pilot.batch_size, pilot.lr, pilot.momentum, pilot.nesterov,
            pilot.weight_decay, pilot.lr_schedule, pilot.amp) == (16, 512, 0.2, 0.9, True, 5e-4,
                                                                  "onecycle", True)
    for name in SWEEPS:
        runs = get_sweep(name).runs
        seeds = [r.seed for r in runs]
        assert seeds == sorted(seeds), name  # seed 0 of every cell first
        assert len({r.run_id() for r in runs}) == len(runs), name  # no duplicates
    remedy = get_sweep("cifar10-remedy")
    fracs = {r.switch_frac for r in remedy.runs if r.method == "switch"}
    assert fracs == {0.05, 0.1, 0.2, 0.3}
    assert {r.method for r in remedy.runs} == {"sgd", "sam", "switch", "rho-decay"}
    assert get_sweep("cifar100-resnet18-paper").runs[0].epochs == 200
    with pytest.raises(ValueError, match="unknown sweep"):
        get_sweep("nope")


def test_resume_after_max_runs_matches_scratch(tmp_path, capsys):
    sweep = tiny_sweep()
    n = len(sweep)
    first = run_sweep(sweep, results_dir=tmp_path / "a", device="cpu", max_runs=3,
                      progress=False, datasets=SYN)
    assert len(first["ran"]) == 3 and first["left"] == n - 3
    files = sorted((tmp_path / "a" / "t").glob("*.json"))
    assert len(files) == 3
    second = run_sweep(sweep, results_dir=tmp_path / "a", device="cpu", progress=False,
                       datasets=SYN)
    assert len(second["ran"]) == n - 3 and second["left"] == 0
    assert not set(first["ran"]) & set(second["ran"])  # nothing recomputed
    assert len(list((tmp_path / "a" / "t").iterdir())) == n  # no temp files left behind
    third = run_sweep(sweep, results_dir=tmp_path / "a", device="cpu", progress=False,
                      datasets=SYN)
    assert third["ran"] == [] and third["done"] == n
    assert f"done {n}, left 0, diverged 0" in capsys.readouterr().out
    scratch = run_sweep(sweep, results_dir=tmp_path / "b", device="cpu", progress=False,
                        datasets=SYN)
    assert scratch["done"] == n
    resumed = load_results(sweep, tmp_path / "a")
    fresh = load_results(sweep, tmp_path / "b")
    assert [r["run_id"] for r in resumed] == [c.run_id() for c in sweep.runs]
    assert [strip(r) for r in resumed] == [strip(r) for r in fresh]


def test_corrupt_result_is_kept_aside_and_refused(tmp_path):
    sweep = Sweep("c", "x", grid(TINY, rhos=(0.1,), seeds=(0,)))
    run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    bad = tmp_path / "c" / f"{sweep.runs[1].run_id()}.json"
    good = json.loads(bad.read_text())
    bad.write_text('{"status": "ok", "epo')  # a torn write from some other tool
    (tmp_path / "c" / ".x.json.123.tmp").write_text("{")  # temp file of a killed writer
    out = run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    assert out["ran"] == [] and out["refused"] == [sweep.runs[1].run_id()]
    aside = bad.with_name(bad.name + ".refused")
    assert aside.read_text() == '{"status": "ok", "epo' and not bad.exists()  # kept, unread
    aside.unlink()  # the user's decision: recompute it
    out = run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    assert out["ran"] == [sweep.runs[1].run_id()]
    assert strip(json.loads(bad.read_text())) == strip(good)
    assert len(load_results(sweep, tmp_path)) == len(sweep)  # the temp file is ignored


def test_divergence_recorded_and_sweep_goes_on(tmp_path):
    runs = [TINY.replace(method="sam", rho=0.5, lr=1e6), TINY.replace(seed=1)]
    out = run_sweep(Sweep("d", "x", runs), results_dir=tmp_path, device="cpu",
                    progress=False, datasets=SYN)
    assert out["diverged"] == 1 and len(out["ran"]) == 2
    recs = load_results("d", tmp_path)
    assert [r["status"] for r in recs] == ["diverged", "ok"]
    assert recs[0]["diverged_at"]["step"] >= 0 and recs[0]["final"]["test_acc"] is None
    again = run_sweep(Sweep("d", "x", runs), results_dir=tmp_path, device="cpu",
                      progress=False, datasets=SYN)
    assert again["ran"] == [] and again["diverged"] == 1  # a diverged run is finished


def test_result_schema_and_provenance(tmp_path):
    sweep = Sweep("p", "x", [TINY.replace(method="rho-decay", rho=0.2)])
    run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    (rec,) = load_results(sweep, tmp_path)
    assert rec["schema_version"] == SCHEMA_VERSION and rec["sweep"] == "p"
    assert rec["config"]["method"] == "rho-decay" and rec["dataset_name"].startswith("Synthetic")
    prov = rec["provenance"]
    assert prov["device"] == "cpu" and prov["device_name"]
    assert prov["torch"] == torch.__version__ and "commit" in prov["git"]
    assert prov["timestamp_utc"].endswith("+00:00")
    assert len(rec["epochs"]) == 2 and rec["wall_time_s"] > 0 and rec["probe"] is None
    keys = {"epoch", "lr", "rho", "train_loss", "train_acc", "test_loss", "test_acc",
            "grad_norm", "perturbed_grad_norm", "trainable_weight_norm", "epoch_time_s"}
    assert keys <= set(rec["epochs"][0]) and "weight_norm" not in rec["epochs"][0]
    assert "schema_notes" not in rec


def test_save_models_round_trip(tmp_path):
    from sam_hallucination.models import make_model

    sweep = Sweep("m", "x", [TINY])
    run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN,
              save_models=True)
    state = torch.load(tmp_path / "m" / f"{TINY.run_id()}.pt")
    model = make_model("mlp", 10, input_shape=(3, 16, 16), hidden=16)
    model.load_state_dict(state)  # the saved weights fit the config's model
    assert all(torch.isfinite(v).all() for v in state.values())


def test_slicing_time_budget_and_dry_run(tmp_path, capsys):
    sweep = tiny_sweep("s")
    out = run_sweep(sweep, results_dir=tmp_path, device="cpu", dry_run=True)
    assert out["left"] == len(sweep) and out["estimate_s"] > 0
    assert not (tmp_path / "s").exists()
    assert "estimated" in capsys.readouterr().out
    out = run_sweep(sweep, results_dir=tmp_path, device="cpu", time_budget=1e-6,
                    progress=False, datasets=SYN)
    assert out["ran"] == []  # no run fits in a microsecond
    with pytest.raises(ValueError, match="max_runs"):
        run_sweep(sweep, results_dir=tmp_path, max_runs=-1)


def test_cli_list_and_dry_run(tmp_path, capsys):
    assert main(["--list"]) == 0
    text = capsys.readouterr().out
    assert "cifar10-rho" in text and "cifar100-resnet18-paper" in text
    assert main(["cifar10-rho", "--device", "cuda", "--dry-run", "--results",
                 str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "21 runs: 0 done" in text and "estimated" in text


def test_probe_fields_and_run_ids():
    # configs without the probe keep their schema-1 ids (committed results stay valid)
    assert get_sweep("smoke").runs[0].run_id() == "fashion-mnist_mlp_sgd_s0_080dd8d1"
    a = RunConfig(method="sam", rho=0.1)
    assert a.run_id() == a.replace(probe_steps=7).run_id()  # ignored while probe is off
    b = a.replace(probe=True)
    assert b.run_id() != a.run_id() and b.run_id() != b.replace(probe_steps=7).run_id()
    for field, value in (("probe", 1), ("probe_batches", 0), ("probe_steps", -1),
                         ("probe_epochs", 0)):
        with pytest.raises(ValueError, match=rf"RunConfig\.{field}="):
            RunConfig(**{field: value})


def test_cifar_sweeps_carry_the_probe():
    for name in ("cifar10-rho", "cifar10-remedy", "cifar10-resnet18", "smoke-cifar"):
        runs = get_sweep(name).runs
        assert all(r.probe and r.final_constant_lr_epochs == 1 for r in runs), name
    smoke = get_sweep("smoke-cifar").runs
    assert {r.method for r in smoke} == {"sgd", "sam", "switch", "rho-decay"}
    assert {r.seed for r in smoke} == {0, 1}
    assert {r.switch_frac for r in smoke if r.method == "switch"} == {0.1, 0.3}


def test_probe_result_and_seed_filter(tmp_path, capsys):
    sweep = Sweep("q", "x", grid(TINY.replace(probe=True, probe_batches=2, probe_steps=2),
                                 rhos=(0.1,), seeds=(0, 1)))
    out = run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN,
                    seeds=[1])
    assert out["ran"] == [c.run_id() for c in sweep.runs if c.seed == 1] and out["left"] == 0
    recs = load_results(sweep, tmp_path)
    assert len(recs) == 2 and all(r["config"]["seed"] == 1 for r in recs)
    sam = next(r for r in recs if r["config"]["method"] == "sam")
    assert sam["probe"]["stall"]["rho"] == pytest.approx(0.1)
    assert sam["probe"]["sgd_continuation"]["steps"] == 2 and sam["schema_version"] == 3
    json.dumps(sam, allow_nan=False)  # the record is strict JSON
    with pytest.raises(ValueError, match="seeds"):
        run_sweep(sweep, results_dir=tmp_path, seeds=[])
    with pytest.raises(SystemExit):
        main(["cifar10-rho", "--seeds", "a,b", "--dry-run", "--results", str(tmp_path)])
    assert main(["cifar10-rho", "--seeds", "0", "--dry-run", "--device", "cuda",
                 "--results", str(tmp_path)]) == 0
    assert "7 runs: 0 done" in capsys.readouterr().out


def test_git_info_falls_back_to_env(monkeypatch, tmp_path):
    from sam_hallucination.runs import store

    monkeypatch.setattr(store, "repo_root", lambda: tmp_path)  # not a git checkout
    monkeypatch.delenv("SAM_GIT_COMMIT", raising=False)
    assert store.git_info() == {"commit": "unknown", "dirty": None}
    monkeypatch.setenv("SAM_GIT_COMMIT", "0123abcd")
    assert store.git_info() == {"commit": "0123abcd", "dirty": None}


def test_old_results_load_with_a_note_of_what_they_lack(tmp_path):
    """Schema-2 files (the committed ones before schema 3) still load, with schema_notes."""
    from sam_hallucination.runs.store import read_result

    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": 2, "status": "ok",
                                "final": {"weight_norm": 3.0}}))
    rec = read_result(path)
    assert rec["final"]["weight_norm"] == 3.0
    assert len(rec["schema_notes"]) == 1 and "trainable_weight_norm" in rec["schema_notes"][0]
