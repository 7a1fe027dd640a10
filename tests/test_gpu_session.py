"""scripts/gpu_session.sh on a CPU, and the scripts around it (ingest, payload check).

The session runs the `smoke` sweep (Fashion-MNIST, Debian's dataset-fashion-mnist) into
temporary folders: a committed-results folder, a scratch folder and $OUT. It is killed
once mid-run, then resumed; $OUT must respect the device tool's limits (at most 8 files,
two folders deep, plain names) and its archive must hold exactly the new results.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.sweeps import get_sweep

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "scripts" / "gpu_session.sh"
COMMITTED_RUN = "smoke/fashion-mnist_mlp_sgd_s0_080dd8d1.json"  # first run of the sweep
OUT_NAMES = {"results_new.tar.gz", "session.log", "bench_train_step.txt", "results_new.tar.gz.part"}
SAFE = re.compile(r"[A-Za-z0-9._-]+")

needs_fashion = pytest.mark.usefixtures("fashion_mnist")  # the smoke sweep needs it (conftest)


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


ingest = load_script("ingest_gpu_results")
payload_check = load_script("gpu_payload_check")


def session_env(tmp: Path, out: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_", "OUT"))}
    env.update(OUT=str(out), GPU_SCRATCH=str(tmp / "scratch"), GPU_SEED_RESULTS=str(tmp / "committed"),
               GPU_DEVICE="cpu", GPU_MARGIN_S="5", PYTHON=sys.executable,
               SAM_DATA_DIR=str(tmp / "data"), OMP_NUM_THREADS="1", **extra)
    return env


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def out_files(out: Path) -> list[Path]:
    return [p.relative_to(out) for p in out.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, fashion_mnist: Any) -> dict[str, Any]:
    """Kill a session once its first run is archived, then resume it with the benchmark."""
    tmp = tmp_path_factory.mktemp("gpu")
    (tmp / "committed" / "smoke").mkdir(parents=True)
    shutil.copy(REPO / "results" / COMMITTED_RUN, tmp / "committed" / COMMITTED_RUN)
    bench = tmp / "bench.py"  # the real benchmark takes ~15 s here; make bench runs it
    bench.write_text("import sys\nprint('CPU stub: SGD step 1 ms, SAM step 2 ms', sys.argv[1:])\n")
    t0 = time.perf_counter()

    out_a = tmp / "out_a"
    proc = subprocess.Popen(["bash", str(SESSION), "200"], env=session_env(tmp, out_a, GPU_PLAN="smoke"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    archive_a = out_a / "results_new.tar.gz"
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                if members(archive_a):
                    break
            except (OSError, tarfile.TarError, EOFError):
                pass
            time.sleep(0.2)
    finally:  # a kill of the whole command, as at the device tool's time limit
        os.killpg(proc.pid, signal.SIGKILL)
        log_a = proc.communicate()[0].decode()
    for _ in range(50):  # the kill reached every process of the session (no stray sweep)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the killed session survive its process group's SIGKILL")
    scratch_after_a = {p.name for p in (tmp / "scratch" / "smoke").glob("*.json")}

    out_b = tmp / "out_b"
    r = subprocess.run(["bash", str(SESSION), "200"], capture_output=True, text=True,
                       env=session_env(tmp, out_b, GPU_PLAN="smoke:0 bench", GPU_MAX_RUNS="1",
                                       GPU_BENCH=str(bench), GPU_BENCH_ARGS="--reps 1"), timeout=180)
    return dict(tmp=tmp, out_a=out_a, log_a=log_a, archive_a=archive_a, scratch_after_a=scratch_after_a,
                out_b=out_b, run_b=r, seconds=time.perf_counter() - t0)


@needs_fashion
def test_killed_session_leaves_a_valid_archive_of_finished_runs(session: dict[str, Any]) -> None:
    got = members(session["archive_a"])  # opens: the kill never leaves a torn archive
    assert got, f"no run archived before the kill:\n{session['log_a']}"
    for name, data in got.items():
        folder, fname = name.split("/")
        assert folder == "smoke" and fname in session["scratch_after_a"]
        assert json.loads(data)["status"] == "ok"  # complete, finished runs only
    assert COMMITTED_RUN not in got


@needs_fashion
def test_out_respects_the_device_tool_limits(session: dict[str, Any]) -> None:
    r = session["run_b"]
    assert r.returncode == 0, r.stdout + r.stderr
    for out in (session["out_a"], session["out_b"]):
        files = out_files(out)
        assert len(files) <= 8, files
        assert all(len(f.parts) <= 3 and all(SAFE.fullmatch(p) for p in f.parts) for f in files), files
        assert {f.as_posix() for f in files} <= OUT_NAMES, files
    names = {f.as_posix() for f in out_files(session["out_b"])}
    assert names == {"results_new.tar.gz", "session.log", "bench_train_step.txt"}
    log = (session["out_b"] / "session.log").read_text()
    assert "smoke seeds 0" in log and "ingest with" in log and "exit 0" in log  # tee'd, to the end
    assert "SGD step" in (session["out_b"] / "bench_train_step.txt").read_text()


@needs_fashion
def test_resumed_archive_holds_exactly_the_new_results(session: dict[str, Any]) -> None:
    scratch = session["tmp"] / "scratch"
    got = members(session["out_b"] / "results_new.tar.gz")
    new = {f"smoke/{p.name}" for p in (scratch / "smoke").glob("*.json")} - {COMMITTED_RUN}
    assert set(got) == new | {"benchmarks/train_step_cpu.txt"}
    assert set(members(session["archive_a"])) < set(got)  # the killed call's runs are kept
    killed = {f"smoke/{n}" for n in session["scratch_after_a"]} - {COMMITTED_RUN}
    assert new == killed | (new - killed) and len(new - killed) == 1  # resumed: one more run
    for name, data in got.items():
        assert (scratch / name).read_bytes() == data
    assert not (session["out_b"] / "results").exists()  # committed results never go to $OUT


@needs_fashion
def test_ingest_round_trips(session: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    archive = session["out_b"] / "results_new.tar.gz"
    res = tmp_path / "results"
    shutil.copytree(session["tmp"] / "committed", res)
    assert ingest.main([str(archive), "--results", str(res)]) == 1  # CPU results: refused
    assert "not CUDA" in capsys.readouterr().out
    assert ingest.main([str(archive), "--results", str(res), "--allow-cpu", "--dry-run"]) == 0
    assert not (res / "benchmarks").exists()
    assert ingest.main([str(archive), "--results", str(res), "--allow-cpu"]) == 0
    got = members(archive)
    assert "added" in capsys.readouterr().out
    for name, data in got.items():
        assert (res / name).read_bytes() == data
    assert ingest.main([str(archive), "--results", str(res), "--allow-cpu"]) == 0  # again: skipped
    out = capsys.readouterr().out
    assert out.count("skipped ") == len(got) and "0 added" in out


def one_member_archive(path: Path, name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        else:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if kind != tarfile.SYMTYPE else None)
    return path


REFUSALS = {
    "config-edited": "hashes to",
    "config-and-id-edited": "is not in sweep 'smoke'",
    "unknown-commit": "not a commit of this repository",
    "wrong-sweep": "is not in sweep 'cifar10-rho'",
    "traversal": "unsafe path",
    "absolute": "unsafe path",
    "deep": "unsafe path",
    "symlink": "not a regular file",
    "differs-from-committed": "exists with different content",
    # the loader's own checks (runs.store.record_problem), which the ingest once skipped
    "newer-schema": "schema_version 99 is not one this code reads",
    "no-final": "missing field(s) final",
    "no-epochs": "missing field(s) epochs",
    "no-wall-time": "missing field(s) wall_time_s",
    "nan-literal": "NaN literal",
    "metric-edited": "final metrics differ from the last epoch's",
    "final-garbage": "status 'ok' without final metrics",
    "oversize": "over 1000",
}


@needs_fashion
@pytest.mark.parametrize("case", list(REFUSALS))
def test_ingest_refuses(case: str, session: dict[str, Any], tmp_path: Path,
                        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    good = {n: d for n, d in members(session["out_b"] / "results_new.tar.gz").items() if n.endswith(".json")}
    name, data = sorted(good.items())[0]
    rec = json.loads(data)
    kind = tarfile.REGTYPE
    res = tmp_path / "results"
    res.mkdir()
    if case == "config-edited":
        rec["config"]["lr"] = 0.5
    elif case == "config-and-id-edited":  # consistent, but not a run of the sweep
        cfg = RunConfig(**rec["config"]).replace(lr=0.5)
        rec["config"], rec["run_id"] = dataclasses.asdict(cfg), cfg.run_id()
        name = f"smoke/{cfg.run_id()}.json"
    elif case == "unknown-commit":
        rec["provenance"]["git"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    elif case == "wrong-sweep":
        name = name.replace("smoke/", "cifar10-rho/")
    elif case == "traversal":
        name = "smoke/../../evil.json"
    elif case == "absolute":
        name = str(tmp_path / "evil.json")
    elif case == "deep":
        name = "smoke/x/" + name.split("/")[1]
    elif case == "symlink":
        kind = tarfile.SYMTYPE
    elif case == "differs-from-committed":
        (res / "smoke").mkdir()
        (res / name).write_text("{}")
    elif case == "newer-schema":
        rec["schema_version"] = 99
    elif case.startswith("no-"):
        del rec[{"no-final": "final", "no-epochs": "epochs", "no-wall-time": "wall_time_s"}[case]]
    elif case == "nan-literal":
        rec["wall_time_s"] = float("nan")  # json.dumps writes the literal NaN
    elif case == "metric-edited":
        rec["final"]["test_acc"] += 0.01
    elif case == "final-garbage":
        rec["final"] = "garbage"
    elif case == "oversize":
        monkeypatch.setattr(ingest, "MAX_MEMBER_BYTES", 1000)
    archive = one_member_archive(tmp_path / "a.tar.gz", name, json.dumps(rec).encode(), kind)
    before = sorted(p for p in tmp_path.rglob("*") if p.name != "a.tar.gz")
    assert ingest.main([str(archive), "--results", str(res), "--allow-cpu"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and REFUSALS[case] in out, out
    assert sorted(p for p in tmp_path.rglob("*") if p.name != "a.tar.gz") == before  # nothing written


@needs_fashion
@pytest.mark.parametrize("case", ["duplicate", "one-bad-member"])
def test_ingest_writes_nothing_from_a_suspect_archive(case: str, session: dict[str, Any],
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """A name given twice, or one refused member beside good ones: nothing is written."""
    good = sorted(members(session["out_b"] / "results_new.tar.gz").items())
    assert len(good) >= 2
    if case == "duplicate":
        entries = [good[0], good[0], *good[1:]]
    else:
        name, data = next((n, d) for n, d in good if n.endswith(".json"))
        bad = json.dumps(dict(json.loads(data), status="running")).encode()
        entries = [*[(n, d) for n, d in good if n != name], (name, bad)]
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    res = tmp_path / "results"
    assert ingest.main([str(archive), "--results", str(res), "--allow-cpu"]) == 1
    cap = capsys.readouterr()
    assert ("appears twice" if case == "duplicate" else "neither 'ok' nor 'diverged'") in cap.out
    assert "nothing was written" in cap.err and "would add" in cap.out
    assert not res.exists() or not any(p.is_file() for p in res.rglob("*"))


@needs_fashion
def test_ingest_accepts_a_run_shared_by_two_sweeps(session: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """A cifar10-rho run that is also a cifar10-remedy cell, copied into remedy's folder."""
    rho = {c.run_id(): c for c in get_sweep("cifar10-rho").runs}
    rid = next(c.run_id() for c in get_sweep("cifar10-remedy").runs if c.run_id() in rho)
    name, data = next((n, d) for n, d in members(session["out_b"] / "results_new.tar.gz").items()
                      if n.endswith(".json"))
    rec = dict(json.loads(data), sweep="cifar10-rho", run_id=rid, config=dataclasses.asdict(rho[rid]))
    n = rho[rid].epochs + rho[rid].final_constant_lr_epochs  # metrics consistent with the config
    rec["epochs"] = [dict(rec["epochs"][-1], epoch=i) for i in range(n)]
    rec["final"] = {k: rec["epochs"][-1].get(k, v) for k, v in rec["final"].items()}
    archive = one_member_archive(tmp_path / "a.tar.gz", f"cifar10-remedy/{rid}.json", json.dumps(rec).encode())
    assert ingest.main([str(archive), "--results", str(tmp_path / "r"), "--allow-cpu"]) == 0
    assert "shared from cifar10-rho" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "cifar10-remedy" / f"{rid}.json").read_text()) == rec


def test_ingest_missing_empty_and_broken_archives(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert ingest.main([str(tmp_path / "none.tar.gz")]) == 2
    assert "no archive at" in capsys.readouterr().err
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz"):
        pass
    assert ingest.main([str(tmp_path / "empty.tar.gz"), "--results", str(tmp_path / "r")]) == 0
    assert "holds no results" in capsys.readouterr().out
    (tmp_path / "torn.tar.gz").write_bytes(b"\x1f\x8b\x08garbage")
    assert ingest.main([str(tmp_path / "torn.tar.gz")]) == 2
    assert "not a readable" in capsys.readouterr().err


def ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@pytest.mark.parametrize("plan, commit, message", [
    ("cifar10-rho:0", "", "cifar10_jpeg_compact.npz"),  # a CIFAR plan needs the data; smoke does not
    ("no-such-sweep", "", "unknown sweep"),
    ("smoke", "$(git rev-parse HEAD)", "not a 40-hex commit"),  # not expanded on the caller's side
])
@pytest.mark.parametrize("sigterm", ["default", "ignored"])
def test_session_stops_early_on_a_bad_call(plan: str, commit: str, message: str, sigterm: str,
                                           tmp_path: Path) -> None:
    """Also when started with SIGTERM ignored (as CI started it once): its helpers inherit
    that, and the session once waited forever for a watcher that a TERM could not stop."""
    out = tmp_path / "out"
    env = session_env(tmp_path, out, GPU_PLAN=plan)
    env.pop("SAM_GIT_COMMIT", None)
    if commit:
        env["SAM_GIT_COMMIT"] = commit
    r = subprocess.run(["bash", str(SESSION), "60"], capture_output=True, text=True, timeout=50, env=env,
                       preexec_fn=ignore_sigterm if sigterm == "ignored" else None)
    assert r.returncode != 0 and message in r.stdout + r.stderr
    assert message in (out / "session.log").read_text()
    assert members(out / "results_new.tar.gz") == {}  # still a valid (empty) archive
    assert {f.as_posix() for f in out_files(out)} <= OUT_NAMES


def test_payload_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text(".data/\nbig.bin\n")
    (tmp_path / "tracked.txt").write_bytes(b"x" * 2**20)
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t")
    (tmp_path / "untracked.txt").write_bytes(b"x" * 2**20)  # sent: not ignored
    (tmp_path / "big.bin").write_bytes(b"x" * 5 * 2**20)  # ignored, not carried: not sent
    (tmp_path / ".data").mkdir()
    (tmp_path / ".data" / "d.npz").write_bytes(b"x" * 3 * 2**20)
    root = ["--root", str(tmp_path), "--carry", ".data"]
    assert payload_check.main([*root, "--limit-mib", "6"]) == 0
    out = capsys.readouterr().out
    assert "payload: 5.0 MiB" in out and "carried 3.0 MiB" in out and ".data/d.npz" in out
    assert "WARNING: the working tree differs from HEAD" in out  # untracked.txt travels
    assert payload_check.main([*root, "--limit-mib", "4.5"]) == 1
    assert payload_check.main(["--root", str(tmp_path), "--carry", "nope"]) == 2
