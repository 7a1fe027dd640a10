"""A figure as one light frame: a palette PNG (line art, dots, a few colours) or a JPEG.

The book's interactive figures are precomputed frames embedded in the page, so their weight
is the page's weight: a 32-colour PNG of a line drawing is a quarter of the RGBA PNG
matplotlib writes, and sharper than a JPEG of the same size.
"""

from __future__ import annotations

import io


def encode_frame(fig, fmt: str = "png", *, dpi: float | None = None, colors: int = 32,
                 quality: int = 60) -> bytes:
    """``fig`` rendered once, as bytes: ``"png"`` quantised to ``colors`` colours (2–256) or
    ``"jpeg"`` at ``quality`` (1–95), at ``dpi`` (default: the figure's own)."""
    from PIL import Image

    if fmt not in ("png", "jpeg"):
        raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
    if not 2 <= colors <= 256:
        raise ValueError(f"colors must be in 2..256 (a PNG palette), got {colors!r}")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be in 1..95 (JPEG), got {quality!r}")
    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=dpi if dpi is not None else fig.dpi)
    image = Image.open(io.BytesIO(raw.getvalue())).convert("RGB")
    out = io.BytesIO()
    if fmt == "png":
        # a fixed palette method and no dithering: the same figure gives the same bytes
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            out, format="png", optimize=True)
    else:
        image.save(out, format="jpeg", quality=quality, optimize=True)
    return out.getvalue()
