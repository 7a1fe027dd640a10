"""End states, phase diagrams and the noise study (Chapters 2 and 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
from torch.func import hessian, vmap

from ...checks import check_count, check_grid, check_single_point, check_tol
from ..landscapes import DTYPE, Landscape
from .engine import METHODS, iterate, step_direction

Tensor = torch.Tensor


# Settings for chapters 2 and 3, by profile.
PROFILES: dict[str, dict] = {
    "quick": {
        "phase_n_rho": 120, "phase_n_eta": 100, "phase_starts": 10, "phase_steps": 1500,
        "noise_points": 400, "noise_steps": 3000, "noise_levels": 13,
        "ring_rhos": (1.1, 1.25, 1.5, 1.75, 1.9), "continuation_step": 0.01,
    },
    "full": {
        "phase_n_rho": 240, "phase_n_eta": 200, "phase_starts": 25, "phase_steps": 4000,
        "noise_points": 2000, "noise_steps": 10000, "noise_levels": 25,
        "ring_rhos": (1.05, 1.1, 1.25, 1.5, 1.75, 1.9, 1.95), "continuation_step": 0.002,
    },
}


# ------------------------------------------------------------------------------ classifier

class EndState(IntEnum):
    """End states of a run (see :func:`classify` for the tolerances)."""

    MINIMIZER = 0
    HALLUCINATED = 1
    STATIONARY_NON_MIN = 2
    DIVERGED = 3
    NOT_CONVERGED = 4


END_STATE_LABELS = {
    EndState.MINIMIZER: "true minimizer",
    EndState.HALLUCINATED: "hallucinated point",
    EndState.STATIONARY_NON_MIN: "stationary non-minimum",
    EndState.DIVERGED: "diverged",
    EndState.NOT_CONVERGED: "not converged",
}


def classify(
    landscape: Landscape,
    x,
    *,
    rho=1.0,
    method: str = "sam",
    tol_step: float = 1e-8,
    tol_grad: float = 1e-6,
    tol_curv: float = 1e-6,
    div_radius: float = 1e6,
) -> Tensor:
    """Classify final iterates x (B, d) into :class:`EndState` codes (B,) (torch.long).

    1. DIVERGED: x non-finite or ‖x‖ > ``div_radius``.
    2. ‖∇f(x)‖ ≤ ``tol_grad``: x is a critical point of f. It is a MINIMIZER if the smallest
       eigenvalue of ∇²f(x) is ≥ −``tol_curv`` (degenerate minimizers such as the ring's circle
       count) and a STATIONARY_NON_MIN otherwise (saddles, maximizers). SAM treats u(x) as 0
       where ∇f(x) = 0 (x⁺ = x), so critical points are its fixed points; at a rounding-level
       gradient u would be a random unit vector, hence this test comes before the next.
    3. Otherwise x is a fixed point of the method if its step direction (∇f(x⁺) for SAM/USAM,
       ∇f(x) for GD) has norm ≤ ``tol_step``: HALLUCINATED; if not, NOT_CONVERGED.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    for name, v in (("tol_step", tol_step), ("tol_grad", tol_grad), ("tol_curv", tol_curv)):
        check_tol(name, v)
    check_tol("div_radius", div_radius, positive=True)
    x = _end_points(x, landscape.dim)
    r = _radii(rho, x.shape[0]) if method != "gd" else 0.0
    out = torch.full((x.shape[0],), int(EndState.NOT_CONVERGED), dtype=torch.long)
    norm = torch.linalg.vector_norm(torch.nan_to_num(x, nan=np.inf), dim=-1)
    div = ~torch.isfinite(x).all(-1) | (norm > div_radius)
    out[div] = int(EndState.DIVERGED)
    ok = ~div
    if not ok.any():
        return out
    xs = x[ok]
    r = r if isinstance(r, float) else r[ok, None]
    resid = torch.linalg.vector_norm(step_direction(landscape, xs, r, method), dim=-1)
    gn = torch.linalg.vector_norm(landscape.grad(xs), dim=-1)
    stat = gn <= tol_grad
    cls = torch.full((xs.shape[0],), int(EndState.NOT_CONVERGED), dtype=torch.long)
    cls[~stat & (resid <= tol_step)] = int(EndState.HALLUCINATED)
    if stat.any():
        lam = torch.linalg.eigvalsh(vmap(hessian(landscape.f))(xs[stat]))[:, 0]
        cls[stat] = torch.where(lam >= -tol_curv, int(EndState.MINIMIZER),
                                int(EndState.STATIONARY_NON_MIN))
    out[ok] = cls
    return out


def end_state_counts(states) -> dict[str, int]:
    """How many runs ended in each :class:`EndState`, by label (``END_STATE_LABELS``), in the
    enum's order and only for the states that occur: ``{"hallucinated point": 12}``.

    ``states`` is what :func:`classify` returns (codes, any integer array)."""
    codes = torch.as_tensor(states).reshape(-1)
    if codes.is_floating_point() or codes.is_complex():
        raise TypeError("states must be EndState codes (integers): pass what classify() returns")
    return {END_STATE_LABELS[s]: int((codes == s).sum()) for s in EndState if (codes == s).any()}


def _end_points(x, dim: int) -> Tensor:
    """End points as (B, dim) float64; NaN and inf stay (they are DIVERGED), shapes are checked."""
    try:
        t = torch.as_tensor(x, dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"x must be an array of shape (B, {dim}) or ({dim},)") from None
    t = t.reshape(1, -1) if t.ndim == 1 else t
    if t.ndim != 2 or t.shape[-1] != dim:
        raise ValueError(f"x must have shape (B, {dim}) or ({dim},), got {tuple(t.shape)}; "
                         f"pass the final iterates (RunResult.x)")
    return t


def _radii(rho, batch: int) -> float | Tensor:
    """ρ for classify: a finite scalar ≥ 0 (a float) or one per point (a (B,) tensor)."""
    try:
        t = torch.as_tensor(rho, dtype=DTYPE) if not isinstance(rho, Tensor) else rho.to(DTYPE)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"rho={rho!r}: must be a real number or a (B,) array of them") from None
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"rho={rho!r}: must be finite and >= 0 (one value or one per point)")
    if t.ndim == 0:
        return float(t)
    if t.shape != (batch,):
        raise ValueError(f"rho must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return t


# ------------------------------------------------------------------------------ experiments

def ring_radial_map(r, rho: float, eta: float):
    """The ring's SAM map in radius for 0 < r < 1: r ↦ r + 4η((ρ−r)³ − (ρ−r))."""
    s = rho - r
    return r + 4.0 * eta * (s**3 - s)


def disk_starts(n: int, radius: float, seed: int = 0, r_min: float = 0.0) -> Tensor:
    """n points uniform in the annulus r_min < ‖x‖ < radius of R² (float64, seeded)."""
    n, seed = check_count("n", n), check_count("seed", seed, minimum=0)
    if not 0 <= check_tol("r_min", r_min) < check_tol("radius", radius, positive=True):
        raise ValueError(f"r_min={r_min!r}: must be < radius={radius!r} (an empty annulus)")
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=DTYPE)
    r = torch.sqrt(r_min**2 + u * (radius**2 - r_min**2))
    th = 2 * math.pi * torch.rand(n, generator=g, dtype=DTYPE)
    return torch.stack((r * torch.cos(th), r * torch.sin(th)), -1)


@dataclass
class PhaseDiagram:
    """Outcome counts over a (ρ, η) grid: counts[i, j, c] = #starts of cell (ρ_i, η_j) in class c."""

    rho: np.ndarray
    eta: np.ndarray
    counts: np.ndarray
    n_starts: int
    steps: int

    def fraction(self, state: EndState) -> np.ndarray:
        return self.counts[..., int(state)] / self.n_starts


def phase_diagram(
    landscape: Landscape,
    rhos: np.ndarray,
    etas: np.ndarray,
    *,
    n_starts: int = 10,
    steps: int = 1500,
    start_radius: float = 1.0,
    near_width: float | None = None,
    seed: int = 0,
) -> PhaseDiagram:
    """Run SAM from ``n_starts`` points per (ρ, η) cell and classify the end states.

    Starts are uniform in the disk of radius ``start_radius`` (the same starts in every cell)
    or, with ``near_width`` = w, "local" starts at radius clip(ρ − 1, w, 1 − w) + w·U(−1, 1),
    uniform angle: next to the ring's hallucinated circle where it exists (1 < ρ < 2).
    """
    rhos, etas = check_grid("rhos", rhos), check_grid("etas", etas)
    check_count("n_starts", n_starts)  # 0 starts: every fraction would be 0/0 = NaN
    check_count("steps", steps, minimum=0)
    check_tol("start_radius", start_radius, positive=True)
    if near_width is not None and not 0 < check_tol("near_width", near_width) < 0.5:
        raise ValueError(f"near_width must lie in (0, 0.5) or be None, got {near_width!r}")
    nr, ne = len(rhos), len(etas)
    R, E, S = np.meshgrid(rhos, etas, np.arange(n_starts), indexing="ij")
    rho_t, eta_t = torch.as_tensor(R.ravel()), torch.as_tensor(E.ravel())
    if near_width is None:
        starts = disk_starts(n_starts, start_radius, seed=seed)
        x0 = starts[torch.as_tensor(S.ravel())]
    else:
        g = torch.Generator().manual_seed(seed)
        n = rho_t.numel()
        r = ((rho_t - 1).clamp(near_width, 1 - near_width)
             + near_width * (2 * torch.rand(n, generator=g, dtype=DTYPE) - 1))
        th = 2 * math.pi * torch.rand(n, generator=g, dtype=DTYPE)
        x0 = torch.stack((r * torch.cos(th), r * torch.sin(th)), -1)
    res = iterate(landscape, x0, rho=rho_t, eta=eta_t, steps=steps, method="sam")
    cls = classify(landscape, res.x, rho=rho_t).numpy().reshape(nr, ne, n_starts)
    counts = np.stack([(cls == int(c)).sum(-1) for c in EndState], -1)
    return PhaseDiagram(rho=rhos, eta=etas, counts=counts, n_starts=n_starts, steps=steps)


def measured_rate(landscape: Landscape, x_star, rho: float, eta: float, *, offset: float = 1e-4,
                  steps: int = 2000, window: tuple[float, float] = (1e-12, 1e-6),
                  seed: int = 0) -> float:
    """Linear rate of SAM towards the fixed point ``x_star``, measured by running it.

    Starts at x_star + offset·v (v a seeded random unit vector) and records ‖x_k − x_star‖.
    The steps where it lies inside ``window`` (well above rounding, well inside the linear
    regime) qualify; the slope of its logarithm is fitted over the later half of them, where
    the components along the smaller eigenvalues have died out further. NaN if fewer than
    10 steps qualify.
    """
    x_star = check_single_point(x_star, landscape.dim, "x_star")
    check_tol("offset", offset, positive=True)
    if not (isinstance(window, tuple) and len(window) == 2
            and 0 < check_tol("window[0]", window[0]) < check_tol("window[1]", window[1])):
        raise ValueError(f"window={window!r}: must be (low, high) with 0 < low < high")
    check_count("steps", steps)
    v = torch.randn(x_star.shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    x0 = (x_star + offset * v / v.norm()).reshape(1, -1)
    h = iterate(landscape, x0, rho=rho, eta=eta, steps=steps, record_every=1).history[:, 0]
    dist = torch.linalg.vector_norm(h - x_star, dim=-1).numpy()
    idx = np.flatnonzero((dist > window[0]) & (dist < window[1]))
    if idx.size < 10:
        return math.nan
    return linear_rate(dist, (int(idx[idx.size // 2]), int(idx[-1]) + 1))


def linear_rate(dist: np.ndarray, window: tuple[int, int]) -> float:
    """Linear convergence rate from distances to the limit: exp(slope of log dist over window)."""
    n = len(dist)
    a, b = window
    if not (isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) and 0 <= a
            and a + 2 <= b <= n):
        raise ValueError(f"window={window!r}: must be step indices (a, b) with 0 <= a, "
                         f"a + 2 <= b <= len(dist) = {n}")
    k = np.arange(*window)
    slope = np.polyfit(k, np.log(dist[window[0]:window[1]]), 1)[0]
    return float(np.exp(slope))


def noise_study(
    landscape: Landscape,
    x_star_radius: float,
    *,
    rho: float,
    eta: float,
    sigmas: np.ndarray,
    noise_on: str = "step",
    n_points: int = 400,
    steps: int = 3000,
    burn_in: int = 1000,
    seed: int = 0,
    escape_radius: float = 1e3,
) -> dict[str, np.ndarray]:
    """Stochastic SAM on a radially symmetric landscape, started on the hallucinated circle.

    All noise levels run in one batch (``n_points`` per σ, evenly spread in angle). For each σ
    returns the mean and standard deviation of ‖x‖ over bounded runs and recorded steps after
    ``burn_in``, and the fraction of runs that left the ball of radius ``escape_radius``
    (on the ring this means divergence) or became non-finite.
    """
    sig = np.asarray(sigmas, float)
    if sig.ndim != 1 or sig.size == 0 or not np.isfinite(sig).all() or (sig < 0).any():
        raise ValueError(f"sigmas must be a non-empty 1-D array of finite values >= 0, "
                         f"got {sigmas!r}")
    check_count("n_points", n_points)  # 0 points: NaN means
    check_count("steps", steps)
    check_count("burn_in", burn_in, minimum=0)
    if burn_in >= steps:  # nothing recorded after burn-in: NaN means
        raise ValueError(f"burn_in={burn_in} must be < steps={steps}; lower burn_in or "
                         "raise steps")
    check_tol("x_star_radius", x_star_radius, positive=True)
    check_tol("escape_radius", escape_radius, positive=True)
    th = torch.linspace(0, 2 * math.pi, n_points + 1, dtype=DTYPE)[:-1]
    ring = x_star_radius * torch.stack((torch.cos(th), torch.sin(th)), -1)
    x0 = ring.repeat(len(sig), 1)
    noise = torch.as_tensor(sig, dtype=DTYPE).repeat_interleave(n_points)
    every = 10
    res = iterate(landscape, x0, rho=rho, eta=eta, steps=steps, method="sam", noise=noise,
                  noise_on=noise_on, seed=seed, record_every=every)
    r = torch.linalg.vector_norm(res.history[burn_in // every:], dim=-1)  # (T, B)
    r_all = torch.linalg.vector_norm(res.history, dim=-1)
    bad = (~torch.isfinite(r_all) | (r_all.nan_to_num(np.inf) > escape_radius)).any(0)
    out = {k: np.empty(len(sig)) for k in ("mean_r", "std_r", "escaped")}
    for i in range(len(sig)):
        sl = slice(i * n_points, (i + 1) * n_points)
        rb = r[:, sl][:, ~bad[sl]]
        out["escaped"][i] = float(bad[sl].double().mean())
        out["mean_r"][i] = float(rb.mean()) if rb.numel() else np.nan
        out["std_r"][i] = float(rb.std()) if rb.numel() > 1 else np.nan
    return out | {"sigma": sig}


def _half_cell(grid: np.ndarray, name: str) -> float:
    """Half the cell width of a uniform grid; a single value has no width (NaN edges before)."""
    d = np.diff(np.asarray(grid, dtype=float))
    if d.size == 0:
        raise ValueError(f"hallucination_edges: the phase diagram has one {name} value; the "
                         f"edges need >= 2 (a uniform grid) to know the cell width")
    if not np.allclose(d, d[0], rtol=1e-6, atol=0.0):
        raise ValueError(f"hallucination_edges: the {name} grid is not uniform; edges at "
                         "centre ± half a cell need equal spacing (e.g. np.linspace)")
    return float(d.mean()) / 2


def hallucination_edges(pd: PhaseDiagram, min_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """Empirical boundaries of the region where some start ends on a hallucinated point.

    A cell "hallucinates" if its hallucinated fraction exceeds ``min_fraction``. For every η
    row: the lower edge of the first and the upper edge of the last hallucinating cell in ρ
    (NaN if none). For every ρ column: the upper edge in η of the last hallucinating cell.
    Uniform grids are assumed (edges at centre ± half a cell).
    """
    if not 0 <= check_tol("min_fraction", min_fraction) < 1:
        raise ValueError(f"min_fraction={min_fraction!r}: must lie in [0, 1)")
    h_rho, h_eta = _half_cell(pd.rho, "rho"), _half_cell(pd.eta, "eta")
    hit = pd.fraction(EndState.HALLUCINATED) > min_fraction  # (n_rho, n_eta)
    lo = np.full(len(pd.eta), np.nan)
    hi = np.full(len(pd.eta), np.nan)
    top = np.full(len(pd.rho), np.nan)
    for j in range(len(pd.eta)):
        idx = np.flatnonzero(hit[:, j])
        if idx.size:
            lo[j], hi[j] = pd.rho[idx[0]] - h_rho, pd.rho[idx[-1]] + h_rho
    for i in range(len(pd.rho)):
        idx = np.flatnonzero(hit[i])
        if idx.size:
            top[i] = pd.eta[idx[-1]] + h_eta
    return {"rho_low": lo, "rho_high": hi, "eta_top": top}
