"""Executing a sweep's runs here: one after another, or side by side as local processes.

:func:`run_local` is the serial backend (``jobs=1``) and the process backend (``jobs > 1``):
each run trains in a process of its own (spawned, one torch thread each unless told), takes
its per-run lock, re-checks its record once locked, and writes its record itself, so several
processes, or several sweeps, can share a results folder. Runs are independent except the
matched-loss control: a probed run with ρ > 0 reads the snapshot ladder its seed's SGD run
leaves on disk, so it starts only once that SGD run (if it is among the runs left) is done.
The Ray backend (:mod:`.ray_backend`) is the same idea across machines.

One overall progress bar (plain ``tqdm``, also in notebooks) counts runs done and left
and shows an ETA from the runs' estimated costs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm  # plain text: tqdm.auto warns (a path on stderr) without ipywidgets

from ..data import ImageDataset, load_dataset
from .config import RunConfig
from .keep import save_or_fallback
from .loop import train
from .probe import sgd_run_id
from .store import FILE_MODE, result_record, run_lock, validate_record, write_json_atomic

Estimator = Callable[[RunConfig], float]


def execute_run(config: RunConfig, dataset: ImageDataset, sweep_name: str, device: str,
                progress: bool = True, keep_model: bool = False, backend: str = "serial"
                ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """One run, on any backend: train, its result record, and its CPU weights if kept."""
    out = train(config, dataset, device=device, progress=progress)
    return record_of(config, out, sweep_name, device, keep_model, backend)


def record_of(config: RunConfig, out: dict[str, Any], sweep_name: str, device: str,
              keep_model: bool = False, backend: str = "serial"
              ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """A trained run's result record (with backend and node) and its CPU weights if kept."""
    rec = result_record(config, out, sweep_name, device)
    rec["provenance"].update(backend=backend, node=socket.gethostname())
    state = {k: v.cpu() for k, v in out["model"].state_dict().items()} if keep_model else None
    return rec, state


def store_result(folder: Path, rec: dict[str, Any], state: dict[str, torch.Tensor] | None) -> None:
    """Write a run's weights (when given), then its record, each atomically.

    If the record cannot be written (disk full, folder gone), it is kept in a fallback file
    and the OSError names it (:func:`~.store.save_or_fallback`): a trained run is never lost.
    """
    if state is not None:  # weights first: a result file never points at missing weights
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{rec['run_id']}.", suffix=".tmp")
        os.close(fd)
        torch.save(state, tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, folder / f"{rec['run_id']}.pt")
    save_or_fallback(folder / f"{rec['run_id']}.json", rec)


def shared_records(results_dir: Path, sweep_name: str, configs: Iterable[RunConfig]
                   ) -> dict[str, dict[str, Any]]:
    """Run id -> a valid finished record of the same config in another sweep's folder, as
    this sweep's record (``sweep`` set to ``sweep_name``, ``provenance.reused_from`` the
    other sweep). Runs shared by two sweeps (same run id) are thus computed once."""
    others = sorted(p for p in Path(results_dir).glob("*/") if p.is_dir() and p.name != sweep_name)
    out: dict[str, dict[str, Any]] = {}
    for c in configs:
        rid = c.run_id()
        for other in others:
            if not (other / f"{rid}.json").is_file():
                continue
            rec, why = validate_record(other / f"{rid}.json", c, other.name)
            if rec is not None and not why:
                rec = {**rec, "sweep": sweep_name,
                       "provenance": {**rec["provenance"], "reused_from": other.name}}
                out[rid] = rec
                break
    return out


def write_shared(folder: Path, shared: dict[str, dict[str, Any]]) -> None:
    for rec in shared.values():
        write_json_atomic(folder / f"{rec['run_id']}.json", rec)


def default_jobs(device: str) -> int:
    """One process per core on a CPU (one thread each); one on CUDA unless told."""
    return max(1, os.cpu_count() or 1) if str(device) == "cpu" else 1


def depends_on(config: RunConfig, todo_ids: set[str]) -> str | None:
    """The run id this run must wait for (its seed's SGD run, for the probe's control)."""
    if not (config.probe and config.rho > 0):
        return None
    rid = sgd_run_id(config)
    return rid if rid in todo_ids and rid != config.run_id() else None


# --------------------------------------------------------------- one run, in any process
_DATA: dict[tuple[str, str], ImageDataset] = {}  # per process: load once


def _init_worker(threads: int, datasets: dict[str, ImageDataset]) -> None:
    torch.set_num_threads(threads)  # recorded in provenance.torch_threads
    for name, ds in datasets.items():
        _DATA[(name, "given")] = ds


def _dataset(name: str, data_root: str | None) -> ImageDataset:
    if (name, "given") in _DATA:  # only in a worker process (set by _init_worker)
        return _DATA[(name, "given")]
    key = (name, str(data_root))
    if key not in _DATA:
        _DATA[key] = load_dataset(name, root=data_root)
    return _DATA[key]


def locked_run(config: RunConfig, sweep_name: str, folder: Path, device: str,
               data_root: str | None, save_models: bool, progress: bool, backend: str,
               dataset: ImageDataset | None = None) -> dict[str, Any] | None:
    """Train and store one run under its lock; None if another process has it or had it.

    The record is re-checked after the lock is taken: another process may have finished
    the run between planning and locking, and its record must not be recomputed.
    """
    with run_lock(folder, config.run_id()) as mine:
        if not mine or validate_record(folder / f"{config.run_id()}.json", config,
                                       sweep_name)[0] is not None:
            return None
        ds = dataset if dataset is not None else _dataset(config.dataset, data_root)
        rec, state = execute_run(config, ds, sweep_name,
                                 device, progress=progress, keep_model=save_models,
                                 backend=backend)
        store_result(folder, rec, state)
        return rec


# --------------------------------------------------------------- the local backends
def run_local(name: str, todo: list[RunConfig], folder: Path, *, device: str,
              data_root: str | os.PathLike | None, datasets: dict[str, ImageDataset],
              save_models: bool, progress: bool, jobs: int, threads: int | None,
              estimate: Estimator, time_budget: float | None, max_runs: int | None,
              on_result: Callable[[Path, dict[str, Any]], None] | None = None
              ) -> tuple[list[dict[str, Any]], list[str]]:
    """Run ``todo`` (in order, ``jobs`` at a time); return the new records and skipped ids."""
    todo = todo[:max_runs] if max_runs is not None else list(todo)
    root = None if data_root is None else str(data_root)
    t0 = time.perf_counter()
    new: list[dict[str, Any]] = []
    skipped: list[str] = []
    cost = {c.run_id(): estimate(c) for c in todo}
    bar = tqdm(total=len(todo), desc=name, unit="run", disable=not progress)

    def eta(left: Iterable[RunConfig]) -> None:
        bar.set_postfix_str(f"ETA ~{sum(cost[c.run_id()] for c in left) / jobs:.0f} s")

    def fits(c: RunConfig, running_s: float = 0.0) -> bool:
        if time_budget is None:
            return True
        left_s = time_budget - (time.perf_counter() - t0)
        if cost[c.run_id()] + running_s <= left_s:
            return True
        tqdm.write(f"[{name}] stopping: the next run needs ~{cost[c.run_id()]:.0f} s, "
                   f"budget left {left_s:.0f} s")
        return False

    def done(c: RunConfig, rec: dict[str, Any] | None) -> None:
        bar.update()
        if rec is None:
            skipped.append(c.run_id())
            tqdm.write(f"  {c.run_id()}: computed by another process, skipped")
            return
        new.append(rec)
        if on_result is not None:
            on_result(folder / f"{c.run_id()}.json", rec)
        acc = rec["final"]["test_acc"]
        tqdm.write(f"  {c.run_id()}: {rec['status']}, test acc "
                   f"{'-' if acc is None else f'{acc:.4f}'}, {rec['wall_time_s']:.1f} s")

    try:
        eta(todo)
        if jobs == 1:
            for i, c in enumerate(todo):
                if not fits(c):
                    break
                if c.dataset not in datasets:  # loaded once, shared by the sweep's runs
                    datasets[c.dataset] = load_dataset(c.dataset, root=data_root)
                done(c, locked_run(c, name, folder, device, root, save_models, progress,
                                   "serial", datasets[c.dataset]))
                eta(todo[i + 1:])
            return new, skipped
        _run_pool(name, todo, folder, device, root, datasets, save_models, jobs, threads,
                  fits, done, lambda left: eta(left), cost)
    finally:
        bar.close()
    return new, skipped


def _run_pool(name: str, todo: list[RunConfig], folder: Path, device: str, root: str | None,
              datasets: dict[str, ImageDataset], save_models: bool, jobs: int,
              threads: int | None, fits: Callable[..., bool], done: Callable[..., None],
              eta: Callable[[list[RunConfig]], None], cost: dict[str, float]) -> None:
    """``jobs`` spawned processes; a run waits for the SGD run its control reads."""
    ids = {c.run_id() for c in todo}
    waiting = list(todo)
    running: dict[Future, RunConfig] = {}
    finished: set[str] = set()
    stop = False
    ctx = mp.get_context("spawn")  # no fork of a process that holds torch threads
    used = {c.dataset for c in todo}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads or 1, {k: v for k, v in datasets.items()
                                                      if k in used})) as pool:
        while waiting or running:
            while not stop and len(running) < jobs:
                ready = [c for c in waiting
                         if (d := depends_on(c, ids)) is None or d in finished]
                if not ready:
                    break
                c = ready[0]
                if not fits(c, sum(cost[r.run_id()] for r in running.values()) / jobs):
                    stop = True
                    break
                waiting.remove(c)
                running[pool.submit(locked_run, c, name, folder, device, root, save_models,
                                    False, "processes")] = c
            if not running:
                break
            got, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in got:
                c = running.pop(f)
                finished.add(c.run_id())
                done(c, f.result())  # a run that raised stops the sweep, like serial
            eta(waiting + list(running.values()))
