"""The Ray backend of the sweep runner: each run is one Ray task.

:func:`~.sweeps.run_sweep` plans the sweep (the runs whose result file is missing), then
hands the runs left to :func:`run_on_ray` with the two pieces the serial backend uses too:
``execute`` (train + result record, in the worker) and ``store`` (the atomic write, in the
driver). The driver submits every run, gathers the tasks as they finish and writes each
result there, so a results folder holds only complete files whichever backend made them.

Faults: a task whose worker process dies is retried by Ray (``max_retries``). A run that
raises is not retried and gets no result file (so the next call retries it); it is listed in
the summary's ``failed`` and appended to ``<results>/<sweep>/_failures.log``, and the other
runs go on. Killing the driver loses only the runs in flight: the next call skips what is
written. Ray is optional: ``pip install -e .[distributed]``.
"""

from __future__ import annotations

import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..data import ImageDataset, load_dataset
from .config import RunConfig
from .execute import depends_on

FAILURES_LOG = "_failures.log"
MAX_RETRIES = 3  # Ray retries of a task whose worker died (not of a run that raised)
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2  # a local instance started by us: records are small

ANSI = r"\x1b\[[0-9;]*m"  # Ray colours the task name in its tracebacks
_DATASETS: dict[tuple[str, str], ImageDataset] = {}  # per worker process: load once


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("backend 'ray' needs Ray: pip install -e '.[distributed]' "
                          "(or make test, which installs it)") from e
    return ray


def submit_in_order(submit: Callable[[RunConfig, Any], Any], todo: list[RunConfig]
                    ) -> dict[Any, RunConfig]:
    """Submit every run of ``todo``; return ref -> config.

    A probed SAM run reads the snapshot ladder its seed's SGD run leaves on disk
    (:func:`.execute.depends_on`), so it gets that SGD task's ref as an argument (``after``):
    Ray then starts it only once the SGD run has finished. SGD runs go first whatever the
    order of ``todo``. (The snapshots are on the SGD run's machine: on a cluster without a
    shared cache folder the control still reads ``missing``.)"""
    ids = {c.run_id() for c in todo}
    first = sorted(todo, key=lambda c: depends_on(c, ids) is not None)  # stable
    refs: dict[str, Any] = {}
    pending: dict[Any, RunConfig] = {}
    for c in first:
        d = depends_on(c, ids)
        ref = submit(c, refs.get(d) if d is not None else None)
        refs[c.run_id()] = ref
        pending[ref] = c
    return pending


def _task(execute: Callable[..., Any], config: RunConfig, sweep_name: str, device: str,
          data_root: str | None, dataset: ImageDataset | None, threads: int, keep_model: bool,
          after: Any = None) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Runs in a Ray worker: load the data once per process, then the one-run function.

    ``after``: the result of the task this one waited for (unused; see submit_in_order)."""
    import ray

    torch.set_num_threads(threads)  # CPU results depend on the thread count; recorded
    if dataset is None:
        key = (config.dataset, str(data_root))
        if key not in _DATASETS:
            _DATASETS[key] = load_dataset(config.dataset, root=data_root)
        dataset = _DATASETS[key]
    rec, state = execute(config, dataset, sweep_name, device, progress=False,
                         keep_model=keep_model, backend="ray")
    rec["provenance"]["ray_node_id"] = ray.get_runtime_context().get_node_id()
    return rec, state


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to ``address`` or start a local instance; True if this call did (then it shuts
    Ray down at the end: a cluster keeps running, a local instance stops)."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    return True


def _gather(ray: Any, pending: dict[Any, RunConfig], time_budget: float | None, t0: float,
            name: str, progress: bool) -> Iterator[tuple[RunConfig, Any]]:
    """Each task's config and (record, weights) or its exception, as the tasks finish."""
    from ray.exceptions import RayError

    with tqdm(total=len(pending), desc=name, unit="run", disable=not progress) as bar:
        while pending:
            timeout = None if time_budget is None else time_budget - (time.perf_counter() - t0)
            if timeout is not None and timeout <= 0:
                for ref in pending:
                    ray.cancel(ref, force=True)
                print(f"[{name}] time budget spent: cancelled {len(pending)} runs")
                return
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
            for ref in ready:
                c = pending.pop(ref)
                try:
                    got = ray.get(ref)
                except RayError as e:
                    got = e
                bar.update()
                yield c, got


def _record_failure(folder: Path, run_id: str, e: BaseException) -> str:
    """Append the failure to the sweep's log; return its one-line summary."""
    cause = getattr(e, "cause", None) or e  # RayTaskError wraps the run's own exception
    error = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
    detail = getattr(e, "traceback_str", None) or "".join(traceback.format_exception(e))
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(folder / FAILURES_LOG, "a") as f:
        f.write(f"== {stamp} {run_id} (worker {getattr(e, 'ip', '?')}, driver "
                f"{socket.gethostname()}, backend ray)\n{error}\n"
                f"{re.sub(ANSI, '', detail).rstrip()}\n")
    return error


def run_on_ray(sweep_name: str, todo: list[RunConfig], finished: list[dict[str, Any]],
               folder: Path, execute: Callable[..., Any], store: Callable[..., None], *,
               data_root: str | os.PathLike | None, device: str,
               datasets: dict[str, ImageDataset], save_models: bool, progress: bool,
               address: str | None, gpus_per_run: float, cpus_per_run: float,
               time_budget: float | None, max_retries: int = MAX_RETRIES) -> dict[str, Any]:
    """Run ``todo`` as Ray tasks; store each result as it comes; return the sweep's summary.

    ``address``: a running cluster ("auto", "host:port") or None for a local instance (shut
    down at the end; one already initialised in this process is used and left running).
    ``time_budget`` (seconds): runs unfinished by then are cancelled and left for next time.
    """
    if not gpus_per_run >= 0 or not cpus_per_run > 0:
        raise ValueError(f"gpus_per_run must be >= 0 and cpus_per_run > 0, got "
                         f"{gpus_per_run!r}, {cpus_per_run!r}")
    if str(device).startswith("cuda") and gpus_per_run == 0:
        raise ValueError("device cuda with gpus_per_run 0: Ray would give the runs no GPU; "
                         "pass --gpus-per-run 1 (or a fraction such as 0.25 to share one)")
    ray = import_ray()
    t0 = time.perf_counter()
    n_div = sum(r["status"] == "diverged" for r in finished)
    ran: list[str] = []
    failed: dict[str, str] = {}
    started = bool(todo) and _connect(ray, address)  # nothing left: no cluster needed
    try:
        task = ray.remote(_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                         max_retries=max_retries, retry_exceptions=False,
                                         name="sam_run")
        refs = {ds: ray.put(d) for ds, d in datasets.items()} if todo else {}  # shared, not reloaded
        root = None if data_root is None else str(data_root)
        pending = submit_in_order(
            lambda c, after: task.remote(execute, c, sweep_name, device, root,
                                         refs.get(c.dataset), max(1, int(cpus_per_run)),
                                         save_models, after), todo)
        if todo:
            have = ray.cluster_resources()
            print(f"[{sweep_name}] submitted {len(todo)} runs to Ray ({cpus_per_run:g} CPU, "
                  f"{gpus_per_run:g} GPU each; cluster: {have.get('CPU', 0):g} CPU, "
                  f"{have.get('GPU', 0):g} GPU)")
        for c, got in _gather(ray, pending, time_budget, t0, sweep_name, progress):
            if isinstance(got, BaseException):  # the run raised, or its retries are spent
                failed[c.run_id()] = _record_failure(folder, c.run_id(), got)
                tqdm.write(f"  {c.run_id()}: FAILED, {failed[c.run_id()]}")
                continue
            rec, state = got
            store(folder, rec, state)
            finished.append(rec)
            ran.append(c.run_id())
            n_div += rec["status"] == "diverged"
            acc = rec["final"]["test_acc"]
            tqdm.write(f"  {c.run_id()}: {rec['status']}, test acc "
                       f"{'-' if acc is None else f'{acc:.4f}'}, {rec['wall_time_s']:.1f} s "
                       f"on {rec['provenance']['node']}")
    finally:
        if started:
            ray.shutdown()
    left = len(todo) - len(ran)
    print(f"[{sweep_name}] done {len(finished)}, left {left}, diverged {n_div} "
          f"({len(ran)} run now in {time.perf_counter() - t0:.0f} s, backend ray)")
    if failed:
        print(f"[{sweep_name}] {len(failed)} failed (no result file; rerun to retry): "
              f"{', '.join(failed)}; details in {folder / FAILURES_LOG}")
    return {"done": len(finished), "left": left, "diverged": n_div, "ran": ran,
            "failed": failed}
