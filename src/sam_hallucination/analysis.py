"""Compatibility path: the CIFAR reports now live in :mod:`sam_hallucination.report`.

``format_table`` here is :func:`~sam_hallucination.report.cifar.summary_table` (the generic
column table is :func:`sam_hallucination.report.tables.format_table`).
"""

from .report.cifar import (
    CPU_TIER_LABEL,
    CPU_TIERS,
    METHOD_LABELS,
    PROFILES,
    SMOKE_LABEL,
    SMOKE_SWEEP,
    Cell,
    ResultSet,
    cell_name,
    cell_of,
    coverage_text,
    format_probe_table,
    load_set,
    metric,
    missing_runs,
    not_run_rows,
    pick_set,
    probe_rows,
    provenance,
    provenance_text,
    remedy_summary,
    stall_verdict,
    summarize,
    summary_table,
)
from .report.cifar import summary_table as format_table
from .report.figures import plot_curves, plot_probe, plot_vs_rho, plot_vs_switch

__all__ = [
    "SMOKE_LABEL", "SMOKE_SWEEP", "METHOD_LABELS", "PROFILES", "Cell", "ResultSet", "cell_of",
    "CPU_TIER_LABEL", "CPU_TIERS", "pick_set", "load_set", "metric", "summarize",
    "missing_runs", "coverage_text", "cell_name",
    "summary_table", "format_table", "not_run_rows", "provenance", "provenance_text",
    "probe_rows", "format_probe_table", "stall_verdict", "remedy_summary", "plot_curves",
    "plot_probe", "plot_vs_rho", "plot_vs_switch",
]
