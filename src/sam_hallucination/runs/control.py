"""The annealed control: an SGD run whose own (compressed) schedule ends at SAM's loss.

"SGD still lowers the loss from SAM's end point" means little unless an SGD end point at the
same loss, reached the same way (a one-cycle schedule annealed to 0), would not be lowered as
much. :func:`matched_control` searches for such a run: first a ladder of schedule lengths
(``LADDER_EPOCHS``; the longest is the study's own SGD run), then, if no rung lands within
``TOLERANCE`` of the target loss, a bisection on the peak rate at the shortest rung that ends
below it (a lower peak ends higher). Every candidate is an ordinary run (config, record and
weights in ``results/<sweep>-control/``), so any process, or a later slice, finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data import ImageDataset
from .config import RunConfig
from .loop import build_model, prepare_data, train
from .probe import fixed_batches
from .stalltest import STALL_SCHEMA, end_rho, objective, read_stall, stall_test
from .store import (
    git_info,
    json_safe,
    read_result,
    result_record,
    run_lock,
    write_json_atomic,
)

LADDER_EPOCHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 40)
TOLERANCE = 0.03
BISECTIONS = 5


def end_loss(config: RunConfig, state: dict[str, torch.Tensor], dataset: ImageDataset) -> float:
    """Mean training loss over the stall test's batches (train-mode BN), at saved weights."""
    ds = prepare_data(config, dataset)
    model = build_model(config, ds).to(memory_format=torch.channels_last)
    model.load_state_dict(state)
    batches = fixed_batches(ds, len(ds.y_train), config.batch_size, torch.device("cpu"),
                            seed=config.subset_seed)
    return objective(model, batches, 0.0)


def candidate(base: RunConfig, epochs: int, lr: float | None = None) -> RunConfig:
    """The SGD control candidate: the study recipe, compressed to ``epochs`` (and a peak).

    The full-length candidate at the base peak is the study's own SGD run (same run id).
    """
    sgd = base.replace(method="sgd", rho=0.0, switch_frac=0.0, adaptive=False)
    if epochs == base.epochs and lr in (None, base.lr):
        return sgd
    return sgd.replace(epochs=epochs, lr=base.lr if lr is None else lr, eval_every=epochs)


def trained(c: RunConfig, folder: Path, dataset: ImageDataset, sweep: str,
            grid_folder: Path | None = None) -> tuple[dict[str, torch.Tensor], float]:
    """A candidate's weights and end loss: from ``grid_folder`` or ``folder`` when there,
    else trained now (into ``folder``)."""
    rid = c.run_id()
    if grid_folder is not None and (grid_folder / f"{rid}.pt").is_file():
        folder = grid_folder
    pt, js = folder / f"{rid}.pt", folder / f"{rid}.json"
    rec = read_result(js)
    if rec is None or not pt.is_file():
        with run_lock(folder, rid):
            out = train(c, dataset, device="cpu", progress=False)
            state = {k: v.detach().cpu() for k, v in out["model"].state_dict().items()}
            rec = result_record(c, out, sweep, "cpu")
            rec["end_loss"] = end_loss(c, state, dataset)
            torch.save(state, pt)
            write_json_atomic(js, rec)
    state = torch.load(pt, map_location="cpu", weights_only=True)
    if "end_loss" not in rec:
        rec["end_loss"] = end_loss(c, state, dataset)
        write_json_atomic(js, rec)
    return state, float(rec["end_loss"])


def matched_control(base: RunConfig, target: float, dataset: ImageDataset, folder: Path,
                    sweep: str, grid_folder: Path | None = None,
                    log: Callable[[str], None] = print
                    ) -> tuple[RunConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """The candidate whose end loss is closest to ``target`` (within TOLERANCE if it can)."""
    folder.mkdir(parents=True, exist_ok=True)
    tried: list[dict[str, Any]] = []

    def attempt(c: RunConfig) -> tuple[dict[str, torch.Tensor], float]:
        state, loss = trained(c, folder, dataset, sweep, grid_folder)
        tried.append({"run_id": c.run_id(), "epochs": c.epochs, "lr": c.lr, "end_loss": loss,
                      "gap": loss - target})
        log(f"    control candidate {c.epochs} epochs, peak {c.lr:.4g}: loss {loss:.4f} "
            f"(target {target:.4f})")
        return state, loss

    best: tuple[float, RunConfig, dict[str, torch.Tensor]] | None = None
    below = None
    for e in LADDER_EPOCHS:
        c = candidate(base, e)
        state, loss = attempt(c)
        if best is None or abs(loss - target) < best[0]:
            best = (abs(loss - target), c, state)
        if loss <= target:
            below = c
            break  # longer schedules end lower still
    if best[0] > TOLERANCE and below is not None:
        lo, hi = 0.0, below.lr  # peak rate: at hi the loss ends below the target
        for _ in range(BISECTIONS):
            mid = 0.5 * (lo + hi)
            c = candidate(base, below.epochs, mid)
            state, loss = attempt(c)
            if abs(loss - target) < best[0]:
                best = (abs(loss - target), c, state)
            if best[0] <= TOLERANCE:
                break
            if loss > target:
                lo = mid  # ended too high: a larger peak
            else:
                hi = mid
    gap, c, state = best
    chosen = next(t for t in tried if t["run_id"] == c.run_id())
    return c, state, {"control_run_id": c.run_id(), "control_epochs": c.epochs,
                      "control_lr": c.lr, "target_loss": target,
                      "control_loss": chosen["end_loss"], "gap": chosen["gap"],
                      "within_tolerance": gap <= TOLERANCE, "tolerance": TOLERANCE,
                      "tried": tried}


def run_controls(sweep: str, configs: list[RunConfig], dataset: ImageDataset,
                 results_dir: str | Path = "results", min_rho: float = 0.5) -> list[str]:
    """The annealed control of every stall-tested SAM run with ρ >= ``min_rho``.

    Writes ``<results>/<sweep>-stall/control_<run_id>.json``: the match (losses, gap, every
    candidate tried) and the control's stall test at the SAM run's ρ.
    """
    root = Path(results_dir)
    stall, grid = root / f"{sweep}-stall", root / sweep
    done = []
    for c in configs:
        rid, r = c.run_id(), end_rho(c)
        rec, out = read_stall(stall / f"{rid}.json"), stall / f"control_{rid}.json"
        if r < min_rho or rec is None or out.exists():
            continue
        with run_lock(stall, f"control_{rid}") as mine:
            if not mine or out.exists():  # another worker has it
                continue
            cc, state, match = matched_control(c, rec["result"]["loss"], dataset,
                                               root / f"{sweep}-control", f"{sweep}-control", grid)
            res = stall_test(cc, state, dataset, rho=r)
            write_json_atomic(out, json_safe({
                "stall_schema": STALL_SCHEMA, "run_id": rid, "sweep": sweep, "control": match,
                "control_config": cc.__dict__,
                "provenance": {**git_info(), "torch": torch.__version__}, "result": res}))
        done.append(rid)
        print(f"  control of {rid}: {match['control_run_id']} gap {match['gap']:+.4f}; "
              f"SAM/SGD drop {res['sam_over_sgd_drop']:.3f}", flush=True)
    return done
