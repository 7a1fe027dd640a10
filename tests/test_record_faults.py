"""Records that must survive faults: kept aside, never overwritten, re-checked once locked,
never lost to a late write error; parallel runs bit-equal to serial (CPU, tiny)."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from sam_hallucination.data import load_dataset
from sam_hallucination.runs import execute, keep
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.store import SCHEMA_VERSION, parse_record, validate_record
from sam_hallucination.runs.sweeps import Sweep, grid, load_results, run_sweep

torch.set_num_threads(1)
SYN = {"synthetic": load_dataset("synthetic")}
TINY = RunConfig(dataset="synthetic", model="mlp", hidden=16, epochs=2, batch_size=32,
                 n_train=64, n_test=32, lr=0.05, warmup_frac=0.0)
# probed: the SAM runs' matched-loss control reads the SGD run's ladder across processes
PROBED = TINY.replace(probe=True, probe_batches=1, probe_steps=2, final_constant_lr_epochs=1)


def sweep(name: str = "f", base: RunConfig = TINY) -> Sweep:
    return Sweep(name, "tiny", grid(base, rhos=(0.1,), seeds=(0, 1)))


def computed(rec: dict) -> object:
    """What a run computed: everything but timings and provenance."""
    if isinstance(rec, dict):
        return {k: computed(v) for k, v in rec.items()
                if k != "provenance" and not k.endswith("time_s")}
    if isinstance(rec, list):
        return [computed(v) for v in rec]
    return rec


def test_newer_schema_record_survives_a_sweep_byte_for_byte(tmp_path, capsys):
    sw = sweep()
    run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    path = tmp_path / "f" / f"{sw.runs[0].run_id()}.json"
    rec = json.loads(path.read_text())
    rec["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(rec))
    before = path.read_bytes()
    out = run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    assert out["ran"] == [] and out["refused"] == [sw.runs[0].run_id()]
    aside = path.with_name(path.name + ".refused")
    assert aside.read_bytes() == before and not path.exists()
    assert "needs a checkout that reads it" in capsys.readouterr().out
    run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    assert aside.read_bytes() == before and not path.exists()  # still refused, still kept


def test_nan_literal_refused_on_load(tmp_path):
    sw = sweep()
    run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    path = tmp_path / "f" / f"{sw.runs[0].run_id()}.json"
    path.write_text(path.read_text().replace('"train_loss": ', '"train_loss": NaN, "x": ', 1))
    with pytest.raises(ValueError, match="NaN literal"):
        parse_record(path.read_text())
    assert validate_record(path, sw.runs[0], "f")[0] is None
    with pytest.warns(UserWarning, match="unreadable"):
        assert len(load_results(sw, tmp_path)) == len(sw) - 1


def test_load_results_refuses_runs_outside_the_sweep(tmp_path):
    sw = sweep()
    run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    small = Sweep("f", "tiny", sw.runs[:2])
    with pytest.warns(UserWarning, match="is not in sweep 'f'"):
        got = load_results(small, tmp_path)
    assert [r["run_id"] for r in got] == [c.run_id() for c in small.runs]


def test_record_is_rechecked_after_taking_the_lock(tmp_path, monkeypatch):
    """Another process finished the run between planning and locking: not recomputed."""
    sw = sweep()
    run_sweep(sw, results_dir=tmp_path / "done", device="cpu", progress=False, datasets=SYN)
    folder = tmp_path / "f"
    folder.mkdir()
    real = keep.finished_records

    def stale_plan(folder_, configs, name):  # plan made before the other process wrote
        plan = real(folder_, configs, name)
        for c in configs:
            shutil.copy(tmp_path / "done" / "f" / f"{c.run_id()}.json", folder_)
        return plan

    monkeypatch.setattr("sam_hallucination.runs.sweeps.finished_records", stale_plan)
    trained = []
    monkeypatch.setattr(execute, "execute_run", lambda *a, **k: trained.append(a) or 1 / 0)
    out = run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    assert trained == [] and out["ran"] == []


def test_folder_in_the_way_refused_before_training(tmp_path, monkeypatch):
    sw = sweep()
    (tmp_path / "f" / f"{sw.runs[1].run_id()}.json").mkdir(parents=True)
    monkeypatch.setattr(execute, "execute_run", lambda *a, **k: 1 / 0)  # must not train
    with pytest.raises(IsADirectoryError, match="is a folder where the run's result file goes"):
        run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)


def test_readonly_filesystem_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(keep, "check_writable", erofs)
    from sam_hallucination.runs.cli import main
    with pytest.raises(OSError, match="Read-only"):
        keep.check_result_path(tmp_path / "x.json")
    monkeypatch.setattr("sam_hallucination.runs.sweeps.check_result_path", keep.check_result_path)
    assert main(["smoke", "--device", "cpu", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Read-only" in err[0]


def test_write_failure_after_training_keeps_the_record(tmp_path, monkeypatch):
    sw = sweep()

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keep, "write_json_atomic", full)
    with pytest.raises(keep.RecordNotSaved, match="the record is kept in") as e:
        run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN,
                  max_runs=1)
    kept = Path(str(e.value).split("kept in ")[1].split(":")[0])
    assert json.loads(kept.read_text())["run_id"] == sw.runs[0].run_id()
    kept.unlink()


def test_jobs_2_records_bit_equal_to_serial(tmp_path):
    sw = sweep("p", PROBED)
    run_sweep(sw, results_dir=tmp_path / "serial", device="cpu", progress=False, datasets=SYN)
    run_sweep(sw, results_dir=tmp_path / "jobs", device="cpu", progress=False, datasets=SYN,
              jobs=2)
    a, b = load_results(sw, tmp_path / "serial"), load_results(sw, tmp_path / "jobs")
    assert len(a) == len(b) == len(sw)
    assert [r["provenance"]["backend"] for r in b] == ["processes"] * len(sw)
    assert all(r["probe"]["sgd_control"].get("status") != "missing"
               for r in b if r["config"]["rho"] > 0)  # the control found the SGD ladder
    assert [computed(r) for r in a] == [computed(r) for r in b]


def test_bit_equality_check_catches_a_difference(tmp_path):
    """The comparison above fails when one number differs (it is not vacuous)."""
    sw = sweep("p", PROBED)
    run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    a = load_results(sw, tmp_path)
    b = json.loads(json.dumps(a))
    b[-1]["epochs"][0]["test_acc"] += 1e-12
    assert [computed(r) for r in a] != [computed(r) for r in b]


def test_sam_run_waits_for_its_sgd_run():
    runs = grid(PROBED, rhos=(0.1,), seeds=(0,))
    ids = {c.run_id() for c in runs}
    sgd, sam = runs[0], runs[1]
    assert execute.depends_on(sgd, ids) is None
    assert execute.depends_on(sam, ids) == sgd.run_id()
    assert execute.depends_on(sam, {sam.run_id()}) is None  # SGD already done
