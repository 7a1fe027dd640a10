"""Sharpness-aware minimisation (SAM) for PyTorch models.

:class:`SAM` wraps any ``torch.optim.Optimizer`` (modelled on davda54/sam). One SAM step
at weights ``w`` with mini-batch gradient ``g = ∇f_B(w)`` is

1. ``first_step``: save ``w``; perturb ``w ← w + e(w)`` with

   * ``variant="sam"`` (default): ``e = ρ · T² g / ‖T g‖``, where the norm is ONE global
     norm over every parameter of every param group, computed in float32 (float64 where
     fp32 squares would under- or overflow, and for float64 parameters);
   * ``variant="usam"`` (unnormalised SAM): ``e = ρ · T² g``;

   ``T = 1`` for plain SAM and ``T = |w|`` element-wise for ``adaptive=True`` (ASAM,
   Kwon et al. 2021, with η = 0 as in davda54/sam). If the global norm is 0 (SAM variant)
   the perturbation is skipped, so a zero gradient never produces NaN.
2. the closure re-evaluates the loss at ``w + e`` and back-propagates, giving ``g⁺ = ∇f_B(w + e)``;
3. ``second_step``: restore ``w`` *bit-exactly* (the saved tensors are copied back; ``e`` is
   not subtracted) and call ``base_optimizer.step()`` with the gradient ``g⁺``.

Weight decay is the base optimizer's: it is applied to the SAM gradient at the restored
weights (SGD: ``g⁺ + λw``; AdamW: decoupled ``w ← w − ηλw``). The ascent direction ``e``
uses the loss gradient only, without a weight-decay term (as davda54/sam does).

Training loop (davda54 semantics: ``loss.backward()`` at ``w`` comes first)::

    from sam_hallucination.optim import SAM, frozen_bn_stats

    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9,
              weight_decay=5e-4, switch_at=0.1, total_steps=n_steps, rho_schedule="linear")
    for x, y in batches:                      # exactly n_steps iterations
        loss = loss_fn(model(x), y)
        loss.backward()

        def closure():                        # second pass at the perturbed weights
            with frozen_bn_stats(model):      # BN running stats update once per step
                loss_fn(model(x), y).backward()

        opt.step(closure)                     # plain base step while not opt.sam_active
        opt.zero_grad()

Contract: while SAM is not active (before the switch point) ``step(closure)`` performs a
plain base-optimizer step on the existing gradients and does **not** call the closure.

Switching remedy: ``switch_at=k`` (int ≥ 0) or ``switch_at=q`` (float in [0, 1), needs
``total_steps=T``; ``k = round(q·T)`` with Python's ``round``). Steps ``0 … k−1`` are base
steps, SAM runs from step index ``k`` exactly. ``sam_active`` says whether the *next* step
uses SAM; ``step_count`` counts completed steps (base and SAM).

Radius schedule (``rho_schedule``), for step index ``t = step_count`` and group radius ``ρ``:

* ``"constant"``: ``ρ_t = ρ``;
* ``"linear"`` (needs ``total_steps=T``): ``ρ_t = ρ · max(0, (T − 1 − t) / (T − 1 − k))``
  for ``t ≥ k``, so ``ρ_k = ρ`` at the switch and ``ρ_{T−1} = 0`` exactly at the last step
  (if ``k = T − 1`` the single SAM step uses ``ρ = 0``). Steps beyond ``T − 1`` use 0.

``current_rho`` is the radius the next step uses (first group; ``group_rhos()`` for all
groups), and is 0.0 while SAM is inactive. After every step ``last_grad_norm`` holds the
global ‖g(w)‖ and ``last_perturbed_grad_norm`` the global ‖g(w + e)‖ (before the base
step; ``None`` after a base-only step), both as 0-d float32 tensors (float64 for float64
parameters; no host sync).

Mixed precision: bf16 autocast works (norms are accumulated in float32). fp16 loss scaling
with ``torch.amp.GradScaler`` is **not supported**: ``scaler.step(sam)`` raises
``TypeError`` (the perturbation would use scaled, possibly inf gradients). Use bf16.

Manual two-pass use: ``first_step(zero_grad=True)``, forward/backward, ``second_step()``;
when ``sam_active`` is False call ``base_step()`` instead (``first_step`` raises then).

BatchNorm: :func:`frozen_bn_stats` (or :func:`disable_running_stats` /
:func:`enable_running_stats`) stops running statistics from updating during the perturbed
pass; normalisation still uses the batch statistics in train mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..checks import check_bool, check_radius, is_int
from .perturbation import (
    VARIANTS,
    _norm_dtype,
    adaptive_grads,
    apply_perturbation,
    foreach_copy,
    global_norm,
    normaliser,
    perturbation_scale,
)
from .schedule import rho_factor
from .state import (
    SCHEDULES,
    check_base_kwargs,
    check_checkpoint_groups,
    check_group,
    check_sam_state,
    resolve_switch,
)

Tensor = torch.Tensor

__all__ = ["SAM", "SCHEDULES"]



# ----------------------------------------------------------------------------- optimizer
class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation around a base optimizer (see the module docstring).

    Args:
        params: parameters or param-group dicts, as any torch optimizer accepts; a group
            may set its own ``rho`` and ``adaptive``.
        base_optimizer_cls: a ``torch.optim.Optimizer`` subclass, e.g. ``torch.optim.SGD``.
        rho: default perturbation radius (≥ 0; 0 reproduces the base optimizer bit-exactly).
        adaptive: ASAM scaling ``T = |w|``.
        variant: ``"sam"`` (normalised) or ``"usam"`` (``e = ρ g``).
        switch_at: base-only steps before SAM: int ``k ≥ 0`` or fraction in [0, 1) of
            ``total_steps``.
        total_steps: length of the run (needed for a fractional switch and the linear
            schedule).
        rho_schedule: ``"constant"`` or ``"linear"`` (decays to 0 at step ``total_steps−1``).
        **base_kwargs: passed to ``base_optimizer_cls`` (lr, momentum, weight_decay, ...).
    """

    # Makes GradScaler.step hand us ``grad_scale`` so that we can refuse it clearly.
    _step_supports_amp_scaling = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer_cls: type[torch.optim.Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
        variant: str = "sam",
        switch_at: int | float = 0,
        total_steps: int | None = None,
        rho_schedule: str = "constant",
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base_optimizer_cls, type)
                and issubclass(base_optimizer_cls, torch.optim.Optimizer)):
            raise TypeError(
                "base_optimizer_cls must be a torch.optim.Optimizer subclass (the class, not an "
                f"instance), e.g. base_optimizer_cls=torch.optim.SGD; got {base_optimizer_cls!r}"
            )
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors or dicts, e.g. "
                            "model.parameters(); got a single Tensor")
        params = list(params)
        if not params:
            raise ValueError("params is an empty list; pass model.parameters() of a model "
                             "with trainable parameters")
        rho = check_radius(rho)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if rho_schedule not in SCHEDULES:
            raise ValueError(f"rho_schedule must be one of {SCHEDULES}, got {rho_schedule!r}")
        if total_steps is not None and (not is_int(total_steps) or total_steps < 1):
            raise ValueError(f"total_steps must be a positive int or None, got {total_steps!r}")
        total_steps = None if total_steps is None else int(total_steps)  # np.int64 too
        if rho_schedule == "linear" and total_steps is None:
            raise ValueError("rho_schedule='linear' needs total_steps (the run length) so that "
                             "rho reaches 0 at the last step; pass total_steps=...")
        self.switch_step = resolve_switch(switch_at, total_steps)
        self.variant = variant
        self.total_steps = total_steps
        self.rho_schedule = rho_schedule
        self.step_count = 0
        self.last_grad_norm: Tensor | None = None
        self.last_perturbed_grad_norm: Tensor | None = None
        self._saved: list[Tensor] = []       # weight backups, reused between steps
        self._perturbed: list[Tensor] = []   # params perturbed by the pending first_step
        self._layout_key: tuple[int, ...] = ()
        self._uniform = True

        check_bool(adaptive, "adaptive")
        base_kwargs = check_base_kwargs(base_kwargs)  # lr, momentum, weight_decay finite
        defaults = dict(rho=rho, adaptive=adaptive, **base_kwargs)
        super().__init__(params, defaults)
        for i, group in enumerate(self.param_groups):
            check_group(group, f"param group {i}")
        self.base_optimizer = base_optimizer_cls(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups  # shared group dicts
        self.defaults.update(self.base_optimizer.defaults)

    # ------------------------------------------------------------------ schedule
    @property
    def sam_active(self) -> bool:
        """Whether the next step is a SAM step (``step_count >= switch_step``)."""
        return self.step_count >= self.switch_step

    def _rho_factor(self, t: int) -> float:
        return rho_factor(t, self.switch_step, self.total_steps, self.rho_schedule)

    def group_rhos(self) -> list[float]:
        """Radius each param group uses at the next step (0.0 while SAM is inactive)."""
        if not self.sam_active:
            return [0.0 for _ in self.param_groups]
        f = self._rho_factor(self.step_count)
        return [g["rho"] * f for g in self.param_groups]

    @property
    def current_rho(self) -> float:
        """Radius of the first param group at the next step (0.0 while SAM is inactive)."""
        return self.group_rhos()[0]

    # ------------------------------------------------------------------ steps
    def _params_with_grad(self) -> list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]:
        out = []
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if ps:
                out.append((group, ps, [p.grad for p in ps]))
        return out

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Save the weights and move to ``w + e(w)`` (global fp32 norm; see module doc)."""
        if not self.sam_active:
            raise RuntimeError(f"SAM is inactive until step {self.switch_step} (now "
                               f"{self.step_count}); call base_step() or use step(closure)")
        groups = self._params_with_grad()
        all_p = [p for _, ps, _ in groups for p in ps]
        all_g = [g for _, _, gs in groups for g in gs]
        if not all_p:
            raise RuntimeError("first_step found no gradients; call loss.backward() first")
        dtype = _norm_dtype(all_g)
        gnorm = normaliser(all_g, dtype)  # float64 fallback where fp32 under/overflows
        self.last_grad_norm = gnorm.value
        # normaliser ‖T g‖ over ALL groups (T = |w| in adaptive groups)
        if any(group["adaptive"] for group, _, _ in groups):
            tg: list[Tensor] = []
            for group, ps, gs in groups:
                tg.extend(adaptive_grads(ps, gs) if group["adaptive"] else gs)
            norm = normaliser(tg, dtype)
        else:
            norm = gnorm
        lift = norm.lift if self.variant == "sam" else None  # 2^100 for a subnormal ‖T g‖
        inv = perturbation_scale(norm.lifted, 1.0, self.variant)  # 1/‖T g‖ (SAM) or 1 (USAM)

        # save weights; buffers are reused while the set of parameters is unchanged
        key = tuple(map(id, all_p))
        if key != self._layout_key:
            self._saved = [torch.empty_like(p) for p in all_p]
            self._uniform = len({(p.device, p.dtype) for p in all_p}) == 1
            self._layout_key = key
        foreach_copy(self._saved, all_p)
        self._perturbed = all_p

        rhos = self.group_rhos()
        index = {id(g): i for i, g in enumerate(self.param_groups)}
        for group, ps, gs in groups:
            rho = rhos[index[id(group)]]
            if rho == 0.0:
                continue  # bit-exact base optimizer when rho = 0
            scale = inv * rho
            if self._uniform:
                scale = scale.to(dtype=ps[0].dtype)
            # gradients are discarded when zero_grad: scale them in place
            e = apply_perturbation(ps, gs, scale, adaptive=group["adaptive"], inplace=zero_grad,
                                   uniform=self._uniform, lift=lift)
            torch._foreach_add_(ps, e)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore the saved weights exactly, then take the base step with ∇f(w + e)."""
        if not self._perturbed:
            raise RuntimeError("second_step called without a pending first_step")
        grads = [p.grad for p in self._perturbed if p.grad is not None]
        self.last_perturbed_grad_norm = global_norm(grads)
        foreach_copy(self._perturbed, self._saved)
        self._perturbed = []
        self.base_optimizer.step()
        self.step_count += 1
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def base_step(self, zero_grad: bool = False) -> None:
        """A plain base-optimizer step on the current gradients (counts as a step)."""
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        self.last_grad_norm = global_norm(grads)
        self.last_perturbed_grad_norm = None
        self.base_optimizer.step()
        self.step_count += 1
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step: SAM (first_step, closure, second_step) or, before the switch, a base step.

        The closure must re-evaluate the loss and call ``backward()`` (else RuntimeError); it
        runs under ``torch.enable_grad()``, not while SAM is inactive. If it raises (OOM,
        Ctrl-C), ``w`` is restored bit-exactly before the exception propagates. Returns the
        closure's value (the loss at the perturbed weights), or ``None`` for a base step.
        """
        if getattr(self, "grad_scale", None) is not None:
            self.grad_scale = self.found_inf = None
            raise TypeError("SAM does not support torch.amp.GradScaler (fp16 loss scaling): the "
                            "perturbation would use scaled gradients. Use bf16 autocast without "
                            "a scaler, and call sam.step(closure) directly")
        if not self.sam_active:
            self.base_step()
            return None
        if closure is None:
            raise TypeError("SAM.step needs a closure that re-evaluates the loss and calls "
                            "backward(); or drive first_step()/second_step() by hand")
        self.first_step(zero_grad=True)
        try:
            with torch.enable_grad():
                loss = closure()
            if not any(p.grad is not None for p in self._perturbed):
                raise RuntimeError(
                    "the SAM closure computed no gradients: it must re-evaluate the loss and "
                    "call loss.backward() (e.g. def closure(): loss_fn(model(x), y).backward())")
        except BaseException:
            self.restore()  # never leave w + e behind (OOM, Ctrl-C, a bad closure)
            raise
        self.second_step()
        return loss

    @torch.no_grad()
    def restore(self) -> None:
        """Undo a pending ``first_step``: copy the saved weights back (bit-exact); no step."""
        if self._perturbed:
            foreach_copy(self._perturbed, self._saved)
            self._perturbed = []

    # ------------------------------------------------------------------ checkpointing
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (with optional ``rho``/``adaptive``) to SAM and the base optimizer."""
        if not hasattr(self, "base_optimizer"):  # during __init__
            super().add_param_group(param_group)
            return
        param_group.setdefault("rho", self.defaults["rho"])
        param_group.setdefault("adaptive", self.defaults["adaptive"])
        check_group(param_group, "new param group")
        self.base_optimizer.add_param_group(param_group)

    def state_dict(self) -> dict[str, Any]:
        """Base optimizer state (incl. groups with rho/adaptive) + step count and schedule.

        Refused between ``first_step`` and ``second_step`` (the weights are then ``w + e``).
        """
        if self._perturbed:
            raise RuntimeError("SAM.state_dict() called between first_step() and second_step(): "
                               "the weights are perturbed; call second_step() (or restore()) "
                               "before checkpointing")
        return {
            "base": self.base_optimizer.state_dict(),
            "sam": {
                "step_count": self.step_count,
                "switch_step": self.switch_step,
                "total_steps": self.total_steps,
                "rho_schedule": self.rho_schedule,
                "variant": self.variant,
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; training resumes with identical steps."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"base", "sam"}:
            raise ValueError("state_dict must come from SAM.state_dict() (keys 'base', 'sam')")
        sam = state_dict["sam"]
        check_sam_state(sam)
        check_checkpoint_groups(state_dict["base"])  # rho=NaN would give NaN weights
        self.restore()
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.param_groups = self.base_optimizer.param_groups
        for i, group in enumerate(self.param_groups):
            check_group(group, f"checkpoint param group {i}")  # np.float32 rho -> float
        self.step_count = int(sam["step_count"])
        self.switch_step = int(sam["switch_step"])
        self.total_steps = sam["total_steps"]
        self.rho_schedule = sam["rho_schedule"]
        self.variant = sam["variant"]

    def __repr__(self) -> str:
        return (f"SAM(base={type(self.base_optimizer).__name__}, variant={self.variant!r}, "
                f"rho={self.defaults['rho']}, switch_step={self.switch_step}, "
                f"total_steps={self.total_steps}, rho_schedule={self.rho_schedule!r})")
