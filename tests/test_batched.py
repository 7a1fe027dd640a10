"""The batched engine: K runs as one stacked computation equal one-by-one training."""

from __future__ import annotations

import pytest
import torch

from sam_hallucination.data import synthetic_dataset
from sam_hallucination.runs.batched import batch_groups, batch_key, train_batched
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.loop import train

torch.set_num_threads(1)
SYN12 = synthetic_dataset(n_train=256, n_test=64, size=12, seed=3)
NET = {"widths": (8, 16, 16), "stem": 8}  # a tiny airbench-style CNN
BASE = RunConfig(dataset="synthetic", model="airbench", epochs=2, batch_size=32, n_train=128,
                 n_test=64, lr=0.05, augment=True, amp=False)
CONFIGS = [BASE, BASE.replace(method="sam", rho=0.05),
           BASE.replace(method="switch", rho=0.5, switch_frac=0.3),
           BASE.replace(method="rho-decay", rho=0.2)]


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def compare(one: dict, bat: dict) -> float:
    """Largest difference in per-epoch losses, weights and BatchNorm buffers."""
    assert one["status"] == bat["status"] == "ok"
    assert len(one["epochs"]) == len(bat["epochs"])
    d = max_diff(one["model"].state_dict(), bat["model"].state_dict())
    for e1, e2 in zip(one["epochs"], bat["epochs"], strict=True):
        d = max(d, abs(e1["train_loss"] - e2["train_loss"]), abs(e1["train_acc"] - e2["train_acc"]))
        for key in ("rho", "sam_active", "step", "lr"):
            assert e1[key] == e2[key], key
        assert e2["grad_norm"] == pytest.approx(e1["grad_norm"], rel=1e-6)
        assert (e1["perturbed_grad_norm"] is None) == (e2["perturbed_grad_norm"] is None)
        if e1["perturbed_grad_norm"] is not None:
            assert e2["perturbed_grad_norm"] == pytest.approx(e1["perturbed_grad_norm"], rel=1e-6)
        assert (e1["test_acc"] is None) == (e2["test_acc"] is None)
        if e1["test_acc"] is not None:
            assert e2["test_loss"] == pytest.approx(e1["test_loss"], rel=1e-6)
    return d


@pytest.mark.parametrize("seeds", [(0, 0, 0, 0), (0, 1, 2, 3)], ids=["one-seed", "four-seeds"])
def test_batched_equals_one_by_one_float64(seeds):
    configs = [c.replace(seed=s) for c, s in zip(CONFIGS, seeds, strict=True)]
    bat = train_batched(configs, SYN12, device="cpu", dtype=torch.float64, model_kw=NET)
    worst = 0.0
    for c, b in zip(configs, bat, strict=True):
        one = train(c, SYN12, device="cpu", progress=False, dtype=torch.float64, model_kw=NET)
        worst = max(worst, compare(one, b))
    print(f"max |batched - one by one| = {worst:.2e}")
    assert worst < 1e-10
    # the runs really differ from each other (SAM moved the weights, the switch waited)
    assert max_diff(bat[0]["model"].state_dict(), bat[1]["model"].state_dict()) > 1e-4
    assert [e["sam_active"] for e in bat[2]["epochs"]] == [True, True]


def test_nan_in_one_model_marks_only_that_run():
    bat = train_batched(CONFIGS, SYN12, device="cpu", dtype=torch.float64, model_kw=NET,
                        _poison=(1, 5))
    assert [o["status"] for o in bat] == ["ok", "diverged", "ok", "ok"]
    assert bat[1]["diverged_at"] == {"step": 5, "epoch": 1}
    assert bat[1]["epochs"][-1]["test_acc"] is None and len(bat[1]["epochs"]) == 2
    for k in (0, 2, 3):
        one = train(CONFIGS[k], SYN12, device="cpu", progress=False, dtype=torch.float64,
                    model_kw=NET)
        assert compare(one, bat[k]) < 1e-10


def test_groups_keep_order_and_split_incompatible_configs():
    a = [BASE.replace(seed=s) for s in (0, 1)]
    other = BASE.replace(lr=0.1)
    runs = [a[0], CONFIGS[1], other, CONFIGS[2], a[1], CONFIGS[3]]
    groups = batch_groups(runs, max_k=3, by_seed=False)
    assert groups == [[a[0], CONFIGS[1], CONFIGS[2]], [other], [a[1], CONFIGS[3]]]
    assert batch_groups(runs, max_k=8) == [[a[0], CONFIGS[1], CONFIGS[2], CONFIGS[3]], [other],
                                           [a[1]]]
    assert batch_key(BASE) == batch_key(CONFIGS[2].replace(seed=4))
    asam = CONFIGS[1].replace(adaptive=True)
    assert batch_key(asam) != batch_key(asam.replace(seed=1))  # ASAM: never batched
    with pytest.raises(ValueError, match="differ only"):
        train_batched([BASE, other], SYN12, device="cpu")


def test_sweep_groups_runs_and_writes_one_file_each(tmp_path, monkeypatch, capsys):
    from sam_hallucination.runs import probe as P
    from sam_hallucination.runs.sweeps import Sweep, grid, load_results, run_sweep

    monkeypatch.setenv("SAM_CACHE_DIR", str(tmp_path / "cache"))
    P._LADDERS.clear()
    base = RunConfig(dataset="synthetic", model="mlp", hidden=16, epochs=2, batch_size=32,
                     n_train=64, n_test=32, lr=0.05, warmup_frac=0.0, probe=True,
                     probe_batches=2, final_constant_lr_epochs=1)
    sweep = Sweep("b", "x", grid(base, rhos=(0.1, 1.0), seeds=(0, 1),
                                 methods=("sgd", "sam", "switch"), switch_fracs=(0.5,)))
    data = {"synthetic": SYN12}
    seen = []
    out = run_sweep(sweep, results_dir=tmp_path / "bat", device="cpu", progress=False,
                    datasets=data, batch=4, on_result=lambda p, r: seen.append((p.name, r)))
    assert out["left"] == 0 and len(out["ran"]) == len(sweep) == 10
    assert "(batched x4)" in capsys.readouterr().out
    assert [n for n, _ in seen] == [f"{i}.json" for i in out["ran"]]
    P._LADDERS.clear()
    run_sweep(sweep, results_dir=tmp_path / "one", device="cpu", progress=False, datasets=data,
              batch=1)
    one = {r["run_id"]: r for r in load_results(sweep, tmp_path / "one")}
    for r in load_results(sweep, tmp_path / "bat"):
        o = one[r["run_id"]]
        assert set(r) == set(o) and set(r["probe"]) == set(o["probe"])  # same schema
        assert r["final"]["train_loss"] == pytest.approx(o["final"]["train_loss"], rel=1e-4)
        if r["config"]["method"] != "sgd":
            assert r["probe"]["sgd_control"]["status"] == "ok"


def test_dry_run_says_whether_it_is_calibrated(tmp_path, capsys):
    import json

    from sam_hallucination.runs.sweeps import run_sweep

    a = run_sweep("cifar10-rho", results_dir=tmp_path, device="cuda", dry_run=True, seeds=[0])
    assert "uncalibrated (no CUDA benchmark yet)" in capsys.readouterr().out
    (tmp_path / "benchmarks").mkdir()
    cal = {"epoch_s": {"sgd": 0.5, "sam": 1.0}, "group_epoch_s": {"1": 1.0, "4": 2.0, "8": 3.0},
           "device_name": "Fake H200", "torch": "9"}
    (tmp_path / "benchmarks" / "train_step_cuda.txt").write_text(
        "CUDA stuff\ncalibration " + json.dumps(cal) + "\n")
    b = run_sweep("cifar10-rho", results_dir=tmp_path, device="cuda", dry_run=True, seeds=[0])
    text = capsys.readouterr().out
    assert "calibrated by" in text and "Fake H200" in text and "7 at once" in text
    assert 0 < b["estimate_s"] < a["estimate_s"]
    # 7 runs batched: 17 epochs at the K=7 group time, plus the probes
    assert b["estimate_s"] > 17 * (2.0 + 0.75 * 1.0)


def test_pick_batch_returns_a_candidate():
    from sam_hallucination.runs.batched import pick_batch

    assert pick_batch("cpu", ks=(1, 2), model="mlp", batch_size=16, verbose=False) in (1, 2)


def test_pick_batch_reads_the_calibration(tmp_path):
    import json

    from sam_hallucination.runs.batched import pick_batch

    (tmp_path / "benchmarks").mkdir()
    cal = {"epoch_s": {"sgd": 0.5, "sam": 1.0}, "group_epoch_s": {"1": 1.1, "4": 2.0, "8": 7.5}}
    (tmp_path / "benchmarks" / "train_step_cuda.txt").write_text("calibration " + json.dumps(cal))
    assert pick_batch("cuda", results_dir=str(tmp_path), verbose=False) == 4  # 2 runs/s at K=4


def test_gpu_session_refuses_a_bad_batch(tmp_path):
    import subprocess

    from test_gpu_session import SESSION, session_env

    env = session_env(tmp_path, tmp_path / "out", GPU_PLAN="smoke", GPU_BATCH="eight")
    r = subprocess.run(["bash", str(SESSION), "60"], capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode != 0 and "GPU_BATCH='eight'" in r.stdout + r.stderr


def _walk(a, b, path=""):
    """Yield (path, a, b) for every number in two nested records."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k not in ("time_s",):
                yield from _walk(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _walk(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        yield path, a, b
    else:
        assert a == b, (path, a, b)


def test_batched_probe_equals_the_one_by_one_probe(tmp_path, monkeypatch):
    from sam_hallucination.runs import probe as P

    monkeypatch.setenv("SAM_CACHE_DIR", str(tmp_path))
    configs = [c.replace(probe=True, probe_batches=2, final_constant_lr_epochs=1)
               for c in CONFIGS]
    P._LADDERS.clear()
    bat = train_batched(configs, SYN12, device="cpu", dtype=torch.float64, model_kw=NET)
    P._LADDERS.clear()
    one = [train(c, SYN12, device="cpu", progress=False, dtype=torch.float64, model_kw=NET)
           for c in configs]
    worst = 0.0
    for o, b in zip(one, bat, strict=True):
        for path, x, y in _walk(o["probe"], b["probe"]):
            # stall diagnostics: bootstrap floors in float32 sums; the rest to 1e-10
            tol = 1e-6 * max(1.0, abs(x)) if ".stall." in path else 1e-10
            assert abs(x - y) <= tol, (path, x, y)
            if ".stall." not in path:
                worst = max(worst, abs(x - y))
    print(f"probe: max |batched - one by one| = {worst:.2e}")
    assert bat[1]["probe"]["sgd_control"]["status"] == "ok"
    assert bat[2]["probe"]["sam_continuation"] is not None  # switch: SAM at the end
    assert bat[3]["probe"]["sam_continuation"] is None  # decayed rho: 0 at the end
