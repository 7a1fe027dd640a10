"""Named sweeps (ordered lists of runs) and their resumable execution.

``run_sweep`` runs the runs whose result file ``results/<sweep>/<run_id>.json`` is missing,
unreadable or not that run's (run id, config and schema are checked; see
:func:`~.store.validate_record`), writing each file atomically under a per-run lock, so a
killed sweep resumes without duplicates or corrupt files. A diverged run counts as finished.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..checks import is_int
from ..data import ImageDataset
from ..methods import get_method
from .config import RunConfig
from .estimate import GUESS_EPOCH_S, calibration_note, group_seconds, load_calibration
from .execute import (
    execute_run,
    run_local,
    shared_records,
    store_result,
    write_shared,
)
from .grid import Sweep, _seed_major, grid
from .keep import check_result_path, finished_records, served_records
from .store import check_writable, clean_stale_tmp
from .study import (  # noqa: F401  (CPU_TIER_WIDTH, cpu_tier_base: also imported from here)
    CPU_TIER_TEXT,
    CPU_TIER_WIDTH,
    STUDY_RHOS,
    STUDY_SEEDS,
    STUDY_TEXT,
    calibration_runs,
    cpu_study_base,
    cpu_tier_base,
)

# Rough seconds per epoch (50k images) one run at a time; now in :mod:`.estimate`, which
# reads a CUDA calibration when one exists.
EPOCH_COST_S = GUESS_EPOCH_S


def _sweeps() -> dict[str, Callable[[], Sweep]]:
    pilot = RunConfig()  # the GPU pilot settings
    # The CIFAR sweeps end with one epoch at the constant small rate final_lr, then the
    # end-of-training probe (stall diagnostics + SGD/SAM continuation) at the final weights.
    # Test-set evaluation every 4 epochs (and at epochs 16 and 17): less time off training.
    # A 32-batch probe (16,384 images): in the CPU tier 2,048 images left the gradient
    # within noise, ~10,000 resolved it at rho 1 (cifar10-cpu-probe).
    probed = pilot.replace(probe=True, final_constant_lr_epochs=1, eval_every=4, probe_batches=32)
    rn18 = probed.replace(model="resnet18", epochs=10, batch_size=512, lr=0.2)
    # CPU smoke of both CIFAR chapters' code paths (not the experiment): 512 images, 1 epoch
    # + 1 constant-LR epoch, a 2-batch probe with one-epoch (8-step) continuations.
    smoke = probed.replace(epochs=1, batch_size=64, n_train=512, n_test=500, probe_batches=2)
    cpu = cpu_tier_base()
    study = cpu_study_base()
    return {
        "smoke": lambda: Sweep(
            "smoke", "Tiny CPU check: 2-layer MLP on a 2k subset of Fashion-MNIST, 3 epochs.",
            grid(RunConfig(dataset="fashion-mnist", model="mlp", epochs=3, batch_size=128,
                           lr=0.1, n_train=2048, n_test=1000, hidden=256),
                 rhos=(0.05, 0.5, 2.0), seeds=(0,),
                 methods=("sgd", "sam", "switch", "rho-decay"), switch_fracs=(0.1,))),
        "smoke-cifar": lambda: Sweep(
            "smoke-cifar", "CPU smoke run of the cifar10-rho and cifar10-remedy machinery (not "
            "the experiment): airbench CNN, CIFAR-10 JPEG copy, 512-image subset, 1 epoch + 1 "
            "constant-LR epoch, end-of-training probe.",
            _seed_major(grid(smoke, rhos=(0.1, 2.0), seeds=(0, 1), methods=("sgd", "sam"))
                        + grid(smoke, rhos=(2.0,), seeds=(0,), methods=("switch", "rho-decay"),
                               switch_fracs=(0.1, 0.3)))),
        "cifar10-rho": lambda: Sweep(
            "cifar10-rho", "SAM vs SGD over rho: airbench CNN on the CIFAR-10 JPEG copy, "
            "pilot settings (16 epochs, batch 512, Nesterov 0.9, one-cycle peak 0.2, wd 5e-4, "
            "bf16), then 1 epoch at LR 0.01 and the end-of-training probe.",
            grid(probed, rhos=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), seeds=(0, 1, 2))),
        "cifar10-resnet18": lambda: Sweep(
            "cifar10-resnet18", "ResNet-18 on the CIFAR-10 JPEG copy, short budget (10 epochs).",
            _seed_major(grid(rn18, rhos=(0.05, 0.2, 1.0), seeds=(0, 1), methods=("sgd", "sam"))
                        + grid(rn18, rhos=(1.0,), seeds=(0, 1), methods=("switch",),
                               switch_fracs=(0.1,)))),
        "cifar10-remedy": lambda: Sweep(
            "cifar10-remedy", "SGD warm-start before SAM: switch fraction x rho, with SAM, SGD "
            "and rho-decay baselines (airbench, CIFAR-10 JPEG copy, pilot settings + probe).",
            _seed_major(grid(probed, rhos=(0.2, 0.5, 1.0, 2.0), seeds=(0, 1, 2),
                             methods=("sgd", "sam", "switch", "rho-decay"),
                             switch_fracs=(0.05, 0.1, 0.2, 0.3)))),
        # The CPU-scale tier (issue 18): both chapters' grids at a size the 2-core machine runs
        # in under an hour. Its SGD and SAM runs at rho 0.5, 1, 2 are in both sweeps with the
        # same configs (same run ids): computed once, reused by the other sweep.
        "cifar10-cpu-rho": lambda: Sweep(
            "cifar10-cpu-rho", f"CPU scale: {CPU_TIER_TEXT}; SGD and SAM over rho, 2 seeds.",
            grid(cpu, rhos=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), seeds=(0, 1))),
        "cifar10-cpu-remedy": lambda: Sweep(
            "cifar10-cpu-remedy", f"CPU scale: {CPU_TIER_TEXT}; SGD, SAM, SGD-then-SAM at 10% "
            "and 30%, and rho-decay at rho 0.5, 1, 2, 2 seeds.",
            _seed_major(grid(cpu, rhos=(0.5, 1.0, 2.0), seeds=(0, 1),
                             methods=("sgd", "sam", "switch", "rho-decay"),
                             switch_fracs=(0.1, 0.3)))),
        # The probe's power check: at 16 batches the tier's gradients sit within noise, so
        # SGD and SAM at rho 1 and 2 again (identical training), probed on all 78 whole
        # batches of the subset; 16 -> 78 batches shrinks the noise floors ~2.2x.
        "cifar10-cpu-probe": lambda: Sweep(
            "cifar10-cpu-probe", f"CPU scale: {CPU_TIER_TEXT}; SGD and SAM at rho 1 and 2 "
            "with the probe on 78 batches (9,984 images) instead of 16, 2 seeds.",
            grid(cpu.replace(probe_batches=78), rhos=(1.0, 2.0), seeds=(0, 1))),
        # Issue 23's calibration: which CPU recipe makes SAM beat SGD (paired over 3 seeds).
        "cifar10-cpu-calib": lambda: Sweep(
            "cifar10-cpu-calib", "Recipe calibration for the CPU study: airbench w16, no "
            "augmentation; 5k x 40 epochs, 5k x 25, 2.5k x 60; SGD and SAM rho 0.1, seeds "
            "100-102.", calibration_runs()),
        # Issue 23's study on the calibrated recipe; runs keep their weights (--save-models)
        # for the stall test (runs/stalltest.py) and the annealed control (runs/control.py).
        "cifar10-cpu-study": lambda: Sweep(
            "cifar10-cpu-study", f"CPU study: {STUDY_TEXT}; SGD and SAM over rho, 3 fresh "
            "seeds.", grid(cpu_study_base(), rhos=STUDY_RHOS, seeds=STUDY_SEEDS)),
        "cifar10-cpu-study-noise": lambda: Sweep(
            "cifar10-cpu-study-noise", f"CPU study, 20% of training labels flipped: "
            f"{STUDY_TEXT}; SGD and SAM at rho 0.05 and 1, 3 seeds.",
            grid(cpu_study_base().replace(label_noise=0.2), rhos=(0.05, 1.0), seeds=STUDY_SEEDS)),
        # ASAM (adaptive=True) at radii whose perturbation matches SAM's at 0.05 and 1: at the
        # study's SGD end point (seed 10) ||e_ASAM(rho)|| = 1.23 rho (8 batches, 1.15-1.51).
        "cifar10-cpu-study-asam": lambda: Sweep(
            "cifar10-cpu-study-asam", f"CPU study: {STUDY_TEXT}; ASAM at rho 0.04 and 0.8 (the "
            "perturbation sizes of SAM at 0.05 and 1), 3 seeds.",
            grid(study.replace(adaptive=True), rhos=(0.04, 0.8), seeds=STUDY_SEEDS,
                 methods=("sam",))),
        # Issue 24 on the same recipe and seeds: each remedy against constant SAM at its own
        # mean radius (0.7 rho for a 30% warm start, rho/2 for the linear decay), and when to
        # switch. Runs equal to the study's (same config) are reused, not recomputed.
        "cifar10-cpu-dose": lambda: Sweep(
            "cifar10-cpu-dose", f"CPU study recipe ({STUDY_TEXT}): SGD-then-SAM at 30%, "
            "linear rho decay, and constant SAM at 0.7 rho and rho/2, for rho 0.5, 1, 2; 3 seeds.",
            _seed_major(grid(study, rhos=(0.5, 1.0, 2.0), seeds=STUDY_SEEDS,
                             methods=("switch", "rho-decay"), switch_fracs=(0.3,))
                        + grid(study, rhos=(0.25, 0.35, 0.7, 1.4), seeds=STUDY_SEEDS,
                               methods=("sam",)))),
        "cifar10-cpu-switch": lambda: Sweep(
            "cifar10-cpu-switch", f"CPU study recipe ({STUDY_TEXT}): SGD for a fraction q of the "
            "steps, then SAM, at rho 1 for q in 5-70%, and at rho 0.05, 0.1 for q = 30%; 3 seeds.",
            _seed_major(grid(study, rhos=(1.0,), seeds=STUDY_SEEDS, methods=("switch",),
                             switch_fracs=(0.05, 0.1, 0.2, 0.5, 0.7))
                        + grid(study, rhos=(0.05, 0.1), seeds=STUDY_SEEDS, methods=("switch",),
                               switch_fracs=(0.3,)))),
        "cifar10-cpu-rule": lambda: Sweep(
            "cifar10-cpu-rule", f"CPU study recipe ({STUDY_TEXT}): SGD until SAM's measured "
            "first-order progress reaches half of SGD's (optim/switch_rule.py), then SAM; rho "
            "0.5, 1, 2; 3 seeds.", grid(study, rhos=(0.5, 1.0, 2.0), seeds=STUDY_SEEDS,
                                        methods=("switch-signal",))),
        "cifar100-resnet18-paper": lambda: Sweep(
            "cifar100-resnet18-paper", "ResNet-18 on CIFAR-100, 200 epochs, batch 128, cosine "
            "LR 0.1, wd 5e-4 (standard SAM settings; the paper's exact ones are not known). "
            "Needs the official archive and a GPU.",
            grid(RunConfig(dataset="cifar100", model="resnet18", epochs=200, batch_size=128,
                           lr=0.1, lr_schedule="cosine", warmup_frac=0.0, probe=True,
                           final_constant_lr_epochs=1),
                 rhos=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), seeds=(0, 1, 2),
                 methods=("sgd", "sam", "switch"), switch_fracs=(0.1,))),
    }


SWEEPS = _sweeps()


def get_sweep(name_or_sweep: str | Sweep) -> Sweep:
    if isinstance(name_or_sweep, Sweep):
        return name_or_sweep
    if name_or_sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {name_or_sweep!r}; valid: {', '.join(SWEEPS)}")
    return SWEEPS[name_or_sweep]()


def load_results(sweep: str | Sweep, results_dir: str | os.PathLike = "results"
                 ) -> list[dict[str, Any]]:
    """All readable result records of a sweep, in the sweep's run order when known."""
    name = sweep.name if isinstance(sweep, Sweep) else sweep
    known = isinstance(sweep, Sweep) or name in SWEEPS
    # records are checked against the sweep's configs; refused files are named in a warning
    return served_records(Path(results_dir) / name, get_sweep(sweep).runs if known else None,
                          name)


def estimate_seconds(config: RunConfig, device: str, finished: list[dict[str, Any]]) -> float:
    """Estimated run time: from finished runs of the same model/method/device, else the table."""
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    n = config.train_size()
    epochs = config.epochs + config.final_constant_lr_epochs
    work = n * epochs
    uses_sam = get_method(config.method, "network").sam
    sam_factor = 2.0 if uses_sam else 1.0
    same = [r for r in finished if r["config"]["model"] == config.model
            and r["config"]["method"] == config.method
            and r["provenance"]["device"].split(":")[0] == kind and r["status"] == "ok"]
    if same:
        rates = [r["wall_time_s"] / (r["n_train"] * len(r["epochs"])) for r in same]
        return work * sum(rates) / len(rates)
    if config.probe:  # diagnostics (~4 passes a batch) + SGD, SAM and control continuations
        steps = config.probe_steps or config.probe_epochs * (n // config.batch_size)
        work += config.batch_size * (config.probe_batches * 2 + steps
                                     * (1 + (3 if uses_sam else 0)) / sam_factor)
    per_epoch = EPOCH_COST_S.get((config.model, kind), 10.0)
    return per_epoch * sam_factor * work / 50_000


def run_sweep(name_or_sweep: str | Sweep, data_root: str | os.PathLike | None = None,
              device: str = "auto", results_dir: str | os.PathLike = "results",
              max_runs: int | None = None, time_budget: float | None = None,
              dry_run: bool = False, progress: bool = True,
              datasets: dict[str, ImageDataset] | None = None,
              save_models: bool = False, seeds: Iterable[int] | None = None,
              backend: str = "serial", address: str | None = None,
              gpus_per_run: float = 0.0, cpus_per_run: float = 1.0, jobs: int | None = None,
              threads: int | None = None,
              on_result: Callable[[Path, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the unfinished runs of a sweep, in order; return counts and the runs done now.

    A result file that exists and parses is finished (diverged runs included) and is
    skipped; one this code cannot read is kept aside and its run refused (:mod:`.keep`).
    ``max_runs`` caps the runs started in this call; ``time_budget`` (seconds) stops before
    a run whose estimated time would overrun it. ``datasets`` maps registry names to
    already-loaded data sets (otherwise they are loaded once, from ``data_root``).
    ``save_models=True`` also writes the final weights to ``<run_id>.pt`` (a state_dict).
    ``seeds`` restricts this call to the runs with those training seeds (counts too).
    ``backend="ray"`` runs each run as a Ray task (see :mod:`.ray_backend`; ``address``,
    ``gpus_per_run``, ``cpus_per_run``); "serial" (default) runs them here, ``jobs`` at a
    time as local processes (:mod:`.execute`; default 1: here; the CLI's default is one per
    core on a CPU, each with ``threads`` torch threads, default 1). ``on_result(path, record)`` is called
    after each result file is written (local backend).
    """
    if backend not in ("serial", "ray"):
        raise ValueError(f"backend must be 'serial' or 'ray', got {backend!r}")
    sweep = get_sweep(name_or_sweep)
    if seeds is not None:
        seeds = list(seeds)
        if not seeds or not all(is_int(x) and x >= 0 for x in seeds):
            raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
        if outside := sorted(set(seeds) - {c.seed for c in sweep.runs}):
            raise ValueError(f"seeds {outside} are not in sweep {sweep.name!r} (its seeds: "
                             f"{sorted({c.seed for c in sweep.runs})}); pass seeds it has")
        sweep = Sweep(sweep.name, sweep.description, [c for c in sweep.runs if c.seed in seeds])
    if max_runs is not None and (not is_int(max_runs) or max_runs < 0):
        raise ValueError(f"max_runs must be an int >= 0, got {max_runs!r}")
    if time_budget is not None and not (time_budget > 0):
        raise ValueError(f"time_budget must be > 0 seconds, got {time_budget!r}")
    for what, v in (("jobs", jobs), ("threads", threads)):
        if v is not None and (not is_int(v) or v < 1):
            raise ValueError(f"{what} must be an int >= 1, got {v!r}")
    if device in (None, "auto"):  # on Ray the workers' devices count, not this machine's
        device = "cuda" if (gpus_per_run if backend == "ray" else torch.cuda.is_available()) else "cpu"
    jobs = jobs or 1
    folder = Path(results_dir) / sweep.name
    done = finished_records(folder, sweep.runs, sweep.name) if folder.is_dir() else {
        c.run_id(): None for c in sweep.runs}  # checked: id, config, schema
    finished = [r for r in done.values() if r]
    refused = [rid for rid, r in done.items() if r is False]
    todo = [c for c in sweep.runs if done[c.run_id()] is None]
    shared = shared_records(Path(results_dir), sweep.name, todo)
    if shared:  # identical finished runs of another sweep: copied, not recomputed
        print(f"[{sweep.name}] {len(shared)} run(s) reused from other sweeps' results"
              + (" (dry run: not copied)" if dry_run else ""))
        if not dry_run:
            check_writable(folder)
            write_shared(folder, shared)
        finished += list(shared.values())
        todo = [c for c in todo if c.run_id() not in shared]
    n_div = sum(r["status"] == "diverged" for r in finished)
    print(f"[{sweep.name}] {len(sweep.runs)} runs: {len(finished)} done "
          f"({n_div} diverged), {len(todo)} left" + (f", {len(refused)} refused" if refused
                                                      else "") + f"; device {device}")
    calibration = load_calibration(results_dir)

    def estimate(c: RunConfig) -> float:
        return group_seconds([c], device, calibration)

    if dry_run:
        total = 0.0
        for c in todo:
            total += estimate(c)
            print(f"  ~{estimate(c):8.1f} s: {c.run_id()}")
        print(f"[{sweep.name}] estimated {total:.0f} s for {len(todo)} runs one at a time "
              f"on {device}; {calibration_note(device, calibration)}")
        return {"done": len(finished), "left": len(todo), "diverged": n_div, "ran": [],
                "estimate_s": total, "refused": refused}
    datasets = dict(datasets or {})
    for c in todo:  # before any training: a folder in the way, read-only disk, no rights
        check_result_path(folder / f"{c.run_id()}.json")
    check_writable(folder)
    clean_stale_tmp(folder)
    if backend == "ray":
        from .ray_backend import run_on_ray
        return run_on_ray(sweep.name, todo[:max_runs], finished, folder, execute_run, store_result,
                          data_root=data_root, device=device, datasets=datasets,
                          save_models=save_models, progress=progress, address=address,
                          gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
                          time_budget=time_budget)
    t0 = time.perf_counter()
    new, _ = run_local(sweep.name, todo, folder, device=device, data_root=data_root,
                       datasets=datasets, save_models=save_models, progress=progress,
                       jobs=jobs, threads=threads, estimate=estimate, time_budget=time_budget,
                       max_runs=max_runs, on_result=on_result)
    finished += new
    n_div += sum(r["status"] == "diverged" for r in new)
    ran = [r["run_id"] for r in new]
    left = len(todo) - len(ran)
    print(f"[{sweep.name}] done {len(finished)}, left {left}, diverged {n_div} "
          f"({len(ran)} run now in {time.perf_counter() - t0:.0f} s, {jobs} at a time)")
    return {"done": len(finished), "left": left, "diverged": n_div, "ran": ran,
            "refused": refused}
