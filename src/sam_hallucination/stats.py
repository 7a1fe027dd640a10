"""Statistics the verdicts rest on: paired intervals over seeds, a sign test, debiased norms.

* :func:`paired_interval`: mean of paired differences (one per seed) with a two-sided
  Student-t 95% interval; "A beats B" is claimed only when the interval excludes 0.
* :func:`sign_test`: the exact two-sided binomial p of k positive differences out of n.
* :func:`gram_statistics`: from per-batch vectors ``g_i`` (gradient) and ``h_i`` (SAM's
  perturbed gradient), unbiased estimates of ``‖E g‖²``, ``‖E h‖²`` and ``⟨E g, E h⟩`` as
  U-statistics (``Σ_{i≠j} v_i·w_j / (n(n-1))``), which remove the noise bias ``tr Σ / n`` of
  ``‖mean‖²``; the step/gradient ratio, cosine and projection follow; percentile bootstrap
  intervals resample batches (pairs of copies of one batch are left out, so a resample stays
  unbiased). Everything works on the ``n × n`` Gram matrices, so it is cheap for any ``d``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided interval at ``level``; ``n`` observations."""

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    def excludes(self, value: float = 0.0) -> bool:
        return not (self.low <= value <= self.high)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def text(self, fmt: str = "{:+.2f}", unit: str = "") -> str:
        f = fmt.format
        return f"{f(self.estimate)}{unit} [{f(self.low)}, {f(self.high)}]"


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean of ``a_i - b_i`` with its Student-t interval (n - 1 degrees of freedom)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if d.ndim != 1 or len(d) != len(b) or len(d) < 2:
        raise ValueError(f"paired_interval needs two equal-length sequences of >= 2 values, "
                         f"got {len(a)} and {len(b)}")
    if not np.isfinite(d).all():
        raise ValueError("paired_interval: a difference is not finite (drop diverged runs first)")
    m, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    t = float(_st.t.ppf(0.5 + level / 2, len(d) - 1))
    return Interval(m, m - t * se, m + t * se, len(d), level)


def sign_test(diffs: Sequence[float]) -> tuple[int, int, float]:
    """(positives, non-zero count, exact two-sided binomial p under P(+) = 1/2)."""
    d = [x for x in diffs if x != 0]
    k = sum(x > 0 for x in d)
    p = float(_st.binomtest(k, len(d), 0.5).pvalue) if d else 1.0
    return k, len(d), p


def _u(gram: np.ndarray, c: np.ndarray) -> np.ndarray:
    """U-statistic ``Σ_{a≠b} v_a·w_b / #pairs`` per resample from counts ``c`` (m × n)."""
    diag = np.diag(gram)
    num = np.einsum("mi,ij,mj->m", c, gram, c) - (c**2) @ diag
    pairs = c.sum(1) ** 2 - (c**2).sum(1)
    return num / pairs


def _derived(ugg: np.ndarray, uhh: np.ndarray, ugh: np.ndarray) -> dict[str, np.ndarray]:
    g = np.sqrt(np.clip(ugg, 0, None))
    h = np.sqrt(np.clip(uhh, 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"grad_sq": ugg, "step_sq": uhh, "inner": ugh, "grad_norm": g, "step_norm": h, "ratio": h / g,
                "cosine": np.clip(ugh / (g * h), -1, 1), "projection": ugh / g,
                "progress": ugh / np.clip(ugg, 1e-300, None)}


def gram_statistics(gg: np.ndarray, hh: np.ndarray, gh: np.ndarray, n_boot: int = 2000,
                    seed: int = 0, level: float = LEVEL) -> dict[str, Interval]:
    """Debiased gradient and SAM-step statistics with bootstrap intervals.

    ``gg[i, j] = g_i·g_j``, ``hh[i, j] = h_i·h_j``, ``gh[i, j] = g_i·h_j`` (float64, n × n,
    n >= 3). Returned intervals: the raw U-statistics ``grad_sq``, ``step_sq`` and ``inner``
    (unbiased, may be negative), ``grad_norm`` (‖E g‖), ``step_norm`` (‖E h‖), ``ratio``
    (their quotient), ``cosine`` (between E g and E h), ``projection`` (⟨E g, E h⟩/‖E g‖:
    how fast the step descends, per unit rate) and ``progress`` (⟨E g, E h⟩/‖E g‖²: SAM's
    first-order progress as a fraction of SGD's).
    """
    gg, hh, gh = (np.asarray(m, np.float64) for m in (gg, hh, gh))
    n = gg.shape[0]
    if n < 3 or any(m.shape != (n, n) for m in (gg, hh, gh)):
        raise ValueError(f"gram_statistics needs three n x n Gram matrices with n >= 3, "
                         f"got shapes {gg.shape}, {hh.shape}, {gh.shape}")
    if not all(np.isfinite(m).all() for m in (gg, hh, gh)):
        raise ValueError("gram_statistics: a Gram matrix is not finite (diverged weights?)")
    ones = np.ones((1, n))
    point = _derived(_u(gg, ones), _u(hh, ones), _u(gh, ones))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    c = np.zeros((n_boot, n))
    np.add.at(c, (np.arange(n_boot)[:, None], idx), 1.0)
    c = c[(c > 0).sum(1) >= 2]  # a resample needs two distinct batches
    boot = _derived(_u(gg, c), _u(hh, c), _u(gh, c))
    lo, hi = 100 * (0.5 - level / 2), 100 * (0.5 + level / 2)
    out = {}
    for k, v in point.items():
        b = boot[k][np.isfinite(boot[k])]
        low, high = (np.percentile(b, [lo, hi]) if len(b) else (math.nan, math.nan))
        out[k] = Interval(float(v[0]), float(low), float(high), n, level)
    return out
