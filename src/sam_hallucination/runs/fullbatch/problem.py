"""The chapter-4 problem: a fixed data subset as tensors, a flat-vector MLP, and the
metrics at one weight vector (loss, gradients at w and w⁺, accuracy, network activity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data import load_dataset, subset
from ...models import MLP
from .config import DTYPES, FullBatchConfig

Tensor = torch.Tensor


@dataclass
class Problem:
    """Training/test tensors (flattened, normalised) and the model shape."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    in_features: int
    num_classes: int
    dataset: str


_PROBLEMS: dict[tuple, Problem] = {}


def _to_tensor(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], pool: int,
               dtype: torch.dtype) -> Tensor:
    t = torch.from_numpy(x).to(torch.float64).div_(255.0)  # (N, H, W, C)
    t = (t - torch.tensor(mean, dtype=torch.float64)) / torch.tensor(std, dtype=torch.float64)
    t = t.permute(0, 3, 1, 2)
    if pool > 1:
        t = F.avg_pool2d(t, pool)
    return t.reshape(len(t), -1).to(dtype).contiguous()


def load_problem(cfg: FullBatchConfig) -> Problem:
    """The fixed class-balanced subset of ``cfg.dataset`` as tensors (cached in memory)."""
    key = (cfg.dataset, cfg.data_root, cfg.n_train, cfg.n_test, cfg.pool, cfg.seed, cfg.dtype,
           cfg.standardize, cfg.label_noise)
    if key not in _PROBLEMS:
        ds = subset(load_dataset(cfg.dataset, root=cfg.data_root), cfg.n_train, cfg.n_test,
                    seed=cfg.seed)
        dt = DTYPES[cfg.dtype]
        c = len(ds.mean)
        mean, std = (ds.mean, ds.std) if cfg.standardize else ((0.0,) * c, (1.0,) * c)
        xtr = _to_tensor(ds.x_train, mean, std, cfg.pool, dt)
        xte = _to_tensor(ds.x_test, mean, std, cfg.pool, dt)
        ytr = flip_labels(torch.from_numpy(ds.y_train), cfg.label_noise, ds.num_classes,
                          cfg.seed)
        _PROBLEMS[key] = Problem(xtr, ytr, xte, torch.from_numpy(ds.y_test), xtr.shape[1],
                                 ds.num_classes, ds.name)
    return _PROBLEMS[key]


def flip_labels(y: Tensor, frac: float, num_classes: int, seed: int = 0) -> Tensor:
    """A copy of ``y`` with round(frac·n) labels (seeded choice) set to another class."""
    n_flip = round(frac * len(y))
    if n_flip == 0:
        return y
    g = torch.Generator().manual_seed(seed + 4242)
    idx = torch.randperm(len(y), generator=g)[:n_flip]
    shift = torch.randint(1, num_classes, (n_flip,), generator=g)
    out = y.clone()
    out[idx] = (y[idx] + shift) % num_classes
    return out


# ----------------------------------------------------------------------------- flat model
class FlatMLP:
    """An :class:`~sam_hallucination.models.MLP` evaluated at a flat weight vector ``w``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = [n for n, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.sizes = [s.numel() for s in self.shapes]

    def init_vector(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).clone()

    def unflatten(self, w: Tensor) -> dict[str, Tensor]:
        parts = torch.split(w, self.sizes)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def logits(self, w: Tensor, x: Tensor) -> Tensor:
        return torch.func.functional_call(self.model, self.unflatten(w), (x,))

    def loss(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.logits(w, x), y)

    def loss_grad(self, w: Tensor, x: Tensor, y: Tensor) -> tuple[float, Tensor, float]:
        """(L(w), ∇L(w), accuracy) on (x, y)."""
        with torch.enable_grad():
            wr = w.detach().requires_grad_(True)
            out = self.logits(wr, x)
            loss = F.cross_entropy(out, y)
            (g,) = torch.autograd.grad(loss, wr)
        acc = float((out.detach().argmax(1) == y).to(torch.float64).mean())
        return float(loss.detach()), g.detach(), acc

    def accuracy(self, w: Tensor, x: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            return float((self.logits(w, x).argmax(1) == y).to(torch.float64).mean())


def build_model(cfg: FullBatchConfig, prob: Problem) -> FlatMLP:
    """The seeded 2-layer ReLU MLP (PyTorch default init, times ``cfg.init_scale``) in
    ``cfg.dtype``."""
    torch.manual_seed(cfg.seed)
    model = MLP(prob.in_features, cfg.hidden, prob.num_classes, depth=2)
    if cfg.init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(cfg.init_scale)
    return FlatMLP(model.to(DTYPES[cfg.dtype]))


# ----------------------------------------------------------------------------- one point
def network_activity(net: FlatMLP, w: Tensor, x: Tensor) -> dict[str, float]:
    """How much the network at ``w`` still depends on its input.

    ``live_units``: fraction of hidden ReLU units positive on at least one example;
    ``active_frac``: mean fraction of hidden units positive per example;
    ``logit_spread``: mean over classes of the standard deviation of the logits across
    examples (0 means the same output for every input).
    """
    acts: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out.detach()))
             for m in net.model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            logits = net.logits(w, x)
    finally:
        for h in hooks:
            h.remove()
    h = torch.cat([a > 0 for a in acts], dim=1) if acts else torch.zeros(len(x), 0, dtype=bool)
    return {"live_units": float(h.any(0).to(torch.float64).mean()),
            "active_frac": float(h.to(torch.float64).mean()),
            "logit_spread": float(logits.std(0).mean())}


def point_metrics(net: FlatMLP, w: Tensor, x: Tensor, y: Tensor, rho: float,
                  weight_decay: float = 0.0) -> dict[str, Any]:
    """Everything the chapter measures at one weight vector (full batch).

    Keys: ``f`` (= L + λ/2‖w‖²), ``loss`` (L), ``acc``, ``grad_norm`` ‖∇f(w)‖,
    ``loss_grad_norm`` ‖∇L(w)‖, ``f_plus`` L(w⁺), ``sam_norm`` ‖d(w)‖ = ‖∇L(w⁺) + λw‖,
    ``ratio`` = sam_norm / grad_norm, ``w_norm``; and the tensors ``grad`` (∇f), ``u``
    (unit ascent direction of L) and ``d`` (the SAM direction; ∇f for rho = 0).
    """
    loss, g, acc = net.loss_grad(w, x, y)
    gf = g + weight_decay * w
    gn = float(g.norm())
    u = g / gn if gn > 0 else torch.zeros_like(g)
    if rho > 0:
        loss_p, g_p, _ = net.loss_grad(w + rho * u, x, y)
        d = g_p + weight_decay * w
    else:
        loss_p, d = loss, gf
    f = loss + 0.5 * weight_decay * float(w.dot(w))
    grad_norm, sam_norm = float(gf.norm()), float(d.norm())
    return {"f": f, "loss": loss, "acc": acc, "grad_norm": grad_norm, "loss_grad_norm": gn,
            "f_plus": loss_p, "sam_norm": sam_norm,
            "ratio": sam_norm / grad_norm if grad_norm > 0 else math.inf,
            "w_norm": float(w.norm()), "grad": gf, "u": u, "d": d}


_LOG_KEYS = ("f", "loss", "acc", "grad_norm", "f_plus", "sam_norm", "ratio", "w_norm")


def _log_row(step: int, m: dict[str, Any], w: Tensor | None = None,
             w0: Tensor | None = None) -> dict[str, Any]:
    """One log row; with ``w`` and ``w0`` also ``dist_init`` = ‖w − w0‖."""
    row = {"step": step, **{k: m[k] for k in _LOG_KEYS}}
    if w is not None and w0 is not None:
        row["dist_init"] = float((w - w0).norm())
    return row


def _logged(k: int, total: int, every: int) -> bool:
    return k % every == 0 or k == total
