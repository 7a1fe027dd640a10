"""One training loop for SGD, SAM, SGD-then-SAM ("switch") and decaying-rho SAM.

``train(config, dataset)`` takes a :class:`~sam_hallucination.experiments.RunConfig`
(or any object with the same attributes) and an :class:`~sam_hallucination.data.ImageDataset`.
It subsets the data as the config says, builds the model and optimiser, runs the
LR schedule (one-cycle or cosine, then an optional constant small-LR phase), and
returns per-epoch metrics plus the trained model. A non-finite loss stops the run
with ``status="diverged"`` instead of raising, so a sweep can go on.

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
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import DeviceLoader, ImageDataset, subset, with_label_noise
from .diagnostics import stall_diagnostics
from .models import make_model
from .optim import frozen_bn_stats

if TYPE_CHECKING:  # pragma: no cover
    from .experiments import RunConfig

METHODS = ("sgd", "sam", "switch", "rho-decay")
LR_SCHEDULES = ("onecycle", "cosine", "constant")
AUGMENTED = ("cifar10", "cifar100", "cifar10-jpeg")  # flip + translate by default
PROBE_BOOTSTRAP = 100  # batch-bootstrap resamples for the probe's noise floors
PROBE_SEED_OFFSET = 10_007  # the probe's batch choice and continuation batches (fixed per sweep)


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


def prepare_data(config: Any, dataset: ImageDataset) -> ImageDataset:
    """Apply the config's subset (seeded by ``subset_seed``) and label noise."""
    ds = subset(dataset, config.n_train, config.n_test, seed=config.subset_seed)
    return with_label_noise(ds, config.label_noise, seed=config.subset_seed)


def build_model(config: Any, ds: ImageDataset) -> nn.Module:
    c, h, w = ds.image_shape
    kw: dict[str, Any] = {}
    if config.model == "mlp":
        kw = {"input_shape": (c, h, w), "hidden": config.hidden}
    return make_model(config.model, ds.num_classes, in_channels=c, **kw)


def build_optimizer(config: Any, model: nn.Module, main_steps: int) -> torch.optim.Optimizer:
    """torch SGD for "sgd"; the project's SAM wrapper for the other methods."""
    params = [p for p in model.parameters() if p.requires_grad]
    common = dict(lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                  weight_decay=config.weight_decay)
    if config.method == "sgd":
        return torch.optim.SGD(params, **common)
    from .optim import SAM

    kw: dict[str, Any] = dict(rho=config.rho, adaptive=config.adaptive, variant="sam")
    if config.method == "switch":
        kw.update(switch_at=int(round(config.switch_frac * main_steps)), total_steps=main_steps)
    elif config.method == "rho-decay":
        kw.update(rho_schedule="linear", total_steps=main_steps)
    elif config.method != "sam":
        raise ValueError(f"method must be one of {METHODS}, got {config.method!r}")
    return SAM(params, torch.optim.SGD, **kw, **common)


def grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of the gradients, as a 0-d fp32 tensor (no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def weight_norm(model: nn.Module) -> float:
    norms = torch._foreach_norm([p.detach() for p in model.parameters()])
    return float(torch.linalg.vector_norm(torch.stack([n.float() for n in norms])))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, autocast=contextlib.nullcontext
             ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) over ``loader``."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=loader.device)
    correct = torch.zeros((), device=loader.device, dtype=torch.long)
    n = 0
    for xb, yb in loader:
        with autocast():
            out = model(xb)
        loss += F.cross_entropy(out.float(), yb, reduction="sum")
        correct += (out.argmax(1) == yb).sum()
        n += len(yb)
    model.train(was_training)
    return float(loss) / n, float(correct) / n


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
    """Regularised training objective ``loss + λ/2 ‖w‖²`` (what SGD with coupled wd descends)."""
    return loss + 0.5 * weight_decay * weight_norm(model) ** 2


def _continue(model: nn.Module, config: Any, loader: DeviceLoader, steps: int, rho: float,
              batches: list[tuple[torch.Tensor, torch.Tensor]], test_loader: DeviceLoader,
              autocast: Any) -> dict[str, Any]:
    """``steps`` SGD (rho = 0) or SAM steps at ``config.final_lr`` on a copy of ``model``."""
    from .optim import SAM

    m = copy.deepcopy(model)
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    common = dict(lr=config.final_lr, momentum=config.momentum, nesterov=config.nesterov,
                  weight_decay=config.weight_decay)
    opt = (SAM(params, torch.optim.SGD, rho=rho, adaptive=config.adaptive, **common) if rho > 0
           else torch.optim.SGD(params, **common))
    loss0, acc0 = batch_loss(m, batches)
    rec: dict[str, Any] = {"optimizer": "sam" if rho > 0 else "sgd", "rho": rho, "steps": steps,
                           "lr": config.final_lr, "loss_before": loss0, "acc_before": acc0,
                           "objective_before": _objective(loss0, m, config.weight_decay)}
    done, status = 0, "ok"
    while done < steps and status == "ok":
        for xb, yb in loader:
            if done >= steps:
                break
            with autocast():
                loss = F.cross_entropy(m(xb).float(), yb, label_smoothing=config.label_smoothing)
            loss.backward()
            if rho > 0:
                def closure(xb=xb, yb=yb):
                    with frozen_bn_stats(m), autocast():
                        loss2 = F.cross_entropy(m(xb).float(), yb,
                                                label_smoothing=config.label_smoothing)
                    loss2.backward()
                    return loss2
                opt.step(closure)
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
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


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train(config: RunConfig, dataset: ImageDataset, device: str | torch.device = "auto",
          progress: bool = True) -> dict[str, Any]:
    """Train one run; return metrics, status and the final model (key ``"model"``).

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
    model = build_model(config, ds)
    conv = config.model != "mlp"
    model = model.to(dev, memory_format=torch.channels_last) if conv else model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]

    augment = config.augment if config.augment is not None else dataset.key in AUGMENTED
    train_loader = DeviceLoader(ds.x_train, ds.y_train, config.batch_size, mean=ds.mean,
                                std=ds.std, device=dev, train=True, pad=2 if augment else 0,
                                flip=augment, seed=config.seed, channels_last=conv)
    test_loader = DeviceLoader(ds.x_test, ds.y_test, min(1024, len(ds.y_test)), mean=ds.mean,
                               std=ds.std, device=dev, train=False, channels_last=conv)
    spe = len(train_loader)
    main_steps = config.epochs * spe
    n_epochs = config.epochs + config.final_constant_lr_epochs
    opt = build_optimizer(config, model, main_steps)
    is_sam = config.method != "sgd"
    use_amp = config.amp and dev.type == "cuda"
    if use_amp:
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        torch.backends.cudnn.benchmark = True
    else:
        autocast = contextlib.nullcontext

    def criterion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), y, label_smoothing=config.label_smoothing)

    epochs: list[dict[str, Any]] = []
    status, diverged_at, step = "ok", None, 0
    bar = tqdm(range(n_epochs), desc=getattr(config, "run_id", lambda: "run")(),
               disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        gn_sum = torch.zeros((), device=dev)
        gnp_sum = torch.zeros((), device=dev)
        n_seen = n_steps = n_pert = 0
        pending: list[torch.Tensor] = []
        first_step_of_check = step
        for xb, yb in train_loader:
            lr = lr_at(step, main_steps, config.lr, config.lr_schedule, config.warmup_frac,
                       config.final_lr)
            for g in opt.param_groups:
                g["lr"] = lr
            with autocast():
                out = model(xb)
            loss = criterion(out, yb)
            loss.backward()
            if is_sam:
                def closure(xb=xb, yb=yb):
                    with frozen_bn_stats(model), autocast():
                        out2 = model(xb)
                    loss2 = criterion(out2, yb)
                    loss2.backward()
                    return loss2
                opt.step(closure)
                gn_sum += opt.last_grad_norm.to(dev)
                if opt.last_perturbed_grad_norm is not None:
                    gnp_sum += opt.last_perturbed_grad_norm.to(dev)
                    n_pert += 1
            else:
                gn_sum += grad_norm(params).to(dev)
                opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            n_steps += 1
            d_loss = loss.detach()
            loss_sum += d_loss * len(yb)
            correct += (out.detach().argmax(1) == yb).sum()
            n_seen += len(yb)
            pending.append(d_loss)
            # Check for divergence every 16 steps (one host sync), and at the epoch's end.
            if len(pending) >= 16 or n_steps == spe:
                finite = torch.isfinite(torch.stack(pending))
                if not bool(finite.all()):
                    bad = int((~finite).nonzero()[0, 0])
                    status = "diverged"
                    diverged_at = {"step": first_step_of_check + bad, "epoch": epoch}
                    break
                pending, first_step_of_check = [], step
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
            "weight_norm": weight_norm(model),
            "train_time_s": train_time,
        }
        if status == "diverged":
            rec.update(test_loss=None, test_acc=None, epoch_time_s=time.perf_counter() - t0)
            epochs.append(rec)
            break
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == n_epochs:
            rec["test_loss"], rec["test_acc"] = evaluate(model, test_loader, autocast)
        else:
            rec["test_loss"] = rec["test_acc"] = None
        rec["epoch_time_s"] = time.perf_counter() - t0
        epochs.append(rec)
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", acc=f"{rec['train_acc']:.3f}",
                        test=f"{rec['test_acc']:.3f}" if rec["test_acc"] is not None else "-")
    bar.close()
    last = epochs[-1] if epochs else {}
    probe = None
    if getattr(config, "probe", False) and status == "ok":
        probe = end_of_training_probe(model, config, ds, dev,
                                      float(opt.current_rho) if is_sam else 0.0,
                                      test_loader, augment, autocast)
    return {
        "status": status,
        "diverged_at": diverged_at,
        "epochs": epochs,
        "final": {k: last.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc",
                                           "grad_norm", "perturbed_grad_norm", "weight_norm")},
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
