"""The CLI of the study's end-point tests: the stall test, the annealed control, and the
upgrade of schema-1 stall records to the independent-partition step estimate.

    python -m sam_hallucination.runs.endpoints cifar10-cpu-study [--controls] [--upgrade]

Needs the sweep's weights (run it with ``--save-models``); resumes, one file per run.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from ..data import ImageDataset, load_dataset
from .config import RunConfig
from .control import end_loss, run_controls
from .loop import build_model, prepare_data, train
from .stalltest import STALL_SCHEMA, partition_estimate, read_stall, run_stall_tests
from .store import git_info, json_safe, parse_record, run_lock, write_json_atomic
from .sweeps import SWEEPS, get_sweep

REPLAY_TOL = 1e-9  # a retrained control must end at its recorded loss (training is bit-exact)


def upgrade(rec: dict[str, Any], config: RunConfig, state: dict[str, torch.Tensor],
            dataset: ImageDataset, device: str = "cpu") -> dict[str, Any]:
    """A schema-1 stall record brought to schema 2 at the same weights: the step estimate
    over independent partitions replaces the one-partition one (kept as ``batch_stats``),
    and the continuations' first-order predictions are recomputed from it. The
    continuations, the mechanism and the losses are the measured ones, unchanged."""
    if rec.get("stall_schema") != 1:
        raise ValueError(f"upgrade: stall_schema {rec.get('stall_schema')!r}, not 1")
    t0 = time.perf_counter()
    ds = prepare_data(config, dataset)
    torch.manual_seed(0)
    model = build_model(config, ds).to(torch.device(device), memory_format=torch.channels_last)
    model.load_state_dict(state)
    res = dict(rec["result"])
    est = partition_estimate(model, ds, config.batch_size, res["probe_rho"],
                             config.weight_decay, config.adaptive, device=torch.device(device))
    st = est["stats"]
    for key, rate in (("sgd_continuation", st["grad_sq"]["estimate"]),
                      ("sam_continuation", st["inner"]["estimate"])):
        c = dict(res[key])
        c["predicted_drop_one_partition"] = c["predicted_drop"]
        c["predicted_drop"] = c["lr"] / (1 - config.momentum) * c["steps"] * rate
        c["drop_over_predicted"] = (c["drop"] / c["predicted_drop"] if c["predicted_drop"] > 0
                                    else math.nan)
        res[key] = c
    res["batch_stats"], res["stats"] = res["stats"], st
    res["estimator"] = {k: est[k] for k in ("partitions", "batches_per_partition", "seed")}
    res["estimator"].update(upgraded_from_schema=1, wall_time_s=time.perf_counter() - t0,
                            provenance={**git_info(), "torch": torch.__version__})
    return {**rec, "stall_schema": STALL_SCHEMA, "result": res}


def _weights(rec: dict, path: Path, grid: Path, dataset: ImageDataset
             ) -> tuple[RunConfig, dict[str, torch.Tensor]]:
    """An end point's config and weights: the grid's ``.pt``, or a control retrained (its
    candidate runs keep no weights) and checked against the loss its record holds."""
    if "control" not in rec:
        c = RunConfig(**rec["config"])
        pt = grid / f"{rec['run_id']}.pt"
        if not pt.is_file():
            raise FileNotFoundError(f"{pt}: no weights; re-run the sweep with --save-models")
        return c, torch.load(pt, map_location="cpu", weights_only=True)
    c = RunConfig(**rec["control_config"])
    if (grid / f"{c.run_id()}.pt").is_file():  # the full-length control is the grid's SGD run
        return c, torch.load(grid / f"{c.run_id()}.pt", map_location="cpu", weights_only=True)
    state = {k: v.detach().cpu() for k, v in
             train(c, dataset, device="cpu", progress=False)["model"].state_dict().items()}
    got, want = end_loss(c, state, dataset), rec["control"]["control_loss"]
    if abs(got - want) > REPLAY_TOL:
        raise RuntimeError(f"{path.name}: the retrained control ends at loss {got!r}, its record "
                           f"at {want!r}; training is not reproducible here, so it is not "
                           f"upgraded (check the torch version and thread count)")
    return c, state


def upgrade_records(sweep: str, dataset: ImageDataset, results_dir: str | Path = "results",
                    log=print) -> list[str]:
    """Upgrade every schema-1 record in ``<results>/<sweep>-stall/`` in place (resumable,
    one lock per file); return the file names done now."""
    root = Path(results_dir)
    folder, grid, done = root / f"{sweep}-stall", root / sweep, []
    for path in sorted(folder.glob("*.json")):
        if read_stall(path) is not None:
            continue  # already schema 2
        with run_lock(folder, f"upgrade_{path.stem}") as mine:
            rec = parse_record(path.read_text())
            if not mine or rec.get("stall_schema") != 1:
                continue
            c, state = _weights(rec, path, grid, dataset)
            new = upgrade(rec, c, state, dataset)
            write_json_atomic(path, json_safe(new))
        done.append(path.name)
        s = new["result"]["stats"]
        log(f"  upgraded {path.name}: ratio {s['ratio']['estimate']:.3f} "
            f"[{s['ratio']['low']:.3f}, {s['ratio']['high']:.3f}], "
            f"{new['result']['estimator']['wall_time_s']:.0f} s")
    return done


def main(argv: list[str] | None = None) -> int:
    """``python -m sam_hallucination.runs.endpoints SWEEP [--controls] [--upgrade]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m sam_hallucination.runs.endpoints",
                                description="Stall-test a sweep's saved end points; resumes.")
    p.add_argument("sweep", choices=sorted(SWEEPS), metavar="SWEEP")
    p.add_argument("--results", default="results")
    p.add_argument("--data", default=None)
    p.add_argument("--max-runs", type=int, default=None)
    p.add_argument("--controls", action="store_true",
                   help="also the annealed SGD control of each SAM run with rho >= 0.5")
    p.add_argument("--upgrade", action="store_true",
                   help="first bring schema-1 stall records to the partition estimate")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    sw = get_sweep(a.sweep)
    if a.upgrade:
        upgrade_records(sw.name, load_dataset(sw.runs[0].dataset, root=a.data), a.results)
    run_stall_tests(sw.name, sw.runs, a.results, a.data, a.max_runs)
    if a.controls:
        run_controls(sw.name, sw.runs, load_dataset(sw.runs[0].dataset, root=a.data), a.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
