"""Putting a chapter's figure into the book: glued by name for ``{glue:figure}``, then closed
(an open figure would be shown a second time, as the cell's own output)."""

from __future__ import annotations


def glue_figure(name: str, fig, *, svg: bool = False) -> None:
    """Glue ``fig`` as ``name`` without displaying it, then close it; ``svg=True`` glues it as
    SVG (line drawings: lighter than a retina PNG)."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    from ...plotting import as_svg

    if not name or not isinstance(name, str):
        raise ValueError(f"name must be the figure's glue key, e.g. 'fig-ch2-asym', got {name!r}")
    try:
        glue(name, as_svg(fig) if svg else fig, display=False)
    finally:
        plt.close(fig)
