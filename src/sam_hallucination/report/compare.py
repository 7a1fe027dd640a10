"""The remedy's summary and the comparison of the two tiers of a CIFAR chapter (Chapter 6,
and Chapter 5's "both tiers" section)."""

from __future__ import annotations

from typing import Any

from .cifar import ResultSet, summarize, tier_lead
from .probe import stall_summary

ONSET_POINTS = 5.0  # accuracy points below SGD that count as SAM "falling"


def remedy_summary(rs: ResultSet) -> str:
    """Per ρ: plain SAM, the best warm-start fraction and decayed ρ, in accuracy points,
    led by the tier the numbers come from.

    Differences are quoted with the spread over seeds; a fraction "helps" only when its mean
    beats plain SAM's by more than the larger of the two standard deviations.
    """
    lead = tier_lead(rs) + " "
    if rs.smoke:
        return lead + ("Owed to the GPU runs: only the CPU smoke run exists (1 epoch on 512 "
                       "images), too short for the methods to say anything about the remedy.")
    parts = [_remedy_part(rho, d) for rho, d in remedy_cells(rs).items()]
    if not parts:
        return lead + "Owed: no warm-start run exists yet."
    return lead + "; ".join(parts) + "."


def remedy_cells(rs: ResultSet) -> dict[float, dict[str, Any]]:
    """Per ρ with a warm start: the plain-SAM row, the best warm-start row, the decayed-ρ
    row, whether the best warm start's mean gain exceeds the larger seed standard deviation
    (``helps``: a coarse rule, not a significance test) and its gain per seed, paired by seed."""
    rows = [r for r in summarize(rs) if r["mean"] is not None]
    out = {}
    for rho in sorted({r["rho"] for r in rows if r["method"] == "switch"}):
        sam = next((r for r in rows if r["method"] == "sam" and r["rho"] == rho), None)
        best = max((r for r in rows if r["method"] == "switch" and r["rho"] == rho),
                   key=lambda r: r["mean"])
        dec = next((r for r in rows if r["method"] == "rho-decay" and r["rho"] == rho), None)
        helps = None
        if sam is not None:
            noise = max(best["std"] or 0.0, sam["std"] or 0.0)
            helps = best["mean"] - sam["mean"] > noise and best["n"] > 1 and sam["n"] > 1
        gains = ([] if sam is None else
                 [100 * (b - a) for sd, a in zip(sam["seeds"], sam["values"], strict=True)
                  for sb, b in zip(best["seeds"], best["values"], strict=True) if sb == sd])
        out[rho] = {"sam": sam, "best": best, "decay": dec, "helps": helps, "seed_gains": gains}
    return out


def _remedy_part(rho: float, d: dict[str, Any]) -> str:
    sam, best, dec = d["sam"], d["best"], d["decay"]
    txt = f"ρ={rho:g}: "
    if sam is not None:
        gain = best["mean"] - sam["mean"]
        per = ", ".join(f"{g:+.1f}" for g in d["seed_gains"])
        txt += (f"SAM {100 * sam['mean']:.1f}%, best warm start {best['switch_frac']:.0%} "
                f"{100 * best['mean']:.1f}% ({100 * gain:+.1f} points; per seed {per})")
    else:
        txt += f"best warm start {best['switch_frac']:.0%} {100 * best['mean']:.1f}%"
    if dec is not None:
        txt += f", decayed ρ {100 * dec['mean']:.1f}%"
    return txt


def accuracy_onset(rs: ResultSet, points: float = ONSET_POINTS) -> float | None:
    """The smallest ρ at which plain SAM's mean test accuracy is more than ``points`` below
    SGD's (None if it never is, or there is no SGD run)."""
    rows = [r for r in summarize(rs) if r["mean"] is not None]
    sgd = next((r["mean"] for r in rows if r["method"] == "sgd"), None)
    if sgd is None:
        return None
    low = [r["rho"] for r in rows if r["method"] == "sam" and 100 * (sgd - r["mean"]) > points]
    return min(low) if low else None


def tier_agreement(gpu: ResultSet, cpu: ResultSet | None, z: float = 3.0) -> str:
    """Whether the GPU grid and the CPU-scale tier agree: where SAM's accuracy falls, the
    stall verdict, and (when both have warm starts) at which radii the warm start helps.
    Empty when there are not two tiers to compare."""
    if cpu is None or not cpu.records or gpu.tier != "gpu" or not gpu.records:
        return ""
    items = []
    on = [accuracy_onset(rs) for rs in (gpu, cpu)]
    fmt = lambda v: "never" if v is None else f"from ρ = {v:g}"  # noqa: E731
    items.append((f"SAM falls more than {ONSET_POINTS:g} points below SGD {fmt(on[0])} on the "
                  f"GPU grid and {fmt(on[1])} on the CPU tier", on[0] == on[1]))
    kinds = [stall_summary(rs, z)["kind"] for rs in (gpu, cpu)]
    items.append((f"the stall verdict is '{kinds[0]}' on the GPU grid and '{kinds[1]}' on "
                  "the CPU tier", kinds[0] == kinds[1]))
    cells = [remedy_cells(rs) for rs in (gpu, cpu)]
    common = set(cells[0]) & set(cells[1])
    if common:
        h = [sorted(rho for rho in common if c[rho]["helps"]) for c in cells]
        items.append((f"the warm start's mean gain exceeds the larger seed std at ρ ∈ "
                      f"{{{', '.join(f'{v:g}' for v in h[0])}}} on the GPU grid and "
                      f"{{{', '.join(f'{v:g}' for v in h[1])}}} on the CPU tier", h[0] == h[1]))
    agree = [t for t, ok in items if ok]
    differ = [t for t, ok in items if not ok]
    out = f"{tier_lead(gpu)} compared with {tier_lead(cpu)} "
    if not differ:
        return out + "The two tiers agree: " + "; ".join(agree) + "."
    out += "The two tiers differ: " + "; ".join(differ) + "."
    return out + (" They agree that " + "; ".join(agree) + "." if agree else "")
