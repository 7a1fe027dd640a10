"""The end-of-training probe: stall diagnostics and the SGD-continuation test.

End-of-training probe (``config.probe=True``): after the last epoch, at the final weights,
:func:`end_of_training_probe` measures on ``config.probe_batches`` fixed, un-augmented
training batches (a seeded choice, the same for every method and seed of a sweep)

* :func:`~sam_hallucination.diagnostics.stall_diagnostics` at the radius the optimiser
  uses at the end (ρ for SAM and the switch, 0 for SGD and decayed ρ): ‖∇f + λw‖, the
  expected SAM step ‖E_B ∇f_B(w + ρu_B) + λw‖, their ratio and noise floors, in fp32
  and train mode (batch statistics, as the SAM step sees them; running statistics frozen);
* the SGD-continuation test: ``config.probe_steps`` plain SGD steps (the run's momentum,
  Nesterov and weight decay, a fresh momentum buffer) at the constant rate
  ``config.final_lr`` on a *copy* of the model, with the run's augmented batches;
  the fixed-batch loss, the regularised objective ``loss + λ/2‖w‖²`` and the test
  accuracy before and after. SAM runs also get the same number of SAM steps from the
  same weights on the same batches (``sam_continuation``), the control: if SAM has
  stalled at a non-stationary point, SGD lowers the loss and SAM does not.

The probe never touches the returned model or the recorded epochs and final metrics; its
result is ``out["probe"]`` (None when off or when the run diverged).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DeviceLoader, ImageDataset
from ..diagnostics import stall_diagnostics
from ..optim import frozen_bn_stats
from .step import build_optimizer, evaluate, train_step, trainable_weight_norm

PROBE_BOOTSTRAP = 100  # batch-bootstrap resamples for the probe's noise floors
PROBE_SEED_OFFSET = 10_007  # the probe's batch choice and continuation batches (fixed per sweep)


def fixed_batches(ds: ImageDataset, n_batches: int, batch_size: int, device: torch.device,
                  seed: int, channels_last: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n_batches`` un-augmented training batches of ``batch_size`` (a seeded choice).

    Capped at the number of whole batches the training set holds (at least one).
    """
    n = max(1, min(n_batches, len(ds.y_train) // batch_size))
    idx = torch.randperm(len(ds.y_train), generator=torch.Generator().manual_seed(seed))
    idx = idx[: n * batch_size].numpy()
    loader = DeviceLoader(ds.x_train[idx], ds.y_train[idx], batch_size, mean=ds.mean, std=ds.std,
                          device=device, train=False, channels_last=channels_last)
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
    loss, correct, n = 0.0, 0, 0
    try:
        with frozen_bn_stats(model):
            for xb, yb in batches:
                out = model(xb).float()
                loss += float(F.cross_entropy(out, yb, reduction="sum"))
                correct += int((out.argmax(1) == yb).sum())
                n += len(yb)
    finally:
        for m, flag in was.items():
            m.training = flag
    return loss / n, correct / n


def _objective(loss: float, model: nn.Module, weight_decay: float) -> float:
    """Regularised training objective ``loss + λ/2 ‖w‖²`` (what SGD with coupled wd descends).

    ``w`` is the trainable parameters: weight decay acts on those only.
    """
    return loss + 0.5 * weight_decay * trainable_weight_norm(model) ** 2


def _continue(model: nn.Module, config: Any, loader: DeviceLoader, steps: int, rho: float,
              batches: list[tuple[torch.Tensor, torch.Tensor]], test_loader: DeviceLoader,
              autocast: Any) -> dict[str, Any]:
    """``steps`` SGD (rho = 0) or SAM steps at ``config.final_lr`` on a copy of ``model``."""
    m = copy.deepcopy(model)
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = build_optimizer(config, m, steps, lr=config.final_lr, rho=rho,
                          method="sam" if rho > 0 else "sgd")
    loss0, acc0 = batch_loss(m, batches)
    rec: dict[str, Any] = {"optimizer": "sam" if rho > 0 else "sgd", "rho": rho, "steps": steps,
                           "lr": config.final_lr, "loss_before": loss0, "acc_before": acc0,
                           "objective_before": _objective(loss0, m, config.weight_decay)}

    def criterion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), y, label_smoothing=config.label_smoothing)

    done, status = 0, "ok"
    while done < steps and status == "ok":
        for xb, yb in loader:
            if done >= steps:
                break
            train_step(m, opt, xb, yb, criterion, autocast)
            done += 1
        if not all(bool(torch.isfinite(p).all()) for p in params):
            status = "diverged"
    loss1, acc1 = batch_loss(m, batches) if status == "ok" else (math.nan, math.nan)
    rec.update(status=status, loss_after=loss1, acc_after=acc1,
               objective_after=_objective(loss1, m, config.weight_decay),
               test_acc_after=evaluate(m, test_loader, autocast)[1] if status == "ok" else None)
    rec["loss_drop"] = loss0 - loss1
    rec["objective_drop"] = rec["objective_before"] - rec["objective_after"]
    return rec


def end_of_training_probe(model: nn.Module, config: Any, ds: ImageDataset, device: torch.device,
                          rho: float, test_loader: DeviceLoader, augment: bool,
                          autocast: Any = contextlib.nullcontext) -> dict[str, Any]:
    """Stall diagnostics and the SGD-continuation test at the final weights (see module doc).

    ``rho`` is the radius the optimiser uses at the end of training (0 for SGD). The
    model is left bit-identical (the diagnostics restore it; continuations use copies).
    """
    t0 = time.perf_counter()
    conv = config.model != "mlp"
    seed = config.subset_seed + PROBE_SEED_OFFSET
    batches = fixed_batches(ds, config.probe_batches, config.batch_size, device, seed, conv)
    boot = PROBE_BOOTSTRAP if len(batches) > 1 else 0

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), y)

    diag = stall_diagnostics(model, loss_fn, batches, rho=rho, weight_decay=config.weight_decay,
                             adaptive=config.adaptive, bootstrap=boot, seed=seed, train_mode=True)
    out: dict[str, Any] = {
        "rho": rho, "n_batches": len(batches), "batch_size": config.batch_size,
        "steps": config.probe_steps, "lr": config.final_lr, "train_mode": True,
        "stall": diag.as_dict(), "looks_stalled": diag.looks_stalled(z=3.0),
    }

    def loader() -> DeviceLoader:  # identical batch sequence for both continuations
        return DeviceLoader(ds.x_train, ds.y_train, config.batch_size, mean=ds.mean, std=ds.std,
                            device=device, train=True, pad=2 if augment else 0, flip=augment,
                            seed=config.seed + PROBE_SEED_OFFSET, channels_last=conv)

    out["sgd_continuation"] = _continue(model, config, loader(), config.probe_steps, 0.0,
                                        batches, test_loader, autocast)
    out["sam_continuation"] = (_continue(model, config, loader(), config.probe_steps, rho,
                                         batches, test_loader, autocast) if rho > 0 else None)
    out["time_s"] = time.perf_counter() - t0
    return out
