"""The end-of-training probe: stall diagnostics, SGD continuation and its matched-loss control.

End-of-training probe (``config.probe=True``): after the last epoch, at the final weights,
:func:`end_of_training_probe` measures on ``config.probe_batches`` fixed, un-augmented
training batches (a seeded choice, the same for every method and seed of a sweep)

* :func:`~sam_hallucination.diagnostics.stall_diagnostics` at the radius the optimiser
  uses at the end (ρ for SAM and the switch, 0 for SGD and decayed ρ): ‖∇f + λw‖, the
  expected SAM step ‖E_B ∇f_B(w + ρu_B) + λw‖, their ratio and noise floors, in fp32
  and train mode (batch statistics, as the SAM step sees them; running statistics frozen);
* ``rho_over_weight_norm``: the run's ρ over ‖w‖ at the end (0 for SGD), and
  ``final_rho_over_weight_norm`` with the radius the optimiser ends at;
* the SGD-continuation test: plain SGD (the run's momentum, Nesterov and weight decay, a
  fresh momentum buffer) at the constant rate ``config.final_lr`` on a *copy* of the model,
  with the run's augmented batches, for ``config.probe_epochs`` whole epochs (or
  ``config.probe_steps`` steps when that is set, e.g. in tests); the fixed-batch loss, the
  regularised objective ``loss + λ/2‖w‖²`` and the test accuracy before and after. SAM runs
  also get the same number of SAM steps from the same weights on the same batches
  (``sam_continuation``): if SAM has stalled at a non-stationary point, SGD lowers the loss
  and SAM does not;
* the matched-loss control (``sgd_control``, every run with ρ > 0 in its config): "SGD
  lowers the loss from the SAM end point" means little unless SGD would not lower it as
  much anyway at that loss. So the plain-SGD run of the same recipe and seed (the config
  with ``method="sgd"``, which sweeps put first) keeps a snapshot of its weights and
  BatchNorm buffers at the start and after every epoch, and its probe measures each
  snapshot's fixed-batch loss (``sgd_ladder``; kept in memory and in
  ``<cache>/snapshots/<sgd run id>.pt``, git-ignored, so a later process on the same machine
  finds it). The SAM run's probe picks the snapshot whose loss is closest to its own end
  loss and continues it with exactly the SGD continuation above (same batches, steps, rate).
  The record names the snapshot (``sgd_run_id``, ``epoch``), its loss and the gap
  ``snapshot_loss - loss``; ``excess_drop`` = SGD's drop from the SAM end point minus the
  control's drop. Without the SGD run's snapshots ``sgd_control`` says so (``status:
  "missing"``) instead of guessing.

The probe never touches the returned model or the recorded epochs and final metrics; its
result is ``out["probe"]`` (None when off or when the run diverged).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DeviceLoader, ImageDataset, resolve_cache_dir
from ..diagnostics import stall_diagnostics
from ..optim import frozen_bn_stats
from .step import build_optimizer, evaluate, train_step, trainable_weight_norm

PROBE_BOOTSTRAP = 100  # batch-bootstrap resamples for the probe's noise floors
PROBE_SEED_OFFSET = 10_007  # the probe's batch choice and continuation batches (fixed per sweep)
Snapshot = tuple[int, dict[str, torch.Tensor]]  # (epoch, state_dict on the CPU); epoch 0: init
_LADDERS: OrderedDict[str, dict[str, Any]] = OrderedDict()  # the last few, by SGD run id
_KEEP = 4


def sgd_run_id(config: Any) -> str:
    """The run id of the plain-SGD run with the same recipe and seed (the control's source)."""
    return config.replace(method="sgd", rho=0.0, switch_frac=0.0).run_id()


def snapshot_path(run_id: str) -> Path:
    return resolve_cache_dir() / "snapshots" / f"{run_id}.pt"


def take_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights and buffers (one device-to-host copy, once an epoch)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_ladder(run_id: str, ladder: dict[str, Any]) -> None:
    """Keep an SGD run's snapshots and their losses in memory and on disk (atomic)."""
    _LADDERS[run_id] = ladder
    _LADDERS.move_to_end(run_id)
    while len(_LADDERS) > _KEEP:
        _LADDERS.popitem(last=False)
    path = snapshot_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{run_id}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ladder, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_ladder(run_id: str) -> dict[str, Any] | None:
    """An SGD run's snapshot ladder: from memory, else from disk, else None."""
    if run_id in _LADDERS:
        return _LADDERS[run_id]
    try:
        ladder = torch.load(snapshot_path(run_id), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    _LADDERS[run_id] = ladder
    return ladder


def fixed_batches(ds: ImageDataset, n_batches: int, batch_size: int, device: torch.device,
                  seed: int, channels_last: bool = True, dtype: torch.dtype = torch.float32
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n_batches`` un-augmented training batches of ``batch_size`` (a seeded choice).

    Capped at the number of whole batches the training set holds (at least one).
    """
    n = max(1, min(n_batches, len(ds.y_train) // batch_size))
    idx = torch.randperm(len(ds.y_train), generator=torch.Generator().manual_seed(seed))
    idx = idx[: n * batch_size].numpy()
    loader = DeviceLoader(ds.x_train[idx], ds.y_train[idx], batch_size, mean=ds.mean, std=ds.std,
                          device=device, train=False, dtype=dtype, channels_last=channels_last)
    return list(loader)


@torch.no_grad()
def batch_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
               train_mode: bool = True) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``batches``; the model is left as it was.

    ``train_mode=True`` normalises with batch statistics (as a training step sees the
    loss) with BatchNorm running statistics frozen.
    """
    was = {m: m.training for m in model.modules()}
    model.train(train_mode)
    dev = batches[0][0].device
    loss = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    n = 0
    try:
        with frozen_bn_stats(model):
            for xb, yb in batches:  # sums stay on the device: one sync at the end
                out = _fp32(model(xb))
                loss += F.cross_entropy(out, yb, reduction="sum").double()
                correct += (out.argmax(1) == yb).sum()
                n += len(yb)
    finally:
        for m, flag in was.items():
            m.training = flag
    return float(loss) / n, int(correct) / n


def _fp32(out: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: bf16/fp16 up to float32; float32 and float64 as they are."""
    return out if out.dtype == torch.float64 else out.float()


def _objective(loss: float, model: nn.Module, weight_decay: float) -> float:
    """Regularised training objective ``loss + λ/2 ‖w‖²`` (what SGD with coupled wd descends).

    ``w`` is the trainable parameters: weight decay acts on those only.
    """
    return loss + 0.5 * weight_decay * trainable_weight_norm(model) ** 2


def record_before(m: nn.Module, config: Any, steps: int, rho: float,
                  batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """A continuation's record before its steps (fixed-batch loss and objective at ``m``)."""
    loss0, acc0 = batch_loss(m, batches)
    return {"optimizer": "sam" if rho > 0 else "sgd", "rho": rho, "steps": steps,
            "lr": config.final_lr, "loss_before": loss0, "acc_before": acc0,
            "objective_before": _objective(loss0, m, config.weight_decay)}


def record_after(rec: dict[str, Any], m: nn.Module, config: Any,
                 batches: list[tuple[torch.Tensor, torch.Tensor]], test_loader: DeviceLoader,
                 autocast: Any) -> dict[str, Any]:
    """Complete ``rec`` at the continued weights ``m`` (status: all weights finite)."""
    ok = all(bool(torch.isfinite(p).all()) for p in m.parameters() if p.requires_grad)
    loss1, acc1 = batch_loss(m, batches) if ok else (math.nan, math.nan)
    rec.update(status="ok" if ok else "diverged", loss_after=loss1, acc_after=acc1,
               objective_after=_objective(loss1, m, config.weight_decay),
               test_acc_after=evaluate(m, test_loader, autocast)[1] if ok else None)
    rec["loss_drop"] = rec["loss_before"] - loss1
    rec["objective_drop"] = rec["objective_before"] - rec["objective_after"]
    return rec


def _continue(model: nn.Module, config: Any, loader: DeviceLoader, steps: int, rho: float,
              batches: list[tuple[torch.Tensor, torch.Tensor]], test_loader: DeviceLoader,
              autocast: Any) -> dict[str, Any]:
    """``steps`` SGD (rho = 0) or SAM steps at ``config.final_lr`` on a copy of ``model``."""
    m = copy.deepcopy(model)
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = build_optimizer(config, m, steps, lr=config.final_lr, rho=rho,
                          method="sam" if rho > 0 else "sgd")
    rec = record_before(m, config, steps, rho, batches)

    def criterion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_fp32(out), y, label_smoothing=config.label_smoothing)

    done = 0
    while done < steps:
        for xb, yb in loader:
            if done >= steps:
                break
            train_step(m, opt, xb, yb, criterion, autocast)
            done += 1
        if not all(bool(torch.isfinite(p).all()) for p in params):
            break  # diverged
    return record_after(rec, m, config, batches, test_loader, autocast)


def continuation_steps(config: Any, ds: ImageDataset) -> int:
    """Steps of each continuation: ``probe_steps`` when set, else ``probe_epochs`` epochs."""
    return config.probe_steps or config.probe_epochs * (len(ds.y_train) // config.batch_size)


Job = tuple[str, nn.Module, float]  # (record key, start weights, radius: 0 for SGD)


def end_of_training_probe(model: nn.Module, config: Any, ds: ImageDataset, device: torch.device,
                          rho: float, test_loader: DeviceLoader, augment: bool,
                          autocast: Any = contextlib.nullcontext,
                          snapshots: list[Snapshot] | None = None) -> dict[str, Any]:
    """Stall diagnostics, continuations and the matched-loss control (see module doc).

    ``rho`` is the radius the optimiser uses at the end of training (0 for SGD).
    ``snapshots`` (plain-SGD runs): the run's (epoch, state) snapshots; their losses are
    measured and saved for the control of the SAM runs of the same recipe and seed. The
    model is left bit-identical (the diagnostics restore it; continuations use copies).
    The continuations run one by one.
    """
    t0 = time.perf_counter()
    out, jobs, ctx = probe_plan(model, config, ds, device, rho, snapshots)
    loader = lambda: continuation_loader(config, ds, device, augment, ctx["dtype"])  # noqa: E731
    recs = {key: _continue(m, config, loader(), ctx["steps"], r, ctx["batches"], test_loader,
                           autocast) for key, m, r in jobs}
    return probe_finish(out, recs, time.perf_counter() - t0)


def continuation_loader(config: Any, ds: ImageDataset, device: torch.device, augment: bool,
                        dtype: torch.dtype = torch.float32) -> DeviceLoader:
    """The continuations' batches: the run's augmentation, one seeded order for all of them."""
    return DeviceLoader(ds.x_train, ds.y_train, config.batch_size, mean=ds.mean, std=ds.std,
                        device=device, train=True, pad=2 if augment else 0, flip=augment,
                        seed=config.seed + PROBE_SEED_OFFSET, dtype=dtype,
                        channels_last=config.model != "mlp")


def probe_plan(model: nn.Module, config: Any, ds: ImageDataset, device: torch.device, rho: float,
               snapshots: list[Snapshot] | None = None
               ) -> tuple[dict[str, Any], list[Job], dict[str, Any]]:
    """Everything but the continuations: the record so far, the continuations to run, context.

    Measures the stall diagnostics and ρ/‖w‖, keeps an SGD run's snapshot ladder, and picks
    the control's snapshot. Jobs: ``sgd_continuation`` (and ``sam_continuation`` when
    ``rho > 0``) from ``model``, ``sgd_control`` from the matched SGD snapshot.
    """
    conv = config.model != "mlp"
    dtype = next(model.parameters()).dtype
    seed = config.subset_seed + PROBE_SEED_OFFSET
    batches = fixed_batches(ds, config.probe_batches, config.batch_size, device, seed, conv, dtype)
    boot = PROBE_BOOTSTRAP if len(batches) > 1 else 0
    steps = continuation_steps(config, ds)

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_fp32(out), y)

    diag = stall_diagnostics(model, loss_fn, batches, rho=rho, weight_decay=config.weight_decay,
                             adaptive=config.adaptive, bootstrap=boot, seed=seed, train_mode=True)
    w = trainable_weight_norm(model)
    out: dict[str, Any] = {
        "rho": rho, "n_batches": len(batches), "batch_size": config.batch_size,
        "steps": steps, "lr": config.final_lr, "train_mode": True,
        "weight_norm": w, "rho_over_weight_norm": config.rho / w if w > 0 else None,
        "final_rho_over_weight_norm": rho / w if w > 0 else None,
        "stall": diag.as_dict(), "looks_stalled": diag.looks_stalled(z=3.0),
    }
    jobs: list[Job] = [("sgd_continuation", model, 0.0)]
    if rho > 0:
        jobs.append(("sam_continuation", model, rho))
    if snapshots is not None:  # the plain-SGD run: measure and keep its ladder
        losses = [batch_loss(_with_state(model, st), batches)[0] for _, st in snapshots]
        save_ladder(config.run_id(), {"run_id": config.run_id(),
                                      "epochs": [e for e, _ in snapshots], "losses": losses,
                                      "states": [st for _, st in snapshots]})
        out["sgd_ladder"] = [{"epoch": e, "loss": v} for (e, _), v in zip(snapshots, losses,
                                                                          strict=True)]
    out["sgd_control"] = None
    if config.rho > 0:
        rid = sgd_run_id(config)
        ladder = load_ladder(rid)
        if ladder is None or not ladder.get("losses"):
            out["sgd_control"] = {"status": "missing", "sgd_run_id": rid, "reason": "no "
                                  "snapshots of the SGD run in this process or the snapshot cache"}
        else:
            loss = batch_loss(model, batches)[0]  # = the continuations' loss_before
            i = min(range(len(ladder["losses"])), key=lambda j: abs(ladder["losses"][j] - loss))
            out["sgd_control"] = {"sgd_run_id": rid, "epoch": ladder["epochs"][i],
                                  "snapshot_loss": ladder["losses"][i],
                                  "loss_gap": ladder["losses"][i] - loss}
            jobs.append(("sgd_control", _with_state(model, ladder["states"][i]), 0.0))
    return out, jobs, {"batches": batches, "steps": steps, "dtype": dtype}


def probe_finish(out: dict[str, Any], recs: dict[str, dict[str, Any]], seconds: float
                 ) -> dict[str, Any]:
    """Put the continuation records into the probe record (see :func:`probe_plan`)."""
    sgd = out["sgd_continuation"] = recs["sgd_continuation"]
    out["sam_continuation"] = recs.get("sam_continuation")
    if "sgd_control" in recs:
        ctl = out["sgd_control"] = {**recs["sgd_control"], **out["sgd_control"]}
        ctl["excess_drop"] = (sgd["loss_drop"] - ctl["loss_drop"]
                              if ctl["status"] == "ok" and sgd["status"] == "ok" else None)
    out["time_s"] = seconds
    return out


def _with_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    m = copy.deepcopy(model)
    m.load_state_dict(state)
    return m


