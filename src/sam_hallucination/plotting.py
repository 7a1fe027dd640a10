"""One plot style for the whole book, and the HTML form of the book's text tables.

Call :func:`use_book_style` explicitly. Figures are drawn for the book's text column:
``COLUMN_WIDTH`` inches at ``figure.dpi`` = 88 fill its 660 CSS px at 1280 px, so a figure
at most that wide is shown at its drawn size and 9-pt text lands at 11 px or more.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

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
    "sgd-sam": PALETTE["sky"],
    "switch-signal": PALETTE["orange"],
}
CYCLE = [PALETTE[k] for k in ("blue", "vermillion", "green", "orange", "purple", "sky", "black")]
# Inches: the width of the book's text column at the DPI below (660 CSS px at 1280 px).
COLUMN_WIDTH = 7.5
BOOK_DPI = 88


def use_book_style() -> None:
    """Set matplotlib's rcParams to the book's style (high-DPI PNG, readable fonts).

    ``figure.dpi`` fixes the width a figure is shown at in the book (inches x 88 CSS px);
    keep figures at most :data:`COLUMN_WIDTH` wide and pass no ``dpi=`` of your own."""
    mpl.rcParams.update(
        {
            "figure.dpi": BOOK_DPI,
            "savefig.dpi": 200,
            "figure.figsize": (6.4, 4.0),
            "figure.constrained_layout.use": True,
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 10,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.prop_cycle": mpl.cycler(color=CYCLE),
            "image.cmap": "viridis",
            "lines.linewidth": 1.8,
            "svg.hashsalt": "sam-hallucination",  # stable SVG ids: re-execution is byte-identical
        }
    )
    try:  # retina PNGs in notebooks, when IPython is present
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png2x")
    except Exception:  # noqa: BLE001
        pass


def as_svg(fig):
    """The figure as an SVG image (``IPython.display.SVG``), closed afterwards: lighter than a
    retina PNG for line drawings and contour lines. Glue it like a figure."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import SVG

    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return SVG(data=buf.getvalue())


def ring_triptych(rho: float = 1.5, lim: float = 1.45, n: int = 301, dpi: int | None = None):
    """The Figure-1-style picture for the ring (‖x‖² − 1)² at radius ``rho``, drawn for the column.

    Panels: f (top left), the surrogate f^SAM(x) = f(x⁺) (top right), and streamlines of SAM's
    field −∇f(x⁺) (below), with the minimizer circle (dashed) and the hallucinated circle
    ‖x‖ = ρ − 1 (vermillion). Returns the figure, :data:`COLUMN_WIDTH` inches wide.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from .rd import dynamics
    from .rd.landscapes import DTYPE, RING

    g1 = np.linspace(-lim, lim, n) + 1e-7  # keep the origin (where u is undefined) off the grid
    xx, yy = np.meshgrid(g1, g1)
    pts = torch.as_tensor(np.stack([xx, yy], -1), dtype=DTYPE)
    f = RING(pts).numpy()
    f_sam = RING(dynamics.perturbed(RING, pts, rho)).numpy()
    v = -dynamics.step_direction(RING, pts, rho).numpy()
    speed = np.linalg.norm(v, axis=-1)
    circle = np.linspace(0, 2 * np.pi, 400)

    fig, ax_d = plt.subplot_mosaic(
        [["f", "fsam"], ["field", "field"]], figsize=(COLUMN_WIDTH, 7.6), dpi=dpi,
        height_ratios=[1, 1.25],
    )
    axes = [ax_d["f"], ax_d["fsam"], ax_d["field"]]
    levels = np.linspace(0, 1.5, 16)
    titles = [r"$f(x) = (\|x\|^2-1)^2$", rf"$f^{{\mathrm{{SAM}}}}(x) = f(x^+)$, $\rho = {rho:g}$",
              r"SAM's field $-\nabla f(x^+)$"]
    for ax, z, title in zip(axes[:2], (f, f_sam), titles, strict=False):
        cs = ax.contourf(xx, yy, np.minimum(z, 1.5), levels=levels, cmap="viridis")
        ax.set_title(title)
    axes[2].streamplot(xx, yy, v[..., 0], v[..., 1], color=np.log10(speed + 1e-3), cmap="magma_r",
                       density=1.1, linewidth=0.9, arrowsize=0.9)
    axes[2].set_title(titles[2])
    for ax in axes:
        ax.plot(np.cos(circle), np.sin(circle), color="white" if ax is not axes[2] else "k",
                lw=1.4, ls="--", label="minimizers of $f$ (‖x‖ = 1)")
        ax.plot((rho - 1) * np.cos(circle), (rho - 1) * np.sin(circle), color=PALETTE["vermillion"],
                lw=2.4, label=r"hallucinated circle ‖x‖ = $\rho - 1$")
        ax.set_aspect("equal")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.grid(False)
    fig.colorbar(cs, ax=axes[:2], shrink=0.8, label="value (clipped at 1.5)")
    fig.legend(*axes[2].get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    return fig


# ----------------------------------------------------------------------------------------
# Text tables as HTML tables

def _split_columns(lines: list[str], min_gap: int = 2) -> list[list[str]] | None:
    """Split an aligned, fixed-width table (a header line, then rows) into cells.

    Columns are found in the rows: a boundary is a run of at least ``min_gap`` character
    positions that are blank in every row. The header is cut at a blank inside each such
    gap (its labels may be wider than the numbers under them). Returns None when the rows
    do not line up into two or more columns, or a header label straddles a gap.
    The header is cut at its widest blank run inside each gap (the leftmost of equals).
    """
    width = max(len(line) for line in lines)
    header, *rows = [line.ljust(width) for line in lines]
    if not rows:
        return None
    blank = [all(row[i] == " " for row in rows) for i in range(width)]
    gaps, start = [], None
    for i, b in enumerate(blank):
        if b and start is None:
            start = i
        elif not b and start is not None:
            if i - start >= min_gap and start > 0:
                gaps.append((start, i))
            start = None
    if not gaps:
        return None
    def run_length(i: int) -> int:  # length of the run of blanks in the header around i
        a, b = i, i
        while a > 0 and header[a - 1] == " ":
            a -= 1
        while b < width and header[b] == " ":
            b += 1
        return b - a

    cuts = []
    for lo, hi in gaps:
        spaces = [i for i in range(lo, hi) if header[i] == " "]
        if not spaces:
            return None
        # the widest blank run of the header (labels are separated by two spaces or more), leftmost
        cuts.append(max(spaces, key=lambda i: (run_length(i), -i)))
    bounds = list(zip([0, *cuts], [*cuts, width], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in (header, *rows)]


@dataclass(frozen=True)
class TextTable:
    """A table printed as aligned text (``report.format_table`` and friends), shown as an
    HTML table in the book and as the same text in a terminal.

    Lines before the table that hold no run of two spaces are its caption; a blank line
    starts the next table. A block that does not line up into columns is shown as text.
    """

    text: str

    def __repr__(self) -> str:  # the text/plain form: exactly the printed table
        return self.text.rstrip("\n")

    def blocks(self) -> list[tuple[list[str], list[list[str]] | None, list[str]]]:
        """(caption lines, rows or None, raw table lines) for each blank-line-separated block."""
        from .report.tables import Table

        if isinstance(self.text, Table):  # built from rows: its cells, no parsing
            return [([], [list(self.text.header), *map(list, self.text.rows)],
                     self.text.split("\n"))]
        out = []
        for block in re.split(r"\n\s*\n", self.text.strip("\n")):
            lines = block.rstrip().split("\n")
            caption = []
            while lines and "  " not in lines[0].strip() and len(lines) > 1:
                caption.append(lines.pop(0).strip())
            body = [line.rstrip() for line in lines if line.strip()]
            rows = _split_columns(body) if len(body) >= 2 else None
            out.append((caption, rows, body))
        return out

    def _repr_html_(self) -> str:
        from .report.tables import html_table

        parts = []
        for caption, rows, body in self.blocks():
            cap = "".join(f"<p class=\"table-caption\">{html.escape(c)}</p>" for c in caption)
            if rows is None:
                parts.append(cap + "<pre>" + html.escape("\n".join(body)) + "</pre>")
                continue
            parts.append(cap + html_table(rows[0], rows[1:]))
        return "<div class=\"text-tables\">" + "".join(parts) + "</div>"


def show_table(text: str) -> None:
    """Display ``text`` (an aligned text table, or several separated by blank lines) as
    HTML tables in the book; a terminal shows the text unchanged."""
    from IPython.display import display

    display(TextTable(text))


# ----------------------------------------------------------------------------------------
# The banner a chapter shows while its GPU grid is owed

PREVIEW_MARKER = "smoke-preview"  # book/_ext/preview_titles.py adds "(preview)" to such pages
CPU_TIER_MARKER = "cpu-tier-banner"  # ... and "(CPU scale)" to pages that show the CPU-scale tier


def coverage_warning(tier: str, coverage: str, what: str):
    """The banner (an ``IPython.display.HTML``) that opens a chapter whose GPU grid is owed,
    or None once the GPU results exist, so it disappears by itself.

    ``tier`` is the tier shown: ``"smoke"`` (a warning: the page tests the code path only),
    ``"cpu"`` (a note: the page shows the CPU-scale tier, real but small runs) or ``"gpu"``
    (no banner): a ``ResultSet.tier``. ``coverage`` is the GPU grid's coverage line
    (``report.coverage_text``); ``what`` says what the grid tests, e.g. ``"SAM against ρ on
    CIFAR-10"``.
    """
    from .report.tiers import CPU_TIER_LABEL, CPU_TIER_TEXT, TIERS

    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS} (a ResultSet.tier), got {tier!r}")
    if tier == "gpu":
        return None
    from IPython.display import HTML

    if tier == "smoke":
        kind, marker, title = "warning", PREVIEW_MARKER, "Preview: smoke results only"
        body = (
            f"This page shows a <strong>CPU smoke run, not the experiment</strong>: "
            f"{html.escape(what)} needs GPU runs that are not committed yet. Every figure, "
            "table and verdict below tests the code path only and says nothing about SAM. "
        )
    else:
        kind, marker, title = "note", CPU_TIER_MARKER, CPU_TIER_LABEL
        body = (
            f"This page shows the <strong>CPU-scale tier</strong>: {CPU_TIER_TEXT}. "
            "Every figure, table and verdict below is computed from them and holds for "
            f"that setting only; the GPU grid for {html.escape(what)} is not committed yet. "
        )
    return HTML(
        f'<div class="admonition {kind} {marker}">'
        f'<p class="admonition-title">{title}</p>'
        f"<p>{body}GPU grid coverage: {html.escape(coverage)}.</p></div>"
    )


def legible_legends(fig, size: float = 9.0) -> None:
    """Raise every legend text in ``fig`` to at least ``size`` points (9 pt is 11 px in the
    book), for figures whose panels were drawn by helpers with smaller legends."""
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        for text in legend.get_texts():
            if text.get_fontsize() < size:
                text.set_fontsize(size)
    for legend in fig.legends:
        for text in legend.get_texts():
            if text.get_fontsize() < size:
                text.set_fontsize(size)
