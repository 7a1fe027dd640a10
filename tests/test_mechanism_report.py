"""The library pieces that replaced Chapters 1–3b's hand-written plumbing: the HTML animation,
end-state counts, the Newton grid search, the asymmetric function's named critical points,
figure glueing and the light frames."""

from __future__ import annotations

import re

import matplotlib
import pytest
import torch

from sam_hallucination.rd import attraction as AT
from sam_hallucination.rd import dynamics as D
from sam_hallucination.rd.landscapes import ASYM_PARAMS, ASYMMETRIC, RING
from sam_hallucination.report import mechanism as mx

matplotlib.use("agg")


def _figure():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    (dot,) = ax.plot([0], [0], "o")
    return fig, dot


def test_the_animation_has_a_fixed_id_an_alt_text_and_every_frame():
    fig, dot = _figure()
    html = mx.html_animation(fig, lambda k: dot.set_data([k], [k]), 3, uid="t1", alt='dots "move"').data
    assert 'id="_anim_imgt1"' in html and "anim" + "t1 = new Animation" in html
    assert 'alt="dots &quot;move&quot;"' in html
    assert len(re.findall(r'frames\[\d\] = "data:image/png;base64,', html)) == 3
    fig, dot = _figure()
    again = mx.html_animation(fig, lambda k: dot.set_data([k], [k]), 3, uid="t1", alt='dots "move"').data
    assert html == again  # no random id: a re-executed chapter does not change


@pytest.mark.parametrize("kw, match", [({"uid": "a-b"}, "letters, digits"), ({"alt": " "}, "describe"),
                                       ({"fmt": "gif"}, "fmt must be"), ({"n": 1}, "n_frames")])
def test_the_animation_refuses_bad_arguments(kw, match):
    fig, dot = _figure()
    args = {"uid": "ok", "alt": "a dot", "fmt": "png", "n": 2} | kw
    with pytest.raises(ValueError, match=match):
        mx.html_animation(fig, lambda k: None, args["n"], uid=args["uid"], alt=args["alt"], fmt=args["fmt"])


def test_frames_are_palette_pngs_or_jpegs():
    fig, _ = _figure()
    png, jpeg = mx.encode_frame(fig, "png", colors=8), mx.encode_frame(fig, "jpeg", quality=40)
    assert png.startswith(b"\x89PNG") and jpeg.startswith(b"\xff\xd8")
    with pytest.raises(ValueError, match="colors must be"):
        mx.encode_frame(fig, colors=1)


def test_end_state_counts_by_label_in_enum_order():
    x = torch.tensor([[0.5, 0.0], [1.0, 0.0], [float("nan"), 0.0], [0.0, 0.5]], dtype=torch.float64)
    counts = D.end_state_counts(D.classify(RING, x, rho=1.5))
    assert counts == {"true minimizer": 1, "hallucinated point": 2, "diverged": 1}
    assert list(counts) == ["true minimizer", "hallucinated point", "diverged"]
    with pytest.raises(TypeError, match="EndState codes"):
        D.end_state_counts(torch.tensor([0.5]))


def test_the_grid_search_finds_the_five_critical_points_of_the_asymmetric_function():
    found = D.critical_points_on_grid(ASYMMETRIC, -3, 3, 7)
    assert len(found) == 5 and all(float(ASYMMETRIC.grad(x).norm()) < 1e-10 for x in found)
    with pytest.raises(ValueError, match="lo < hi"):
        D.critical_points_on_grid(ASYMMETRIC, 3, -3, 7)


def test_named_critical_points_of_the_asymmetric_function():
    cps = AT.critical_points(AT.coefficients_of_asymmetric(ASYM_PARAMS)[None])[0]
    mins, saddles = AT.named_critical_points(cps, "min"), AT.named_critical_points(cps, "saddle")
    assert set(mins) == {"min L", "min R"} and mins["min L"][0] < 0 < mins["min R"][0]
    assert set(saddles) == {"saddle lo", "saddle up"} and saddles["saddle lo"][1] < 0 < saddles["saddle up"][1]
    with pytest.raises(ValueError, match="kind must be"):
        AT.named_critical_points(cps, "minimum")


def test_glue_figure_closes_the_figure(monkeypatch):
    import matplotlib.pyplot as plt
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, obj, display=True: glued.update({name: obj}))
    fig, _ = _figure()
    mx.glue_figure("fig-test", fig, svg=True)
    assert "fig-test" in glued and not plt.fignum_exists(fig.number)
    assert type(glued["fig-test"]).__name__ == "SVG"


def test_the_continuation_table_predicts_a_branch_of_the_asymmetric_function():
    crit = [(lab, D.refine_critical_point(ASYMMETRIC, c)[0]) for lab, c in ASYMMETRIC.extras["critical_points"]]
    names = ["min R", "min L", "max", "saddle lo", "saddle up"]
    br = D.continue_branch(ASYMMETRIC, [0.55, 0.2], 1.5, d_rho=0.05)
    (p0, p1), ends = mx.predicted_ends(ASYMMETRIC, br, crit, names)
    lo, hi = br.rho_interval
    assert ends == ("saddle up", "min R") and abs(lo - p0) < 1e-4 and abs(hi - p1) < 1e-4
    text = mx.continuation_table({"asym (a)": br, "ring": br}, {"asym (a)": ((p0, p1), ends),
                                                               "ring": ((1.0, 2.0), ("max", "min"))})
    lines = text.splitlines()
    assert lines[0] == mx.convergence.CONTINUATION_HEADER and len(lines) == 3
    assert lines[1].startswith("asym (a)") and "saddle up, min R" in lines[1] and lines[1].endswith("True")
    assert lines[2].endswith("False")  # the ring's (1, 2) is not this branch's interval
    with pytest.raises(ValueError, match="no prediction"):
        mx.continuation_table({"asym (a)": br}, {})
    with pytest.raises(ValueError, match="names"):
        mx.predicted_ends(ASYMMETRIC, br, crit, names[:2])
