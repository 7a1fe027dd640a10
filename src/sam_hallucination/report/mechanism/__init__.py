"""Reports of the book's first part, *The mechanism* (Chapters 1, 2, 3, 3a, 3b and 3c): their
tables and figures, the ring explorer and the animation, so that the chapters' cells stay short.

``from sam_hallucination.report import mechanism as mx``:

* :mod:`.attraction`: Chapters 3b and 3c's cached results (the survey of random quartics, its
  folds, the ring's tail map), loaded, re-derived and printed; :mod:`.attraction_figures`, its figures;
* :mod:`.convergence`: Chapter 3's continuation table; :mod:`.convergence_figures`, the
  figures of Chapters 3 and 3a;
* :mod:`.explorer`: the ring explorer, SAM's iterates for a (ρ, η) grid behind two sliders;
* :mod:`.animation`: a matplotlib figure stepped through frames, as an HTML player with a
  fixed id and an ``alt`` text;
* :mod:`.figures`: the figures of Chapters 1 and 2;
* :mod:`.frames`: one figure as a light frame (palette PNG or JPEG);
* :mod:`.show`: :func:`glue_figure`, a figure glued into the book by name, then closed.
"""

from .animation import html_animation
from .attraction import (
    FOLDS_CONFIG,
    SURVEY_CONFIG,
    TAILS_CONFIG,
    branch_table_text,
    fold_study_text,
    load_folds,
    load_ring_tails,
    load_survey,
    survey_exceptions_text,
    survey_summary,
    survey_text,
    tail_grid,
    tail_options,
    verify_survey,
)
from .attraction_figures import attraction_figure, critical_figure, ring_tails_figure
from .convergence import continuation_table, predicted_ends
from .convergence_figures import branches_figure, noise_figure, phase_figure
from .explorer import (
    ExplorerFrame,
    RingExplorer,
    draw_explorer_frame,
    explorer_frame,
    explorer_starts,
    explorer_values,
    ring_explorer,
)
from .figures import (
    asymmetric_figure,
    cloud_animation,
    double_well_figure,
    gd_vs_sam_figure,
    rho_ball_figure,
    ring_paths_figure,
)
from .frames import encode_frame
from .show import glue_figure

__all__ = [
    "html_animation",
    "FOLDS_CONFIG", "SURVEY_CONFIG", "TAILS_CONFIG", "branch_table_text", "fold_study_text",
    "load_folds", "load_ring_tails", "load_survey", "survey_exceptions_text", "survey_summary",
    "survey_text", "tail_grid", "tail_options", "verify_survey",
    "attraction_figure", "critical_figure", "ring_tails_figure",
    "continuation_table", "predicted_ends",
    "branches_figure", "noise_figure", "phase_figure",
    "ExplorerFrame", "RingExplorer", "draw_explorer_frame", "explorer_frame", "explorer_starts",
    "explorer_values", "ring_explorer",
    "asymmetric_figure", "cloud_animation", "double_well_figure", "gd_vs_sam_figure",
    "rho_ball_figure", "ring_paths_figure",
    "encode_frame", "glue_figure",
]
