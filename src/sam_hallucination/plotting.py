"""One plot style for the whole book. Call :func:`use_book_style` explicitly."""

from __future__ import annotations

import matplotlib as mpl

# Okabe–Ito: a colour-blind-safe palette.
PALETTE = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
# Fixed colours per method so every chapter agrees.
METHOD_COLORS = {
    "gd": PALETTE["black"],
    "sgd": PALETTE["black"],
    "sam": PALETTE["vermillion"],
    "usam": PALETTE["purple"],
    "switch": PALETTE["blue"],
    "rho-decay": PALETTE["green"],
}
CYCLE = [PALETTE[k] for k in ("blue", "vermillion", "green", "orange", "purple", "sky", "black")]


def use_book_style() -> None:
    """Set matplotlib's rcParams to the book's style (high-DPI PNG, readable fonts)."""
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "figure.figsize": (6.4, 4.0),
            "figure.constrained_layout.use": True,
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.prop_cycle": mpl.cycler(color=CYCLE),
            "image.cmap": "viridis",
            "lines.linewidth": 1.8,
        }
    )
    try:  # retina PNGs in notebooks, when IPython is present
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png2x")
    except Exception:  # noqa: BLE001
        pass


def ring_triptych(rho: float = 1.5, lim: float = 1.45, n: int = 301, dpi: int = 80):
    """The Figure-1-style triptych for the ring (‖x‖² − 1)² at radius ``rho``.

    Panels: f, the surrogate f^SAM(x) = f(x⁺), and streamlines of SAM's field −∇f(x⁺), with the
    minimizer circle (dashed) and the hallucinated circle ‖x‖ = ρ − 1 (red). Returns the figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from . import dynamics
    from .landscapes import DTYPE, RING

    g1 = np.linspace(-lim, lim, n) + 1e-7  # keep the origin (where u is undefined) off the grid
    xx, yy = np.meshgrid(g1, g1)
    pts = torch.as_tensor(np.stack([xx, yy], -1), dtype=DTYPE)
    f = RING(pts).numpy()
    f_sam = RING(dynamics.perturbed(RING, pts, rho)).numpy()
    v = -dynamics.step_direction(RING, pts, rho).numpy()
    speed = np.linalg.norm(v, axis=-1)
    circle = np.linspace(0, 2 * np.pi, 400)

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6), dpi=dpi)
    levels = np.linspace(0, 1.5, 16)
    titles = [r"$f(x) = (\|x\|^2-1)^2$", rf"$f^{{\mathrm{{SAM}}}}(x) = f(x^+)$, $\rho = {rho:g}$",
              r"SAM field $-\nabla f(x^+)$"]
    for ax, z, title in zip(axes[:2], (f, f_sam), titles, strict=False):
        cs = ax.contourf(xx, yy, np.minimum(z, 1.5), levels=levels, cmap="viridis")
        ax.set_title(title)
    axes[2].streamplot(xx, yy, v[..., 0], v[..., 1], color=np.log10(speed + 1e-3), cmap="magma_r",
                       density=1.3, linewidth=0.8, arrowsize=0.8)
    axes[2].set_title(titles[2])
    for ax in axes:
        ax.plot(np.cos(circle), np.sin(circle), color="white" if ax is not axes[2] else "k",
                lw=1.2, ls="--", label="minimizers of $f$ (‖x‖ = 1)")
        ax.plot((rho - 1) * np.cos(circle), (rho - 1) * np.sin(circle), color=PALETTE["vermillion"],
                lw=2.2, label=r"hallucinated circle ‖x‖ = $\rho - 1$")
        ax.set_aspect("equal")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.grid(False)
    fig.colorbar(cs, ax=axes[1], shrink=0.75, label="value (clipped at 1.5)")
    fig.legend(*axes[2].get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    return fig
