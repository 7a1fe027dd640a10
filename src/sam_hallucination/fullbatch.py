"""Compatibility path and CLI entry point for the chapter-4 study.

The runs live in :mod:`sam_hallucination.runs.fullbatch`, the summaries in
:mod:`sam_hallucination.report.mlp`.
"""

from .report.mlp import (
    continuation_vs_gd,
    curve,
    gd_equivalent_steps,
    git_dirty,
    onset,
    progress_fraction,
    provenance_line,
    ratio_cdf,
    ratio_quantiles,
    settled_step,
    stalled_steps,
    summary_row,
    tail_medians,
    tail_values,
    window_ratios,
)
from .report.tables import format_table
from .runs.fullbatch import *  # noqa: F403
from .runs.fullbatch import __all__ as _runs_all
from .runs.fullbatch import main

__all__ = [*_runs_all, "curve", "provenance_line", "stalled_steps", "summary_row",
           "tail_medians", "format_table", "continuation_vs_gd", "gd_equivalent_steps",
           "git_dirty", "onset", "progress_fraction", "ratio_cdf", "ratio_quantiles",
           "settled_step", "tail_values", "window_ratios"]

if __name__ == "__main__":
    raise SystemExit(main())
