"""scripts/notebook_drift.py: what counts as drift between committed and rebuilt notebooks."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from notebook_drift import compare, sanitizers  # noqa: E402

SUBS = sanitizers()


def nb(text: str, checked: bool = False, plain: str = "0.123456789") -> dict:
    mark = "# NBVAL_CHECK_OUTPUT\n" if checked else ""
    return {"cells": [
        {"cell_type": "markdown", "source": "# title", "metadata": {}},
        {"cell_type": "code", "source": mark + "print(x)", "metadata": {}, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": text},
            {"output_type": "execute_result", "data": {"text/plain": plain,
                                                       "image/png": "AAAA"}},
        ]},
    ]}


def diff(a: dict, b: dict) -> list[str]:
    return compare(a, b, "ch.ipynb", SUBS, 1e-3, 1e-9)


def test_identical_and_last_digit_drift_pass():
    a = nb("rate 0.800000000001, 12 runs\n")
    assert diff(a, copy.deepcopy(a)) == []
    assert diff(a, nb("rate 0.800000000002, 12 runs\n")) == []  # unchecked: rounding only


def test_images_and_timings_are_ignored():
    a, b = nb("done in 3.2 s\n"), nb("done in 7.9 s\n")
    b["cells"][1]["outputs"][1]["data"]["image/png"] = "BBBB"
    assert diff(a, b) == []


@pytest.mark.parametrize("new", ["rate 0.81, 12 runs\n", "rate 0.8, 13 runs\n",
                                 "rate 0.8, 12 seeds\n"])
def test_real_changes_are_drift(new):
    assert diff(nb("rate 0.8, 12 runs\n"), nb(new))


def test_checked_outputs_must_match_exactly():
    a = nb("rate 0.800000000001\n", checked=True)
    b = nb("rate 0.800000000002\n", checked=True)
    (line,) = diff(a, b)
    assert "checked output" in line and "cell 1" in line
    # machine zeros are sanitized as nbval does
    assert diff(nb("g = 3e-17\n", checked=True), nb("g = 5e-16\n", checked=True)) == []


def test_source_change_and_output_count_are_drift():
    a = nb("x\n")
    b = copy.deepcopy(a)
    b["cells"][1]["source"] = "print(y)"
    assert "cell sources differ" in diff(a, b)[0]
    c = copy.deepcopy(a)
    c["cells"][1]["outputs"].pop()
    assert "2 text outputs committed, 1 now" in diff(a, c)[0]
