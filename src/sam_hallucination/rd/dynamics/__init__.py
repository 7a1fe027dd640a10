"""SAM dynamics on test landscapes, in three parts.

* :mod:`.engine`: the SAM map T(x) = x − η ∇f(x⁺) and the batched (optionally noisy) iteration;
* :mod:`.fixed_points`: Jacobians and stability of T, hallucinated points by Newton's method;
* :mod:`.phases`: end-state classes, phase diagrams, convergence rates and the noise study.
"""

from .engine import (
    METHODS,
    NOISE_TARGETS,
    RunResult,
    iterate,
    naive_sam_loop,
    perturbed,
    sam_map,
    step_direction,
)
from .fixed_points import (
    Branch,
    HallucinationSolve,
    HallucinationSolveError,
    attraction_eta_max,
    continue_branch,
    critical_points_on_grid,
    refine_critical_point,
    sam_map_generator,
    sam_map_jacobian,
    sam_map_jacobian_formula,
    solve_hallucinated,
    spectral_radius,
)
from .phases import (
    END_STATE_LABELS,
    PROFILES,
    EndState,
    PhaseDiagram,
    classify,
    disk_starts,
    end_state_counts,
    hallucination_edges,
    linear_rate,
    measured_rate,
    noise_study,
    phase_diagram,
    ring_radial_map,
)

__all__ = [
    "METHODS", "NOISE_TARGETS", "RunResult", "iterate", "naive_sam_loop", "perturbed", "sam_map",
    "step_direction", "Branch", "HallucinationSolve", "HallucinationSolveError",
    "attraction_eta_max", "continue_branch", "critical_points_on_grid", "refine_critical_point", "sam_map_generator",
    "sam_map_jacobian", "sam_map_jacobian_formula", "solve_hallucinated", "spectral_radius",
    "END_STATE_LABELS", "PROFILES", "EndState", "PhaseDiagram", "classify", "disk_starts", "end_state_counts",
    "hallucination_edges", "linear_rate", "measured_rate", "noise_study", "phase_diagram",
    "ring_radial_map",
]
