"""Stall diagnostics: does SAM stop at a point that is not stationary?

At the current weights ``w`` and for a list of mini-batches ``B_1 … B_n``,
:func:`stall_diagnostics` measures

* ``loss`` = mean_i f_i(w) and ``loss_perturbed`` = mean_i f_i(w + ρ u_i(w)), where
  ``u_i`` is the per-batch SAM direction (``g_i/‖g_i‖``, ``g_i = ∇f_i(w)``; USAM: ``g_i``;
  ASAM: ``T² g_i / ‖T g_i‖`` with ``T = |w|``), exactly the perturbation of
  :class:`sam_hallucination.optim.SAM`;
* ``grad_norm`` = ‖mean_i g_i + λw‖, the full regularised gradient norm;
* ``sam_step_norm`` = ‖mean_i ∇f_i(w + ρ u_i(w)) + λw‖, the expected SAM step (the direction
  SGD-with-weight-decay steps along, per unit learning rate);
* ``ratio`` = sam_step_norm / grad_norm.

A SAM stall at a non-stationary point shows as ``sam_step_norm`` within its noise floor of 0
while ``grad_norm`` is many noise floors above 0 (``ratio`` ≪ 1).

Noise floors (precisely). With per-batch vectors ``v_i`` (``g_i`` or the perturbed gradient)
and per-coordinate sample variance ``s² = Σ_i (v_i − v̄)² / (n − 1)`` (ddof = 1), the
standard error of a norm is ``se = ‖s‖ / √n = sqrt(tr Σ̂ / n)``, the root-mean-square size
of the error vector of the mean ``v̄``. Because ``E‖v̄ − μ‖² = tr Σ / n``, a norm within a
few ``se`` of 0 is indistinguishable from 0. ``loss_se`` / ``loss_perturbed_se`` are the
ordinary standard errors of the mean losses. With ``bootstrap = m > 0``, batches are
resampled with replacement ``m`` times (``torch.Generator`` seeded with ``seed``) and the
``*_boot_std`` fields give the standard deviation (ddof = 1) of each norm and of the
ratio over the resamples (this keeps one flattened gradient per batch in memory).
With a single batch the standard errors are NaN.

Example (measure at a constant small learning rate, see the paper notes)::

    from sam_hallucination.diagnostics import stall_diagnostics
    d = stall_diagnostics(model, F.cross_entropy, batches[:16], rho=0.05,
                          weight_decay=5e-4, bootstrap=200)
    print(d.as_dict())
    d.looks_stalled(z=3.0)

The model is left untouched: weights are restored bit-exactly, BatchNorm running statistics
and every module's train/eval flag are as before, ``.grad`` fields are not touched and the
global RNG state is restored. Batches all get equal weight (use equal batch sizes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .checks import check_bool, check_count, check_radius, check_tol
from .optim import VARIANTS, foreach_copy, frozen_bn_stats, perturbation

Tensor = torch.Tensor


@dataclass
class StallDiagnostics:
    """Result of :func:`stall_diagnostics` (see the module docstring for definitions)."""

    n_batches: int
    rho: float
    weight_decay: float
    variant: str
    adaptive: bool
    loss: float
    loss_perturbed: float
    loss_se: float
    loss_perturbed_se: float
    grad_norm: float
    sam_step_norm: float
    ratio: float
    grad_se: float
    sam_step_se: float
    n_zero_grad: int = 0
    bootstrap: int = 0
    grad_norm_boot_std: float | None = None
    sam_step_norm_boot_std: float | None = None
    ratio_boot_std: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (JSON-serialisable)."""
        return asdict(self)

    def looks_stalled(self, z: float = 3.0) -> bool:
        """SAM step within ``z`` noise floors of 0 while the gradient is ``z`` floors above it.

        Without noise floors (one batch) no stall can be claimed: False.
        """
        check_tol("z", z, positive=True)
        if not (math.isfinite(self.sam_step_se) and math.isfinite(self.grad_se)):
            return False
        return self.sam_step_norm <= z * self.sam_step_se and self.grad_norm > z * self.grad_se


class _Moments:
    """Running mean and sum of squared deviations (Welford) of flat vectors."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, v: Tensor) -> None:
        self.n += 1
        if self.mean is None:
            self.mean, self.m2 = v.clone(), torch.zeros_like(v)
            return
        d = v - self.mean
        self.mean += d / self.n
        self.m2 += d * (v - self.mean)

    def se(self) -> float:
        """‖s‖/√n with the ddof=1 per-coordinate standard deviation s (NaN for n < 2)."""
        if self.n < 2:
            return math.nan
        return math.sqrt(float(self.m2.sum()) / (self.n - 1) / self.n)


def _flat(ts: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _boot_norms(vs: Tensor, reg: Tensor, counts: Tensor) -> Tensor:
    """‖counts·vs/n + reg‖ per resample via the Gram matrix; vs (n, d), counts (m, n)."""
    n = vs.shape[0]
    gram = vs @ vs.T
    a = vs @ reg
    sq = ((counts @ gram) * counts).sum(1) / n**2 + 2 * counts @ a / n + reg @ reg
    return sq.clamp_min(0).sqrt()


def stall_diagnostics(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    rho: float,
    weight_decay: float = 0.0,
    variant: str = "sam",
    adaptive: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    train_mode: bool = False,
) -> StallDiagnostics:
    """Loss, gradient and expected-SAM-step norms with noise floors at the current weights.

    Args:
        model: the network; it is left bit-identical (weights, buffers, modes, grads).
        loss_fn: ``loss_fn(model(x), y)`` → scalar mean loss of a batch.
        batches: iterable of ``(x, y)`` pairs (at least one); equal weight each.
        rho: SAM radius (≥ 0).
        weight_decay: λ of the coupled L2 term ``λw`` added to both mean vectors.
        variant: ``"sam"`` or ``"usam"``; adaptive: ASAM scaling ``T = |w|``.
        bootstrap: number of batch-bootstrap resamples (0: none); seed: their seed.
        train_mode: evaluate with the model in train mode (batch statistics in BatchNorm,
            running statistics frozen; dropout active) instead of eval mode.
    """
    rho = check_radius(rho)
    lam = check_radius(weight_decay, "weight_decay")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    bootstrap = check_count("bootstrap", bootstrap, minimum=0)  # resamples; np.int64 too
    seed = check_count("seed", seed, minimum=0)
    check_bool(train_mode, "train_mode")
    check_bool(adaptive, "adaptive")
    if bootstrap == 1:
        raise ValueError("bootstrap=1 gives no spread; pass bootstrap=0 or >= 2 (e.g. 200)")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    for name, p in named:  # NaN norms compare False: a diverged run read "not stalled"
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f"parameter {name!r} has NaN or inf weights: the run diverged; "
                             "stall diagnostics need finite weights")
    params = [p for _, p in named]

    modes = {m: m.training for m in model.modules()}
    buffers = [b.detach().clone() for b in model.buffers()]
    saved = [p.detach().clone() for p in params]
    cuda = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    losses, losses_p = [], []
    mom_g, mom_h = _Moments(), _Moments()
    keep_g: list[Tensor] = []
    keep_h: list[Tensor] = []
    n_zero = 0
    try:
        model.train(train_mode)
        with torch.random.fork_rng(devices=cuda), frozen_bn_stats(model):
            for x, y in batches:
                with torch.enable_grad():
                    loss = loss_fn(model(x), y)
                    g = list(torch.autograd.grad(loss, params, allow_unused=True))
                g = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, params, strict=True)]
                with torch.no_grad():
                    e = perturbation(params, g, rho, variant=variant, adaptive=adaptive)
                    n_zero += int(all(not bool(gi.any()) for gi in g))
                    torch._foreach_add_(params, e)
                try:
                    with torch.enable_grad():
                        loss_p = loss_fn(model(x), y)
                        h = list(torch.autograd.grad(loss_p, params, allow_unused=True))
                finally:
                    with torch.no_grad():
                        foreach_copy(params, saved)
                h = [torch.zeros_like(p) if hi is None else hi for hi, p in zip(h, params, strict=True)]
                losses.append(float(loss.detach()))
                losses_p.append(float(loss_p.detach()))
                fg, fh = _flat(g).detach(), _flat(h).detach()
                if not (math.isfinite(losses[-1] + losses_p[-1])
                        and bool(torch.isfinite(fg).all() & torch.isfinite(fh).all())):
                    raise ValueError(f"batch {len(losses) - 1} gives a NaN or inf loss or "
                                     "gradient (at w or w + e); stall diagnostics need finite "
                                     "values: check the batch and rho")
                mom_g.add(fg)
                mom_h.add(fh)
                if bootstrap:
                    keep_g.append(fg)
                    keep_h.append(fh)
    finally:
        with torch.no_grad():
            foreach_copy(params, saved)
            for b, s in zip(model.buffers(), buffers, strict=True):
                b.copy_(s)
        for m, flag in modes.items():
            m.training = flag

    n = len(losses)
    if n == 0:
        raise ValueError("batches is empty; pass at least one (x, y) batch (two for noise floors)")
    reg = lam * _flat(saved)
    gn = float(torch.linalg.vector_norm(mom_g.mean + reg))
    hn = float(torch.linalg.vector_norm(mom_h.mean + reg))
    lt, lpt = torch.tensor(losses, dtype=torch.float64), torch.tensor(losses_p, dtype=torch.float64)
    out = StallDiagnostics(
        n_batches=n, rho=rho, weight_decay=lam, variant=variant, adaptive=bool(adaptive),
        loss=float(lt.mean()), loss_perturbed=float(lpt.mean()),
        loss_se=float(lt.std() / math.sqrt(n)) if n > 1 else math.nan,
        loss_perturbed_se=float(lpt.std() / math.sqrt(n)) if n > 1 else math.nan,
        grad_norm=gn, sam_step_norm=hn, ratio=hn / gn if gn > 0 else math.inf,
        grad_se=mom_g.se(), sam_step_se=mom_h.se(), n_zero_grad=n_zero, bootstrap=bootstrap,
    )
    if bootstrap:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, n, (bootstrap, n), generator=gen)
        dt = torch.float64
        counts = torch.zeros(bootstrap, n, dtype=dt).scatter_add_(
            1, idx, torch.ones(bootstrap, n, dtype=dt))
        vg, vh = torch.stack(keep_g).to(dt).cpu(), torch.stack(keep_h).to(dt).cpu()
        r = reg.to(dt).cpu()
        bg, bh = _boot_norms(vg, r, counts), _boot_norms(vh, r, counts)
        out.grad_norm_boot_std = float(bg.std())
        out.sam_step_norm_boot_std = float(bh.std())
        out.ratio_boot_std = float((bh / bg).std())
    return out
