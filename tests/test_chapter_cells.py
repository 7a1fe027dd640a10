"""Chapter code reads like a lecture (issue 28): the median code cell of every chapter in
_toc.yml is at most 12 lines. Logic a chapter would write by hand belongs in the library.

Lines are those of the cell's source as the notebook holds it (jupytext), blank lines
included; remove-cell cells count too.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from execute_chapters import toc_chapters  # noqa: E402

MAX_MEDIAN_LINES = 12
# Chapters that others are rewriting (issue 28). Remove a name once its chapter passes, so
# that the rule holds for it from then on; a name that is no chapter fails below.
EXEMPT: set[str] = set()


def code_cell_lengths(path: Path) -> list[int]:
    """Lines of each code cell's source, in order."""
    return [len(c.source.splitlines()) for c in jupytext.read(path).cells if c.cell_type == "code"]


def median_problem(path: Path, limit: int = MAX_MEDIAN_LINES) -> str | None:
    """Why ``path`` breaks the rule (its median and its longest cells), or None."""
    lengths = code_cell_lengths(path)
    if not lengths:
        return None
    median = statistics.median(lengths)
    if median <= limit:
        return None
    longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])[:3]
    cells = ", ".join(f"code cell {i + 1} ({lengths[i]} lines)" for i in longest)
    return (f"{path.name}: median code cell {median:g} lines, over {limit}; move logic into the "
            f"library, starting with {cells}")


CHAPTERS = toc_chapters()
HEADER = """---
jupytext:
  formats: ipynb,md:myst
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

"""


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_median_code_cell_is_short(path: Path):
    if path.stem in EXEMPT:
        pytest.skip(f"{path.stem} is being rewritten (EXEMPT in this file)")
    assert median_problem(path) is None, median_problem(path)


def test_every_exempt_name_is_a_chapter():
    assert EXEMPT <= {p.stem for p in CHAPTERS}, EXEMPT - {p.stem for p in CHAPTERS}


def test_the_rule_fails_a_chapter_with_long_cells(tmp_path: Path):
    """A chapter of three cells, two of them 20 lines: median 20, so it fails, naming them."""
    cell = "```{code-cell} ipython3\n" + "x = 1\n" * 20 + "```\n\n"
    short = "```{code-cell} ipython3\nx = 1\n```\n\n"
    path = tmp_path / "ch99_long.md"
    path.write_text(HEADER + "# 99\n\n" + short + cell + cell)
    assert code_cell_lengths(path) == [1, 20, 20]
    problem = median_problem(path)
    assert problem is not None and "median code cell 20 lines" in problem and "code cell 2 (20 lines)" in problem
    path.write_text(path.read_text().replace(cell, short, 1))
    assert median_problem(path) is None  # cells 1, 1, 20: median 1
