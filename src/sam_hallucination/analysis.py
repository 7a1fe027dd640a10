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
    chapter_sets,
    coverage_text,
    load_set,
    metric,
    missing_runs,
    not_run_rows,
    pick_set,
    provenance,
    provenance_text,
    sgd_curve_text,
    summarize,
    summary_table,
    tier_description,
    tier_lead,
)
from .report.cifar import summary_table as format_table
from .report.compare import accuracy_onset, remedy_cells, remedy_summary, tier_agreement
from .report.figures import plot_curves, plot_probe, plot_vs_rho, plot_vs_switch
from .report.probe import (
    continuation_text,
    format_probe_table,
    power_table,
    probe_rows,
    stall_summary,
    stall_verdict,
)

__all__ = [
    "SMOKE_LABEL", "SMOKE_SWEEP", "METHOD_LABELS", "PROFILES", "Cell", "ResultSet", "cell_of",
    "CPU_TIER_LABEL", "CPU_TIERS", "pick_set", "load_set", "metric", "summarize",
    "missing_runs", "coverage_text", "cell_name",
    "summary_table", "format_table", "not_run_rows", "provenance", "provenance_text",
    "probe_rows", "format_probe_table", "stall_verdict", "remedy_summary", "plot_curves",
    "plot_probe", "plot_vs_rho", "plot_vs_switch", "chapter_sets", "tier_lead",
    "tier_description", "sgd_curve_text", "stall_summary", "continuation_text",
    "accuracy_onset", "remedy_cells", "tier_agreement", "power_table",
]
