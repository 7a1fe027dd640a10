"""Layer 2, the optimizer: SAM for PyTorch models, its one perturbation, the BatchNorm helper.

The switching remedy (``switch_at``) and the radius decay (``rho_schedule``) are options of
:class:`SAM`; which training method uses which is :mod:`sam_hallucination.methods`.
"""

from ..checks import check_radius
from .batchnorm import disable_running_stats, enable_running_stats, frozen_bn_stats
from .perturbation import (
    VARIANTS,
    adaptive_grads,
    apply_perturbation,
    foreach_copy,
    global_norm,
    perturbation,
    perturbation_scale,
)
from .sam import SAM, SCHEDULES
from .schedule import rho_at, rho_factor

__all__ = [
    "SAM", "SCHEDULES", "VARIANTS", "frozen_bn_stats", "disable_running_stats",
    "enable_running_stats", "global_norm", "perturbation", "perturbation_scale",
    "apply_perturbation", "adaptive_grads", "foreach_copy", "check_radius",
    "rho_at", "rho_factor",
]
