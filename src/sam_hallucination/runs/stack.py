"""K networks of one architecture as one stack: stacked weights and buffers, vmap'd forward.

:class:`Stack` holds weights and BatchNorm buffers stacked along a new leading axis (one
slice a model) and runs them through one meta-device copy of the network with
``vmap(functional_call)``. :meth:`Stack.step` is the batched SGD/SAM step (see
:mod:`.batched`): the SAM perturbation of each model uses its own gradient norm and radius
through :func:`~sam_hallucination.optim.perturbation.perturbation_scale`.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ..data import DeviceLoader
from ..optim import disable_running_stats, enable_running_stats
from ..optim.perturbation import perturbation_scale


class Stack:
    """K networks as stacked weights and buffers, run through one meta-device copy."""

    def __init__(self, models: list[nn.Module]) -> None:
        self.models = models
        self.k = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        named = [dict(m.named_parameters()) for m in models]
        self.params = {n: torch.stack([d[n].detach() for d in named]).requires_grad_(p.requires_grad)
                       for n, p in models[0].named_parameters()}
        bufs = [dict(m.named_buffers()) for m in models]
        self.buffers = {n: torch.stack([d[n] for d in bufs]) for n, _ in models[0].named_buffers()}
        self.trainable = [p for p in self.params.values() if p.requires_grad]
        self._saved: list[torch.Tensor] | None = None  # w during the perturbed pass

    def forward(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        def f(p: dict, b: dict, xb: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (xb,))
        return vmap(f, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def state(self, k: int) -> dict[str, torch.Tensor]:
        return {n: t[k].detach() for n, t in {**self.params, **self.buffers}.items()}

    def module(self, k: int) -> nn.Module:
        """Model ``k`` as a plain network (its own copy of the weights and buffers)."""
        m = copy.deepcopy(self.models[k])
        m.load_state_dict(self.state(k))
        return m


    def losses(self, out: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0
               ) -> torch.Tensor:
        """(K,) mean cross-entropies of (K, B, C) logits against (K, B) labels."""
        o = out if out.dtype == torch.float64 else out.float()  # bf16 logits: loss in fp32
        return F.cross_entropy(o.flatten(0, 1), y.flatten(), reduction="none",
                               label_smoothing=label_smoothing).view(self.k, -1).mean(1)

    def step(self, opt: torch.optim.Optimizer, xb: torch.Tensor, yk: torch.Tensor, shared: bool,
             rho: torch.Tensor, active: torch.Tensor | None, label_smoothing: float = 0.0,
             autocast: Any = contextlib.nullcontext
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One SGD/SAM step of every model: :func:`~.step.train_step`, K at a time.

        ``rho``: (K,) radii; ``active``: (K,) bool, the models taking a SAM step (None: no
        model does, no second pass). The others step with their gradient at ``w``. Returns
        the (K,) losses and (K, B, C) logits at ``w``, ‖g(w)‖ and ‖g(w + e)‖ a model.
        """
        with autocast():
            out = self.forward(xb, shared)
        loss = self.losses(out, yk, label_smoothing)
        loss.sum().backward()  # slice k of each gradient: model k's own gradient
        grads = [p.grad for p in self.trainable]
        norm_dtype = torch.float64 if grads[0].dtype == torch.float64 else torch.float32
        gn = norms(grads, norm_dtype)
        gnp = None
        if active is not None:
            with torch.no_grad():
                if self._saved is None:
                    self._saved = [torch.empty_like(p) for p in self.trainable]
                torch._foreach_copy_(self._saved, [p.detach() for p in self.trainable])
                scale = perturbation_scale(gn, rho.to(norm_dtype))  # rho_k / ||g_k||
                for p, g in zip(self.trainable, grads, strict=True):
                    p.add_(g * _bcast(scale, p))
            for p in self.trainable:  # the second backward writes fresh gradient tensors
                p.grad = None
            disable_running_stats(self.base)  # running statistics frozen, as in SAM
            try:
                with autocast():
                    out2 = self.forward(xb, shared)
                self.losses(out2, yk, label_smoothing).sum().backward()
            finally:
                enable_running_stats(self.base)
            with torch.no_grad():
                g_plus = [p.grad for p in self.trainable]
                gnp = norms(g_plus, norm_dtype)
                for p, s, g0, g1 in zip(self.trainable, self._saved, grads, g_plus, strict=True):
                    p.copy_(s)  # restore w exactly
                    p.grad = torch.where(_bcast(active, g1).bool(), g1, g0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach(), out.detach(), gn, gnp

    @torch.no_grad()
    def evaluate(self, loader: DeviceLoader, autocast: Any = contextlib.nullcontext
                 ) -> tuple[list[float], list[float]]:
        """Per-model mean cross-entropy and accuracy over ``loader`` (eval mode)."""
        self.train(False)
        loss = torch.zeros(self.k, device=loader.device, dtype=torch.float64)
        correct = torch.zeros(self.k, device=loader.device, dtype=torch.long)
        n = 0
        for xb, yb in loader:
            with autocast():
                out = self.forward(xb, True)
            o = out if out.dtype == torch.float64 else out.float()
            loss += F.cross_entropy(o.flatten(0, 1), yb.repeat(self.k), reduction="none"
                                    ).view(self.k, -1).sum(1).double()
            correct += (out.argmax(-1) == yb).sum(1)
            n += len(yb)
        self.train(True)
        return (loss / n).cpu().tolist(), (correct.double() / n).cpu().tolist()


def norms(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """Per-model global L2 norm over ``tensors`` (each (K, ...)), accumulated in ``dtype``."""
    per = torch.stack([t.detach().flatten(1).to(dtype).norm(dim=1) for t in tensors])
    return torch.linalg.vector_norm(per, dim=0)


def _bcast(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return v.to(t.dtype).view(-1, *([1] * (t.ndim - 1)))


def cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: t.to("cpu", copy=True) for n, t in state.items()}
