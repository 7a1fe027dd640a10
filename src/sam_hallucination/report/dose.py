"""Chapter 6's CPU study: each remedy against its dose, when to switch, and the switch rule.

A remedy changes how much SAM a run gets, not only when. The *dose* of a run is its mean
radius over the steps: ``(1 - q) ρ`` for SGD during a fraction ``q`` then SAM at ``ρ``, and
``ρ/2`` for a radius decayed linearly to 0. A remedy beats its dose when it beats constant
SAM at that mean radius, paired over seeds with a 95% interval. The verdict words are fixed
here: "beats" / "loses to" only when the interval excludes 0, else "undecided".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..stats import paired_interval, sign_test
from .study import by_cell

DOSE_ROUND = 6  # mean radii are compared after rounding (0.7 * 0.5 = 0.35 exactly, say)


def mean_radius(method: str, rho: float, switch_frac: float = 0.0) -> float:
    """The mean radius over the steps of a run (its dose of SAM)."""
    if method == "sgd":
        return 0.0
    if method in ("switch", "switch-signal"):
        return round((1 - switch_frac) * rho, DOSE_ROUND)
    if method == "rho-decay":
        return round(rho / 2, DOSE_ROUND)
    return round(rho, DOSE_ROUND)


def _acc(seeds: dict[int, dict[str, Any]]) -> dict[int, float]:
    return {s: 100 * r["final"]["test_acc"] for s, r in seeds.items()
            if r["status"] == "ok" and r["final"].get("test_acc") is not None}


def _verdict(iv: Any, n: int, min_seeds: int) -> str:
    if n < min_seeds:
        return "undecided"
    return "beats" if iv.low > 0 else "loses to" if iv.high < 0 else "undecided"


def paired_row(a: dict[int, float], b: dict[int, float], min_seeds: int = 3
               ) -> dict[str, Any]:
    """``a`` minus ``b`` over their common seeds: mean, 95% interval, verdict."""
    common = sorted(set(a) & set(b))
    row: dict[str, Any] = {"seeds": len(common), "difference": math.nan, "95% low": math.nan,
                           "95% high": math.nan, "verdict": "undecided",
                           "per seed": ", ".join(f"{a[s] - b[s]:+.1f}" for s in common)}
    if len(common) >= 2:
        iv = paired_interval([a[s] for s in common], [b[s] for s in common])
        row.update({"difference": iv.estimate, "95% low": iv.low, "95% high": iv.high,
                    "verdict": _verdict(iv, len(common), min_seeds)})
    return row


def dose_effects(records: Iterable[dict[str, Any]], min_seeds: int = 3) -> pd.DataFrame:
    """Each remedy cell against constant SAM at its mean radius and at its full radius."""
    cells = by_cell(records)
    sam = {k[1]: _acc(v) for k, v in cells.items() if k[0] == "sam" and not k[3]}
    rows = []
    for (method, rho, q, adaptive, noise), seeds in sorted(cells.items()):
        if method not in ("switch", "rho-decay", "switch-signal") or adaptive or noise:
            continue
        acc, dose = _acc(seeds), mean_radius(method, rho, q)
        for against, radius in (("its dose", dose), ("full ρ", rho)):
            if radius not in sam:
                continue
            rows.append({"method": method, "rho": rho, "switch_frac": q, "against": against,
                         "constant ρ": radius, **paired_row(acc, sam[radius], min_seeds)})
    return pd.DataFrame(rows, columns=["method", "rho", "switch_frac", "against", "constant ρ",
                                       "seeds", "difference", "95% low", "95% high",
                                       "verdict", "per seed"])


def switch_curve(records: Iterable[dict[str, Any]], rho: float) -> pd.DataFrame:
    """Test accuracy against the switch fraction q at one ρ (q = 0 is constant SAM)."""
    cells = by_cell(records)
    rows = []
    for (method, r, q, adaptive, noise), seeds in cells.items():
        if r != rho or adaptive or noise or method not in ("sam", "switch"):
            continue
        acc = _acc(seeds)
        v = np.array(list(acc.values()))
        half = math.nan
        if len(v) >= 2:
            iv = paired_interval(v, np.zeros_like(v))
            half = iv.high - iv.estimate
        rows.append({"switch_frac": q if method == "switch" else 0.0, "seeds": len(v),
                     "test acc (%)": float(v.mean()) if len(v) else math.nan,
                     "95% half-width": half})
    return pd.DataFrame(rows, columns=["switch_frac", "seeds", "test acc (%)",
                                       "95% half-width"]).sort_values("switch_frac",
                                                                      ignore_index=True)


def rule_effects(records: Iterable[dict[str, Any]], min_seeds: int = 3) -> pd.DataFrame:
    """The measured-signal rule (method ``switch-signal``) against constant SAM and against
    the best fixed fraction at the same ρ (best by mean; that choice flatters the fixed q)."""
    cells = by_cell(records)
    rows = []
    for (method, rho, _q, adaptive, noise), seeds in sorted(cells.items()):
        if method != "switch-signal" or adaptive or noise:
            continue
        rule = _acc(seeds)
        fixed = {k[2]: _acc(v) for k, v in cells.items()
                 if k[0] == "switch" and k[1] == rho and not k[3] and not k[4]}
        if fixed:
            best = max(fixed, key=lambda q: np.mean(list(fixed[q].values())))
            rows.append({"rho": rho, "against": f"best fixed q = {best:g}",
                         **paired_row(rule, fixed[best], min_seeds)})
        sam = cells.get(("sam", rho, 0.0, False, 0.0))
        if sam:
            rows.append({"rho": rho, "against": "constant SAM", **paired_row(rule, _acc(sam),
                                                                              min_seeds)})
    return pd.DataFrame(rows, columns=["rho", "against", "seeds", "difference", "95% low",
                                       "95% high", "verdict", "per seed"])


def design_sign_test(effects: pd.DataFrame) -> tuple[int, int, float]:
    """Sign test over every seed-paired difference in ``effects`` (its "per seed" column)."""
    diffs = [float(x) for cell in effects["per seed"] for x in cell.split(", ") if x]
    return sign_test(diffs)
