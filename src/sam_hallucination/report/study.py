"""Chapter 5's CPU study: its cells, the accuracy effects on fresh seeds, the recipe's
calibration, and the answer table that joins them to the stall verdicts.

Accuracy effects are paired over seeds (:func:`sam_hallucination.stats.paired_interval`):
"helps" / "hurts" only when the 95% interval excludes 0, else "undecided".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..stats import paired_interval
from .cifar import provenance
from .tables import Table, format_table


def cell_key(cfg: dict[str, Any]) -> tuple:
    """What a cell is, apart from the seed."""
    return (cfg["method"], float(cfg["rho"]), float(cfg.get("switch_frac", 0.0)),
            bool(cfg.get("adaptive", False)), float(cfg.get("label_noise", 0.0)))


def by_cell(records: Iterable[dict[str, Any]]) -> dict[tuple, dict[int, dict[str, Any]]]:
    """Cell -> seed -> record."""
    cells: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        cells[cell_key(r["config"])][int(r["config"]["seed"])] = r
    return dict(cells)


def accuracy_effects(records: Iterable[dict[str, Any]], baseline: tuple | None = None
                     ) -> pd.DataFrame:
    """Per cell: mean test accuracy, and the paired difference to the baseline cell (SGD)."""
    cells = by_cell(records)
    base = cells[baseline or ("sgd", 0.0, 0.0, False, 0.0)]
    rows = []
    for key, seeds in sorted(cells.items(), key=lambda kv: (kv[0][0] != "sgd", kv[0][1])):
        acc = {s: 100 * r["final"]["test_acc"] for s, r in seeds.items()
               if r["status"] == "ok" and r["final"]["test_acc"] is not None}
        common = sorted(set(acc) & set(base))
        row = {"method": key[0], "rho": key[1], "seeds": len(acc),
               "test acc (%)": float(np.mean(list(acc.values()))) if acc else math.nan,
               "diverged": sum(r["status"] != "ok" for r in seeds.values())}
        if seeds is not base and len(common) >= 2:
            iv = paired_interval([acc[s] for s in common],
                                 [100 * base[s]["final"]["test_acc"] for s in common])
            row.update({"vs SGD (points)": iv.estimate, "95% low": iv.low, "95% high": iv.high,
                        "verdict": ("helps" if iv.low > 0 else "hurts" if iv.high < 0
                                    else "undecided")})
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "rho", "seeds", "test acc (%)", "diverged",
                                       "vs SGD (points)", "95% low", "95% high", "verdict"])


def arm_effects(study: Iterable[dict[str, Any]], noise: Iterable[dict[str, Any]],
                asam: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The study's two extra arms against their SGD, paired over seeds: SAM under 20% flipped
    labels against SGD under the same noise, and ASAM against the clean SGD."""
    study, noise, asam = list(study), list(noise), list(asam)
    rows = []
    if noise:
        e = accuracy_effects(noise, baseline=("sgd", 0.0, 0.0, False, 0.2))
        rows += [dict(r, arm="20% label noise") for r in e.to_dict("records")]
    if asam:
        sgd = [r for r in study if r["config"]["method"] == "sgd"]
        e = accuracy_effects(sgd + asam)
        rows += [dict(r, arm="ASAM") for r in e.to_dict("records") if r["method"] != "sgd"]
    cols = ["arm", "method", "rho", "seeds", "test acc (%)", "vs SGD (points)", "95% low",
            "95% high", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def arms_text(effects: pd.DataFrame) -> str:
    """The arms' table in sentences; each effect with its interval and verdict."""
    out = []
    for r in effects.to_dict("records"):
        if r["method"] == "sgd" or math.isnan(r.get("vs SGD (points)", math.nan)):
            continue
        name = "ASAM" if r["arm"] == "ASAM" else "SAM under 20% label noise"
        out.append(f"{name} at ρ = {r['rho']:g} minus its SGD: "
                   f"{_iv(r['vs SGD (points)'], r['95% low'], r['95% high'], 1)} points "
                   f"({r['verdict']}, {r['seeds']} seeds).")
    return " ".join(out) or "Neither arm has run yet."


def calibration_table(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per recipe candidate: SAM (rho 0.1) minus SGD test accuracy, paired over seeds."""
    groups: dict[tuple, dict[str, dict[int, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict))
    for r in records:
        c = r["config"]
        groups[(c["n_train"], c["epochs"])][c["method"]][int(c["seed"])] = r
    rows = []
    for (n, e), m in sorted(groups.items(), key=lambda kv: (-kv[0][0], -kv[0][1])):
        seeds = sorted(set(m.get("sgd", {})) & set(m.get("sam", {})))
        d = [100 * (m["sam"][s]["final"]["test_acc"] - m["sgd"][s]["final"]["test_acc"])
             for s in seeds]
        row = {"training images": n, "epochs": e, "seeds": len(seeds),
               "SGD test acc (%)": float(np.mean([100 * m["sgd"][s]["final"]["test_acc"]
                                                 for s in seeds])) if seeds else math.nan,
               "SAM 0.1 minus SGD (points)": ", ".join(f"{x:+.2f}" for x in d),
               "SGD train acc (%)": float(np.mean([100 * m["sgd"][s]["final"]["train_acc"]
                                                  for s in seeds])) if seeds else math.nan,
               "SGD s/run": float(np.mean([m["sgd"][s]["wall_time_s"] for s in seeds]))
               if seeds else math.nan,
               "SAM s/run": float(np.mean([m["sam"][s]["wall_time_s"] for s in seeds]))
               if seeds else math.nan}
        if len(d) >= 2:
            iv = paired_interval([d_ for d_ in d], [0.0] * len(d))
            row.update({"mean": iv.estimate, "95% low": iv.low, "95% high": iv.high})
        rows.append(row)
    return pd.DataFrame(rows)


def interval_points(ax: Any, x: np.ndarray, lo: np.ndarray, mid: np.ndarray, hi: np.ndarray,
                     color: str, label: str, marker: str = "o") -> None:
    # a percentile interval may sit beside its point estimate: bars are never negative
    err = [np.clip(mid - lo, 0, None), np.clip(hi - mid, 0, None)]
    ax.errorbar(x, mid, yerr=err, fmt=marker, color=color, capsize=3, label=label, ms=5)


def log_x(ax: Any, x: Any) -> None:
    """A log ρ axis ticked at the radii themselves; an empty panel stays linear."""
    radii = sorted({float(v) for v in x if float(v) > 0})
    if radii:
        ax.set_xscale("log")
        ax.set_xticks(radii, [f"{r:g}" for r in radii])
        ax.minorticks_off()


def plot_accuracy_effects(ax: Any, effects: pd.DataFrame, color: str = "#D55E00") -> None:
    """SAM minus SGD test accuracy against rho: paired mean and 95% interval per radius."""
    e = effects.dropna(subset=["vs SGD (points)"])
    e = e[e["method"] == "sam"]
    interval_points(ax, e["rho"].to_numpy(), e["95% low"].to_numpy(),
                     e["vs SGD (points)"].to_numpy(), e["95% high"].to_numpy(), color,
                     "SAM − SGD, mean and 95% interval over seeds")
    ax.axhline(0, color="0.5", lw=0.8)
    log_x(ax, e["rho"])
    ax.set_xlabel("ρ")
    ax.set_ylabel("test accuracy difference (points)")


STUDY_LABEL = "CIFAR-10 (JPEG copy), CPU study: width-16 CNN, 5,000 images, 40 epochs"


def provenance_line(rs: Any) -> str:
    """Where the study's records come from (commits, devices, torch), under its own label."""
    p = provenance(rs)
    return (f"{STUDY_LABEL}: {p['runs']} runs from {p['source']}; commit "
            f"{', '.join(p['commits']) or '-'}; device {', '.join(p['devices']) or '-'}; torch "
            f"{', '.join(p['torch']) or '-'}; total wall time {p['wall_time_s'] / 3600:.1f} h")


def cost_text(records: Iterable[dict[str, Any]]) -> str:
    """Mean wall time per run, by method: "3.2 min (SGD) and 5.1 min (SAM)"."""
    times: dict[str, list[float]] = defaultdict(list)
    for r in records:
        times[r["config"]["method"].upper()].append(r["wall_time_s"] / 60)
    return " and ".join(f"{np.mean(v):.1f} min ({m}, mean of {len(v)})"
                        for m, v in sorted(times.items(), key=lambda kv: kv[0] != "SGD"))


def _iv(est: float, lo: float, hi: float, digits: int = 2) -> str:
    return f"{est:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def findings(effects: pd.DataFrame, verdicts: pd.DataFrame,
             controls: pd.DataFrame | None = None, min_seeds: int = 3) -> pd.DataFrame:
    """The answer table: per SAM radius, the accuracy effect, the stall verdict and the
    control's, each with the interval it rests on (verdicts need ``min_seeds`` seeds)."""
    eff = effects[effects["method"] == "sam"].set_index("rho")
    ver = verdicts.set_index("rho") if len(verdicts) else pd.DataFrame()
    ctl = controls.set_index("rho") if controls is not None and len(controls) else pd.DataFrame()
    rows = []
    for rho, e in eff.iterrows():
        row = {"rho": rho, "seeds": int(e["seeds"]),
               "SAM - SGD test acc (points) [95%]": "—", "accuracy": "undecided",
               "stall verdict": "not tested", "SAM/SGD drop [95%]": "—",
               "control": "—"}
        if not math.isnan(e.get("vs SGD (points)", math.nan)):
            row["SAM - SGD test acc (points) [95%]"] = _iv(e["vs SGD (points)"], e["95% low"],
                                                           e["95% high"], 1)
            row["accuracy"] = e["verdict"] if e["seeds"] >= min_seeds else "undecided"
        if rho in ver.index:
            v = ver.loc[rho]
            row["stall verdict"] = v["verdict"]
            if not math.isnan(v["drop 95% low"]):
                row["SAM/SGD drop [95%]"] = (f"{v['SAM/SGD drop']:.2f} "
                                             f"[{v['drop 95% low']:.2f}, {v['drop 95% high']:.2f}]")
        if rho in ctl.index:
            row["control"] = ctl.loc[rho, "verdict"]
        rows.append(row)
    return pd.DataFrame(rows)


def findings_text(table: pd.DataFrame) -> str:
    """Plain sentences from :func:`findings`, no stronger than its intervals."""
    def radii(mask: pd.Series) -> str:
        r = [f"{x:g}" for x in table.loc[mask, "rho"]]
        return "ρ ∈ {" + ", ".join(r) + "}" if r else ""

    out = []
    for word, say in (("helps", "SAM beats SGD in test accuracy (95% interval above 0) at"),
                      ("hurts", "SAM loses to SGD (95% interval below 0) at")):
        if (table["accuracy"] == word).any():
            out.append(f"{say} {radii(table['accuracy'] == word)}.")
    und = table["accuracy"] == "undecided"
    if und.any():
        out.append(f"The accuracy effect is undecided at {radii(und)} (the interval contains 0, "
                   f"or fewer than 3 seeds).")
    for cls in ("stall", "misaligned step", "cycle", "no stall"):
        m = table["stall verdict"] == cls
        if m.any():
            out.append(f"Stall test, every seed agreeing: **{cls}** at {radii(m)}.")
    m = table["stall verdict"] == "undecided"
    if m.any():
        out.append(f"Stall test undecided at {radii(m)}: at none of these radii does one "
                   f"class of the rule hold at every seed.")
    for cls, say in (("escape", "SGD finds more descent from SAM's end point than from the "
                                "loss-matched SGD control (95% interval above 0) at"),
                     ("no escape", "SGD finds less descent from SAM's end point than from the "
                                   "loss-matched control (95% interval below 0) at")):
        m = table["control"] == cls
        if m.any():
            out.append(f"{say} {radii(m)}.")
    return " ".join(out)


# ------------------------------------------------------------------ the chapter's tables
# Narrow enough for a phone column (358 px): an interval is one cell, SGD is a row label.

def _arm(row: dict[str, Any]) -> str:
    return "SGD" if row.get("method") == "sgd" else f"{row['rho']:g}"


def _cell_iv(row: dict[str, Any], est: str, lo: str = "95% low", hi: str = "95% high",
             digits: int = 1) -> str:
    if any(not isinstance(row.get(k), float) or math.isnan(row[k]) for k in (est, lo, hi)):
        return "—"
    return _iv(row[est], row[lo], row[hi], digits)


def calibration_view(cal: pd.DataFrame) -> Table:
    rows = [dict(r, iv=_cell_iv(r, "mean", digits=2)) for r in cal.to_dict("records")]
    return format_table(rows, [
        ("training images", "images", "d"), ("epochs", "epochs", "d"),
        ("SGD test acc (%)", "SGD acc (%)", ".2f"),
        ("SAM 0.1 minus SGD (points)", "SAM − SGD per seed", "s"), ("iv", "mean [95%]", "s")])


def effects_view(effects: pd.DataFrame) -> Table:
    rows = [dict(r, arm=_arm(r), iv=_cell_iv(r, "vs SGD (points)", digits=2))
            for r in effects.to_dict("records")]
    return format_table(rows, [
        ("arm", "ρ", "s"), ("seeds", "seeds", "d"), ("test acc (%)", "test acc (%)", ".2f"),
        ("iv", "SAM − SGD [95%]", "s"), ("verdict", "verdict", "s")])


def arms_view(effects: pd.DataFrame) -> Table:
    rows = [dict(r, name=("SGD" if r["method"] == "sgd" else f"{r['rho']:g}"),
                 iv=_cell_iv(r, "vs SGD (points)", digits=1),
                 verdict=r["verdict"] if isinstance(r["verdict"], str) else "—")
            for r in effects.to_dict("records")]
    return format_table(rows, [
        ("arm", "arm", "s"), ("name", "ρ", "s"), ("seeds", "seeds", "d"),
        ("test acc (%)", "acc (%)", ".1f"), ("iv", "− SGD [95%]", "s"),
        ("verdict", "verdict", "s")])


def findings_view(answer: pd.DataFrame) -> Table:
    """The answer table; the accuracy intervals it rests on are :func:`effects_view`'s."""
    return format_table(answer.to_dict("records"), [
        ("rho", "ρ", "g"), ("accuracy", "accuracy vs SGD", "s"),
        ("stall verdict", "stall test", "s"), ("SAM/SGD drop [95%]", "drop ratio [95%]", "s"),
        ("control", "control", "s")])
