"""SAM dynamics on test landscapes: a batched engine, hallucinated points, stability, end states.

Everything is float64 torch.

* :func:`iterate` runs deterministic or stochastic GD, SAM and USAM from many starting points
  at once (optionally a different ρ and η per point), with closed-form gradients where the
  landscape has them.
* :func:`solve_hallucinated` finds a hallucinated point, a solution of ∇f(x⁺) = 0 with
  ∇f(x) ≠ 0, by Newton's method with the Jacobian from ``torch.func.jacrev``. It returns a
  :class:`HallucinationSolve` whose ``converged`` flag is False (never a silent wrong point)
  when the residual is not met or when the iteration lands on a true critical point of f.
* :func:`sam_map`, :func:`sam_map_jacobian` and :func:`spectral_radius` analyse the SAM map
  T(x) = x − η ∇f(x + ρ u(x)).
* :func:`classify` sorts final iterates into :class:`EndState` classes.

Noise model (stochastic SAM). Each gradient evaluation may be replaced by ∇f(z) + σ ξ with
ξ ~ N(0, I_d), drawn afresh for every point and every evaluation. ``noise_on`` chooses which
evaluation is noisy: ``"perturbation"`` (the gradient that defines u), ``"step"`` (the
gradient at x⁺ used for the update) or ``"both"`` (independent draws). With
``shared_noise=True`` and ``"both"`` the same ξ is used for both evaluations of a step, which
mimics one minibatch used twice, with noise that does not depend on the point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ...checks import check_count, check_single_point, check_tol
from ...checks import check_points as _check_points
from ...checks import check_positive as _check_positive
from ...checks import per_point as _per_point
from ...methods import method_names
from ..landscapes import DTYPE, Landscape
from ..sam import ascent_direction

Tensor = torch.Tensor

METHODS = method_names("rd")  # ("gd", "sam", "usam")
NOISE_TARGETS = ("perturbation", "step", "both")

# ------------------------------------------------------------------------------ the SAM map

def perturbed(landscape: Landscape, x: Tensor, rho, method: str = "sam") -> Tensor:
    """x⁺ = x + ρ ∇f(x)/‖∇f(x)‖ (SAM), x + ρ ∇f(x) (USAM) or x (GD); batched."""
    if method == "gd":
        return x
    g = landscape.grad(x)
    return x + rho * (ascent_direction(g) if method == "sam" else g)


def step_direction(landscape: Landscape, x: Tensor, rho, method: str = "sam") -> Tensor:
    """The direction the method steps against: ∇f(x⁺) (∇f(x) for GD); batched."""
    return landscape.grad(perturbed(landscape, x, rho, method))


def sam_map(landscape: Landscape, x: Tensor, rho: float, eta: float, method: str = "sam") -> Tensor:
    """T(x) = x − η ∇f(x⁺): one deterministic step of ``method``; batched."""
    return x - eta * step_direction(landscape, x, rho, method)


def _grad_fn(landscape: Landscape) -> Callable[[Tensor], Tensor]:
    """A gradient for one point (d,) that composes with torch.func transforms."""
    if landscape.grad_closed_form is not None:
        return landscape.grad_closed_form
    return torch.func.grad(landscape.f)


def _single_map(landscape: Landscape, rho: float, eta: float, method: str) -> Callable:
    g = _grad_fn(landscape)

    def T(x: Tensor) -> Tensor:
        gx = g(x)
        if method == "sam":
            xp = x + rho * gx / torch.linalg.vector_norm(gx)
        elif method == "usam":
            xp = x + rho * gx
        else:
            xp = x
        return x - eta * g(xp)

    return T



# ------------------------------------------------------------------------------ batched engine

@dataclass
class RunResult:
    """Output of :func:`iterate`.

    x: final iterates (B, d). steps: steps each point actually took (B,); points frozen early
    (converged or diverged, with ``early_stop``) took fewer. history: (T, B, d) iterates every
    ``record_every`` steps (step 0 included), or None.
    """

    x: Tensor
    steps: Tensor
    method: str
    history: Tensor | None = None
    meta: dict = field(default_factory=dict)


def iterate(
    landscape: Landscape,
    x0,
    *,
    rho=1.0,
    eta=0.1,
    steps: int = 1000,
    method: str = "sam",
    noise: float = 0.0,
    noise_on: str = "both",
    shared_noise: bool = False,
    seed: int = 0,
    record_every: int | None = None,
    early_stop: bool = True,
    tol: float = 1e-12,
    check_every: int = 50,
    div_radius: float = 1e6,
) -> RunResult:
    """Run ``method`` ∈ {"gd", "sam", "usam"} from every row of ``x0`` (B, d) in parallel.

    ``rho``, ``eta`` and ``noise`` (σ) are scalars or per-point tensors of shape (B,). With ``early_stop``
    (deterministic runs without a history only) a point is frozen once its step direction
    has norm ≤ ``tol`` (a fixed point to rounding) or once it leaves the ball of radius
    ``div_radius`` or becomes non-finite (diverged); the batch shrinks as points finish, which
    makes phase diagrams cheap. Noise: see the module docstring.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if noise_on not in NOISE_TARGETS:
        raise ValueError(f"noise_on must be one of {NOISE_TARGETS}, got {noise_on!r}")
    steps = check_count("steps", steps, minimum=0)  # steps=True is no step count
    check_every = check_count("check_every", check_every)  # 0 would loop forever
    if record_every is not None:
        record_every = check_count("record_every", record_every)
    check_tol("tol", tol)
    check_tol("div_radius", div_radius, positive=True)
    seed = check_count("seed", seed, minimum=0)
    x = _check_points(x0, landscape.dim)
    B = x.shape[0]
    try:
        noise_t = torch.as_tensor(noise, dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"noise={noise!r}: must be a real number or a (B,) array of them") from None
    if not torch.isfinite(noise_t).all() or (noise_t < 0).any():
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}; pass e.g. noise=0.1")
    noise_t = _per_point(noise_t, B, "noise")
    eta_t = _per_point(_check_positive("eta", eta, "0.1"), B, "eta")
    rho_t = (_per_point(_check_positive("rho", rho, "1.5"), B, "rho") if method != "gd"
             else torch.zeros(B, 1, dtype=DTYPE))
    gen = torch.Generator().manual_seed(seed)
    noisy = bool((noise_t > 0).any())
    early_stop = early_stop and not noisy and record_every is None
    grad = landscape.grad
    d = landscape.dim

    def one_step(x: Tensor, rho_a: Tensor, eta_a: Tensor) -> Tensor:
        xi = torch.randn(x.shape, generator=gen, dtype=DTYPE) if noisy else None
        if method == "gd":
            g = grad(x)
            if noisy:
                g += noise_t * xi
            return x.sub_(eta_a * g)
        g = grad(x)
        if noisy and noise_on in ("perturbation", "both"):
            g += noise_t * xi
        if method == "sam":
            # g/‖g‖; at an exact critical point g = 0 stays 0 (u = 0, x⁺ = x)
            g.div_(torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min_(1e-300))
        gp = grad(g.mul_(rho_a).add_(x))
        if noisy and noise_on in ("step", "both"):
            if noise_on == "both" and not shared_noise:
                xi = torch.randn(x.shape, generator=gen, dtype=DTYPE)
            gp += noise_t * xi
        return x.sub_(gp.mul_(eta_a))

    taken = torch.zeros(B, dtype=torch.long)
    history = [x.clone()] if record_every else None
    if not early_stop:
        for k in range(1, steps + 1):
            x = one_step(x, rho_t, eta_t)
            if history is not None and k % record_every == 0:
                history.append(x.clone())
        taken[:] = steps
        hist = torch.stack(history) if history is not None else None
        return RunResult(x=x, steps=taken, method=method, history=hist,
                         meta={"rho": rho, "eta": eta, "noise": noise, "noise_on": noise_on})

    active = torch.arange(B)
    xa, ra, ea = x.clone(), rho_t.clone(), eta_t.clone()
    done = 0
    while done < steps and active.numel() > 0:
        n_chunk = min(check_every, steps - done)
        for _ in range(n_chunk):
            xa = one_step(xa, ra, ea)
        done += n_chunk
        taken[active] = done
        x[active] = xa
        finite = torch.isfinite(xa).all(-1)
        big = ~finite | (torch.linalg.vector_norm(torch.nan_to_num(xa, nan=0.0), dim=-1) > div_radius)
        resid = torch.linalg.vector_norm(
            step_direction(landscape, torch.nan_to_num(xa), ra, method), dim=-1)
        keep = ~big & ~(resid <= tol)
        active, xa, ra, ea = active[keep], xa[keep], ra[keep], ea[keep]
    assert x.shape[-1] == d
    return RunResult(x=x, steps=taken, method=method, history=None,
                     meta={"rho": rho, "eta": eta, "noise": noise, "noise_on": noise_on})


def naive_sam_loop(landscape: Landscape, x0: Sequence[float], rho: float, eta: float,
                   steps: int) -> list[float]:
    """Reference implementation: one point, plain Python floats, autograd-free closed form.

    Only for benchmarking the batched engine against a per-point loop.
    """
    steps = check_count("steps", steps, minimum=0)  # steps=-3 returned the start
    rho, eta = float(_check_positive("rho", rho, "1.5")), float(_check_positive("eta", eta, "0.1"))
    x = check_single_point(x0, landscape.dim).tolist()  # finite, shape (d,)
    for _ in range(steps):
        g = landscape.grad(torch.tensor(x, dtype=DTYPE)).tolist()
        n = math.sqrt(sum(v * v for v in g))
        xp = [xi + rho * gi / n for xi, gi in zip(x, g, strict=True)] if n > 0 else x
        gp = landscape.grad(torch.tensor(xp, dtype=DTYPE)).tolist()
        x = [xi - eta * gi for xi, gi in zip(x, gp, strict=True)]
    return x
