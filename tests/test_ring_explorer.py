"""The ring explorer (report.mechanism.explorer): its numbers come from the engine, its page
is self-contained and deterministic, and the browser check's slider test passes a working
player and fails a broken one (end to end in Chromium, skipped without it)."""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

from sam_hallucination.plotting import use_book_style
from sam_hallucination.report import mechanism as mx

_PATH = Path(__file__).resolve().parents[1] / "tools" / "browser_check.py"
_spec = importlib.util.spec_from_file_location("browser_check", _PATH)
bc = importlib.util.module_from_spec(_spec)
sys.modules["browser_check"] = bc  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(bc)


@pytest.fixture(scope="module")
def small():
    use_book_style()
    return mx.ring_explorer(rhos=(1.5, 2.2), etas=(0.1, 0.28), steps=60)


def _data(html: str) -> dict:
    m = re.search(r'<script type="application/json" class="ring-explorer-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_the_hallucinated_circle_is_the_end_radius():
    v = mx.explorer_values(1.5, 0.1)
    assert abs(v.end_radius - 0.5) < 1e-12 and v.states == {"hallucinated point": 6}
    assert v.readout == ("ρ = 1.50, η = 0.10. After 300 steps: end radius 0.5000; "
                         "of 6 starts, 6 on the hallucinated circle.")


def test_every_start_diverges_above_two():
    v = mx.explorer_values(2.2, 0.1)
    assert math.isnan(v.end_radius) and v.states == {"diverged": 6}
    assert "no end radius" in v.readout and v.as_dict()["end_radius"] is None


def test_no_start_sits_on_a_circle_of_the_grid():
    """A start on ‖x‖ = ρ − 1 or ‖x‖ = ρ would stay there and be counted as attracted."""
    radii = set(mx.explorer.START_RADII)
    for rho in mx.explorer.RHOS:
        assert not radii & {round(rho - 1, 10), round(rho, 10)}


def test_frames_are_pngs_in_grid_order_with_their_numbers(small):
    assert len(small.frames) == 4 and all(f.startswith(b"\x89PNG") for f in small.frames)
    k = small.index(2.2, 0.1)
    assert k == 2 and small.values[k].rho == 2.2 and small.values[k].eta == 0.1
    assert small.values[k] == mx.explorer_values(2.2, 0.1, steps=60)
    with pytest.raises(ValueError, match="not on the grid"):
        small.index(1.0, 0.1)
    assert repr(small).startswith("RingExplorer(2 x 2 frames") and len(repr(small)) < 200


def test_the_page_stores_the_library_values_beside_the_frames(small):
    html = small.html(default=(1.5, 0.28))
    data = _data(html)
    assert data["rhos"] == [1.5, 2.2] and data["etas"] == [0.1, 0.28] and data["steps"] == 60
    assert [base64.b64decode(f) for f in data["frames"]] == small.frames
    assert [v["readout"] for v in data["values"]] == [v.readout for v in small.values]
    # without JavaScript the page shows the default frame and its readout: a static figure
    assert f'src="data:image/png;base64,{data["frames"][1]}"' in html
    assert small.values[1].readout in html and 'value="0"' in html and 'value="1"' in html
    assert "http" not in html.replace("http-equiv", "")  # no CDN, nothing fetched
    assert html == small.html(default=(1.5, 0.28))  # deterministic: reruns diff cleanly


def test_bad_arguments_say_what_to_do(small):
    with pytest.raises(ValueError, match="HTML id"):
        small.html(uid="two words")
    with pytest.raises(ValueError, match="must not repeat"):
        mx.ring_explorer(rhos=(1.5, 1.5), etas=(0.1,), steps=5)
    with pytest.raises(ValueError, match="positive"):
        mx.ring_explorer(rhos=(0.0,), etas=(0.1,), steps=5)


def test_slider_moves_walk_every_slider_and_change_the_frame():
    assert bc.slider_moves(3, 2, 6, 6) == [("rho", "END"), ("eta", "END"), ("rho", "LEFT"), ("eta", "LEFT")]
    assert bc.slider_moves(6, 6, 6, 6) == [("rho", "HOME"), ("eta", "HOME"), ("rho", "RIGHT"), ("eta", "RIGHT")]
    with pytest.raises(ValueError, match="2 x 2"):
        bc.slider_moves(0, 0, 0, 3)


def test_slider_problems_name_a_stale_picture_and_a_wrong_readout():
    state = {"i": 1, "j": 0, "rhos": [1.5, 2.2], "etas": [0.1, 0.28], "frame": "2", "src": "a",
             "expectedSrc": "a", "loaded": True, "readout": "r", "alt": "SAM's paths on the ring"}
    assert bc.slider_problems(state, "b", "r", "1280 px") == []
    problems = bc.slider_problems(state, "a", "library", "390 px")
    assert any("did not change the picture at 390 px" in p for p in problems)
    assert any("is not the library's 'library'" in p for p in problems)


needs_chromium = pytest.mark.skipif(
    not (Path(bc.CHROMIUM).exists() and Path(bc.CHROMEDRIVER).exists()),
    reason="Debian's chromium and chromium-driver are not installed",
)


@needs_chromium
def test_the_browser_check_moves_the_sliders_and_fails_a_broken_player(small, tmp_path, capsys):
    page = "notebooks/ch02_hallucination.html"  # a page that must hold an explorer
    good = "<html><head><meta charset='utf-8'></head><body><main>" + small.html() + "</main></body></html>"
    broken = {
        "ok": good,
        # the rho slider no longer swaps the picture
        "stale": good.replace('rho.addEventListener("input", show);', ""),
        # the page's readouts are not the library's
        "wrong": good.replace("end radius 0.5000", "end radius 0.4000"),
        "gone": "<html><body><main><p>no explorer</p></main></body></html>",
    }
    out = {}
    for name, text in broken.items():
        html = tmp_path / name / "html"
        (html / "notebooks").mkdir(parents=True)
        (html / "index.html").write_text(f'<html><body><a href="{page}">ch2</a></body></html>')
        (html / page).write_text(text)
        status = bc.main([str(html), "--out", str(tmp_path / name / "shots"), "--page", page])
        out[name] = (status, capsys.readouterr().out)
    assert out["ok"][0] == 0, out["ok"][1]
    assert (tmp_path / "ok" / "shots" / "notebooks" / "ch02_hallucination.slider.png").stat().st_size > 5000
    assert (tmp_path / "ok" / "shots" / "notebooks" / "ch02_hallucination.slider.phone.moved.png").stat().st_size > 5000
    assert out["stale"][0] == 1 and "moving the slider did not change the picture at 1280 px" in out["stale"][1]
    assert "at 390 px" in out["stale"][1]
    assert out["wrong"][0] == 1 and "is not the library's" in out["wrong"][1]
    assert out["gone"][0] == 1 and "expected a ring explorer" in out["gone"][1]
