"""The configuration of one chapter-4 run (full-batch GD/SAM on a small MLP)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from ...checks import check_radius, check_real, is_int, plain
from ...data import DATASETS
from ...methods import get_method, method_names

METHODS = method_names("full-batch")  # ("gd", "sam", "switch", "sgd-sam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
_OPTIONAL = {"init_scale": 1.0, "label_noise": 0.0, "standardize": True}


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class FullBatchConfig:
    """One chapter-4 run. Defaults are the chapter's main setting (see the notebook)."""

    method: str = "gd"
    rho: float = 0.0
    dataset: str = "fashion-mnist"
    data_root: str | None = field(default=None, compare=False)  # where the files are; not hashed
    n_train: int = 2000  # class-balanced training subset (200 per class)
    n_test: int = 2000
    pool: int = 2  # average-pool factor: 28x28 -> 14x14 inputs
    hidden: int = 64
    lr: float = 0.05
    steps: int = 3000
    weight_decay: float = 0.0
    switch_frac: float = 0.1  # method="switch": fraction of GD steps before SAM
    batch_size: int = 100  # method="sgd-sam" only
    continue_steps: int = 1500
    log_every: int = 25
    slice_points: int = 41
    grid_points: int = 25
    seed: int = 0
    dtype: str = "float64"
    # robustness settings (issue 14); left out of the hash at their defaults, so the
    # chapter's original run ids do not change
    init_scale: float = 1.0  # multiplies PyTorch's default initial weights (alpha)
    label_noise: float = 0.0  # fraction of training labels replaced by another class
    standardize: bool = True  # False: pixels in [0, 1], no per-channel standardisation

    def __post_init__(self) -> None:
        for f in fields(self):  # np.float32 rho, np.int64 seed: the Python numbers they hold
            object.__setattr__(self, f.name, plain(getattr(self, f.name)))
        spec = get_method(self.method, "full-batch")
        check_radius(self.rho)
        for name in ("lr", "weight_decay", "switch_frac", "init_scale", "label_noise"):
            check_real(getattr(self, name), name)  # '0.1' or None: an error naming the field
        if not spec.sam and self.rho != 0:
            raise ValueError(f"method='gd' takes rho=0, got rho={self.rho!r}; use method='sam'")
        if self.method in ("sam", "switch") and self.rho <= 0:
            raise ValueError(f"method={self.method!r} needs rho > 0, got {self.rho!r}; "
                             "use method='gd' for rho=0")
        if not self.lr > 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.switch_frac < 1:
            raise ValueError(f"switch_frac must be in [0, 1), got {self.switch_frac!r}")
        for name in ("n_train", "n_test", "pool", "hidden", "steps", "log_every", "batch_size",
                     "slice_points", "grid_points"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not is_int(self.seed) or self.seed < 0:  # seed='a' used to pass (and hash)
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset={self.dataset!r}: unknown; valid: {', '.join(DATASETS)}")
        if self.data_root is not None and not isinstance(self.data_root, (str, os.PathLike)):
            raise ValueError(f"data_root={self.data_root!r}: must be None or a folder path")
        if self.method == "sgd-sam" and self.batch_size > self.n_train:
            raise ValueError(f"batch_size={self.batch_size} is larger than n_train="
                             f"{self.n_train}; use a smaller batch_size")
        if not is_int(self.continue_steps) or self.continue_steps < 0:
            raise ValueError(f"continue_steps must be an int >= 0, got {self.continue_steps!r}")
        if not self.init_scale > 0:
            raise ValueError(f"init_scale must be a finite number > 0, got {self.init_scale!r}")
        if not 0 <= self.label_noise < 1:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise!r}")
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be a bool, got {self.standardize!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("data_root")
        for name, default in _OPTIONAL.items():  # omitted at their defaults (stable ids)
            if d[name] == default:
                d.pop(name)
        return d

    def run_id(self) -> str:
        """Readable name plus a hash of every hashed field, e.g. ``sam_rho2_3f9a1c0b``."""
        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        tag = self.method if self.method == "gd" else f"{self.method}_rho{self.rho:g}"
        if self.weight_decay:
            tag += f"_wd{self.weight_decay:g}"
        return f"{tag}_{h}"
