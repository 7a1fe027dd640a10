"""Injected faults: interrupted SAM steps, NaN weights, edited or swapped result files,
corrupted caches, unwritable folders, concurrent sweeps. Each test injects one fault and
asserts what must happen (restored, diverged, detected and recomputed, re-decoded, refused).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sam_hallucination.data import DataIntegrityError, load_dataset
from sam_hallucination.data import cache as C
from sam_hallucination.optim import SAM
from sam_hallucination.runs import execute, loop, store
from sam_hallucination.runs import fullbatch as fb
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.fullbatch import FullBatchConfig, Problem
from sam_hallucination.runs.sweeps import Sweep, grid, load_results, run_sweep

torch.set_num_threads(1)
SYN = {"synthetic": load_dataset("synthetic")}
TINY = RunConfig(dataset="synthetic", model="mlp", hidden=16, epochs=2, batch_size=32,
                 n_train=64, n_test=32, lr=0.05, warmup_frac=0.0)


def tiny_sweep(name: str = "t") -> Sweep:
    return Sweep(name, "tiny", grid(TINY, rhos=(0.5,), seeds=(0,), methods=("sgd", "sam")))


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def sam_setup(rho: float = 0.5):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    nn.functional.cross_entropy(model(x), y).backward()
    return model, opt, x, y


# ----------------------------------------------------------------------------- 1. optimizer
@pytest.mark.parametrize("exc", [RuntimeError("CUDA out of memory"), KeyboardInterrupt()])
def test_closure_exception_restores_weights_bitwise(exc):
    model, opt, x, y = sam_setup()
    w0 = params(model)

    def closure():
        nn.functional.cross_entropy(model(x), y).backward()  # at w + e
        raise exc

    with pytest.raises(type(exc)):
        opt.step(closure)
    assert same(params(model), w0)  # w, not w + e
    assert opt.step_count == 0
    opt.state_dict()  # no pending perturbation: checkpointing works again


def test_closure_without_backward_is_an_error_and_restores():
    model, opt, x, y = sam_setup()
    w0 = params(model)
    with pytest.raises(RuntimeError, match="closure computed no gradients.*backward"):
        opt.step(lambda: nn.functional.cross_entropy(model(x), y))
    assert same(params(model), w0) and opt.step_count == 0


def test_state_dict_refused_between_first_and_second_step():
    model, opt, x, y = sam_setup()
    opt.first_step(zero_grad=True)
    with pytest.raises(RuntimeError, match="between first_step.*second_step"):
        opt.state_dict()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.second_step()
    assert opt.state_dict()["sam"]["step_count"] == 1


def test_restore_undoes_a_pending_first_step():
    model, opt, _, _ = sam_setup()
    w0 = params(model)
    opt.first_step()
    assert not same(params(model), w0)
    opt.restore()
    assert same(params(model), w0)


# ----------------------------------------------------------------------------- 2. NaN weights
def nan_on_last_step(monkeypatch, total: int) -> dict:
    """Make the last training step leave a NaN weight (the loss before it stays finite)."""
    real, calls = loop.train_step, {"n": 0, "probe": 0}

    def step(model, *a, **k):
        r = real(model, *a, **k)
        calls["n"] += 1
        if calls["n"] == total:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = math.nan
        return r

    def probe(*a, **k):
        calls["probe"] += 1
        return {"never": "recorded"}

    monkeypatch.setattr(loop, "train_step", step)
    monkeypatch.setattr(loop, "end_of_training_probe", probe)
    return calls


@pytest.mark.parametrize("method,rho", [("sgd", 0.0), ("sam", 0.5)])
def test_nan_on_the_last_step_is_diverged_and_not_probed(monkeypatch, method, rho):
    cfg = TINY.replace(method=method, rho=rho, probe=True, probe_batches=1, probe_steps=1)
    total = cfg.epochs * (64 // 32)
    calls = nan_on_last_step(monkeypatch, total)
    out = loop.train(cfg, SYN["synthetic"], device="cpu", progress=False)
    assert out["status"] == "diverged"
    assert out["diverged_at"] == {"step": total - 1, "epoch": cfg.epochs - 1}
    assert out["probe"] is None and calls["probe"] == 0
    rec = store.result_record(cfg, out, "t", "cpu")
    assert rec["status"] == "diverged" and rec["probe"] is None


def test_record_refuses_ok_for_nan_weights():
    """The last line of defence: result_record checks the weights itself."""
    out = loop.train(TINY, SYN["synthetic"], device="cpu", progress=False)
    with torch.no_grad():
        next(out["model"].parameters()).view(-1)[0] = math.inf
    rec = store.result_record(TINY, out, "t", "cpu")
    assert rec["status"] == "diverged" and rec["diverged_at"]["step"] == out["steps"] - 1


def test_nan_sweep_run_is_recorded_diverged(tmp_path, monkeypatch):
    sw = Sweep("t", "one", [TINY])
    nan_on_last_step(monkeypatch, TINY.epochs * 2)
    run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    rec = json.loads((tmp_path / "t" / f"{TINY.run_id()}.json").read_text())
    assert rec["status"] == "diverged" and rec["diverged_at"]["epoch"] == TINY.epochs - 1


# ----------------------------------------------------------------------------- 3. result files
@pytest.fixture
def finished(tmp_path):
    sw = tiny_sweep()
    run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    return sw, tmp_path / "t"


def rerun(sw, folder, capsys):
    capsys.readouterr()
    out = run_sweep(sw, results_dir=folder.parent, device="cpu", progress=False, datasets=SYN)
    return out, capsys.readouterr().out


def test_swapped_result_files_are_detected_and_recomputed(finished, capsys):
    sw, folder = finished
    a, b = (folder / f"{c.run_id()}.json" for c in sw.runs)
    ta, tb = a.read_text(), b.read_text()
    a.write_text(tb)
    b.write_text(ta)
    out, log = rerun(sw, folder, capsys)
    assert sorted(out["ran"]) == sorted(c.run_id() for c in sw.runs)
    assert a.name in log and b.name in log and "holds run" in log
    for c in sw.runs:  # each file is now what its name says
        assert json.loads((folder / f"{c.run_id()}.json").read_text())["run_id"] == c.run_id()


@pytest.mark.parametrize("edit,why", [
    (lambda r: r["config"].update(lr=0.5), "config differs.*lr"),
    (lambda r: r.pop("final"), "missing field.*final"),
    (lambda r: r.update(sweep="other"), "belongs to sweep 'other'"),
    (lambda r: r.update(status="running"), "status 'running'"),
])
def test_edited_result_file_is_detected(finished, capsys, edit, why):
    sw, folder = finished
    path = folder / f"{sw.runs[1].run_id()}.json"
    rec = json.loads(path.read_text())
    edit(rec)
    path.write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match=f"refused .*{path.name}"):
        served = load_results(sw, folder.parent)
    assert [r["run_id"] for r in served] == [sw.runs[0].run_id()]  # never served
    out, log = rerun(sw, folder, capsys)
    assert out["ran"] == [sw.runs[1].run_id()]
    assert path.name in log and re.search(why, log)


@pytest.mark.parametrize("damage", ["newer schema", "truncated"])
def test_an_unreadable_record_is_kept_aside_and_its_run_refused(finished, capsys, damage):
    # a record this checkout cannot read (newer schema, or cut short) is never overwritten
    sw, folder = finished
    path = folder / f"{sw.runs[0].run_id()}.json"
    text = (json.dumps({**json.loads(path.read_text()), "schema_version": 99})
            if damage == "newer schema" else path.read_text()[:100])
    path.write_text(text)
    out, log = rerun(sw, folder, capsys)
    assert path.name in log
    assert out["ran"] == [] and out["refused"] == [sw.runs[0].run_id()]
    kept = folder / f"{path.name}.refused"
    assert kept.read_text() == text  # byte for byte


def test_result_files_world_readable_and_stale_tmp_cleaned(finished, capsys):
    sw, folder = finished
    (folder / f"{sw.runs[1].run_id()}.json").unlink()
    run_sweep(sw, results_dir=folder.parent, device="cpu", progress=False, datasets=SYN,
              save_models=True)
    files = list(folder.glob("*.json")) + list(folder.glob("*.pt"))
    assert len(files) == 3
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) & 0o444 == 0o444
    old, new = folder / ".x.123.tmp", folder / ".y.456.tmp"
    old.write_text("{")
    new.write_text("{")
    os.utime(old, (time.time() - 2 * store.STALE_TMP_S,) * 2)
    (folder / f"{sw.runs[0].run_id()}.json").unlink()
    rerun(sw, folder, capsys)
    assert not old.exists() and new.exists()  # a fresh one may belong to a live writer


def test_unwritable_results_folder_fails_before_training(tmp_path, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("trained before checking the results folder")

    monkeypatch.setattr(execute, "train", no_training)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root ignores the mode: simulate the refusal

        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(store.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match=r"results folder .*ro.* not writable.*--results"):
        run_sweep(tiny_sweep(), results_dir=ro, device="cpu", progress=False, datasets=SYN)
    ro.chmod(0o755)


def test_results_under_a_file_fail_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(execute, "train", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="not writable"):
        run_sweep(tiny_sweep(), results_dir=tmp_path / "file", device="cpu", progress=False,
                  datasets=SYN)


def test_a_locked_run_is_not_computed_twice(tmp_path, capsys):
    sw = tiny_sweep()
    folder = tmp_path / "t"
    folder.mkdir()
    with store.run_lock(folder, sw.runs[0].run_id()) as mine:  # "another sweep" holds it
        assert mine
        with store.run_lock(folder, sw.runs[0].run_id()) as second:
            assert not second
        out = run_sweep(sw, results_dir=tmp_path, device="cpu", progress=False, datasets=SYN)
    assert out["ran"] == [sw.runs[1].run_id()]
    assert "computed by another process" in capsys.readouterr().out
    assert not list(folder.glob(".*.lock"))  # the finished run's lock is gone


# ----------------------------------------------------------------------------- 4. caches
def make_jpeg_npz(path, n_train: int = 12, n_test: int = 6) -> None:
    rng = np.random.default_rng(0)

    def pack(n: int):
        blobs = []
        for _ in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                buf, format="JPEG", quality=75)
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        off = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        return np.concatenate(blobs), off, (np.arange(n) % 10).astype(np.uint8)

    tj, to, tl = pack(n_train)
    ej, eo, el = pack(n_test)
    np.savez(path, train_jpeg=tj, train_offsets=to, train_labels=tl, test_jpeg=ej,
             test_offsets=eo, test_labels=el, classes=np.array([f"c{i}" for i in range(10)]))


@pytest.fixture
def jpeg(tmp_path):
    npz, cache = tmp_path / "tiny_jpeg.npz", tmp_path / "cache"
    make_jpeg_npz(npz)
    ds = load_dataset("cifar10-jpeg", root=npz, cache_dir=cache)
    (cfile,) = cache.glob("cifar10_jpeg_*.npz")
    return npz, cache, cfile, ds


def corrupt_truncate(cfile):
    cfile.write_bytes(cfile.read_bytes()[: cfile.stat().st_size // 2])


def corrupt_garbage(cfile):
    cfile.write_bytes(b"not a zip file at all" * 10)


def corrupt_pixels(cfile):  # valid .npz, same shapes, different images: only the CRC sees it
    with np.load(cfile) as z:
        d = {k: z[k] for k in z.files}
    d["x_train"] = d["x_train"].copy()
    d["x_train"][0, 0, 0, 0] ^= 1
    with open(cfile, "wb") as f:
        np.savez(f, **d)


def corrupt_labels(cfile):
    with np.load(cfile) as z:
        d = {k: z[k] for k in z.files}
    d["y_train"] = np.zeros_like(d["y_train"])
    with open(cfile, "wb") as f:
        np.savez(f, **d)


def corrupt_old_format(cfile):  # a cache without its checks (an older version's)
    with np.load(cfile) as z:
        d = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test", "classes")}
    with open(cfile, "wb") as f:
        np.savez(f, **d)


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_garbage, corrupt_pixels,
                                     corrupt_labels, corrupt_old_format])
def test_corrupted_cache_is_re_decoded(jpeg, capsys, corrupt):
    npz, cache, cfile, ds = jpeg
    corrupt(cfile)
    capsys.readouterr()
    again = load_dataset("cifar10-jpeg", root=npz, cache_dir=cache)
    log = capsys.readouterr().out
    assert cfile.name in log and "decoding" in log
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    np.testing.assert_array_equal(again.y_train, ds.y_train)
    assert C.read_checked_cache(cfile, None)[0] is not None  # rewritten, valid


def test_cache_of_another_source_is_re_decoded(jpeg, capsys):
    npz, cache, cfile, ds = jpeg
    arrs, why = C.read_checked_cache(cfile, "sha256:" + "0" * 64)
    assert arrs is None and "another source" in why
    assert stat.S_IMODE(cfile.stat().st_mode) & 0o444 == 0o444  # a shared cache is readable


def test_unwritable_cache_folder_warns_and_still_loads(tmp_path, monkeypatch):
    npz = tmp_path / "tiny_jpeg.npz"
    make_jpeg_npz(npz)
    (tmp_path / "file").write_text("")  # a cache "folder" that is a file
    with pytest.warns(UserWarning, match="cannot write the decoded-image cache"):
        ds = load_dataset("cifar10-jpeg", root=npz, cache_dir=tmp_path / "file" / "cache")
    assert ds.x_train.shape == (12, 32, 32, 3)


@pytest.mark.parametrize("name", ["cifar10_jpeg.npz", "other_name.npz"])
def test_corrupt_source_under_any_name_is_an_integrity_error(tmp_path, name):
    bad = tmp_path / name
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(DataIntegrityError, match=name):
        load_dataset("cifar10-jpeg", root=bad, cache_dir=tmp_path / "c")


def test_inconsistent_source_is_an_integrity_error(tmp_path):
    npz = tmp_path / "mine.npz"
    make_jpeg_npz(npz)
    with np.load(npz) as z:
        d = {k: z[k] for k in z.files}
    d["train_labels"] = d["train_labels"][:-1]  # one label short
    np.savez(npz, **d)
    with pytest.raises(DataIntegrityError, match="mine.npz.*11 labels"):
        load_dataset("cifar10-jpeg", root=npz, cache_dir=tmp_path / "c")
    d["train_labels"] = np.full(12, 10, dtype=np.uint8)  # class 10 of 10
    np.savez(npz, **d)
    with pytest.raises(DataIntegrityError, match="labels outside 0..9"):
        load_dataset("cifar10-jpeg", root=npz, cache_dir=tmp_path / "c")


def test_truncated_source_is_an_integrity_error(tmp_path):
    npz = tmp_path / "mine.npz"
    make_jpeg_npz(npz)
    npz.write_bytes(npz.read_bytes()[:-200])
    with pytest.raises(DataIntegrityError, match="mine.npz.*corrupted"):
        load_dataset("cifar10-jpeg", root=npz, cache_dir=tmp_path / "c")


# ----------------------------------------------------------------------------- full-batch cache
FB = dict(n_train=12, n_test=6, hidden=3, steps=2, continue_steps=3, log_every=1,
          slice_points=5, grid_points=3, lr=0.1)


def tiny_problem() -> Problem:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    xt = torch.randn(6, 4, generator=g, dtype=torch.float64)
    return Problem(x, torch.arange(12) % 3, xt, torch.arange(6) % 3, 4, 3, "tiny")


@pytest.mark.parametrize("corrupt,why", [
    (lambda t: t[:50], "unreadable"),
    (lambda t: json.dumps({**json.loads(t), "run_id": "x"}), "holds run 'x'"),
    (lambda t: json.dumps({**json.loads(t), "config": {}}), "different config"),
    (lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "final"}),
     "missing field"),
])
def test_fullbatch_cache_corruption_recomputes(tmp_path, capsys, corrupt, why):
    cfg, prob = FullBatchConfig(method="sam", rho=0.3, **FB), tiny_problem()
    first = fb.run_cached(cfg, tmp_path, problem=prob)
    path = tmp_path / f"{cfg.run_id()}.json"
    path.write_text(corrupt(path.read_text()))
    capsys.readouterr()
    again = fb.run_cached(cfg, tmp_path, problem=prob)
    log = capsys.readouterr().out
    assert again["source"] == "computed" and path.name in log and why in log
    assert again["final"] == first["final"]


def test_fullbatch_unwritable_folder_warns(tmp_path):
    (tmp_path / "file").write_text("")
    cfg = FullBatchConfig(method="gd", **FB)
    with pytest.warns(UserWarning, match="not cached"):
        rec = fb.run_cached(cfg, tmp_path / "file" / "mlp", problem=tiny_problem())
    assert rec["source"] == "computed" and rec["path"] is None
