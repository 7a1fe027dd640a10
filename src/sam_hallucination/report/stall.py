"""Chapter 5's stall test: the verdict per end point and per radius, the annealed control,
and the mechanism at w+.

The rule is fixed in advance (:data:`RULE`) and printed in the chapter; every verdict comes
with the intervals it rests on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..runs.stalltest import STALL_SCHEMA
from ..runs.store import parse_record
from ..stats import paired_interval
from .study import interval_points, log_x
from .tables import Table, format_table

RULE = {
    "stall": "the gradient is resolved (95% lower bound of ‖E g‖ above 0), the step/gradient "
             "ratio's 95% upper bound is below 0.25, and SAM's continuation lowers the "
             "objective by less than 10% of what SGD's lowers it from the same point",
    "misaligned step": "the ratio's lower bound is above 0.25 but the upper bound of SAM's "
                       "first-order progress ⟨E g, E h⟩/‖E g‖² is below 0.25: a step that "
                       "does not descend",
    "cycle": "neither of those, SAM's continuation drop is below 10% of SGD's and its net "
             "displacement below 10% of its path length",
    "no stall": "the ratio's lower bound is above 0.75 and the progress's lower bound above 0.5",
    "undecided": "anything else",
}


def classify(res: dict[str, Any]) -> str:
    """The class of one stall-test result under :data:`RULE`."""
    s = res["stats"]
    ratio, prog, grad = s["ratio"], s["progress"], s["grad_sq"]
    sam, sgd = res["sam_continuation"], res["sgd_continuation"]
    frac = sam["drop"] / sgd["drop"] if sgd["drop"] > 0 else math.nan
    if grad["low"] > 0 and ratio["high"] < 0.25 and frac < 0.10:
        return "stall"
    if ratio["low"] > 0.25 and prog["high"] < 0.25:
        return "misaligned step"
    if frac < 0.10 and sam["displacement"] < 0.10 * sam["path_length"]:
        return "cycle"
    if ratio["low"] > 0.75 and prog["low"] > 0.5:
        return "no stall"
    return "undecided"


def _nan(x: Any) -> Any:
    """Stored nulls (non-finite numbers, e.g. the ratio at an unresolved gradient) as NaN."""
    if x is None:
        return math.nan
    if isinstance(x, dict):
        return {k: _nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan(v) for v in x]
    return x


def load_folder(folder: Path, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Run id -> stall record of every ``<prefix>*.json`` in ``folder`` (none if missing).

    With no prefix, the end points' own records; ``prefix="control_"``, their controls
    (keyed by the SAM run they control)."""
    out = {}
    for p in sorted(Path(folder).glob(f"{prefix}*.json")):
        if not prefix and p.name.startswith("control_"):
            continue
        rec = parse_record(p.read_text())
        rec["result"] = _nan(rec.get("result"))
        # a control kept at schema 1: its retraining did not replay its weights bit-exactly,
        # so its step estimate was not redone; its continuations (the verdict) stand
        ok = {STALL_SCHEMA, 1} if prefix == "control_" else {STALL_SCHEMA}
        if rec.get("stall_schema") not in ok:
            raise ValueError(f"{p}: stall_schema {rec.get('stall_schema')!r}, not "
                             f"{STALL_SCHEMA}: run python -m sam_hallucination.runs.endpoints "
                             f"{rec.get('sweep', 'SWEEP')} --upgrade")
        out[rec["run_id"]] = rec
    return out


def endpoint_table(stall: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per stall-tested end point: the numbers the rule reads, and its class."""
    rows = []
    for rid, rec in stall.items():
        res, cfg = rec["result"], rec["config"]
        s = res["stats"]
        sam, sgd = res["sam_continuation"], res["sgd_continuation"]
        rows.append({
            "method": cfg["method"], "rho": float(cfg["rho"]), "seed": int(cfg["seed"]),
            "loss": res["loss"], "grad": s["grad_norm"]["estimate"],
            "ratio": s["ratio"]["estimate"], "ratio low": s["ratio"]["low"],
            "ratio high": s["ratio"]["high"], "progress": s["progress"]["estimate"],
            "progress low": s["progress"]["low"], "progress high": s["progress"]["high"],
            "cosine": s["cosine"]["estimate"], "grad_sq low": s["grad_sq"]["low"],
            "step_sq": s["step_sq"]["estimate"], "step_sq high": s["step_sq"]["high"],
            "SAM/SGD drop": sam["drop"] / sgd["drop"] if sgd["drop"] > 0 else math.nan,
            "SGD drop / predicted": sgd["drop_over_predicted"],
            "SAM drop / predicted": sam["drop_over_predicted"],
            "SAM displacement / path": sam["displacement"] / sam["path_length"],
            "dead at w+": res["mechanism"]["at_w_plus"]["dead_fraction"],
            "class": classify(res), "run_id": rid})
    if not rows:  # no end point tested yet: the columns, no rows
        return pd.DataFrame(columns=["method", "rho", "seed", "ratio", "ratio low", "ratio high",
                                     "progress", "SAM/SGD drop", "class", "run_id"])
    return pd.DataFrame(rows).sort_values(["method", "rho", "seed"]).reset_index(drop=True)


def estimator_change(stall: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per SAM radius: the step estimate over one partition's batches (schema 1, kept in
    ``batch_stats``) against the one over independent partitions (the rule's input).

    A true squared norm is never negative. Over one partition the U-statistic subtracts the
    noise of *independent* batches, but batches that share no image carry less: biased low,
    it put whole 95% intervals of ‖E h‖² below 0. Over independent partitions it is not."""
    rows = []
    for rec in stall.values():
        cfg, res = rec["config"], rec["result"]
        if cfg["method"] != "sam" or "batch_stats" not in res:
            continue
        old, new = res["batch_stats"], res["stats"]
        rows.append({"rho": float(cfg["rho"]), "old ratio": old["ratio"]["estimate"],
                     "new ratio": new["ratio"]["estimate"],
                     "new ratio width": new["ratio"]["high"] - new["ratio"]["low"],
                     "old ratio width": old["ratio"]["high"] - old["ratio"]["low"],
                     "old negative": old["step_sq"]["high"] < 0,
                     "new negative": new["step_sq"]["high"] < 0, "n": 1})
    if not rows:
        return pd.DataFrame(columns=["rho", "n", "old negative", "new negative"])
    t = pd.DataFrame(rows)
    return t.groupby("rho").agg({"old ratio": "mean", "old ratio width": "mean",
                                 "old negative": "sum", "new ratio": "mean",
                                 "new ratio width": "mean", "new negative": "sum",
                                 "n": "sum"}).reset_index()


def estimator_text(change: pd.DataFrame) -> str:
    """The change of estimator in numbers: negative squared norms and interval widths."""
    if change.empty:
        return "No end point has both estimates."
    n = int(change["n"].sum())
    return (f"Over one partition, {int(change['old negative'].sum())} of {n} SAM end points had "
            f"a debiased ‖E h‖² whose whole 95% interval lies below 0; over independent "
            f"partitions, {int(change['new negative'].sum())} of {n} do. The mean width of the "
            f"ratio's interval goes from {change['old ratio width'].mean():.2f} to "
            f"{change['new ratio width'].mean():.3f}.")


def radius_verdicts(endpoints: pd.DataFrame, min_seeds: int = 3) -> pd.DataFrame:
    """Per SAM radius: the class if every seed (>= ``min_seeds``) agrees, else "undecided"."""
    rows: list[dict[str, Any]] = []
    for rho, g in endpoints[endpoints["method"] == "sam"].groupby("rho"):
        classes = list(g["class"])
        agree = len(g) >= min_seeds and len(set(classes)) == 1
        d = g["SAM/SGD drop"].to_numpy(float)
        t = paired_interval(d, np.zeros_like(d)) if len(d) >= 2 else None
        rows.append({"rho": rho, "seeds": len(g), "verdict": classes[0] if agree else "undecided",
                     "classes": ", ".join(classes),
                     "ratio (range of estimates)": f"{g['ratio'].min():.2f}-{g['ratio'].max():.2f}",
                     "SAM/SGD drop": float(d.mean()),
                     "drop 95% low": t.low if t else math.nan,
                     "drop 95% high": t.high if t else math.nan})
    return pd.DataFrame(rows, columns=["rho", "seeds", "verdict", "classes",
                                       "ratio (range of estimates)", "SAM/SGD drop",
                                       "drop 95% low", "drop 95% high"])


def arm_verdicts(arms: dict[str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    """:func:`radius_verdicts` for each extra arm (name -> its stall records)."""
    parts = [radius_verdicts(endpoint_table(stall)).assign(arm=name)
             for name, stall in arms.items() if stall]
    cols = ["arm", "rho", "seeds", "verdict", "classes", "SAM/SGD drop", "drop 95% low",
            "drop 95% high"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def plot_drop_ratio(ax: Any, endpoints: pd.DataFrame, color: str = "#D55E00") -> None:
    """SAM/SGD continuation-drop ratio against rho: each seed, and the mean with its interval."""
    sam = endpoints[endpoints["method"] == "sam"]
    ax.plot(sam["rho"], sam["SAM/SGD drop"], ".", color="0.55", label="one seed")
    rows = radius_verdicts(sam, min_seeds=1)
    ok = rows.dropna(subset=["drop 95% low"])
    interval_points(ax, ok["rho"].to_numpy(), ok["drop 95% low"].to_numpy(),
                     ok["SAM/SGD drop"].to_numpy(), ok["drop 95% high"].to_numpy(), color,
                     "mean and 95% interval over seeds")
    ax.axhline(1, color="0.5", lw=0.8, ls=":")
    ax.axhline(0.1, color="0.5", lw=0.8, ls="--", label="stall threshold (0.1)")
    log_x(ax, sam["rho"])
    ax.set_xlabel("ρ")
    ax.set_ylabel("SAM's drop / SGD's drop (5 epochs)")


def plot_step_ratio(ax: Any, endpoints: pd.DataFrame, color: str = "#D55E00") -> None:
    """Debiased step/gradient ratio per end point with its 95% bootstrap interval."""
    sam = endpoints[endpoints["method"] == "sam"].sort_values(["rho", "seed"])
    jitter = 1 + 0.06 * (sam["seed"].rank(method="dense").to_numpy() - 2)
    interval_points(ax, sam["rho"].to_numpy() * jitter, sam["ratio low"].to_numpy(),
                     sam["ratio"].to_numpy(), sam["ratio high"].to_numpy(), color,
                     "‖E h‖/‖E g‖ (debiased), 95% interval")
    for y, ls in ((0.25, "--"), (0.75, ":")):
        ax.axhline(y, color="0.5", lw=0.8, ls=ls)
    log_x(ax, sam["rho"])
    ax.set_xlabel("ρ")
    ax.set_ylabel("step / gradient")


def _drop(c: dict[str, Any]) -> tuple[float, float]:
    return c["drop"], c["drop_over_predicted"]


def control_table(stall: dict[str, dict[str, Any]], controls: dict[str, dict[str, Any]]
                  ) -> pd.DataFrame:
    """Per controlled SAM end point: how well the annealed SGD control matches its loss,
    SGD's 5-epoch drop from each, and the class the same rule gives the control."""
    rows = []
    for rid, ctl in controls.items():
        end, cfg = stall[rid]["result"], stall[rid]["config"]
        m, res = ctl["control"], ctl["result"]
        d_sam, p_sam = _drop(end["sgd_continuation"])
        d_ctl, p_ctl = _drop(res["sgd_continuation"])
        rows.append({"rho": float(cfg["rho"]), "seed": int(cfg["seed"]),
                     "SAM loss": m["target_loss"], "control loss": m["control_loss"],
                     "gap": m["gap"], "matched": bool(m["within_tolerance"]),
                     "control epochs": m["control_epochs"], "control peak LR": m["control_lr"],
                     "SGD drop from SAM": d_sam, "SGD drop from control": d_ctl,
                     "excess drop": d_sam - d_ctl,
                     "SGD drop/pred. from SAM": p_sam, "SGD drop/pred. from control": p_ctl,
                     "control class": (classify(res) if ctl.get("stall_schema") == STALL_SCHEMA
                                       else "not re-estimated")})
    cols = ["rho", "seed"]
    return pd.DataFrame(rows).sort_values(cols).reset_index(drop=True) if rows else \
        pd.DataFrame(columns=cols)


def control_verdicts(table: pd.DataFrame, min_seeds: int = 3) -> pd.DataFrame:
    """Per radius: SGD's drop from SAM's end point minus its drop from the matched control,
    paired over seeds. "escape" (SAM stopped where SGD still finds descent the control
    lacks) if the 95% interval is above 0, "no escape" if below, else "undecided"."""
    rows = []
    for rho, g in table.groupby("rho"):
        d = g["excess drop"].to_numpy(float)
        iv = paired_interval(d, np.zeros_like(d)) if len(d) >= 2 else None
        ok = iv is not None and len(d) >= min_seeds and bool(g["matched"].all())
        rows.append({"rho": rho, "seeds": len(d), "matched": int(g["matched"].sum()),
                     "excess drop": float(d.mean()), "95% low": iv.low if iv else math.nan,
                     "95% high": iv.high if iv else math.nan,
                     "verdict": ("escape" if ok and iv.low > 0 else "no escape"
                                 if ok and iv.high < 0 else "undecided"),
                     "control classes": ", ".join(g["control class"])})
    return pd.DataFrame(rows, columns=["rho", "seeds", "matched", "excess drop", "95% low",
                                       "95% high", "verdict", "control classes"])


def mechanism_table(stall: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per SAM radius (means over seeds): what the network looks like at w and at w+."""
    rows = []
    for rec in stall.values():
        cfg, mech = rec["config"], rec["result"]["mechanism"]
        w, wp, seg = mech["at_w"], mech["at_w_plus"], mech["segment"]
        rows.append({"method": cfg["method"], "rho": float(cfg["rho"]),
                     "logit spread at w": w["logit_spread"],
                     "logit spread at w+": wp["logit_spread"],
                     "top-class share at w+": wp["majority_share"],
                     "dead at w": w["dead_fraction"], "dead at w+": wp["dead_fraction"],
                     "f(w+) - f(w)": seg["objective"][seg["t"].index(1.0)] - seg["objective"][0],
                     "curvature at w+": seg["curvature_at_w_plus"], "n": 1})
    if not rows:
        return pd.DataFrame(columns=["method", "rho", "n"])
    t = pd.DataFrame(rows)
    agg = {c: "mean" for c in t.columns if c not in ("method", "rho", "n")}
    return t.groupby(["method", "rho"]).agg({**agg, "n": "sum"}).reset_index()



def mechanism_text(mech: pd.DataFrame) -> str:
    """What the mechanism table shows, in numbers: dead channels, the logits, the curvature."""
    sam = mech[mech["method"] == "sam"].set_index("rho")
    if sam.empty:
        return "No SAM end point has been tested yet."
    lo, hi = sam.index.min(), sam.index.max()
    change = (sam["logit spread at w+"] / sam["logit spread at w"] - 1).abs().max()
    return (f"The largest share of dead channels at $w^+$ is {sam['dead at w+'].max():.3f}. The "
            f"logit spread at $w^+$ is within {100 * change:.0f}% of its value at $w$ at every "
            f"radius, while the spread at $w$ itself falls from {sam.loc[lo, 'logit spread at w']:.2f} "
            f"(ρ = {lo:g}) to {sam.loc[hi, 'logit spread at w']:.2f} (ρ = {hi:g}). The curvature of "
            f"$f$ at $w^+$ along the ascent lies between {sam['curvature at w+'].min():.3g} and "
            f"{sam['curvature at w+'].max():.3g}.")


def stall_reading(ends: pd.DataFrame) -> str:
    """The endpoint table in sentences: where SAM ends, how it descends, which stall
    conditions its seeds meet (numbers only; the verdict is :func:`radius_verdicts`')."""
    sam = ends[ends["method"] == "sam"]
    if sam.empty:
        return "No SAM end point has been tested yet."
    small, large = sam[sam["rho"] <= 0.2], sam[sam["rho"] >= 1]
    out = []
    if len(small):
        out.append(f"At ρ ≤ 0.2 SAM ends at a training loss of at most {small['loss'].max():.3f} "
                   f"and descends from there at {small['SAM/SGD drop'].min():.2f} of SGD's rate "
                   f"or more.")
    if len(large):
        res = int((large["grad_sq low"] > 0).sum())
        rates = ", ".join(f"{g['SAM/SGD drop'].mean():.2f} at ρ = {r:g}"
                          for r, g in large.groupby("rho"))
        out.append(f"At ρ ≥ 1 it ends at a loss of {large['loss'].min():.2f}–"
                   f"{large['loss'].max():.2f}, where the gradient is resolved at {res} of "
                   f"{len(large)} end points, and descends at {rates} of SGD's rate.")
    conds = pd.DataFrame({"rho": sam["rho"], "grad": sam["grad_sq low"] > 0,
                          "step": sam["ratio high"] < 0.25, "drop": sam["SAM/SGD drop"] < 0.10})
    for r, g in conds.groupby("rho"):
        n_all = int((g["grad"] & g["step"] & g["drop"]).sum())
        if g["drop"].any() or n_all:
            out.append(f"At ρ = {r:g}, {int(g['drop'].sum())} of {len(g)} seeds descend at less "
                       f"than 10% of SGD's rate, {int(g['step'].sum())} have the ratio's upper "
                       f"bound below 0.25, and {n_all} meet every stall condition.")
    return " ".join(out)


def control_text(table: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """The control tables in sentences: how well matched, and what each radius shows."""
    if table.empty:
        return "No annealed control has run yet."
    out = [f"{int(table['matched'].sum())} of {len(table)} controls end within ±0.03 of SAM's "
           f"loss (largest gap {table['gap'].abs().max():.3f})."]
    for _, v in verdicts.iterrows():
        out.append(f"At ρ = {v['rho']:g}, SGD's 5-epoch drop from SAM's end point minus its drop "
                   f"from the control is {v['excess drop']:+.4f} [{v['95% low']:+.4f}, "
                   f"{v['95% high']:+.4f}] over {v['seeds']} seeds: {v['verdict']}.")
    return " ".join(out)


# ------------------------------------------------------------------ the chapter's tables
# Narrow enough for a phone column (358 px): SGD is a row label, an interval is one cell.

def _arm(row: dict[str, Any]) -> str:
    return "SGD" if row.get("method") == "sgd" else f"{row['rho']:g}"


def endpoint_view(ends: pd.DataFrame) -> Table:
    rows = [dict(r, arm=_arm(r)) for r in ends.to_dict("records")]
    return format_table(rows, [
        ("arm", "ρ", "s"), ("seed", "seed", "d"), ("loss", "loss", ".3f"),
        ("ratio", "ratio", ".2f"), ("ratio low", "low", ".2f"), ("ratio high", "high", ".2f"),
        ("progress", "progress", ".2f"), ("SAM/SGD drop", "drop ratio", ".2f"),
        ("class", "class", "s")])


def control_view(table: pd.DataFrame) -> Table:
    return format_table(table.to_dict("records"), [
        ("rho", "ρ", "g"), ("seed", "seed", "d"), ("gap", "loss gap", "+.3f"),
        ("control epochs", "epochs", "d"), ("SGD drop from SAM", "SGD drop from SAM", ".3f"),
        ("SGD drop from control", "from control", ".3f"), ("control class", "control class", "s")])


def control_verdict_view(verdicts: pd.DataFrame) -> Table:
    rows = [dict(r, iv=(f"{r['excess drop']:+.3f} [{r['95% low']:+.3f}, {r['95% high']:+.3f}]"
                        if not math.isnan(r["95% low"]) else "—"))
            for r in verdicts.to_dict("records")]
    return format_table(rows, [
        ("rho", "ρ", "g"), ("matched", "matched seeds", "d"), ("iv", "excess drop [95%]", "s"),
        ("verdict", "verdict", "s")])


def estimator_view(change: pd.DataFrame) -> Table:
    return format_table(change.to_dict("records"), [
        ("rho", "ρ", "g"), ("old ratio", "ratio, one partition", ".2f"),
        ("old negative", "wholly < 0", "d"), ("new ratio", "ten partitions", ".2f"),
        ("new negative", "wholly < 0", "d")])


def arm_verdict_view(t: pd.DataFrame) -> Table:
    rows = [dict(r, iv=(f"{r['SAM/SGD drop']:.2f} [{r['drop 95% low']:.2f}, "
                        f"{r['drop 95% high']:.2f}]" if not math.isnan(r["drop 95% low"])
                        else "—")) for r in t.to_dict("records")]
    return format_table(rows, [("arm", "arm", "s"), ("rho", "ρ", "g"), ("seeds", "seeds", "d"),
                               ("iv", "drop ratio [95%]", "s"), ("verdict", "verdict", "s")])


def mechanism_view(mech: pd.DataFrame) -> Table:
    rows = [dict(r, arm=_arm(r)) for r in mech.to_dict("records")]
    return format_table(rows, [
        ("arm", "ρ", "s"), ("logit spread at w", "logit spread w", ".2f"),
        ("logit spread at w+", "w⁺", ".2f"), ("top-class share at w+", "top class w⁺", ".2f"),
        ("dead at w+", "dead w⁺", ".2f"), ("f(w+) - f(w)", "f(w⁺) − f(w)", ".3f"),
        ("curvature at w+", "curvature w⁺", ".3f")])
