"""tools/format_chapters.py: NBVAL comments become cell tags; code is formatted to 88 columns;
Markdown cells are left alone."""

import importlib.util
import sys
from pathlib import Path

import jupytext

_PATH = Path(__file__).resolve().parents[1] / "tools" / "format_chapters.py"
_spec = importlib.util.spec_from_file_location("format_chapters", _PATH)
fc = importlib.util.module_from_spec(_spec)
sys.modules["format_chapters"] = fc
_spec.loader.exec_module(fc)

CHAPTER = '''---
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

# 9. A test chapter

Some *prose* that   keeps its spacing.

```{code-cell} ipython3
# NBVAL_CHECK_OUTPUT
values = {"alpha": 1, "beta": 2, "gamma": 3, "delta": 4, "epsilon": 5, "zeta": 6, "eta": 7, "theta": 8}
print(values)
```

```{code-cell} ipython3
:tags: [hide-input]

x = 1
```
'''


def test_marker_to_tag():
    assert fc.marker_to_tag("# NBVAL_CHECK_OUTPUT\nprint(1)", []) == ("print(1)", ["nbval-check-output"])
    assert fc.marker_to_tag("print(1)", ["hide-input"]) == ("print(1)", ["hide-input"])
    src, tags = fc.marker_to_tag("# NBVAL_CHECK_OUTPUT\nx", ["nbval-check-output"])
    assert tags == ["nbval-check-output"]


def test_format_chapter_round_trip(tmp_path):
    path = tmp_path / "ch09_test.md"
    path.write_text(CHAPTER)
    fc.format_chapter(path, str(Path(sys.executable).with_name("ruff")))
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata["tags"] == ["nbval-check-output"]
    assert "NBVAL" not in code[0].source
    assert max(len(line) for line in code[0].source.splitlines()) <= 88
    assert code[1].metadata["tags"] == ["hide-input"]
    assert "Some *prose* that   keeps its spacing." in path.read_text()
    assert "jupytext_version" not in path.read_text()
