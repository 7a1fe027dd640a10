"""The figures of Chapter 3: the ring's phase diagrams, the spectral radius along the
asymmetric function's branches, and stochastic SAM near the hallucinated circle."""

from __future__ import annotations

import numpy as np

from ...plotting import PALETTE

# One colour per end state (rd.dynamics.EndState order).
STATE_COLORS = [PALETTE["green"], PALETTE["vermillion"], PALETTE["purple"], "0.85", PALETTE["sky"]]
NOISE_COLORS = {"step": PALETTE["blue"], "perturbation": PALETTE["vermillion"], "both": PALETTE["black"]}


def phase_figure(pd_local, pd_global):
    """The majority end state per (ρ, η) cell for local and global starts
    (``dynamics.PhaseDiagram``), with the analytic boundaries ρ = 1, ρ = 2, η = 1/4 dashed."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from ...rd import dynamics as D

    cmap = ListedColormap(STATE_COLORS)
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6), sharey=True)
    for ax, pd, title in ((axes[0], pd_local, "local starts (near ‖x‖ = ρ − 1)"),
                          (axes[1], pd_global, "global starts (uniform in the disk)")):
        ax.pcolormesh(pd.rho, pd.eta, pd.counts.argmax(-1).T, cmap=cmap, vmin=-0.5, vmax=4.5,
                      shading="nearest")
        ax.axvline(1, color="k", ls="--", lw=1.2)
        ax.axvline(2, color="k", ls="--", lw=1.2)
        ax.axhline(0.25, color="k", ls="--", lw=1.2)
        ax.set_title(title)
        ax.set_xlabel(r"$\rho$")
        ax.grid(False)
    axes[0].set_ylabel(r"$\eta$")
    shown = (D.EndState.HALLUCINATED, D.EndState.NOT_CONVERGED, D.EndState.DIVERGED)
    handles = [plt.Rectangle((0, 0), 1, 1, color=STATE_COLORS[c]) for c in shown]
    fig.legend(handles, [D.END_STATE_LABELS[c] for c in shown], loc="outside lower center", ncol=3,
               frameon=False)
    return fig


def branches_figure(branches: dict):
    """The spectral radius of DT (η = 0.05) along the asymmetric function's branches (the
    entries of ``branches`` whose name starts with "asym"), each over its ρ-interval."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    colors = [PALETTE["vermillion"], PALETTE["orange"], PALETTE["blue"], PALETTE["sky"]]
    asym = [kv for kv in branches.items() if kv[0].startswith("asym")]
    for (name, br), col in zip(asym, colors, strict=True):
        ax.plot(br.rho, br.radius, color=col, label=name)
        ax.axvspan(*br.rho_interval, color=col, alpha=0.06)
    ax.axhline(1, color="k", lw=1, ls="--")
    ax.set_ylim(0.75, 2.0)
    ax.set_xlabel(r"$\rho$")
    ax.set_ylabel(r"spectral radius of $DT$, $\eta = 0.05$")
    ax.legend(fontsize=9, loc="upper center", ncol=2)
    return fig


def noise_figure(sigmas: np.ndarray, noise: dict, spread_theory: np.ndarray, shift_theory: np.ndarray,
                 r_star: float = 0.5):
    """Stochastic SAM on the ring against the noise level: the spread of ‖x‖ under step noise,
    the mean shift under perturbation noise (each with its linear theory), and the share of
    runs that escaped, per noise mode (``noise`` from ``dynamics.noise_study``, by mode)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(7.5, 8.3))
    axes[0].plot(sigmas, noise["step"]["std_r"], "o", color=NOISE_COLORS["step"], label="measured")
    axes[0].plot(sigmas, spread_theory, "-", color="0.5", label="linear theory")
    axes[0].set_title("step noise: spread of ‖x‖")
    axes[0].set_ylabel("sd(‖x‖)")
    axes[1].plot(sigmas, noise["perturbation"]["mean_r"] - r_star, "o", color=NOISE_COLORS["perturbation"],
                 label="measured")
    axes[1].plot(sigmas, shift_theory, "-", color="0.5", label=r"$\sigma^2/6$")
    axes[1].set_title("perturbation noise: mean shift of ‖x‖")
    axes[1].set_ylabel(rf"mean ‖x‖ $-$ {r_star:g}")
    for mode, o in noise.items():
        axes[2].plot(sigmas, o["escaped"], "o-", color=NOISE_COLORS[mode], label=f"noise on {mode}")
    axes[2].set_title("runs that escaped (diverged)")
    axes[2].set_ylabel("fraction")
    for ax in axes:
        ax.set_xlabel(r"noise level $\sigma$")
        ax.legend(fontsize=9)
    return fig
