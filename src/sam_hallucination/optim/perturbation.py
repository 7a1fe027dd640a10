"""The SAM perturbation, written once: e = ρ T² g / ‖T g‖ (SAM) or ρ T² g (USAM).

``T = |w|`` element-wise for ASAM (``adaptive``), else 1. :class:`~.sam.SAM` and
:func:`sam_hallucination.diagnostics.stall_diagnostics` both perturb through
:func:`perturbation_scale` and :func:`apply_perturbation`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..checks import check_radius

Tensor = torch.Tensor

VARIANTS = ("sam", "usam")


def _norm_dtype(tensors: list[Tensor]) -> torch.dtype:
    """float32, or float64 when any tensor is float64 (never below float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _stacked_norm(tensors: list[Tensor], dtype: torch.dtype) -> Tensor:
    norms = torch._foreach_norm(tensors, 2, dtype=dtype)
    try:
        stacked = torch.stack(norms)
    except RuntimeError:  # parameters on several devices
        stacked = torch.stack([n.to(tensors[0].device) for n in norms])
    return torch.linalg.vector_norm(stacked)


# fp32 squares lose digits below ~1e-19 (subnormal) and overflow above ~1.8e19, so a
# gradient of 1e-40 had norm 0 and one of 1e30 norm inf: both gave a zero perturbation.
_SOUND = 2.0**-50  # an fp32 norm at least this large (and finite) is exact to rounding
_LIFT = 2.0**100  # exact power of two that lifts a subnormal gradient into normal range


class Norm(NamedTuple):
    """A global norm for normalising: ``value`` = ‖t‖ (in the norm dtype) and, when ‖t‖ is
    too small for fp32 (< 2^-50), an exact power of two ``lift`` with ``lifted`` = lift·‖t‖
    a normal number. ``lift`` is None for float64 (its squares never under/overflow for
    gradients); otherwise a 0-d tensor, 1 where the norm is sound."""

    value: Tensor
    lift: Tensor | None
    lifted: Tensor


def normaliser(tensors: list[Tensor], dtype: torch.dtype | None = None) -> Norm:
    """‖(t_1, …, t_n)‖₂ with a float64 fallback where the fp32 norm under- or overflows.

    Where the fp32 norm is sound it is returned bit-for-bit (results do not move);
    ``torch.where`` picks the fallback on the device, without a host sync.
    """
    dtype = dtype or _norm_dtype(tensors)
    if not tensors:
        zero = torch.zeros((), dtype=dtype)
        return Norm(zero, None, zero)
    n = _stacked_norm(tensors, dtype)
    if dtype == torch.float64:
        return Norm(n, None, n)
    n64 = _stacked_norm(tensors, torch.float64)  # float64 holds the square of every fp32
    sound = (n >= _SOUND) & (n < math.inf)
    tiny = (n64 < _SOUND) & (n64 > 0)  # not at 0: 0·2^100 stays 0, no inf in fp16
    lift64 = torch.where(tiny, _LIFT, 1.0).to(torch.float64)
    value = torch.where(sound, n, n64.to(dtype))
    lifted = torch.where(sound, n, (n64 * lift64).to(dtype))
    return Norm(value, lift64.to(dtype), lifted)


def global_norm(tensors: list[Tensor], dtype: torch.dtype | None = None) -> Tensor:
    """‖(t_1, …, t_n)‖₂ over all tensors as a 0-d tensor, accumulated in ``dtype``.

    ``dtype`` defaults to float32 (float64 if any tensor is float64); no host sync. Where
    the fp32 squares under- or overflow the norm is taken in float64 (:func:`normaliser`).
    """
    return normaliser(tensors, dtype).value


def foreach_copy(dst: list[Tensor], src: list[Tensor]) -> None:
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(dst, src)
    else:  # pragma: no cover - old torch
        for d, s in zip(dst, src, strict=True):
            d.copy_(s)


def adaptive_grads(params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
    """T g with T = |w| (ASAM): the vector whose norm normalises the perturbation."""
    return torch._foreach_mul(params, grads)


def perturbation_scale(norm: Tensor, rho: float | Tensor, variant: str = "sam") -> Tensor:
    """ρ / ‖T g‖ for SAM (0 where the norm is 0, so a zero gradient never gives NaN); ρ for USAM."""
    if variant == "sam":
        inv = torch.where(norm > 0, 1.0 / norm.clamp_min(torch.finfo(norm.dtype).tiny), 0.0)
    elif variant == "usam":
        inv = torch.ones((), dtype=norm.dtype, device=norm.device)
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return inv * rho


def apply_perturbation(params: list[Tensor], grads: list[Tensor], scale: Tensor, *,
                       adaptive: bool = False, inplace: bool = False,
                       uniform: bool | None = None, lift: Tensor | None = None) -> list[Tensor]:
    """e = scale · (lift · T² g) (new tensors; ``inplace=True`` scales the gradients themselves).

    ``uniform``: all tensors share one device and dtype (computed when None). ``lift``: the
    power of two of :class:`Norm` (``scale`` then uses ``Norm.lifted``); the product is the
    same, but neither factor overflows fp32 for a subnormal gradient.
    """
    if uniform is None:
        uniform = len({(p.device, p.dtype) for p in params}) <= 1
        if uniform and params:
            scale = scale.to(device=params[0].device, dtype=params[0].dtype)
    if lift is not None and uniform and params:
        lift = lift.to(device=params[0].device, dtype=params[0].dtype)
    if adaptive:
        e = torch._foreach_mul(params, params)
        torch._foreach_mul_(e, grads)
        if lift is not None:
            e = _scaled(e, lift, inplace=True, uniform=uniform)
        return _scaled(e, scale, inplace=True, uniform=uniform)
    if lift is not None:  # g · 1 is exact: sound norms give the same bits as before
        grads = _scaled(grads, lift, inplace=inplace, uniform=uniform)
        inplace = True
    return _scaled(grads, scale, inplace=inplace, uniform=uniform)


def perturbation(
    params: list[Tensor],
    grads: list[Tensor],
    rho: float | Tensor,
    *,
    variant: str = "sam",
    adaptive: bool = False,
    norm: Tensor | None = None,
) -> list[Tensor]:
    """The SAM/USAM/ASAM perturbation ``e`` (new tensors) for one radius.

    ``norm`` overrides ``‖T g‖`` (e.g. a global norm over several groups).
    """
    if not isinstance(rho, Tensor):  # rho=NaN or -1 gave a NaN or reversed e
        check_radius(rho)
    lift = None
    if norm is None:
        n = normaliser(adaptive_grads(params, grads) if adaptive else grads)
        norm, lift = n.lifted, (n.lift if variant == "sam" else None)
    return apply_perturbation(params, grads, perturbation_scale(norm, rho, variant),
                              adaptive=adaptive, lift=lift)


def _scale_(tensors: list[Tensor], scale: Tensor) -> None:
    """In-place tensors *= scale (0-d tensor), grouped by device and dtype."""
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for (dev, dt), ts in groups.items():
        torch._foreach_mul_(ts, scale.to(device=dev, dtype=dt))


def _scaled(tensors: list[Tensor], scale: Tensor, inplace: bool, uniform: bool) -> list[Tensor]:
    """tensors * scale (new tensors, or in place); ``uniform``: one device and dtype."""
    if uniform:
        if inplace:
            torch._foreach_mul_(tensors, scale)
            return tensors
        return torch._foreach_mul(tensors, scale)
    out = tensors if inplace else [t.clone() for t in tensors]
    _scale_(out, scale)
    return out
