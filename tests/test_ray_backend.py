"""The Ray backend of the sweep runner, on a local 2-CPU Ray instance (`make test` installs Ray).

The smoke sweep through Ray equals the serial backend's; a killed worker is retried; a killed
driver resumes without duplicates or partial files; a run that raises does not stop the others.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

try:
    import psutil
    import ray
except ImportError as e:
    if os.environ.get("CI", "").lower() == "true":  # CI installs Ray (make test): missing is a fault
        raise ImportError(f"CI=true and Ray cannot be imported ({e}): make test installs it") from e
    pytest.skip(f"Ray is optional and not installed ({e}): pip install -e '.[distributed]'",
                allow_module_level=True)

from conftest import kill_started_by  # noqa: E402

from sam_hallucination.runs.cli import main  # noqa: E402
from sam_hallucination.runs.ray_backend import FAILURES_LOG  # noqa: E402
from sam_hallucination.runs.sweeps import Sweep, get_sweep, load_results, run_sweep  # noqa: E402

SMOKE = get_sweep("smoke")
# what a run computed; provenance and timings differ by design
SAME = ("run_id", "config", "status", "diverged_at", "dataset_name", "n_train", "n_test",
        "n_params", "steps", "steps_per_epoch", "final", "epochs", "probe")
LEAN = dict(include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)


def same(a: Any, b: Any) -> bool:
    """Equal but for timings (``*_time_s``); floats bit for bit (one thread each: identical;
    tests/test_parallel_equality.py checks the whole records through the CLI)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a if not k.endswith("_time_s"))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def short_tmp() -> str:
    return tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# Runs before the module's Ray instance exists: the CLI here starts its own.
def test_killed_driver_resumes_without_duplicates_or_partial_files(tmp_path):
    results = tmp_path / "results"
    folder = results / "smoke"
    env = dict(os.environ, RAY_TMPDIR=short_tmp(), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "sam_hallucination.runs", "smoke", "--device", "cpu",
           "--results", str(results), "--backend", "ray", "--no-progress"]
    log = open(tmp_path / "driver1.log", "w")
    tree: list[psutil.Process] = []
    driver = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(folder.glob("*.json")) and driver.poll() is None:
            assert time.monotonic() < deadline, "no result within 120 s"
            time.sleep(0.02)
        tree = psutil.Process(driver.pid).children(recursive=True)  # its local Ray
        os.kill(driver.pid, signal.SIGKILL)  # mid-sweep, no chance to clean up
        driver.wait()
    finally:
        log.close()
        for proc in tree:  # what the killed driver left behind (psutil checks it is the same)
            with contextlib.suppress(psutil.Error):
                proc.kill()
        kill_started_by(env["RAY_TMPDIR"])
    before = {p.name: p.read_bytes() for p in folder.glob("*.json")}
    assert 1 <= len(before) < len(SMOKE), (tmp_path / "driver1.log").read_text()
    assert not [n for n in files(folder) if n.endswith(".tmp")]

    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    env["RAY_TMPDIR"] = short_tmp()
    try:
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    finally:
        kill_started_by(env["RAY_TMPDIR"])
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(before)} done (0 diverged), {len(SMOKE) - len(before)} left" in again.stdout
    assert files(folder) == sorted(f"{c.run_id()}.json" for c in SMOKE.runs)  # once each
    assert all((folder / n).read_bytes() == b for n, b in before.items())  # not recomputed
    assert all(r["provenance"]["backend"] == "ray" for r in load_results(SMOKE, results))


@pytest.fixture(scope="module")
def local_ray():
    tmp = short_tmp()
    ray.init(num_cpus=2, _temp_dir=tmp, **LEAN)
    try:
        yield tmp
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def fashion(fashion_mnist):
    return fashion_mnist


def test_smoke_sweep_on_ray_equals_serial(tmp_path, local_ray, fashion):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray workers run with cpus_per_run = 1 thread
    try:
        serial = run_sweep("smoke", results_dir=tmp_path / "s", device="cpu", progress=False,
                           datasets={"fashion-mnist": fashion})
    finally:
        torch.set_num_threads(threads)
    on_ray = run_sweep("smoke", results_dir=tmp_path / "r", device="cpu", progress=False,
                       backend="ray", cpus_per_run=1)
    assert on_ray["failed"] == {} and on_ray["done"] == serial["done"] == len(SMOKE)
    assert sorted(on_ray["ran"]) == sorted(serial["ran"])
    a, b = load_results(SMOKE, tmp_path / "s"), load_results(SMOKE, tmp_path / "r")
    assert {r["config"]["method"] for r in b} == {"sgd", "sam", "switch", "rho-decay"}
    for x, y in zip(a, b, strict=True):
        assert same({k: x[k] for k in SAME}, {k: y[k] for k in SAME}), x["run_id"]
        px, py = x["provenance"], y["provenance"]
        assert (px["backend"], py["backend"]) == ("serial", "ray")
        assert px["torch_threads"] == py["torch_threads"] == 1
        assert py["node"] and py["ray_node_id"]
    assert files(tmp_path / "r" / "smoke") == files(tmp_path / "s" / "smoke")  # no extra files
    again = run_sweep("smoke", results_dir=tmp_path / "r", device="cpu", progress=False,
                      backend="ray")
    assert again["ran"] == [] and again["done"] == len(SMOKE) and again["left"] == 0


def test_killed_worker_is_retried_and_every_run_lands_once(tmp_path, local_ray, fashion):
    # longer runs than the smoke sweep's, so the killer finds one in flight
    sweep = Sweep("kill", "x", [c.replace(epochs=8) for c in SMOKE.runs[:4]])
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            for p in psutil.process_iter(["pid", "cmdline"]):
                if "ray::sam_run" not in " ".join(p.info["cmdline"] or []):
                    continue
                with contextlib.suppress(psutil.Error, OSError):  # a worker of our instance
                    if local_ray in " ".join(p.parent().cmdline()):  # its raylet names our dir
                        os.kill(p.info["pid"], signal.SIGKILL)
                        killed.append(p.info["pid"])
                        break
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    try:
        out = run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, backend="ray",
                        datasets={"fashion-mnist": fashion})
    finally:
        stop.set()
        t.join()
    assert killed, "no worker was caught running a task"
    assert out["failed"] == {} and sorted(out["ran"]) == sorted(c.run_id() for c in sweep.runs)
    assert files(tmp_path / "kill") == sorted(f"{c.run_id()}.json" for c in sweep.runs)


def test_a_run_that_raises_is_reported_and_the_others_go_on(tmp_path, local_ray, fashion):
    bad = SMOKE.runs[0].replace(dataset="mnist")  # its files are not in the empty data root
    sweep = Sweep("fail", "x", [SMOKE.runs[0], bad, SMOKE.runs[1]])
    empty = tmp_path / "no-data"
    empty.mkdir()
    kw = dict(results_dir=tmp_path / "res", device="cpu", progress=False, backend="ray",
              data_root=empty, datasets={"fashion-mnist": fashion})
    out = run_sweep(sweep, **kw)
    assert list(out["failed"]) == [bad.run_id()]
    assert out["failed"][bad.run_id()].startswith(("FileNotFoundError", "DatasetUnavailable"))
    assert sorted(out["ran"]) == sorted([SMOKE.runs[0].run_id(), SMOKE.runs[1].run_id()])
    assert out["done"] == 2 and out["left"] == 1
    folder = tmp_path / "res" / "fail"
    assert not (folder / f"{bad.run_id()}.json").exists()  # no result: the next call retries it
    logged = (folder / FAILURES_LOG).read_text()
    assert bad.run_id() in logged and "Traceback" in logged
    again = run_sweep(sweep, **kw)
    assert again["ran"] == [] and list(again["failed"]) == [bad.run_id()]


def test_time_budget_cancels_what_is_unfinished(tmp_path, local_ray, fashion):
    sweep = Sweep("budget", "x", SMOKE.runs[:2])
    out = run_sweep(sweep, results_dir=tmp_path, device="cpu", progress=False, backend="ray",
                    datasets={"fashion-mnist": fashion}, time_budget=1e-6)
    assert out["ran"] == [] and out["left"] == 2 and out["failed"] == {}
    assert files(tmp_path / "budget") == []


def test_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="gpus-per-run 1"):
        run_sweep("smoke", results_dir=tmp_path, device="cuda", backend="ray")
    with pytest.raises(ValueError, match="backend must be"):
        run_sweep("smoke", results_dir=tmp_path, backend="dask")
    dry = run_sweep("smoke", results_dir=tmp_path, backend="ray", gpus_per_run=0.5, dry_run=True)
    assert dry["left"] == len(SMOKE) and dry["estimate_s"] > 0  # no Ray needed, device cuda
    with pytest.raises(SystemExit):
        main(["smoke", "--address", "auto"])  # only with --backend ray
    assert "only apply with --backend ray" in capsys.readouterr().err

