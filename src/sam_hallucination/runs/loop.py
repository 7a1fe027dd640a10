"""One training loop for SGD, SAM, SGD-then-SAM ("switch") and decaying-rho SAM.

``train(config, dataset)`` takes a :class:`~sam_hallucination.runs.config.RunConfig`
(or any object with the same attributes) and an :class:`~sam_hallucination.data.ImageDataset`.
It subsets the data as the config says, builds the model and optimiser, runs the
LR schedule (one-cycle or cosine, then an optional constant small-LR phase), and
returns per-epoch metrics plus the trained model. A non-finite loss stops the run
with ``status="diverged"`` instead of raising, so a sweep can go on; so do non-finite
weights at an epoch's end (:func:`weights_finite`), and the probe then does not run.

The probe (``config.probe=True``) is :func:`~sam_hallucination.runs.probe.end_of_training_probe`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import DeviceLoader, ImageDataset, subset, with_label_noise
from ..models import airbench_widths, make_model
from ..optim import SAM
from .config import LR_SCHEDULES, RunConfig
from .probe import Snapshot, end_of_training_probe, take_snapshot
from .step import build_optimizer, evaluate, train_step, trainable_weight_norm


def lr_at(step: int, main_steps: int, peak: float, schedule: str = "onecycle",
          warmup_frac: float = 0.2, final_lr: float = 0.0) -> float:
    """Learning rate for ``step`` (0-based).

    Linear warmup over ``warmup_frac`` of ``main_steps``, then "onecycle": linear
    decay to 0 (airbench-like); "cosine": cosine decay to 0; "constant": stay at the
    peak. Steps past ``main_steps`` (the final constant phase) get ``final_lr``.
    """
    if step >= main_steps:
        return final_lr
    warm = int(round(warmup_frac * main_steps))
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, main_steps - warm)
    if schedule == "onecycle":
        return peak * (1.0 - t)
    if schedule == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "constant":
        return peak
    raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


_PREPARED: OrderedDict[tuple, tuple[ImageDataset, ImageDataset]] = OrderedDict()


def prepare_data(config: Any, dataset: ImageDataset) -> ImageDataset:
    """Apply the config's subset (seeded by ``subset_seed``) and label noise.

    The result is cached by data set and subset settings, so the runs of a sweep share
    its arrays and with them the copy :class:`DeviceLoader` keeps on the device.
    """
    key = (id(dataset), config.n_train, config.n_test, config.subset_seed, config.label_noise)
    hit = _PREPARED.get(key)
    if hit is not None and hit[0] is dataset:
        return hit[1]
    ds = subset(dataset, config.n_train, config.n_test, seed=config.subset_seed)
    ds = with_label_noise(ds, config.label_noise, seed=config.subset_seed)
    _PREPARED[key] = (dataset, ds)
    while len(_PREPARED) > 4:
        _PREPARED.popitem(last=False)
    return ds


def eval_batch_size(n: int, cap: int = 1000) -> int:
    """The largest divisor of ``n`` that is at most ``cap``: every test batch the same size."""
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)


def evaluates_at(config: Any, epoch: int, n_epochs: int) -> bool:
    """Test-set evaluation after ``epoch`` (1-based): every ``eval_every`` epochs, at the end
    of the main schedule and at the end."""
    every = getattr(config, "eval_every", 1)
    return epoch % every == 0 or epoch in (config.epochs, n_epochs)


def build_model(config: Any, ds: ImageDataset, **model_kw: Any) -> nn.Module:
    c, h, w = ds.image_shape
    kw: dict[str, Any] = {}
    if config.model == "mlp":
        kw = {"input_shape": (c, h, w), "hidden": config.hidden}
    width = getattr(config, "model_width", None)
    if config.model == "airbench" and width is not None:
        kw = {"widths": airbench_widths(width)}
    return make_model(config.model, ds.num_classes, in_channels=c, **kw, **model_kw)


def weights_finite(model: nn.Module) -> bool:
    """Whether every parameter and buffer of ``model`` is finite (one host sync)."""
    ts = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if not ts:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in ts]).all())


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train(config: RunConfig, dataset: ImageDataset, device: str | torch.device = "auto",
          progress: bool = True, dtype: torch.dtype = torch.float32,
          model_kw: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one run; return metrics, status and the final model (key ``"model"``).

    ``dtype`` (weights and data) and ``model_kw`` (passed to the model) serve the tests.

    Returned keys: status ("ok" | "diverged"), diverged_at ({"step", "epoch"} or None),
    epochs (list of per-epoch dicts), final (last epoch's losses/accuracies), steps,
    steps_per_epoch, main_steps, wall_time_s (probe included), device, dataset
    (human-readable name), n_train, n_test, n_params, probe (dict or None), model.
    """
    t_start = time.perf_counter()
    dev = _resolve_device(device)
    ds = prepare_data(config, dataset)
    if config.batch_size > len(ds.y_train):
        raise ValueError(f"batch_size={config.batch_size} is larger than the training set "
                         f"({len(ds.y_train)} images); lower batch_size or raise n_train")
    torch.manual_seed(config.seed)
    model = build_model(config, ds, **(model_kw or {}))
    conv = config.model != "mlp"
    model = (model.to(dev, dtype, memory_format=torch.channels_last) if conv
             else model.to(dev, dtype))

    augment = config.augments() if hasattr(config, "augments") else bool(config.augment)
    train_loader = DeviceLoader(ds.x_train, ds.y_train, config.batch_size, mean=ds.mean,
                                std=ds.std, device=dev, train=True, pad=2 if augment else 0,
                                flip=augment, seed=config.seed, dtype=dtype, channels_last=conv)
    test_loader = DeviceLoader(ds.x_test, ds.y_test, eval_batch_size(len(ds.y_test)), mean=ds.mean,
                               std=ds.std, device=dev, train=False, dtype=dtype,
                               channels_last=conv)
    spe = len(train_loader)
    main_steps = config.epochs * spe
    n_epochs = config.epochs + config.final_constant_lr_epochs
    opt = build_optimizer(config, model, main_steps)
    is_sam = isinstance(opt, SAM)
    use_amp = config.amp and dev.type == "cuda"
    if use_amp:
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        torch.backends.cudnn.benchmark = True
    else:
        autocast = contextlib.nullcontext

    def criterion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        o = out if out.dtype == torch.float64 else out.float()  # bf16 logits: loss in fp32
        return F.cross_entropy(o, y, label_smoothing=config.label_smoothing)

    # The plain-SGD run of a probed sweep keeps snapshots for the SAM runs' matched control.
    snapshots: list[Snapshot] | None = None
    if getattr(config, "probe", False) and not is_sam:
        snapshots = [(0, take_snapshot(model))]
    epochs: list[dict[str, Any]] = []
    status, diverged_at, step = "ok", None, 0
    bar = tqdm(range(n_epochs), desc=getattr(config, "run_id", lambda: "run")(),
               disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        gn_sum = torch.zeros((), device=dev, dtype=torch.float64)
        gnp_sum = torch.zeros((), device=dev, dtype=torch.float64)
        n_seen = n_steps = n_pert = 0
        losses: list[torch.Tensor] = []
        first_step = step
        for xb, yb in train_loader:
            lr = lr_at(step, main_steps, config.lr, config.lr_schedule, config.warmup_frac,
                       config.final_lr)
            for g in opt.param_groups:
                g["lr"] = lr
            r = train_step(model, opt, xb, yb, criterion, autocast, measure=True)
            gn_sum += r.grad_norm.to(dev)
            if r.perturbed_grad_norm is not None:
                gnp_sum += r.perturbed_grad_norm.to(dev)
                n_pert += 1
            step += 1
            n_steps += 1
            loss_sum += r.loss.double() * len(yb)
            correct += (r.logits.argmax(1) == yb).sum()
            n_seen += len(yb)
            losses.append(r.loss)
        # Divergence: one host sync an epoch (none inside the step).
        finite = torch.isfinite(torch.stack(losses))
        if not bool(finite.all()):
            status = "diverged"
            diverged_at = {"step": first_step + int((~finite).nonzero()[0, 0]), "epoch": epoch}
        if status == "ok" and not weights_finite(model):  # the last update gave NaN/inf w
            status, diverged_at = "diverged", {"step": step - 1, "epoch": epoch}
        train_time = time.perf_counter() - t0
        rec: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": lr,
            "rho": float(opt.current_rho) if is_sam else 0.0,
            "sam_active": bool(opt.sam_active) if is_sam else False,
            "train_loss": float(loss_sum) / max(1, n_seen),
            "train_acc": float(correct) / max(1, n_seen),
            "grad_norm": float(gn_sum) / max(1, n_steps),
            "perturbed_grad_norm": float(gnp_sum) / n_pert if n_pert else None,
            "trainable_weight_norm": trainable_weight_norm(model),
            "train_time_s": train_time,
        }
        if status == "diverged":
            rec.update(test_loss=None, test_acc=None, epoch_time_s=time.perf_counter() - t0)
            epochs.append(rec)
            break
        if evaluates_at(config, epoch + 1, n_epochs):
            rec["test_loss"], rec["test_acc"] = evaluate(model, test_loader, autocast)
        else:
            rec["test_loss"] = rec["test_acc"] = None
        rec["epoch_time_s"] = time.perf_counter() - t0
        epochs.append(rec)
        if snapshots is not None:
            snapshots.append((epoch + 1, take_snapshot(model)))
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", acc=f"{rec['train_acc']:.3f}",
                        test=f"{rec['test_acc']:.3f}" if rec["test_acc"] is not None else "-")
    bar.close()
    last = epochs[-1] if epochs else {}
    probe = None
    if getattr(config, "probe", False) and status == "ok":
        probe = end_of_training_probe(model, config, ds, dev,
                                      float(opt.current_rho) if is_sam else 0.0,
                                      test_loader, augment, autocast, snapshots)
    return {
        "status": status,
        "diverged_at": diverged_at,
        "epochs": epochs,
        "final": {k: last.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc",
                                           "grad_norm", "perturbed_grad_norm",
                                           "trainable_weight_norm")},
        "steps": step,
        "steps_per_epoch": spe,
        "main_steps": main_steps,
        "wall_time_s": time.perf_counter() - t_start,
        "device": str(dev),
        "dataset": ds.name,
        "n_train": int(len(ds.y_train)),
        "n_test": int(len(ds.y_test)),
        "n_params": sum(p.numel() for p in model.parameters()),
        "probe": probe,
        "model": model,
    }
