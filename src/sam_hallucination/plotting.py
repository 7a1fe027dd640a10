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
