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

from sam_hallucination.runs import gpu_session as gs
from sam_hallucination.runs import jobs_calibration as jc
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
               SAM_DATA_DIR=str(tmp / "data"), OMP_NUM_THREADS="1")
    env.update(extra)
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
    # a budget well above the bench's 150 s floor: under load the first steps eat into it
    r = subprocess.run(["bash", str(SESSION), "400"], capture_output=True, text=True,
                       env=session_env(tmp, out_b, GPU_PLAN="calibrate smoke:0 bench", GPU_MAX_RUNS="1",
                                       GPU_BENCH=str(bench), GPU_BENCH_ARGS="--reps 1"), timeout=300)
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
    picked = re.search(r"\[calibrate\] K=1: \d+ images/s \(1.00x\); K=2: .* -> K=([12]) ", log)
    assert picked, log  # the calibration's numbers are logged, and its K is used
    assert f"runs side by side: {picked[1]} process(es)" in log
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


@pytest.mark.parametrize("plan, commit, message, extra", [
    ("cifar10-rho:0", "", "cifar10_jpeg_compact.npz", {}),  # a CIFAR plan needs the data; smoke does not
    ("no-such-sweep", "", "unknown sweep", {}),
    ("smoke", "$(git rev-parse HEAD)", "not a 40-hex commit", {}),  # not expanded on the caller's side
    ("smoke calibrate", "", "must be the plan's first step", {}),
    ("smoke", "", "GPU_JOBS='x' must be a positive integer or auto", {"GPU_JOBS": "x"}),
    # a window whose CUDA fails: this machine has none (the test skips on one that has)
    ("calibrate smoke", "", "ERROR: CUDA smoke failed", {"GPU_DEVICE": "cuda", "GPU_CALIBRATE_KS": "1"}),
])
@pytest.mark.parametrize("sigterm", ["default", "ignored"])
def test_session_stops_early_on_a_bad_call(plan: str, commit: str, message: str, extra: dict[str, str],
                                           sigterm: str, tmp_path: Path) -> None:
    """Also when started with SIGTERM ignored (as CI started it once): its helpers inherit
    that, and the session once waited forever for a watcher that a TERM could not stop."""
    if extra.get("GPU_DEVICE") == "cuda" and torch_sees_cuda():
        pytest.skip("this machine has CUDA: the failing-CUDA case needs one without")
    out = tmp_path / "out"
    env = session_env(tmp_path, out, GPU_PLAN=plan, **extra)
    env.pop("SAM_GIT_COMMIT", None)
    if commit:
        env["SAM_GIT_COMMIT"] = commit
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(SESSION), "60"], capture_output=True, text=True, timeout=50, env=env,
                       preexec_fn=ignore_sigterm if sigterm == "ignored" else None)
    assert r.returncode == 2 and message in r.stdout + r.stderr, r.stdout + r.stderr
    assert time.monotonic() - t0 < 45  # well within the first minute
    assert (r.stdout + r.stderr).count("ERROR") == 1, r.stdout + r.stderr  # one line says why
    assert message in (out / "session.log").read_text()
    assert members(out / "results_new.tar.gz") == {}  # still a valid (empty) archive
    assert {f.as_posix() for f in out_files(out)} <= OUT_NAMES


def torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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


# ----------------------------------------------------------------------------- the module
# runs/gpu_session.py and runs/jobs_calibration.py, the logic the shell script calls.
def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_seed_lists_committed_files_and_keeps_earlier_runs(tmp_path: Path) -> None:
    committed, scratch = tmp_path / "committed", tmp_path / "scratch"
    write_json(committed / "smoke" / "a.json", {"x": 1})
    write_json(committed / "benchmarks" / "b.txt", "t")
    (committed / "top.txt").write_text("not a result: not listed")
    (committed / "smoke" / "a.pt").write_bytes(b"weights")
    write_json(scratch / "smoke" / "earlier.json", {"x": 2})  # an earlier call's run
    assert gs.seed_scratch(committed, scratch) == ["benchmarks/b.txt", "smoke/a.json", "smoke/a.pt"]
    assert (scratch / "smoke" / "a.json").read_text() == '{"x": 1}'
    assert (scratch / "smoke" / "earlier.json").exists()
    assert not list(scratch.rglob("*.pt"))  # weights never travel back
    assert gs.seed_scratch(tmp_path / "none", tmp_path / "s2") == []
    assert (tmp_path / "s2" / gs.COMMITTED_LIST).read_text() == ""


def test_new_files_are_complete_uncommitted_results_with_plain_names(tmp_path: Path) -> None:
    gs.seed_scratch(tmp_path / "c", tmp_path)
    (tmp_path / gs.COMMITTED_LIST).write_text("smoke/old.json\n")
    write_json(tmp_path / "smoke" / "old.json", {})
    write_json(tmp_path / "smoke" / "new.json", {})
    (tmp_path / "smoke" / "torn.json").write_text('{"status": ')  # still being written
    (tmp_path / "smoke" / "notes.txt").write_text("x")  # not a result
    (tmp_path / "smoke" / "-odd.json").write_text("{}")  # a name the device tool refuses
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bench.txt").write_text("CUDA")
    (tmp_path / "benchmarks" / "bench.json").write_text("{}")
    (tmp_path / ".hidden").mkdir()
    write_json(tmp_path / ".hidden" / "x.json", {})
    got = gs.new_files(tmp_path)
    assert [f for f, _, _ in got] == ["benchmarks/bench.txt", "smoke/new.json"]
    assert got[1][1] == 2  # size, then mtime: a rewrite is seen


def test_pack_writes_atomically_and_keeps_the_last_archive_on_failure(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    scratch, archive = tmp_path / "s", tmp_path / "out" / "a.tar.gz"
    archive.parent.mkdir()
    gs.seed_scratch(tmp_path / "c", scratch)
    write_json(scratch / "smoke" / "r1.json", {"run": 1})
    assert gs.pack(scratch, archive) == 1
    assert members(archive) == {"smoke/r1.json": b'{"run": 1}'}
    write_json(scratch / "smoke" / "r2.json", {"run": 2})

    def broken(*args: Any, **kw: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tarfile.TarFile, "add", broken)
    with pytest.raises(OSError):
        gs.pack(scratch, archive)
    assert members(archive) == {"smoke/r1.json": b'{"run": 1}'}  # the last good one stands


def test_pack_watch_follows_new_runs_until_the_session_is_gone(tmp_path: Path) -> None:
    import threading

    scratch, archive = tmp_path / "s", tmp_path / "a.tar.gz"
    gs.seed_scratch(tmp_path / "c", scratch)
    session_proc = subprocess.Popen(["sleep", "30"])
    watcher = threading.Thread(target=gs.pack, args=(scratch, archive, session_proc.pid, 0.05))
    watcher.start()
    try:
        write_json(scratch / "smoke" / "r1.json", {"run": 1})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "smoke/r1.json" not in members_or_none(archive):
            time.sleep(0.05)
        assert "smoke/r1.json" in members_or_none(archive)
    finally:
        session_proc.kill()
        session_proc.wait()  # reaped: gone for kill -0 too
        watcher.join(timeout=10)
    assert not watcher.is_alive()


def members_or_none(archive: Path) -> dict[str, bytes]:
    try:
        return members(archive)
    except (OSError, tarfile.TarError, EOFError):
        return {}


def test_the_module_starts_the_packer_without_torch() -> None:
    code = "import sys, sam_hallucination.runs.gpu_session; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=dict(os.environ)).returncode == 0


def test_share_runs_copies_a_finished_shared_run_once(tmp_path: Path) -> None:
    (tmp_path / gs.SHARED_LIST).write_text("a/r.json b/r.json\nb/r.json a/r.json\na/s.json b/s.json\n")
    write_json(tmp_path / "a" / "r.json", {"r": 1})
    assert gs.share_runs(tmp_path) == 1  # s.json is not finished: nothing to copy
    assert (tmp_path / "b" / "r.json").read_text() == '{"r": 1}'
    assert gs.share_runs(tmp_path) == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_parse_plan() -> None:
    plan = gs.parse_plan(["calibrate", "smoke", "cifar10-rho:0,2", "bench"])
    assert plan == [gs.Step("calibrate"), gs.Step("sweep", "smoke"), gs.Step("sweep", "cifar10-rho", (0, 2)),
                    gs.Step("bench")]
    assert gs.sweep_names(plan + [gs.Step("sweep", "smoke", (0,))]) == ["smoke", "cifar10-rho"]
    for steps, why in ((["nope"], "unknown sweep; valid: smoke"), (["smoke:0,x"], "comma-separated integers"),
                       (["smoke", "calibrate"], "must be the plan's first step")):
        with pytest.raises(gs.SessionError, match=re.escape(why)):
            gs.parse_plan(steps)


def test_what_the_plan_needs(tmp_path: Path) -> None:
    smoke, rho, bench = gs.parse_plan(["smoke"]), gs.parse_plan(["cifar10-rho:0"]), gs.parse_plan(["bench"])
    assert gs.data_file(smoke, "cuda", "--full-runs", tmp_path) is None
    assert gs.data_file(bench, "cpu", "--full-runs", tmp_path) is None  # the CPU bench trains on no CIFAR
    with pytest.raises(gs.SessionError, match=r"neither cifar10_jpeg_compact.npz nor cifar10_jpeg.npz.*carry"):
        gs.data_file(bench, "cuda", "--reps 3 --full-runs", tmp_path)
    (tmp_path / "cifar10_jpeg.npz").write_bytes(b"")
    assert gs.data_file(rho, "cpu", "", tmp_path) == tmp_path / "cifar10_jpeg.npz"
    (tmp_path / "cifar10_jpeg_compact.npz").write_bytes(b"")
    assert gs.data_file(rho, "cpu", "", tmp_path) == tmp_path / "cifar10_jpeg_compact.npz"  # preferred
    gs.write_plan(tmp_path, gs.parse_plan(["smoke", "cifar10-rho:0", "cifar10-remedy"]))
    assert (tmp_path / gs.CIFAR_LIST).read_text() == "cifar10-rho\ncifar10-remedy\n"
    pairs = [tuple(line.split()) for line in (tmp_path / gs.SHARED_LIST).read_text().splitlines()]
    assert pairs and all((b, a) in pairs for a, b in pairs)  # both ways
    assert {a.split("/")[0] for a, _ in pairs} == {"cifar10-rho", "cifar10-remedy"}


def test_summary_counts_runs_per_seed(tmp_path: Path) -> None:
    gs.seed_scratch(tmp_path / "none", tmp_path)
    (tmp_path / "smoke").mkdir()
    shutil.copy(REPO / "results" / COMMITTED_RUN, tmp_path / COMMITTED_RUN)
    [line] = gs.summary(tmp_path, gs.parse_plan(["smoke:0", "bench"]))
    assert re.fullmatch(r"  smoke +1/10 runs \(seed 0: 1/10\); 1 new; 0 diverged; \d+ s of run time", line)
    (tmp_path / gs.COMMITTED_LIST).write_text(f"{COMMITTED_RUN}\n")
    assert "; 0 new;" in gs.summary(tmp_path, gs.parse_plan(["smoke"]))[0]


def test_main_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert gs.main(["plan", str(tmp_path), "smoke", "no-such"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: plan step 'no-such': unknown sweep") and err.count("\n") == 1
    assert gs.main(["plan", "--device", "cpu", str(tmp_path), "smoke"]) == 0
    assert capsys.readouterr().out == "\n"  # no data file needed
    assert jc.calibrate_command("cpu", "1,x", 5, None, "auto", None) == 2
    assert "--ks '1,x' must be positive integers" in capsys.readouterr().err
    assert jc.calibrate_command("cpu", "1", 5, None, "0", None) == 2


def test_pick_jobs() -> None:
    assert jc.pick_jobs({1: 100.0, 2: 137.0, 4: 150.0}) == 4
    assert jc.pick_jobs({1: 100.0, 2: 137.0, 4: 140.0}) == 2  # +2% over K=2: not worth 2 more
    assert jc.pick_jobs({1: 100.0, 2: 104.0, 4: 90.0}) == 1
    assert jc.pick_jobs({1: 100.0, 2: 104.0, 4: 120.0}) == 4  # measured against the K chosen
    assert jc.pick_jobs({2: 50.0}) == 2
    assert jc.rates_line({1: 100.0, 2: 137.4}) == "K=1: 100 images/s (1.00x); K=2: 137 images/s (1.37x)"


def test_calibration_config_is_the_gpu_grids_network() -> None:
    cfg, size = jc.calibration_config("cuda")
    assert (cfg.model, cfg.method, cfg.batch_size, cfg.amp, size) == ("airbench", "sam", 512, True, 32)
    assert cfg in get_sweep("cifar10-rho").runs
    assert jc.calibration_config("cpu")[0].model == "mlp"


def test_calibrate_on_a_cpu_measures_each_k_and_stops_its_workers(capsys: pytest.CaptureFixture) -> None:
    import multiprocessing

    t0 = time.monotonic()
    rates = jc.calibrate("cpu", (1, 2), limit_s=30, round_s=0.2)
    assert sorted(rates) == [1, 2] and all(r > 0 for r in rates.values())
    assert time.monotonic() - t0 < 30
    assert "2 of 2 worker(s) ready" in capsys.readouterr().out
    assert multiprocessing.active_children() == []  # no worker left behind


def test_calibrate_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if torch_sees_cuda():
        pytest.skip("this machine has CUDA: the failing-CUDA case needs one without")
    with pytest.raises(jc.CalibrationFailed, match=r"^worker 0: \w+: .*CUDA"):  # the GPU grid's config, no GPU
        jc.calibrate("cuda", (1,), limit_s=30)
    assert jc.calibrate_command("cpu", "1,2", 0.05, None, "auto", tmp_path / "jobs") == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: CPU smoke failed after") and err.count("\n") == 1
    assert "0 of 2 worker(s) ready after 0 s (K = 1 needs 1)" in err
    assert not (tmp_path / "jobs").exists()
