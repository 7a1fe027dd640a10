"""One training step, written once, and what every loop around it needs.

:func:`train_step` is the step of SGD and of every SAM method: forward and backward at
``w``; for SAM a second pass at ``w + e`` with BatchNorm running statistics frozen (the
optimizer calls it through the closure); the optimizer step; gradients cleared. The
training loop, the probe's continuations and the full-batch study's minibatch runs all
call it; :func:`build_optimizer` turns a method of the registry into its optimizer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DeviceLoader
from ..methods import get_method
from ..optim import SAM, frozen_bn_stats
from ..optim.switch_rule import SignalSwitchSAM

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class StepResult:
    """What one step measured (0-d tensors on the device; no host sync)."""

    loss: torch.Tensor  # at w, detached
    logits: torch.Tensor  # at w, detached
    grad_norm: torch.Tensor | None  # ‖∇f_B(w)‖ when asked for
    perturbed_grad_norm: torch.Tensor | None  # ‖∇f_B(w + e)‖ after a SAM step, else None


def train_step(model: nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor,
               criterion: Criterion, autocast: Callable[[], Any] = contextlib.nullcontext,
               measure: bool = False) -> StepResult:
    """One SGD or SAM step on the batch ``(xb, yb)``; ``criterion(logits, y)`` is the loss.

    ``measure=True`` also returns the gradient norms (SAM records them itself).
    """
    with autocast():
        out = model(xb)
    loss = criterion(out, yb)
    loss.backward()
    gn = gnp = None
    if isinstance(opt, SAM):
        def closure() -> torch.Tensor:
            with frozen_bn_stats(model), autocast():
                out2 = model(xb)
            loss2 = criterion(out2, yb)
            loss2.backward()
            return loss2

        opt.step(closure)
        if measure:
            gn, gnp = opt.last_grad_norm, opt.last_perturbed_grad_norm
    else:
        if measure:
            gn = grad_norm([p for g in opt.param_groups for p in g["params"]])
        opt.step()
    opt.zero_grad(set_to_none=True)
    return StepResult(loss.detach(), out.detach(), gn, gnp)


def build_optimizer(config: Any, model: nn.Module, main_steps: int, *, lr: float | None = None,
                    method: str | None = None, rho: float | None = None
                    ) -> torch.optim.Optimizer:
    """The optimizer of a run's method (see :mod:`sam_hallucination.methods`).

    torch SGD for methods without SAM; the project's SAM around SGD otherwise, with the
    method's switch point and radius schedule. ``lr``, ``method`` and ``rho`` override the
    config's (the probe continues at ``final_lr`` with a constant radius).
    """
    spec = get_method(method or config.method, "network")
    params = [p for p in model.parameters() if p.requires_grad]
    common = dict(lr=config.lr if lr is None else lr, momentum=config.momentum,
                  nesterov=config.nesterov, weight_decay=config.weight_decay)
    if not spec.sam:
        return torch.optim.SGD(params, **common)
    kw: dict[str, Any] = dict(rho=config.rho if rho is None else rho, adaptive=config.adaptive,
                              variant="sam", rho_schedule=spec.rho_schedule)
    if spec.signal_switch:  # the switch time is measured during training (optim/switch_rule)
        return SignalSwitchSAM(params, torch.optim.SGD, total_steps=main_steps, **kw, **common)
    if spec.switch:
        kw.update(switch_at=int(round(config.switch_frac * main_steps)))
    if spec.switch or spec.rho_schedule != "constant":
        kw.update(total_steps=main_steps)
    return SAM(params, torch.optim.SGD, **kw, **common)


def grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of the gradients, as a 0-d fp32 tensor (no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def trainable_weight_norm(model: nn.Module) -> float:
    """‖w‖ over the parameters the optimizer updates (``requires_grad``).

    Frozen parameters, such as the airbench CNN's BatchNorm scales fixed at 1, are left
    out: they are not part of ``w`` and weight decay never touches them.
    """
    ps = [p.detach() for p in model.parameters() if p.requires_grad]
    if not ps:
        return 0.0
    norms = torch._foreach_norm(ps)
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
