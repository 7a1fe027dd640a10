"""The figures of Chapters 3b and 3c: ρκ along the asymmetric function's branches with the
survey's fractions (3b), the ring's basin and tail map, and the 2-cycle and the critical step
size (3c)."""

from __future__ import annotations

import math

import numpy as np

from ...plotting import PALETTE

# One style per (x⁺, birth) branch of the asymmetric function.
BRANCH_STYLE = {
    ("min L", "max"): (PALETTE["vermillion"], "-"),
    ("min L", "saddle"): (PALETTE["blue"], "-"),
    ("min R", "max"): (PALETTE["orange"], "--"),
    ("min R", "saddle"): (PALETTE["sky"], "--"),
}
TAIL_COLORS = ["0.85", PALETTE["vermillion"], PALETTE["purple"], PALETTE["orange"], PALETTE["green"],
               PALETTE["sky"]]  # one per ring.TAIL_CLASSES


def attraction_figure(C: np.ndarray, minimizers: dict[str, np.ndarray], summary: dict):
    """Left: ρκ along the four branches behind the asymmetric function's minimizers (ρ from
    0.5 to 2.1). Right: the survey's fraction of SAM-attracting points per (x⁺ type, birth)
    with its 95% interval (``summary`` from ``attraction.survey_summary``)."""
    import matplotlib.pyplot as plt

    from ...rd import attraction as AT

    rows_all = AT.branch_scan(C, np.arange(0.5, 2.1, 0.005), minimizers)
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4), width_ratios=[1, 1])
    for key, (col, ls) in BRANCH_STYLE.items():
        rr = sorted((r for r in rows_all if (r["x⁺"], r["birth"]) == key), key=lambda r: r["rho"])
        x = np.array([r["x"] for r in rr])
        rho_b = np.array([r["rho"] for r in rr])
        an = AT.point_analysis(np.repeat(C[None], len(rr), 0), x,
                               np.repeat(minimizers[key[0]][None], len(rr), 0), rho_b)
        axes[0].plot(rho_b, an["rho_kappa"], ls, color=col, label=f"x⁺ = {key[0]}, born at {key[1]}")
    axes[0].axhline(1, color="k", lw=1, ls=":")
    axes[0].set_ylim(-2, 8)
    axes[0].set_xlabel(r"$\rho$")
    axes[0].set_ylabel(r"$\rho\kappa$")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title("asymmetric function", fontsize=10)
    labels, fr, err_lo, err_hi = [], [], [], []
    for (ctype, birth), (k, n, lo, hi) in summary.items():
        labels.append(f"x⁺ {ctype}, born {birth} ({n})")
        fr.append(k / n)
        err_lo.append(k / n - lo)
        err_hi.append(hi - k / n)
    pos = np.arange(len(labels))[::-1]
    axes[1].barh(pos, fr, color=PALETTE["blue"], xerr=[err_lo, err_hi], capsize=3)
    axes[1].set_yticks(pos, labels, fontsize=7)
    axes[1].set_xlim(0, 1.05)
    axes[1].set_xlabel("fraction attracting SAM")
    axes[1].set_title("200 random quartics", fontsize=10)
    return fig


def ring_tails_figure(tails: dict, rho_max: float, eta_max: float):
    """Left: the basin fraction of the hallucinated circle per (ρ, η) cell. Right: the
    majority tail class, hatched where no tail comes near the minimizer circle. ``tails``
    is ``attraction.load_ring_tails``; the map spans (0, ``rho_max``) x (0, ``eta_max``)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from ...rd import ring as RG

    rhos, etas, counts, near_min = tails["rhos"], tails["etas"], tails["counts"], tails["near_min"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.5), sharey=True)
    ext = (0, rho_max, 0, eta_max)
    im = axes[0].imshow(tails["basin"].T, origin="lower", extent=ext, aspect="auto", cmap="viridis",
                        vmin=0, vmax=1)
    fig.colorbar(im, ax=axes[0], label="basin fraction", shrink=0.85)
    axes[0].set_title("starts that reach the hallucinated circle", fontsize=9)
    axes[1].imshow(counts.argmax(-1).T, origin="lower", extent=ext, aspect="auto",
                   cmap=ListedColormap(TAIL_COLORS), vmin=-0.5, vmax=len(TAIL_COLORS) - 0.5,
                   interpolation="nearest")
    never = (near_min == 0).T.astype(float)
    axes[1].contourf(rhos, etas, never, levels=[0.5, 1.5], colors="none", hatches=["////"])
    axes[1].set_title("majority tail; hatched: no tail within 0.05 of ‖x‖ = 1", fontsize=9)
    for ax in axes:
        ax.axvline(1, color="k", lw=0.8, ls="--")
        ax.axvline(2, color="k", lw=0.8, ls="--")
        ax.axhline(0.25, color="k", lw=0.8, ls="--")
        ax.axhline((math.sqrt(5) - 1) / 4, color="k", lw=0.8, ls=":")
        ax.set_xlabel(r"$\rho$")
        ax.grid(False)
    axes[0].set_ylabel(r"$\eta$")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in TAIL_COLORS]
    fig.legend(handles, RG.TAIL_CLASSES, loc="outside lower center", ncol=3, frameon=False, fontsize=8)
    return fig


def critical_figure(deltas: np.ndarray, amp: np.ndarray):
    """Left: the measured half-amplitude of the 2-cycle (``amp`` at η = 1/4 + ``deltas``,
    ρ = 1.5) with √(η − 1/4) and the exact formula. Right: |e_k|√(16k) at η = 1/4 from
    e_0 = ±0.05."""
    import matplotlib.pyplot as plt

    from ...rd import ring as RG

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
    dd = np.geomspace(1e-4, 0.06, 40)
    axes[0].loglog(deltas, amp, "o", color=PALETTE["vermillion"], label="measured on the ring (ρ = 1.5)")
    axes[0].loglog(dd, np.sqrt(dd), "-", color="0.5", label=r"$\sqrt{\eta - 1/4}$")
    axes[0].loglog(dd, np.sqrt(dd / (4 * (0.25 + dd))), ":", color="k", label="Proposition 3b.4")
    axes[0].set_xlabel(r"$\eta - 1/4$")
    axes[0].set_ylabel("2-cycle half-amplitude")
    axes[0].legend(fontsize=7)
    ks = np.unique(np.geomspace(1, 1e5, 60).astype(int))
    for e0, col in ((0.05, PALETTE["blue"]), (-0.05, PALETTE["orange"])):
        dk = RG.critical_decay(e0=e0, checkpoints=tuple(ks))
        axes[1].semilogx(list(dk), list(dk.values()), color=col, label=f"$e_0 = {e0:+.2f}$")
    axes[1].axhline(1, color="k", lw=0.8, ls=":")
    axes[1].set_xlabel("step $k$")
    axes[1].set_ylabel(r"$|e_k|\sqrt{16k}$ at $\eta = 1/4$")
    axes[1].legend(fontsize=8)
    return fig
