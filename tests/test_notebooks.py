"""The executed notebooks (nbval's reference outputs) must match their MyST sources."""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from execute_chapters import toc_chapters  # noqa: E402

SOURCES = sorted((ROOT / "notebooks").glob("*.md"))


def _cells(nb) -> list[tuple[str, str]]:
    return [
        (c.cell_type, c.source.strip())
        for c in nb.cells
        if "injected-parameters" not in c.metadata.get("tags", [])
    ]


def test_every_chapter_is_in_the_toc():
    assert sorted(toc_chapters()) == SOURCES


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_executed_notebook_matches_source(src: Path):
    executed = src.with_suffix(".ipynb")
    assert executed.exists(), f"{executed.name} missing: run `make execute` (or execute_chapters.py {src.name})"
    ref = nbformat.read(executed, as_version=4)
    assert _cells(ref) == _cells(jupytext.read(src)), (
        f"{executed.name} is stale: its cells differ from {src.name}. "
        f"Re-execute with `python scripts/execute_chapters.py notebooks/{src.name}`."
    )


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_executed_with_quick_profile_and_without_errors(src: Path):
    ref = nbformat.read(src.with_suffix(".ipynb"), as_version=4)
    injected = [c for c in ref.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'profile = "quick"' in injected[0].source
    errors = [o for c in ref.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors
    tagged = [c for c in ref.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged `parameters`"


MAX_CODE_COLUMNS = 88


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_code_cells_fit_the_column_and_use_tags(src: Path):
    """Code lines fit 88 columns (the book's code column), and nbval markers are cell tags
    (``nbval-check-output``), not comments a reader would see."""
    nb = jupytext.read(src)
    long_lines, comments = [], []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if len(line) > MAX_CODE_COLUMNS:
                long_lines.append(f"cell {k}: {len(line)} columns: {line.strip()[:60]}")
            if "NBVAL_" in line:
                comments.append(f"cell {k}: {line.strip()}")
    assert not long_lines, "code lines longer than 88 columns:\n" + "\n".join(long_lines)
    assert not comments, "use the nbval-check-output cell tag instead of:\n" + "\n".join(comments)


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_checked_cells_keep_their_tag_in_the_executed_notebook(src: Path):
    """nbval reads the tags of the executed notebook: every cell tagged in the source must
    carry the same tags there (cell by cell, tags included)."""
    ref = nbformat.read(src.with_suffix(".ipynb"), as_version=4)
    tags = [c.metadata.get("tags", []) for c in jupytext.read(src).cells]
    ref_tags = [c.metadata.get("tags", []) for c in ref.cells
                if "injected-parameters" not in c.metadata.get("tags", [])]
    assert tags == ref_tags
    assert any("nbval-check-output" in t for t in tags), "no checked cell: nbval would compare nothing"
