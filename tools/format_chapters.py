"""Bring chapter sources (``notebooks/*.md``) to the book's code conventions.

* ``# NBVAL_CHECK_OUTPUT`` comments become the ``nbval-check-output`` cell tag (nbval 0.11
  honours the tag with ``--nbval-lax``; readers no longer see the marker);
* code cells are formatted by ``ruff format`` at 88 columns (quotes preserved), through a
  jupytext round trip that leaves the Markdown cells untouched.

    python tools/format_chapters.py notebooks/ch03b_attraction.md      # one chapter
    python tools/format_chapters.py                                     # every chapter

Long string literals are not split by the formatter: ``tests/test_notebooks.py`` names any
line still over 88 columns. Re-execute the chapter afterwards (``make execute``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^\s*#\s*NBVAL_CHECK_OUTPUT\s*\n?", re.MULTILINE)
TAG = "nbval-check-output"


def marker_to_tag(source: str, tags: list[str]) -> tuple[str, list[str]]:
    """Remove a ``# NBVAL_CHECK_OUTPUT`` line from ``source``; add the tag when there was one."""
    new, n = MARKER.subn("", source, count=1)
    if n and TAG not in tags:
        tags = [*tags, TAG]
    return new, tags


def format_chapter(path: Path, ruff: str) -> None:
    """Convert markers to tags and format the code cells of one chapter in place."""
    nb = jupytext.read(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            src, tags = marker_to_tag(cell.source, list(cell.metadata.get("tags", [])))
            cell.source = src
            if tags:
                cell.metadata["tags"] = tags
    with tempfile.TemporaryDirectory() as tmp:
        ipynb = Path(tmp) / (path.stem + ".ipynb")
        jupytext.write(nb, ipynb)
        subprocess.run(
            [ruff, "format", "--quiet", "--line-length", "88", "--config", 'format.quote-style="preserve"',
             str(ipynb)],
            check=True,
        )
        formatted = jupytext.read(ipynb)
    formatted.metadata = nb.metadata
    jupytext.write(formatted, path, fmt="md:myst")
    # jupytext stamps its version into the header; the chapters do not carry it
    text = re.sub(r"^    (format_version|jupytext_version): .*\n", "", path.read_text(), flags=re.MULTILINE)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("chapters", nargs="*", type=Path, help="chapter sources (default: notebooks/*.md)")
    args = ap.parse_args(argv)
    chapters = args.chapters or sorted((ROOT / "notebooks").glob("*.md"))
    ruff = str(Path(sys.executable).with_name("ruff"))
    for path in chapters:
        format_chapter(path, ruff)
        print(f"formatted {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
