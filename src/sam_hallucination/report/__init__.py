"""Layer 5, the chapters' reports: tables, verdicts and figures made from result records.

This package is the chapters' public face for reports (``from sam_hallucination import report
as rp``): the names below, from :mod:`.cifar` (result sets and tiers), :mod:`.probe` (the
stall verdict), :mod:`.compare` (the remedy, the tier comparison), :mod:`.figures`,
:mod:`.mlp` (Chapter 4's summaries) and :mod:`.tables` (``format_table(rows, columns)``, the
one column table). The book's plot style is :mod:`sam_hallucination.plotting`.
"""

from .cifar import (
    CPU_TIERS,
    METHOD_LABELS,
    PROFILES,
    SMOKE_SWEEP,
    Cell,
    ChapterResults,
    ResultSet,
    cell_name,
    cell_of,
    chapter_results,
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
from .compare import accuracy_onset, remedy_cells, remedy_summary, tier_agreement
from .figures import plot_curves, plot_probe, plot_vs_rho, plot_vs_switch
from .mlp import (
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
from .probe import (
    continuation_text,
    format_probe_table,
    power_table,
    probe_rows,
    stall_summary,
    stall_verdict,
)
from .tables import format_table
from .tiers import CPU_TIER_LABEL, CPU_TIER_TEXT, SMOKE_LABEL, TIERS, tier_of

__all__ = [
    "SMOKE_LABEL", "SMOKE_SWEEP", "METHOD_LABELS", "PROFILES", "Cell", "ResultSet", "cell_of",
    "CPU_TIER_LABEL", "CPU_TIER_TEXT", "CPU_TIERS", "TIERS", "tier_of", "pick_set", "load_set", "metric", "summarize",
    "missing_runs", "coverage_text", "cell_name", "summary_table", "not_run_rows", "provenance",
    "provenance_text", "probe_rows", "format_probe_table", "stall_verdict", "remedy_summary",
    "plot_curves", "plot_probe", "plot_vs_rho", "plot_vs_switch", "chapter_sets", "tier_lead",
    "chapter_results", "ChapterResults",
    "tier_description", "sgd_curve_text", "stall_summary", "continuation_text",
    "accuracy_onset", "remedy_cells", "tier_agreement", "power_table",
    "continuation_vs_gd", "curve", "gd_equivalent_steps", "git_dirty", "onset",
    "progress_fraction", "provenance_line", "ratio_cdf", "ratio_quantiles", "settled_step",
    "stalled_steps", "summary_row", "tail_medians", "tail_values", "window_ratios",
    "format_table",
]
