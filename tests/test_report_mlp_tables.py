"""Chapters 4 and 4b's table helpers (report.mlp): columns by key, the initial-weight-scale
pivot, the progress onset, and the width-8 study's report lines."""

from __future__ import annotations

import pytest

from sam_hallucination import report as rp
from sam_hallucination.report import mlp


def test_columns_take_headers_and_formats_from_the_keys_and_allow_overrides():
    assert mlp.columns("rho", ("f", "f(SAM end)"), ("f", "f(w)", ".3f")) == [
        ("rho", "rho", ".2f"), ("f", "f(SAM end)", ".4f"), ("f", "f(w)", ".3f")]
    assert mlp.columns(("new", "a new column", "d")) == [("new", "a new column", "d")]
    with pytest.raises(KeyError, match="add it there or give"):
        mlp.columns("no-such-key")


def test_every_column_header_is_short_enough_for_a_phone():
    # a header wraps only at spaces: its longest word sets the column's width at 390 px
    longest = max(len(word) for head, _ in mlp.COLUMNS.values() for word in head.split())
    assert longest <= 13, [h for h, _ in mlp.COLUMNS.values() if max(map(len, h.split())) > 13]


def test_scale_pivot_gives_one_row_per_ratio_and_one_column_per_scale():
    rows = [{"alpha": a, "ratio": r, "rho": a * r, "f": 2.0 + r, "prog": 0.1 / a}
            for a in (0.5, 2.0) for r in (0.5, 0.1)]
    piv, cols = mlp.scale_pivot(rows, (0.5, 2.0), ("f", "f", ".3f"))
    assert [p["ratio"] for p in piv] == [0.1, 0.5]
    assert piv[0] == {"ratio": 0.1, "rho0.5": 0.05, "f0.5": 2.1, "prog0.5": 0.2,
                      "rho2": 0.2, "f2": 2.1, "prog2": 0.05}
    assert [c[1] for c in cols] == ["rho/|w0|", "f (a=0.5)", "f (a=2)"]
    assert "2.100" in rp.format_table(piv, cols)


def test_progress_onset_is_the_smallest_ratio_below_the_cut():
    rows = [{"alpha": 1.0, "ratio": r, "prog": p} for r, p in ((0.1, 0.5), (0.4, 0.005), (0.3, 0.02))]
    rows.append({"alpha": 2.0, "ratio": 0.1, "prog": 0.5})
    assert mlp.progress_onset(rows, 0.01) == {1.0: 0.4, 2.0: None}


def test_netfixed_lines_state_each_finding():
    attempt = {"step": 788, "start_residual": 5.9e-5, "final_residual": 1e-12, "iterations": 2}
    study = {"n_params": 1666, "stall": {"step": 214, "grad": 0.19, "residual": 0.019},
             "lm_from_stall": [{"residual": 0.019}, {"residual": 0.0186}],
             "lm_from_stall_moved": 1.6e-3, "jacobian_fd_relerr": {"1e-05": 1e-9, "1e-04": 0.3},
             "newton_attempts": [attempt],
             "solution": {"residual": 1e-12, "grad": 0.2, "loss": 1.9, "loss_at_w_plus": 2.302585092994046,
                          "dead_units_at_w_plus": 8, "train_acc": 0.5},
             "spectrum": {"rank_DG": 9, "n_abs_within_1e-9_of_1": 1657, "n_abs_lt_1": 9, "n_abs_gt_1": 0,
                          "max_abs_T_off_kernel": 0.99, "spectral_radius_T": 1.0},
             "restart_end": {"residual": 1e-16, "dist": 1e-4},
             "sam_continued": {"steps": 6000, "residual": 1e-14, "dist_to_solution": 1e-6}}
    lines = mlp.netfixed_lines(study, hidden=8, restart_steps=3000)
    assert lines[0] == "parameters: 1666"
    assert "Newton from SAM's step 788: |G| 5.9e-05 -> below 1e-10 in 2 iterations" in lines
    assert any("dead at w*+ for every image: 8 of 8" in line for line in lines)
    assert any("L(w*+) = log 10: True" in line for line in lines)
