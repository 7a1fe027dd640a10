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
from .study import by_cell, interval_points, log_x
from .tables import Table, format_table

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


# ------------------------------------------------------------------ the chapter's views
METHOD_NAMES = {"switch": "SGD then SAM", "rho-decay": "ρ decayed to 0",
                "switch-signal": "switch rule"}


def _name(row: dict[str, Any]) -> str:
    base = METHOD_NAMES.get(row["method"], row["method"])
    q = row.get("switch_frac", 0.0)
    return f"{base} {100 * q:.0f}%" if row["method"] == "switch" else base


def _iv(row: dict[str, Any], digits: int = 1) -> str:
    if math.isnan(row["difference"]):
        return "—"
    f = f"{{:+.{digits}f}}".format
    return f"{f(row['difference'])} [{f(row['95% low'])}, {f(row['95% high'])}]"


def dose_view(effects: pd.DataFrame) -> Table:
    """Each remedy against constant SAM at its dose and at full ρ: one interval per cell."""
    short = {"switch": "warm start", "rho-decay": "ρ decay", "switch-signal": "rule"}
    rows = [dict(r, name=short.get(r["method"], r["method"]) + (
                 f" {100 * r['switch_frac']:.0f}%" if r["method"] == "switch" else ""),
                 iv=_iv(r), vs=f"SAM {r['constant ρ']:g}")
            for r in effects.to_dict("records")]
    return format_table(rows, [
        ("rho", "ρ", "g"), ("name", "remedy", "s"), ("vs", "against", "s"),
        ("iv", "difference [95%]", "s"), ("verdict", "verdict", "s")])


def dose_text(effects: pd.DataFrame) -> str:
    """The dose table in sentences: each remedy against its dose, with its interval."""
    if effects.empty:
        return "No remedy run has its dose-matched constant SAM yet."
    out = []
    for (method, q), g in effects[effects["against"] == "its dose"].groupby(
            ["method", "switch_frac"]):
        name = _name({"method": method, "switch_frac": q})
        parts = [f"{r['difference']:+.1f} [{r['95% low']:+.1f}, {r['95% high']:+.1f}] points "
                 f"at ρ = {r['rho']:g} ({r['verdict']}, {r['seeds']} seeds)"
                 for r in g.to_dict("records") if not math.isnan(r["difference"])]
        if parts:
            out.append(f"{name} minus constant SAM at its mean radius: " + "; ".join(parts) + ".")
    return " ".join(out) or "No remedy has two seeds against its dose yet."


def constant_curve(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Constant SAM's test accuracy against ρ: mean and 95% t interval over seeds."""
    rows = []
    for (method, rho, _q, adaptive, noise), seeds in by_cell(records).items():
        if method != "sam" or adaptive or noise:
            continue
        v = np.array(list(_acc(seeds).values()))
        if len(v) >= 2:
            iv = paired_interval(v, np.zeros_like(v))
            rows.append({"rho": rho, "seeds": len(v), "mean": iv.estimate, "low": iv.low,
                         "high": iv.high})
    return pd.DataFrame(rows, columns=["rho", "seeds", "mean", "low", "high"]).sort_values(
        "rho", ignore_index=True)


def plot_dose(ax: Any, records: list[dict[str, Any]]) -> None:
    """Test accuracy against the dose (mean radius): constant SAM as a line with 95%
    intervals, each remedy at its own dose. A remedy above the line beats its dose."""
    const = constant_curve(records)
    ax.fill_between(const["rho"], const["low"], const["high"], color="0.85", lw=0)
    ax.plot(const["rho"], const["mean"], color="0.35", lw=1.2, marker="o", ms=3,
            label="constant SAM (95% band)")
    styles = {"switch": ("#0072B2", "s"), "rho-decay": ("#D55E00", "^"),
              "switch-signal": ("#009E73", "D")}
    for (method, rho, q, adaptive, noise), seeds in sorted(by_cell(records).items()):
        if method not in styles or adaptive or noise:
            continue
        v = np.array(list(_acc(seeds).values()))
        if len(v) < 2:
            continue
        iv = paired_interval(v, np.zeros_like(v))
        color, marker = styles[method]
        seen = {t.get_text() for t in ax.get_legend().get_texts()} if ax.get_legend() else set()
        label = _name({"method": method, "switch_frac": q}) if method != "switch" else (
            f"SGD then SAM {100 * q:.0f}%")
        interval_points(ax, np.array([mean_radius(method, rho, q)]), np.array([iv.low]),
                        np.array([iv.estimate]), np.array([iv.high]), color,
                        label if label not in seen else "_", marker)
        ax.annotate(f"ρ={rho:g}", (mean_radius(method, rho, q), iv.estimate),
                    textcoords="offset points", xytext=(6, -3), fontsize=8, color=color)
        ax.legend()
    log_x(ax, const["rho"])
    ax.set_xlabel("mean radius over training (the dose)")
    ax.set_ylabel("test accuracy (%)")


def switch_view(curve: pd.DataFrame) -> Table:
    rows = [dict(r, q=f"{100 * r['switch_frac']:.0f}%",
                 iv=(f"{r['test acc (%)']:.1f} ± {r['95% half-width']:.1f}"
                     if not math.isnan(r["95% half-width"]) else f"{r['test acc (%)']:.1f}"))
            for r in curve.to_dict("records")]
    return format_table(rows, [("q", "SGD share q", "s"), ("seeds", "seeds", "d"),
                               ("iv", "test acc (%) ± 95%", "s")])


def rule_view(rule: pd.DataFrame) -> Table:
    rows = [dict(r, iv=_iv(r)) for r in rule.to_dict("records")]
    return format_table(rows, [("rho", "ρ", "g"), ("against", "rule against", "s"),
                               ("seeds", "seeds", "d"), ("iv", "difference [95%]", "s"),
                               ("verdict", "verdict", "s")])


def _by_rho(rows: pd.DataFrame) -> tuple[str, str]:
    """("beats at ρ = 1, 2; undecided at ρ = 0.5", "ρ 0.5: +0.6 [-1.2, +2.4]; ...")."""
    if rows.empty or rows["difference"].isna().all():
        return "not yet measured", "—"
    words: dict[str, list[str]] = {}
    for r in rows.to_dict("records"):
        words.setdefault(r["verdict"], []).append(f"{r['rho']:g}")
    answer = "; ".join(f"{v} at ρ = {', '.join(rs)}" for v, rs in words.items())
    evidence = "; ".join(f"ρ {r['rho']:g}: {_iv(r)}" for r in rows.to_dict("records"))
    return answer, evidence


def findings(effects: pd.DataFrame, curve: pd.DataFrame, rule: pd.DataFrame,
             small: pd.DataFrame, min_seeds: int = 3) -> pd.DataFrame:
    """The chapter's answer, one row per question, in the issue's order; every answer is a
    verdict word of :func:`paired_row` (or "not yet measured") and names its intervals."""
    dose_rows = effects[effects["against"] == "its dose"]
    rows = []
    for method, q in (("switch", 0.3), ("rho-decay", 0.0)):
        name = _name({"method": method, "switch_frac": q})
        a, ev = _by_rho(dose_rows[(dose_rows["method"] == method)
                                  & (dose_rows["switch_frac"] == q)])
        rows.append({"question": f"Does {name} beat its dose?", "answer": a, "evidence": ev})
    fracs = curve[curve["seeds"] >= min_seeds]
    if len(fracs) >= 3:
        best = fracs.loc[fracs["test acc (%)"].idxmax()]
        a = f"best q = {100 * best['switch_frac']:.0f}% (by mean, of {len(fracs)})"
        ev = f"{best['test acc (%)']:.1f} ± {best['95% half-width']:.1f}% test accuracy"
    else:
        a, ev = (f"not yet measured ({len(fracs)} of 7 q)", "—")
    rows.append({"question": "When should SAM be switched on (ρ = 1)?", "answer": a,
                 "evidence": ev})
    a, ev = _by_rho(rule[rule["against"] == "constant SAM"] if not rule.empty else rule)
    rows.append({"question": "Does the switch rule beat constant SAM?", "answer": a,
                 "evidence": ev})
    a, ev = _by_rho(small)
    rows.append({"question": "At small ρ, does a 30% warm start beat constant SAM?",
                 "answer": a, "evidence": ev})
    return pd.DataFrame(rows, columns=["question", "answer", "evidence"])


SHORT_QUESTIONS = ("warm start 30% vs its dose", "ρ decay vs its dose", "when to switch",
                   "switch rule vs SAM", "small ρ, warm start")


def findings_view(table: pd.DataFrame) -> Table:
    """The answer table, narrow enough for a phone; :func:`findings_text` gives the
    intervals."""
    rows = [dict(r, q=q) for q, r in zip(SHORT_QUESTIONS, table.to_dict("records"), strict=True)]
    return format_table(rows, [("q", "question", "s"), ("answer", "answer", "s")])


def findings_text(table: pd.DataFrame) -> str:
    """Each answer of :func:`findings` with its intervals, as a Markdown list."""
    return "\n".join(f"* **{r['question']}** {r['answer'][0].upper()}{r['answer'][1:]}"
                     + (f" ({r['evidence']})." if r["evidence"] != "—" else ".")
                     for r in table.to_dict("records"))
