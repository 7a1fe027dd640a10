"""Which hallucinated points attract SAM: the surrogate f^SAM against the SAM map.

At a hallucinated point x* with perturbed point c = x* + ρ u(x*) (a critical point of f),

    ∇f^SAM(x) = B(x)ᵀ ∇f(x⁺),   B = I + ρ Du = I + ρ (I − uuᵀ) ∇²f(x)/‖∇f(x)‖,

and ∇f(c) = 0, so the terms with derivatives of B drop out and

    ∇²f^SAM(x*) = Bᵀ H_c B,        DT(x*) = I − η H_c B,        H_c = ∇²f(c).

In 2-D, with t ⟂ u and κ = −tᵀ∇²f(x)t/‖∇f(x)‖, det B = 1 − ρκ. If H_c ≻ 0 and ρκ ≠ 1,
x* is a strict local minimizer of f^SAM (GD on the surrogate attracts for small η); SAM
attracts iff every eigenvalue of A = H_c B has a positive real part, which fails whenever
ρκ > 1 (det A < 0).

This module provides

* :func:`local_analysis`: those quantities at one point of any :class:`Landscape`;
* :func:`surrogate_gd`: plain gradient descent on f^SAM (autograd through u);
* random quartic landscapes on R² (:func:`random_quartics`), batched in numpy, with their
  critical points (:func:`critical_points`), every hallucinated point over a ρ grid
  (:func:`hallucinated_points`) and the critical point each one's branch is born at
  (:func:`birth_labels`);
* :func:`wilson_interval` for the fractions;
* the asymmetric function branch by branch (:mod:`.asymmetric`): its critical points by name,
  the branch table checked against autograd, the points behind a saddle.
"""

from .asymmetric import behind_saddle_table, check_branch_table, named_critical_points
from .quartics import (
    BIRTH_TYPES,
    EXPONENTS,
    birth_labels,
    coefficients_of_asymmetric,
    critical_points,
    eta_max_sam,
    fixed_point_residual,
    hallucinated_on_circle,
    point_analysis,
    q_grad,
    q_hess,
    q_value,
    quartic_landscape,
    random_quartic_candidates,
    random_quartics,
)
from .surrogate import (
    LocalAnalysis,
    local_analysis,
    offset_start,
    surrogate,
    surrogate_gd,
    surrogate_hessian,
)
from .survey import (
    RHO_FACTORS,
    asymmetric_branch_table,
    branch_scan,
    sam_runs_quartic,
    surrogate_gd_quartic,
    surrogate_grad_quartic,
    survey,
    wilson_interval,
)

__all__ = [
    "behind_saddle_table",
    "check_branch_table",
    "named_critical_points",
    "BIRTH_TYPES",
    "EXPONENTS",
    "birth_labels",
    "coefficients_of_asymmetric",
    "critical_points",
    "eta_max_sam",
    "fixed_point_residual",
    "hallucinated_on_circle",
    "point_analysis",
    "q_grad",
    "q_hess",
    "q_value",
    "quartic_landscape",
    "random_quartic_candidates",
    "random_quartics",
    "LocalAnalysis",
    "local_analysis",
    "offset_start",
    "surrogate",
    "surrogate_gd",
    "surrogate_hessian",
    "RHO_FACTORS",
    "asymmetric_branch_table",
    "branch_scan",
    "sam_runs_quartic",
    "surrogate_gd_quartic",
    "surrogate_grad_quartic",
    "survey",
    "wilson_interval",
]
