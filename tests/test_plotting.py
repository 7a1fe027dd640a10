"""The book's plotting helpers: text tables as HTML, the smoke-run warning, the figure width,
and the "(preview)" title extension."""

import importlib.util
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from sam_hallucination import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

TABLE = """Test accuracy (CPU smoke run — not the experiment)
cell                            n        mean ± std (%)  diverged
SGD                             2            20.1 ± 0.7         0
SAM ρ=0.1                       2            22.4 ± 1.7         0

End-of-training probe
cell                       seed    |grad|     floor |SAM step|     floor
SGD                           0     0.527     0.525      0.527     0.525
SAM ρ=2                       1      0.32     0.337      0.505     0.512"""


def test_text_table_finds_captions_and_columns():
    (cap1, rows1, _), (cap2, rows2, _) = plotting.TextTable(TABLE).blocks()
    assert cap1 == ["Test accuracy (CPU smoke run — not the experiment)"]
    assert rows1 == [["cell", "n", "mean ± std (%)", "diverged"],
                     ["SGD", "2", "20.1 ± 0.7", "0"],
                     ["SAM ρ=0.1", "2", "22.4 ± 1.7", "0"]]
    assert cap2 == ["End-of-training probe"]
    # a header label separated by one space from the next ("floor |SAM step|") is still cut right
    assert rows2[0] == ["cell", "seed", "|grad|", "floor", "|SAM step|", "floor"]
    assert rows2[2] == ["SAM ρ=2", "1", "0.32", "0.337", "0.505", "0.512"]


def test_text_table_html_and_plain_forms():
    t = plotting.TextTable(TABLE)
    html = t._repr_html_()
    assert html.count("<table") == 2 and "<th>|SAM step|</th>" in html and "<td>20.1 ± 0.7</td>" in html
    assert repr(t) == TABLE  # a terminal (and nbval's text/plain) sees the printed table


def test_text_table_falls_back_to_text_when_nothing_lines_up():
    t = plotting.TextTable("a note\nrho = 1.2: 41 of 41 runs\nrho = 1.5: 40 of 41")
    assert "<table" not in t._repr_html_() and "<pre>" in t._repr_html_()


def test_text_table_escapes_html():
    assert "&lt;b&gt;" in plotting.TextTable("x  y\n<b>  1\nc  2")._repr_html_()


def test_coverage_banner_follows_the_tier():
    assert plotting.coverage_warning("gpu", "cifar10-rho: 21/21 runs present", "x") is None
    with pytest.raises(ValueError, match="tier must be"):  # a bool is no tier any more
        plotting.coverage_warning(True, "cifar10-rho: 0/21 runs present", "x")
    w = plotting.coverage_warning("smoke", "cifar10-rho: 0/21 runs present", "SAM against ρ")
    assert plotting.PREVIEW_MARKER in w.data and "0/21 runs present" in w.data
    assert "admonition warning" in w.data and plotting.CPU_TIER_MARKER not in w.data
    c = plotting.coverage_warning("cpu", "cifar10-rho: 0/21 runs present", "SAM against ρ")
    assert plotting.CPU_TIER_MARKER in c.data and plotting.PREVIEW_MARKER not in c.data
    assert "admonition note" in c.data and "CPU-scale tier" in c.data
    assert "GPU grid coverage: cifar10-rho: 0/21 runs present." in c.data
    with pytest.raises(ValueError, match="tier must be"):
        plotting.coverage_warning("tpu", "", "x")


def test_book_style_draws_for_the_column():
    plotting.use_book_style()
    assert matplotlib.rcParams["figure.dpi"] == plotting.BOOK_DPI
    fig = plotting.ring_triptych(1.5, n=41)
    w, h = fig.get_size_inches()
    assert w <= plotting.COLUMN_WIDTH
    # 660 CSS px column at 1280 px: the figure is drawn no wider than that
    assert w * plotting.BOOK_DPI <= 660


def _preview_titles():
    spec = importlib.util.spec_from_file_location("preview_titles", ROOT / "book/_ext/preview_titles.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["preview_titles"] = mod
    spec.loader.exec_module(mod)
    return mod


NB = '{\n "cells": [{"source": [\n    "# 5. SAM against ρ\\n",\n    "text"]},\n  {"source": ["# a comment\\n"]}]}'


@pytest.mark.parametrize(
    ("marker", "title"), [(True, "# 5. SAM against ρ (preview)"), (False, "# 5. SAM against ρ\\n")]
)
def test_preview_suffix_follows_the_warning(marker, title):
    pt = _preview_titles()
    src = NB + (pt.MARKER if marker else "")
    out = pt.add_preview_suffix(src)
    assert title in out
    assert out.count("(preview)") == (1 if marker else 0)
    assert pt.add_preview_suffix(out) == out  # idempotent


def test_cpu_tier_banner_gives_a_cpu_scale_suffix():
    pt = _preview_titles()
    out = pt.add_preview_suffix(NB + plotting.CPU_TIER_MARKER)
    assert "# 5. SAM against ρ (CPU scale)\\n" in out and "(preview)" not in out
    assert pt.add_preview_suffix(out) == out
    both = pt.add_preview_suffix(NB + plotting.CPU_TIER_MARKER + plotting.PREVIEW_MARKER)
    assert "(preview)" in both and "(CPU scale)" not in both  # the smoke warning wins


def test_legible_legends_raises_small_legend_text_only():
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], label="small")
    a.legend(fontsize=7)
    b.plot([0, 1], label="large")
    b.legend(fontsize=12)
    fig.legend(["figure-level"], fontsize=6)
    plotting.legible_legends(fig)
    assert a.get_legend().get_texts()[0].get_fontsize() == 9
    assert b.get_legend().get_texts()[0].get_fontsize() == 12
    assert fig.legends[0].get_texts()[0].get_fontsize() == 9
    plt.close(fig)


def test_every_registered_method_has_a_colour() -> None:
    from sam_hallucination.methods import METHODS
    from sam_hallucination.plotting import METHOD_COLORS

    missing = sorted(set(METHODS) - set(METHOD_COLORS))
    assert not missing, f"add a colour to plotting.METHOD_COLORS for {missing}"


def test_a_table_built_from_rows_renders_from_its_cells_not_its_text():
    from sam_hallucination.report.tables import Table, format_table

    rows = [{"rho": 0.5, "acc": 0.91}, {"rho": 1.0, "acc": None}]
    t = format_table(rows, [("rho", "rho", ".1f"), ("acc", "test  acc", ".2f")])
    assert isinstance(t, Table) and t == "rho  test  acc\n0.5       0.91\n1.0          —"
    html = plotting.TextTable(t)._repr_html_()
    assert "<th>test  acc</th>" in html and "<td>—</td>" in html  # one header, from the cells
    assert html == plotting.TextTable(str(t))._repr_html_()  # what parsing its text gave
    one = format_table(rows, [("rho", "rho", ".1f")])  # one column: text parsing gives up
    assert "<table" in plotting.TextTable(one)._repr_html_()
    assert "<pre>" in plotting.TextTable(str(one))._repr_html_()
