"""The sweep CLI::

    python -m sam_hallucination.runs --list
    python -m sam_hallucination.runs cifar10-rho --device cuda --data PATH \\
        [--results DIR] [--max-runs N] [--time-budget S] [--seeds 0,1] [--batch K] [--dry-run]
        [--backend ray [--address auto] [--gpus-per-run 0.5] [--cpus-per-run 2]]
    python -m sam_hallucination.runs cifar10-rho cifar10-remedy --seeds 0 \\
        --device cuda --dry-run          # one plan over several sweeps (shared runs once)
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..data import DataIntegrityError
from .sweeps import SWEEPS, Sweep, get_sweep, run_sweep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sam_hallucination.runs",
                                description="Run (a slice of) a named sweep; resumes.")
    p.add_argument("sweep", nargs="*", help="sweep name (see --list); several with --dry-run")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    p.add_argument("--data", default=None, help="folder (or .npz) with the data files")
    p.add_argument("--results", default="results", help="results folder (default results/)")
    p.add_argument("--max-runs", type=int, default=None, help="start at most N runs")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds; do not start a run that would overrun it")
    p.add_argument("--dry-run", action="store_true", help="list the runs left and estimates")
    p.add_argument("--list", action="store_true", help="list the sweeps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--save-models", action="store_true",
                   help="also save each run's final weights as <run_id>.pt")
    p.add_argument("--batch", type=int, default=None,
                   help="train up to K compatible runs at once (default 8 on CUDA, 1 on CPU)")
    p.add_argument("--seeds", default=None,
                   help="comma-separated training seeds to run (default: all), e.g. 0 or 1,2")
    p.add_argument("--backend", choices=("serial", "ray"), default="serial",
                   help="serial (default: one run after another here) or ray (one Ray task a run)")
    p.add_argument("--address", default=None,
                   help="with --backend ray: a running cluster (auto, host:port); "
                        "default: start a local Ray instance")
    p.add_argument("--gpus-per-run", type=float, default=None,
                   help="with --backend ray: GPUs a run reserves, may be fractional (default 0; "
                        "> 0 makes --device auto mean cuda)")
    p.add_argument("--cpus-per-run", type=float, default=None,
                   help="with --backend ray: CPUs a run reserves, also its torch threads (default 1)")
    a = p.parse_args(argv)
    ray_only = [f for f, v in (("--address", a.address), ("--gpus-per-run", a.gpus_per_run),
                                ("--cpus-per-run", a.cpus_per_run)) if v is not None]
    if a.backend != "ray" and ray_only:
        p.error(f"{', '.join(ray_only)} only apply with --backend ray (or drop them)")
    if a.list or not a.sweep:
        for name, make in SWEEPS.items():
            s = make()
            print(f"{name:25s} {len(s):4d} runs  {s.description}")
        return 0
    unknown = [n for n in a.sweep if n not in SWEEPS]
    if unknown:
        p.error(f"unknown sweep {', '.join(map(repr, unknown))}; valid: {', '.join(SWEEPS)} "
                "(see --list)")
    if len(a.sweep) > 1 and not a.dry_run:
        p.error("several sweeps only with --dry-run (run them one by one)")
    if a.batch is not None and a.batch < 1:
        p.error(f"--batch must be >= 1, got {a.batch}")
    if a.threads is not None:
        if a.threads < 1:
            p.error(f"--threads must be >= 1, got {a.threads}")
        torch.set_num_threads(a.threads)
    if a.max_runs is not None and a.max_runs < 0:
        p.error(f"--max-runs must be >= 0, got {a.max_runs}")
    if a.time_budget is not None and not a.time_budget > 0:  # also refuses nan
        p.error(f"--time-budget must be > 0 seconds, got {a.time_budget}")
    try:
        seeds = None if a.seeds is None else [int(x) for x in a.seeds.split(",") if x.strip()]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {a.seeds!r}")
    if seeds is not None:
        have = sorted({c.seed for n in a.sweep for c in SWEEPS[n]().runs})
        outside = sorted(set(seeds) - set(have))
        if not seeds or outside:
            p.error(f"--seeds {a.seeds!r}: sweep {' + '.join(a.sweep)} has seeds {have}; "
                    f"{outside or 'none given'} would run nothing")
    total, seen, failed = 0.0, set(), False
    for name in a.sweep:  # a run shared by two sweeps (same config) is planned once
        sw = get_sweep(name)
        sw = Sweep(sw.name, sw.description, [c for c in sw.runs if c.run_id() not in seen])
        seen |= {c.run_id() for c in sw.runs}
        try:
            out = run_sweep(sw, data_root=a.data, device=a.device, results_dir=a.results,
                            max_runs=a.max_runs, time_budget=a.time_budget,
                            dry_run=a.dry_run, progress=not a.no_progress,
                            save_models=a.save_models, seeds=seeds, batch=a.batch,
                            backend=a.backend, address=a.address,
                            gpus_per_run=a.gpus_per_run or 0.0,
                            cpus_per_run=a.cpus_per_run or 1.0)
        except (FileNotFoundError, PermissionError, DataIntegrityError) as e:
            # missing or corrupt data, unwritable results: the message says what to do
            print(f"{p.prog}: error: {e}", file=sys.stderr)
            return 2
        total += out.get("estimate_s", 0.0)
        failed |= bool(out.get("failed"))
    if len(a.sweep) > 1:
        print(f"[{' + '.join(a.sweep)}] estimated {total:.0f} s in all")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
