"""The chapter executor never damages the tree: a failed chapter leaves the committed
``.ipynb`` as it was (and says where the failed notebook is), a bad profile is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import execute_chapters as ex  # noqa: E402

CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A test chapter

```{{code-cell}} ipython3
:tags: [parameters]
profile = "quick"
```

```{{code-cell}} ipython3
print("profile is", profile)
{body}
```
"""


def chapter(tmp_path: Path, body: str) -> tuple[Path, Path]:
    src = tmp_path / "chapters" / "ch99_test.md"
    src.parent.mkdir()
    src.write_text(CHAPTER.format(body=body))
    committed = src.with_suffix(".ipynb")
    committed.write_text('{"committed": true}\n')
    return src, committed


def test_a_failing_chapter_leaves_the_committed_notebook_and_says_where_it_failed(tmp_path, capsys):
    src, committed = chapter(tmp_path, 'raise RuntimeError("boom")')
    assert ex.main([str(src)]) == 1
    assert committed.read_text() == '{"committed": true}\n'
    assert sorted(p.name for p in src.parent.iterdir()) == ["ch99_test.ipynb", "ch99_test.md"]
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err and "left unchanged" in err
    kept = Path(err.rsplit("kept at ", 1)[1].strip())
    assert kept.exists() and "boom" in kept.read_text() and not kept.is_relative_to(src.parent)


def test_a_chapter_that_succeeds_replaces_its_notebook(tmp_path):
    src, committed = chapter(tmp_path, "")
    assert ex.main([str(src), "--profile", "full"]) == 0
    text = committed.read_text()
    assert "profile is full" in text and "committed" not in text
    assert sorted(p.name for p in src.parent.iterdir()) == ["ch99_test.ipynb", "ch99_test.md"]


def test_an_unknown_profile_is_refused_before_anything_runs(tmp_path, capsys):
    src, committed = chapter(tmp_path, "")
    with pytest.raises(SystemExit) as e:
        ex.main([str(src), "--profile", "bogus"])
    assert e.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown profile 'bogus': use one of quick, full"):
        ex.execute(src, "bogus")
    assert committed.read_text() == '{"committed": true}\n'


def test_the_executor_knows_every_chapter_profile():
    from sam_hallucination.rd.dynamics import PROFILES as dynamics
    from sam_hallucination.report.cifar import PROFILES as cifar
    from sam_hallucination.runs.fullbatch import PROFILES as fullbatch

    for table in (dynamics, cifar, fullbatch):
        assert tuple(table) == ex.PROFILES
