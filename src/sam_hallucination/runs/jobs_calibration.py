"""How many runs to train side by side on this device: a smoke test and a measurement.

:func:`calibrate` starts ``max(ks)`` worker processes (spawned, one torch thread each, as
``run_sweep(jobs=K)`` starts them). Each builds the GPU grid's network with its optimizer
(a SAM run of sweep ``cifar10-rho``: airbench, batch 512, bf16) on synthetic images of the
same shape, takes a few warm-up steps of :func:`~.step.train_step`, and reports ready. Then,
for each K, K of them train together for ``round_s`` seconds; the images per second they
reach together is the throughput at K. :func:`pick_jobs` takes the largest K that beats the
smaller ones by ``MIN_GAIN``. The whole thing keeps to ``limit_s`` (the session gives it 35 s,
worker start-up included), so a GPU session whose CUDA is broken stops in its first minute
with one line saying why. Workers too slow to start leave their K unmeasured.

On a CPU (the tests) the network is a tiny MLP on 8x8 images: the same code, in seconds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import time
from pathlib import Path
from typing import Any

from .config import RunConfig

MIN_GAIN = 0.05  # a larger K must give 5% more images/s than the K chosen so far
CUDA_KS, CPU_KS = (1, 2, 4), (1, 2)
WARMUP_STEPS = 3  # cudnn.benchmark picks its kernels in the first steps
START_SHARE = 0.7  # of the time limit for the workers to start; the rest measures


def calibration_config(device: str) -> tuple[RunConfig, int]:
    """The network to time and its image size: the GPU grid's SAM run on CUDA, else tiny."""
    if str(device).startswith("cuda"):
        from .sweeps import get_sweep

        return next(c for c in get_sweep("cifar10-rho").runs if c.method == "sam"), 32
    return RunConfig(dataset="synthetic", model="mlp", hidden=32, batch_size=16, method="sam",
                     rho=0.05, epochs=1, amp=False), 8


class CalibrationFailed(RuntimeError):
    """A worker failed or did not answer in time; the message is one line."""


def one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class StepTimer:
    """One run's train step on synthetic data, as :func:`~.loop.train` takes it."""

    def __init__(self, config: RunConfig, size: int, device: str) -> None:
        import contextlib

        import torch
        import torch.nn.functional as F

        from ..data import DeviceLoader, synthetic_dataset
        from .loop import build_model
        from .step import build_optimizer, train_step

        self.torch, self.train_step, self.dev = torch, train_step, torch.device(device)
        ds = synthetic_dataset(n_train=2 * config.batch_size, n_test=1, size=size)
        conv = config.model != "mlp"
        model = build_model(config, ds)
        self.model = (model.to(self.dev, memory_format=torch.channels_last) if conv
                      else model.to(self.dev))
        self.loader = DeviceLoader(ds.x_train, ds.y_train, config.batch_size, mean=ds.mean,
                                   std=ds.std, device=self.dev, train=True, channels_last=conv)
        self.opt = build_optimizer(config, self.model, main_steps=1000)
        self.batch = config.batch_size
        if config.amp and self.dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
            self.autocast: Any = lambda: torch.autocast("cuda", dtype=torch.bfloat16)
        else:
            self.autocast = contextlib.nullcontext
        self.criterion = lambda out, y: F.cross_entropy(out.float(), y)
        self.batches = self._batches()
        self.run_for(0.0, min_steps=WARMUP_STEPS)

    def _batches(self) -> Any:
        while True:
            yield from self.loader

    def sync(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)

    def run_for(self, seconds: float, min_steps: int = 1, sync_every: int = 4) -> tuple[int, float]:
        """Steps for about ``seconds`` (at least ``min_steps``); (steps, elapsed seconds)."""
        self.sync()
        t0 = time.perf_counter()
        steps = 0
        while True:
            xb, yb = next(self.batches)
            self.train_step(self.model, self.opt, xb, yb, self.criterion, self.autocast,
                            measure=True)
            steps += 1
            if steps % sync_every == 0 or self.dev.type != "cuda":
                self.sync()
                if steps >= min_steps and time.perf_counter() - t0 >= seconds:
                    return steps, time.perf_counter() - t0


def _worker(index: int, device: str, config: RunConfig, size: int, parent: int,
            commands: Any, results: Any) -> None:
    """A spawned worker: ready, then one timed round a command, until None or its parent dies."""
    try:
        import torch

        torch.set_num_threads(1)  # as run_sweep's processes (--jobs): one thread each
        timer = StepTimer(config, size, device)
        name = torch.cuda.get_device_name(timer.dev) if timer.dev.type == "cuda" else "CPU"
        results.put(("ready", index, f"{name} | torch {torch.__version__}"))
        while True:
            try:
                seconds = commands.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # the calibration was killed: do not linger
                    return
                continue
            if seconds is None:
                return
            steps, elapsed = timer.run_for(seconds)
            results.put(("done", index, steps * timer.batch / elapsed))
    except BaseException as e:  # noqa: B036 (reported, then the worker ends)
        results.put(("error", index, one_line(e)))


def _get(results: Any, deadline: float) -> tuple[str, int, Any] | None:
    """The next worker message, None at ``deadline``; CalibrationFailed if a worker failed."""
    try:
        msg = results.get(timeout=max(0.01, deadline - time.monotonic()))
    except queue.Empty:
        return None
    if msg[0] == "error":
        raise CalibrationFailed(f"worker {msg[1]}: {msg[2]}")
    return msg


def calibrate(device: str, ks: tuple[int, ...], limit_s: float = 40.0, round_s: float | None = None,
              config: RunConfig | None = None, size: int | None = None,
              log: Any = print) -> dict[int, float]:
    """Images per second of K runs side by side, for each K in ``ks`` (ascending); every
    worker stopped on return. Raises CalibrationFailed (one line) when a worker fails, or
    when none is ready within ``START_SHARE`` of ``limit_s``; the K that the ready workers
    or the time left cannot measure are left out (K = ks[0] is measured, or it raises)."""
    if config is None or size is None:
        config, size = calibration_config(device)
    cuda = str(device).startswith("cuda")
    round_s = round_s if round_s is not None else (3.0 if cuda else 0.3)
    t0 = time.monotonic()
    deadline = t0 + limit_s
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    results = ctx.Queue()
    commands = [ctx.Queue() for _ in range(max(ks))]
    workers = [ctx.Process(target=_worker, args=(i, device, config, size, os.getpid(), q, results),
                           daemon=True) for i, q in enumerate(commands)]
    rates: dict[int, float] = {}
    try:
        for w in workers:
            w.start()
        ready: dict[int, str] = {}
        while len(ready) < len(workers) and (msg := _get(results, t0 + START_SHARE * limit_s)):
            ready[msg[1]] = msg[2]
        usable = sorted(ready)
        if len(usable) < ks[0]:
            raise CalibrationFailed(f"{len(usable)} of {len(workers)} worker(s) ready after "
                                    f"{time.monotonic() - t0:.0f} s (K = {ks[0]} needs {ks[0]})")
        log(f"[calibrate] {len(usable)} of {len(workers)} worker(s) ready after "
            f"{time.monotonic() - t0:.1f} s: {', '.join(sorted(set(ready.values())))}; "
            f"{config.model} {config.method} batch {config.batch_size}")
        todo = [k for k in ks if k <= len(usable)]
        for i, k in enumerate(todo):
            per_round = min(round_s, (deadline - time.monotonic() - 1.0) / (len(todo) - i))
            if per_round < 0.1:
                if not rates:
                    raise CalibrationFailed(f"no time left to measure K = {k}")
                break
            for w in usable[:k]:
                commands[w].put(per_round)
            got: list[float] = []
            while len(got) < k:
                if (msg := _get(results, deadline + 2.0)) is None:
                    raise CalibrationFailed(f"K = {k}: no answer before the time limit")
                if msg[0] == "done":  # (a late "ready" is not an answer)
                    got.append(msg[2])
            rates[k] = sum(got)
        if missed := [k for k in ks if k not in rates]:
            log(f"[calibrate] K = {', '.join(map(str, missed))} not measured (workers not ready "
                "or time limit)")
    finally:
        for q in commands:
            q.put(None)
            q.cancel_join_thread()  # a worker that is gone never reads it: do not wait at exit
        for w in workers:
            w.join(timeout=2.0)
            if w.is_alive():
                w.kill()
                w.join()
    return rates


def pick_jobs(rates: dict[int, float], min_gain: float = MIN_GAIN) -> int:
    """The largest K that gives at least ``1 + min_gain`` times the throughput of the K
    chosen before it (from K = the smallest measured)."""
    best = min(rates)
    for k in sorted(rates):
        if rates[k] >= (1 + min_gain) * rates[best]:
            best = k
    return best


def rates_line(rates: dict[int, float]) -> str:
    base = rates[min(rates)]
    return "; ".join(f"K={k}: {r:.0f} images/s ({r / base:.2f}x)" for k, r in sorted(rates.items()))


def calibrate_command(device: str, ks: str | None, limit_s: float, round_s: float | None,
                      jobs: str, write_jobs: Path | None) -> int:
    """The session's calibration step: log the numbers, write the K to use; exit 2 on failure."""
    cuda = str(device).startswith("cuda")
    try:
        want = tuple(sorted({int(k) for k in ks.split(",")})) if ks else (CUDA_KS if cuda else CPU_KS)
        if not want or want[0] < 1 or not (jobs == "auto" or jobs.isdigit() and int(jobs) >= 1):
            raise ValueError
    except ValueError:
        print(f"ERROR: calibrate: --ks {ks!r} must be positive integers and --jobs {jobs!r} a positive "
              "integer or auto (GPU_CALIBRATE_KS, GPU_JOBS)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        rates = calibrate(device, want, limit_s, round_s)
    except Exception as e:  # whatever broke, one line: the session stops on it
        why = str(e) if isinstance(e, CalibrationFailed) else one_line(e)
        print(f"ERROR: {'CUDA' if cuda else 'CPU'} smoke failed after {time.monotonic() - t0:.0f} s "
              f"({why}): check the GPU (nvidia-smi, torch.cuda.is_available()) or test the "
              "script with GPU_DEVICE=cpu", file=sys.stderr)
        return 2
    k = pick_jobs(rates)
    chosen = k if jobs == "auto" else int(jobs)
    print(f"[calibrate] {rates_line(rates)} -> K={k}"
          + ("" if jobs == "auto" else f"; GPU_JOBS={jobs} given, kept")
          + f" ({time.monotonic() - t0:.1f} s)")
    if write_jobs is not None:
        write_jobs.write_text(f"{chosen}\n")
    return 0
