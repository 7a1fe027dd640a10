"""Figures of the CIFAR sweeps (Chapters 5 and 6); titles say when a set is the CPU-scale
tier or the CPU smoke run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .cifar import (
    METHOD_LABELS,
    Cell,
    ResultSet,
    cell_name,
    cell_of,
    summarize,
)
from .probe import probe_rows

# ----------------------------------------------------------------------------- figures


def _title(ax: Any, text: str, rs: ResultSet) -> None:
    tag = rs.label if rs.tier != "gpu" else ""
    ax.set_title(f"{text}\n[{tag}]" if tag else text,
                 color="#D55E00" if rs.smoke else "black")


def plot_vs_rho(ax: Any, rs: ResultSet, name: str = "test_acc", at: str = "final",
                scale: float = 100.0, ylabel: str = "test accuracy (%)",
                methods: Sequence[str] | None = None, title: str = "") -> None:
    """Mean ± std over seeds against ρ (log axis), one curve per method/switch fraction.

    SGD (ρ = 0) is a horizontal line with a band of ± one std; seeds are dots.
    """
    from ..plotting import METHOD_COLORS, PALETTE

    rows = summarize(rs, name, at)
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        if methods is None or r["method"] in methods:
            groups.setdefault((r["method"], r["switch_frac"]), []).append(r)
    fracs = sorted({sw for (m, sw) in groups if m == "switch"})
    shades = [PALETTE["sky"], PALETTE["blue"], PALETTE["purple"], "#1b3a6b", PALETTE["orange"]]
    for (method, sw), rr in groups.items():
        rr = [r for r in rr if r["mean"] is not None]
        if not rr:
            continue
        color = shades[fracs.index(sw) % len(shades)] if method == "switch" else METHOD_COLORS[method]
        label = (f"SGD→SAM, {sw:.0%} SGD" if method == "switch" else METHOD_LABELS[method])
        if method == "sgd":
            m, s = rr[0]["mean"] * scale, (rr[0]["std"] or 0.0) * scale
            ax.axhline(m, color=color, ls="--", lw=1.2, label=f"{label} (ρ = 0)")
            if s:
                ax.axhspan(m - s, m + s, color=color, alpha=0.08)
            continue
        rr.sort(key=lambda r: r["rho"])
        x = [r["rho"] for r in rr]
        ax.errorbar(x, [r["mean"] * scale for r in rr],
                    yerr=[(r["std"] or 0.0) * scale for r in rr], marker="o", ms=4, capsize=3,
                    color=color, label=label)
        for r in rr:
            ax.plot([r["rho"]] * len(r["values"]), [v * scale for v in r["values"]], ".",
                    color=color, alpha=0.35, ms=4)
    ax.set_xscale("log")
    ax.set(xlabel="ρ", ylabel=ylabel)
    ax.legend(fontsize=9)
    _title(ax, title, rs)


def plot_curves(ax: Any, rs: ResultSet, key: str = "test_acc", cells: Sequence[Cell] | None = None,
                scale: float = 1.0, ylabel: str | None = None, title: str = "") -> None:
    """Per-epoch ``key`` averaged over seeds, one line per cell; the constant-LR epochs shaded."""
    from matplotlib.ticker import MaxNLocator

    from ..plotting import METHOD_COLORS

    by_cell: dict[Cell, list[dict[str, Any]]] = {}
    for r in rs.records:
        if r["status"] == "ok" and (cells is None or cell_of(r) in cells):
            by_cell.setdefault(cell_of(r), []).append(r)
    for i, (cell, rr) in enumerate(by_cell.items()):
        n = min(len(r["epochs"]) for r in rr)
        ys = [[r["epochs"][e].get(key) for r in rr] for e in range(n)]
        xs = [e + 1 for e in range(n) if all(v is not None for v in ys[e])]
        mean = [statistics.fmean(ys[e - 1]) * scale for e in xs]
        color = METHOD_COLORS.get(cell[0]) if cell[0] == "sgd" else None
        ax.plot(xs, mean, marker="o" if n < 4 else None, ms=3, color=color, lw=1.5,
                label=f"{cell_name(cell)} ({len(rr)} seed{'s' * (len(rr) > 1)})",
                alpha=0.9 if i < 10 else 0.5)
    main = {r["config"]["epochs"] for r in rs.records}
    if len(main) == 1 and any(r["config"]["final_constant_lr_epochs"] for r in rs.records):
        ax.axvspan(main.pop() + 0.5, ax.get_xlim()[1], color="0.5", alpha=0.1, lw=0)
    ax.set(xlabel="epoch", ylabel=ylabel or key)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=9)
    _title(ax, title, rs)


def plot_probe(axes: Sequence[Any], rs: ResultSet, z: float = 3.0) -> None:
    """Left: ‖SAM step‖ and ‖∇f + λw‖ with their noise floors against ρ (per run).
    Right: training-loss drop under K continuation steps, SGD against SAM, against ρ."""
    from ..plotting import METHOD_COLORS, PALETTE

    rows = probe_rows(rs, z)
    ax = axes[0]
    for r in rows:
        if r["cell"][0] == "sgd":
            continue
        for dx, key, mk, color in ((0.96, "grad", "o", PALETTE["black"]),
                                   (1.04, "sam_step", "s", METHOD_COLORS["sam"])):
            x = r["rho"] * dx
            ax.plot([x], [r[f"{key}_norm" if key == "grad" else "sam_step_norm"]], mk, ms=5,
                    color=color, alpha=0.75)
            if r[f"{key}_se"] is not None:  # the z-noise-floor as a short bar below the point
                ax.plot([x], [z * r[f"{key}_se"]], "_", ms=10, mew=2, color=color, alpha=0.75)
    ax.plot([], [], "o", color=PALETTE["black"], label="‖∇f + λw‖")
    ax.plot([], [], "s", color=METHOD_COLORS["sam"], label="‖E ∇f_B(w + ρu_B) + λw‖")
    ax.plot([], [], "_", ms=10, mew=2, color="0.4", label=f"{z:g} × noise floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="ρ", ylabel="norm at the final weights")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: no overlap
    _title(ax, "Stall diagnostics at the final weights", rs)
    ax = axes[1]
    for r in rows:
        if r["cell"][0] == "sgd" or r["sgd_drop"] is None:
            continue
        ax.plot([r["rho"] * 0.97], [r["sgd_drop"]], "o", color=PALETTE["black"], alpha=0.7)
        if r.get("ctl_drop") is not None:
            ax.plot([r["rho"]], [r["ctl_drop"]], "D", mfc="none", color=PALETTE["black"],
                    alpha=0.7, ms=5)
        if r["sam_drop"] is not None:
            ax.plot([r["rho"] * 1.03], [r["sam_drop"]], "s", color=METHOD_COLORS["sam"], alpha=0.7)
    base = [r["sgd_drop"] for r in rows if r["cell"][0] == "sgd" and r["sgd_drop"] is not None]
    if base:
        ax.axhline(statistics.fmean(base), color=PALETTE["black"], ls="--", lw=1,
                   label="SGD run, SGD continuation")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.plot([], [], "o", color=PALETTE["black"], label="SAM run, SGD continuation")
    if any(r.get("ctl_drop") is not None for r in rows):
        ax.plot([], [], "D", mfc="none", ms=5, color=PALETTE["black"],
                label="control: SGD from SGD at a matched loss")
    ax.plot([], [], "s", color=METHOD_COLORS["sam"], label="SAM run, SAM continuation")
    ax.set_xscale("log")
    ax.set(xlabel="ρ", ylabel="training-loss drop over K steps")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    _title(ax, "Continuation test", rs)


def plot_vs_switch(ax: Any, rs: ResultSet, scale: float = 100.0, title: str = "") -> None:
    """Accuracy against the SGD warm-start fraction, one line per ρ (fraction 0 = plain SAM)."""
    rows = summarize(rs)
    rhos = sorted({r["rho"] for r in rows if r["method"] in ("sam", "switch")})
    for rho in rhos:
        pts = sorted((r["switch_frac"], r) for r in rows if r["rho"] == rho
                     and r["method"] in ("sam", "switch") and r["mean"] is not None)
        if pts:
            ax.errorbar([100 * f for f, _ in pts], [r["mean"] * scale for _, r in pts],
                        yerr=[(r["std"] or 0.0) * scale for _, r in pts], marker="o", ms=4,
                        capsize=3, label=f"ρ = {rho:g}")
    sgd = [r for r in rows if r["method"] == "sgd" and r["mean"] is not None]
    if sgd:
        ax.axhline(sgd[0]["mean"] * scale, color="k", ls="--", lw=1.2, label="SGD")
    ax.set(xlabel="SGD warm-start (% of the main steps)", ylabel="test accuracy (%)")
    ax.legend(fontsize=9)
    _title(ax, title, rs)
