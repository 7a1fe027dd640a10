"""The ring (‖x‖² − 1)² under SAM, completely: basins, tails, the 2-cycle and the normal form.

On the ring, ∇f(x) = 4(‖x‖² − 1)x is parallel to x, so u(x) = ±x/‖x‖ and SAM never leaves
the line through its start and the origin. With the signed coordinate s along that line
(x = s·x̂₀), SAM on the ring *is* SAM on the double well f(s) = (s² − 1)²:

    s ↦ s − η f'(s + ρ sign f'(s)),   f'(z) = 4z(z² − 1),

and a start uniform in the unit disk has |s| distributed with density 2r on (0, 1).
Everything here iterates that scalar map, vectorised in numpy (float64).

Near the hallucinated circle, with e = r − (ρ − 1) and 0 < r < 1, the map is

    e ↦ F(e) = (1 − 8η) e + 12η e² − 4η e³,

independently of ρ (as long as the iterate stays in 0 < r < 1).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..checks import check_count, check_grid, check_real, check_tol

TAIL_CLASSES = ("diverged", "hallucinated circle", "other fixed point", "period 2", "period 4",
                "bounded, no period ≤ 4")


def fprime(z):
    """f'(z) for the double well f(z) = (z² − 1)²."""
    return 4.0 * z * (z * z - 1.0)


def sam_line_map(s, rho, eta):
    """One SAM step on the ring along a line through the origin (signed coordinate s)."""
    return s - eta * fprime(s + rho * np.sign(fprime(s)))


def error_map(e, eta):
    """F(e) = (1 − 8η)e + 12ηe² − 4ηe³: the radial SAM map around the circle r = ρ − 1."""
    return (1.0 - 8.0 * eta) * e + 12.0 * eta * e * e - 4.0 * eta * e**3


def disk_quantile_radii(n: int) -> np.ndarray:
    """n radii r_i = sqrt((i + 1/2)/n): deterministic quantiles of a uniform start in the unit disk."""
    n = check_count("n", n)
    return np.sqrt((np.arange(n) + 0.5) / n)


@dataclass
class TailMap:
    """Tail classification over a (ρ, η) grid.

    counts[i, j, c]: starts of cell (ρ_i, η_j) whose tail is of class ``TAIL_CLASSES[c]``;
    near_min[i, j]: starts whose tail (the last ``tail`` iterates) comes within ``near_tol`` of
    the minimizer circle ‖x‖ = 1; tail_dist[i, j]: the smallest distance to that circle over the
    tails of the bounded runs of the cell (NaN if every run diverged).
    """

    rho: np.ndarray
    eta: np.ndarray
    counts: np.ndarray
    near_min: np.ndarray
    tail_dist: np.ndarray
    n_starts: int
    steps: int
    tail: int
    near_tol: float

    def fraction(self, name: str) -> np.ndarray:
        return self.counts[..., TAIL_CLASSES.index(name)] / self.n_starts

    @property
    def basin_fraction(self) -> np.ndarray:
        """Share of starts (uniform in the unit disk) that converge to the hallucinated circle."""
        return self.fraction("hallucinated circle")


def classify_tails(hist: np.ndarray, rho: np.ndarray, tol: float = 1e-9,
                   circle_tol: float = 1e-6) -> np.ndarray:
    """Tail class (index into TAIL_CLASSES) of each run from its last iterates hist (T ≥ 5, N)."""
    fin = np.isfinite(hist).all(0)
    last = np.nan_to_num(hist[-1])

    def close(p):
        return np.abs(np.nan_to_num(hist[-1] - hist[-1 - p], nan=np.inf)) < tol

    p1, p2, p4 = close(1), close(2), close(4)
    on_circle = np.abs(np.abs(last) - (rho - 1.0)) < circle_tol
    grad_ok = np.abs(fprime(last)) > 1e-8
    out = np.full(hist.shape[1], TAIL_CLASSES.index("bounded, no period ≤ 4"))
    out[p4] = TAIL_CLASSES.index("period 4")
    out[p2] = TAIL_CLASSES.index("period 2")
    out[p1] = TAIL_CLASSES.index("other fixed point")
    out[p1 & on_circle & grad_ok & (rho > 1) & (rho < 2)] = TAIL_CLASSES.index("hallucinated circle")
    out[~fin] = TAIL_CLASSES.index("diverged")
    return out


def tail_map(rhos, etas, *, n_starts: int = 128, steps: int = 4000, tail: int = 64,
             near_tol: float = 0.05, div_radius: float = 1e3, chunk: int = 500) -> TailMap:
    """Run SAM on the ring from ``n_starts`` disk quantile starts in every (ρ, η) cell.

    Runs that diverge (|s| > ``div_radius``) are dropped from the batch at the end of every
    ``chunk`` steps; the others run ``steps`` steps and then ``tail`` more, which are kept.
    """
    rhos, etas = check_grid("rhos", rhos), check_grid("etas", etas)  # NaN cells read "diverged"
    steps, chunk = check_count("steps", steps, minimum=0), check_count("chunk", chunk)
    tail = check_count("tail", tail, minimum=4)  # classify_tails compares with x_{T-4}
    check_tol("near_tol", near_tol, positive=True)
    check_tol("div_radius", div_radius, positive=True)
    R, E, S = np.meshgrid(rhos, etas, disk_quantile_radii(n_starts), indexing="ij")
    rho, eta, s = R.ravel(), E.ravel(), S.ravel().copy()
    alive = np.arange(s.size)
    sa, ra, ea = s.copy(), rho.copy(), eta.copy()
    done = 0
    with np.errstate(all="ignore"):
        while done < steps and alive.size:
            for _ in range(min(chunk, steps - done)):
                sa = sam_line_map(sa, ra, ea)
            done += chunk
            keep = np.isfinite(sa) & (np.abs(sa) < div_radius)
            s[alive[~keep]] = np.nan
            alive, sa, ra, ea = alive[keep], sa[keep], ra[keep], ea[keep]
        s[alive] = sa
        hist = np.full((tail + 1, s.size), np.nan)
        hist[0] = s
        for k in range(tail):
            sa = sam_line_map(sa, ra, ea)
            sa = np.where(np.abs(sa) < div_radius, sa, np.nan)
            hist[k + 1, alive] = sa
    cls = classify_tails(hist, rho)
    with warnings.catch_warnings():  # all-NaN slices (diverged runs, cells) give NaN on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        dist = np.nanmin(np.abs(np.abs(hist) - 1.0), axis=0)
        shape = (len(rhos), len(etas), n_starts)
        cls, dist = cls.reshape(shape), dist.reshape(shape)
        tdist = np.nanmin(dist, -1)
    counts = np.stack([(cls == c).sum(-1) for c in range(len(TAIL_CLASSES))], -1)
    near = (dist < near_tol).sum(-1)
    return TailMap(rho=rhos, eta=etas, counts=counts, near_min=near, tail_dist=tdist,
                   n_starts=n_starts, steps=steps, tail=tail, near_tol=near_tol)


def two_cycle_half_amplitude(delta: float, e0: float = 0.02, steps: int = 20000) -> float:
    """Half-amplitude |e_{k+1} − e_k|/2 of the attracting 2-cycle of F at η = 1/4 + δ.

    Iterates the exact radial map :func:`error_map` (valid while 0 < r < 1, i.e. for ρ = 1.5
    while |e| < 1/2) and fails if the orbit has not settled on a 2-cycle to 1e-12.
    """
    eta = 0.25 + delta
    e = e0
    for _ in range(steps):
        e = error_map(e, eta)
    e1 = error_map(e, eta)
    e2 = error_map(e1, eta)
    if not abs(e2 - e) < 1e-12 or abs(e1 - e) < 1e-9:
        raise RuntimeError(f"no settled 2-cycle at delta={delta}: e={e}, F(e)={e1}, F(F(e))={e2}")
    return abs(e1 - e) / 2.0


def two_cycle_on_ring(rho: float, delta: float, r0_offset: float = 0.02, steps: int = 20000) -> float:
    """The same half-amplitude, measured on the full ring map (:func:`sam_line_map`) at radius ρ."""
    eta = 0.25 + delta
    s = np.array(rho - 1.0 + r0_offset)
    for _ in range(steps):
        s = sam_line_map(s, rho, eta)
    s1 = sam_line_map(s, rho, eta)
    s2 = sam_line_map(s1, rho, eta)
    if not abs(s2 - s) < 1e-12:
        raise RuntimeError(f"no settled 2-cycle at rho={rho}, delta={delta}")
    return float(abs(s1 - s) / 2.0)


def critical_decay(k_max: int = 100_000, e0: float = 0.05, rho: float = 1.5,
                   checkpoints=(10, 100, 1000, 10_000, 100_000)) -> dict[int, float]:
    """|e_k|·√(16k) at the given k for SAM on the ring at η = 1/4 exactly, from e_0 = ``e0``."""
    k_max = check_count("k_max", k_max)
    check_tol("rho", rho, positive=True)
    check_real(e0, "e0")
    cps = set(checkpoints)
    if not cps or not all(check_count("checkpoint", k) <= k_max for k in cps):
        raise ValueError(f"checkpoints={checkpoints!r}: must be step indices in [1, k_max={k_max}]")
    s = rho - 1.0 + e0
    out = {}
    for k in range(1, k_max + 1):
        s = sam_line_map(s, rho, 0.25)
        if k in cps:
            out[k] = abs(s - (rho - 1.0)) * math.sqrt(16 * k)
    return out
