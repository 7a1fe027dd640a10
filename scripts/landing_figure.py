"""Draw the landing page's key figure from the library: book/images/landing-triptych.png.

Run by `make book` before the HTML build, so the figure always comes from the current code.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from sam_hallucination.plotting import BOOK_DPI, ring_triptych, use_book_style  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "images" / "landing-triptych.png"

if __name__ == "__main__":
    use_book_style()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig = ring_triptych(1.5)  # drawn for the book's column (plotting.COLUMN_WIDTH inches)
    fig.savefig(OUT, dpi=2 * BOOK_DPI, metadata={"Software": None})  # retina: 2 px per CSS px
    print(f"wrote {OUT.relative_to(OUT.parents[2])}")
