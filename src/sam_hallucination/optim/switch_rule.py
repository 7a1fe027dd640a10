"""SGD first, then SAM, switched on by a measured signal instead of a fixed fraction.

:class:`SignalSwitchSAM` runs its base optimizer while SAM is off. Every ``check_every``
base steps it also evaluates the step's closure at ``w + ρ g/‖g‖`` on that same batch (the
weights are restored bit-exactly and the base step uses the batch's own gradient), keeping
the last ``window`` pairs ``(g_i, h_i)``. With a full window it estimates SAM's first-order
progress relative to SGD's, ``⟨E g, E h⟩ / ‖E g‖²``, as a ratio of U-statistics (pairs
``i ≠ j`` only, so batch noise does not inflate it). SAM switches on after the first check
whose progress reaches ``threshold``, and at the latest at ``max_frac`` of the run.

The rule reads: switch when SAM's step, at the run's ρ, would descend at least ``threshold``
as fast as SGD's does here. A check costs one extra forward-backward pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .perturbation import foreach_copy, perturbation
from .sam import SAM


def progress_ratio(gs: list[Tensor], hs: list[Tensor]) -> float:
    """``Σ_{i≠j} g_i·h_j / Σ_{i≠j} g_i·g_j`` over the window (nan if the second is <= 0)."""
    g, h = torch.stack(gs), torch.stack(hs)
    gg, gh = g @ g.T, g @ h.T
    ugg = float(gg.sum() - gg.diagonal().sum())
    ugh = float(gh.sum() - gh.diagonal().sum())
    return ugh / ugg if ugg > 0 else float("nan")


class SignalSwitchSAM(SAM):
    """:class:`SAM` whose switch step is set by :func:`progress_ratio` (see the module doc).

    ``history`` lists ``(step, progress)`` of every check; ``switched_by`` is ``"signal"``,
    ``"cap"`` (reached ``max_frac``) or ``None`` (still off).
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]],
                 base_optimizer_cls: type[torch.optim.Optimizer], *, total_steps: int,
                 threshold: float = 0.5, window: int = 8, check_every: int = 5,
                 max_frac: float = 0.7, **kw: Any) -> None:
        if not (0 < max_frac < 1) or not (window >= 2) or not (check_every >= 1):
            raise ValueError(f"SignalSwitchSAM: need 0 < max_frac < 1, window >= 2 and "
                             f"check_every >= 1; got {max_frac}, {window}, {check_every}")
        if not (threshold == threshold):  # NaN
            raise ValueError("SignalSwitchSAM: threshold must be a number, got NaN")
        super().__init__(params, base_optimizer_cls, switch_at=float(max_frac),
                         total_steps=total_steps, **kw)
        self.threshold, self.check_every = float(threshold), int(check_every)
        self._window: deque[tuple[Tensor, Tensor]] = deque(maxlen=int(window))
        self.history: list[tuple[int, float]] = []
        self.switched_by: str | None = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        if self.sam_active:
            if self.switched_by is None:
                self.switched_by = "cap"
            return super().step(closure)
        if closure is None or self.step_count % self.check_every:
            return super().step(closure)
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        grads = [p.grad.detach().clone() for p in params]
        saved = [p.detach().clone() for p in params]
        rho = self.param_groups[0]["rho"]
        torch._foreach_add_(params, perturbation(params, grads, rho, variant=self.variant,
                                                 adaptive=self.param_groups[0]["adaptive"]))
        try:
            for p in params:
                p.grad = None
            with torch.enable_grad():
                closure()
            h = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                 for p in params]
        finally:
            foreach_copy(params, saved)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
        flat = lambda ts: torch.cat([t.reshape(-1) for t in ts]).double()  # noqa: E731
        self._window.append((flat(grads), flat(h)))
        if len(self._window) == self._window.maxlen:
            gs, hs = zip(*self._window, strict=True)
            prog = progress_ratio(list(gs), list(hs))
            self.history.append((self.step_count, prog))
            if prog >= self.threshold:
                self.switch_step = self.step_count + 1  # SAM from the next step on
                self.switched_by = "signal"
        self.base_step()
        return None
