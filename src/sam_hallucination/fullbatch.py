"""Compatibility path and CLI entry point for the chapter-4 study.

The runs live in :mod:`sam_hallucination.runs.fullbatch`, the summaries in
:mod:`sam_hallucination.report.mlp`.
"""

from .report.mlp import curve, provenance_line, stalled_steps, summary_row, tail_medians
from .report.tables import format_table
from .runs.fullbatch import *  # noqa: F403
from .runs.fullbatch import __all__ as _runs_all
from .runs.fullbatch import main

__all__ = [*_runs_all, "curve", "provenance_line", "stalled_steps", "summary_row",
           "tail_medians", "format_table"]

if __name__ == "__main__":
    raise SystemExit(main())
