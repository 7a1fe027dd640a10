"""The CLI of the study's end-point tests: the stall test and the annealed control.

    python -m sam_hallucination.runs.endpoints cifar10-cpu-study [--controls] [--max-runs N]

Needs the sweep's weights (run it with ``--save-models``); resumes, one file per run.
"""

from __future__ import annotations

import torch

from ..data import load_dataset
from .control import run_controls
from .stalltest import run_stall_tests
from .sweeps import SWEEPS, get_sweep


def main(argv: list[str] | None = None) -> int:
    """``python -m sam_hallucination.runs.endpoints SWEEP [--controls] [--max-runs N]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m sam_hallucination.runs.endpoints",
                                description="Stall-test a sweep's saved end points; resumes.")
    p.add_argument("sweep", choices=sorted(SWEEPS), metavar="SWEEP")
    p.add_argument("--results", default="results")
    p.add_argument("--data", default=None)
    p.add_argument("--max-runs", type=int, default=None)
    p.add_argument("--controls", action="store_true",
                   help="also the annealed SGD control of each SAM run with rho >= 0.5")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    sw = get_sweep(a.sweep)
    run_stall_tests(sw.name, sw.runs, a.results, a.data, a.max_runs)
    if a.controls:
        run_controls(sw.name, sw.runs, load_dataset(sw.runs[0].dataset, root=a.data), a.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
