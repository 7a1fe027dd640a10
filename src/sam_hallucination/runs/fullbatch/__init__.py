"""The chapter-4 study: full-batch GD and SAM (and minibatch SAM) on a small MLP.

* :mod:`.config`: :class:`FullBatchConfig`, one run;
* :mod:`.problem`: the data subset as tensors, the flat-vector MLP, metrics at a point;
* :mod:`.runner`: the training loops, the GD continuation, loss slices, the result cache;
* :mod:`.chapter`: the chapter's grid of runs, its profiles and CLI;
* :mod:`.robust`: the robustness runs of issue 14 (weight scale, label noise, preprocessing).
"""

from .chapter import (
    LONG_STEPS,
    PROFILES,
    RHOS,
    SEED_RHOS,
    SENSITIVITY,
    STALL_RATIO,
    STOCHASTIC_RHOS,
    SWITCH_RHOS,
    TAIL_FRAC,
    WD_ABLATION,
    chapter_configs,
    config_fields,
    main,
    run_chapter,
)
from .config import DTYPES, METHODS, FullBatchConfig
from .problem import FlatMLP, Problem, build_model, load_problem, network_activity, point_metrics
from .robust import (
    INIT_SCALES,
    LABEL_NOISE,
    NOISE_RHOS,
    PLATEAU_F,
    ROBUST_DIR,
    SCALE_RATIOS,
    SCALE_REFINE,
    SCALE_STEPS,
    init_norm,
    robust_configs,
    run_robust,
)
from .runner import RESULTS_DIR, SCHEMA_VERSION, loss_slices, result_path, run, run_cached

__all__ = [
    "LONG_STEPS", "PROFILES", "RHOS", "SEED_RHOS", "SENSITIVITY", "STALL_RATIO",
    "STOCHASTIC_RHOS", "SWITCH_RHOS", "TAIL_FRAC", "WD_ABLATION", "chapter_configs",
    "config_fields", "main", "run_chapter", "DTYPES", "METHODS", "FullBatchConfig", "FlatMLP",
    "Problem", "build_model", "load_problem", "network_activity", "point_metrics", "RESULTS_DIR",
    "SCHEMA_VERSION", "loss_slices", "result_path", "run", "run_cached", "INIT_SCALES",
    "LABEL_NOISE", "NOISE_RHOS", "PLATEAU_F", "ROBUST_DIR", "SCALE_RATIOS", "SCALE_REFINE",
    "SCALE_STEPS",
    "init_norm", "robust_configs", "run_robust",
]
