"""The configuration of one training run; hashing it gives the run id."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from ..checks import is_int, is_real, plain
from ..data import DATASETS
from ..methods import get_method, method_names
from ..models import MODEL_NAMES

METHODS = method_names("network")  # ("sgd", "sam", "switch", "rho-decay")
LR_SCHEDULES = ("onecycle", "cosine", "constant")
PROBE_FIELDS = ("probe", "probe_batches", "probe_steps", "probe_epochs")
# Fields added later with default None: left out of the run id (and not required in stored
# records) while None, so the configs that predate them keep their run ids.
OPTIONAL_FIELDS = ("model_width",)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (hashing it gives the run id).

    Defaults are the GPU pilot settings (airbench CNN on the CIFAR-10 JPEG copy,
    16 epochs, batch 512, Nesterov SGD 0.9, one-cycle LR peaking at 0.2, wd 5e-4).
    ``switch_frac`` is used by method "switch" (SGD for that fraction of the main
    steps, then SAM). ``n_train``/``n_test`` take a class-balanced subset seeded by
    ``subset_seed`` (the same for every training seed). ``final_constant_lr_epochs``
    appends epochs at the constant rate ``final_lr`` after the schedule ends.
    ``augment=None`` means flip+translate for the CIFAR data sets, none otherwise.
    ``probe=True`` runs the end-of-training probe (stall diagnostics on ``probe_batches``
    fixed batches, then ``probe_epochs`` epochs of SGD and SAM continuation at ``final_lr``,
    or ``probe_steps`` steps when that is > 0, and the matched-loss SGD control; see
    :mod:`sam_hallucination.runs.probe`). The probe fields enter the run id only when
    ``probe=True``, so configs without the probe keep their ids. ``eval_every``: test-set
    evaluation every that many epochs, at the end of the main schedule and at the end.
    ``model_width`` (airbench only): None for the default widths (64, 256, 256), else w for
    groups (w, 4w, 4w); it enters the run id only when set.
    """

    dataset: str = "cifar10-jpeg"
    model: str = "airbench"
    method: str = "sgd"
    rho: float = 0.0
    seed: int = 0
    epochs: int = 16
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    lr_schedule: str = "onecycle"
    warmup_frac: float = 0.2
    switch_frac: float = 0.0
    n_train: int | None = None
    n_test: int | None = None
    subset_seed: int = 0
    label_noise: float = 0.0
    final_constant_lr_epochs: int = 0
    final_lr: float = 0.01
    adaptive: bool = False
    hidden: int = 512
    model_width: int | None = None  # airbench: first group width w, groups (w, 4w, 4w)
    augment: bool | None = None
    amp: bool = True
    eval_every: int = 1
    probe: bool = False
    probe_batches: int = 16
    probe_steps: int = 0  # 0: probe_epochs whole epochs
    probe_epochs: int = 1

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"RunConfig.{name}={getattr(self, name)!r}: {why}")

        for f in dataclasses.fields(self):  # np.int64 seeds, np.float32 rho: Python numbers
            object.__setattr__(self, f.name, plain(getattr(self, f.name)))
        if self.dataset not in DATASETS:
            raise bad("dataset", f"unknown dataset; valid: {', '.join(DATASETS)}")
        if self.model not in MODEL_NAMES:
            raise bad("model", f"unknown model; valid: {', '.join(MODEL_NAMES)}")
        try:
            spec = get_method(self.method, "network")
        except ValueError:
            raise bad("method", f"unknown method; valid: {', '.join(method_names('network'))}"
                      ) from None
        uses_sam = spec.sam
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"valid: {', '.join(LR_SCHEDULES)}")
        for name in ("rho", "lr", "momentum", "weight_decay", "label_smoothing", "warmup_frac",
                     "switch_frac", "label_noise", "final_lr"):
            v = getattr(self, name)
            if not is_real(v) or not math.isfinite(v):
                raise bad(name, "must be a finite real number")
            if v < 0:
                raise bad(name, "must be >= 0")
            object.__setattr__(self, name, float(v))  # rho=1 and rho=1.0: same run id
        if self.lr == 0:
            raise bad("lr", "must be > 0")
        if uses_sam and self.rho == 0:
            raise bad("rho", f"method {self.method!r} needs rho > 0 (use method='sgd' for rho=0)")
        if not uses_sam and self.rho != 0:
            raise bad("rho", "method 'sgd' ignores rho; set rho=0 (or method='sam')")
        if self.momentum >= 1:
            raise bad("momentum", "must be < 1")
        if self.nesterov and self.momentum == 0:
            raise bad("nesterov", "Nesterov needs momentum > 0")
        for name in ("label_smoothing", "warmup_frac", "label_noise"):
            if getattr(self, name) >= 1:
                raise bad(name, "must be < 1")
        if not self.switch_frac < 1:
            raise bad("switch_frac", "must be in [0, 1)")
        if not spec.switch and self.switch_frac != 0:
            raise bad("switch_frac", "only method 'switch' uses it; leave it at 0")
        for name in ("seed", "subset_seed"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "must be an int >= 0")
        for name in ("probe", "nesterov", "adaptive", "amp"):  # "False" is not False
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be True or False (a bool, not a string or number)")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise bad("augment", "must be True, False or None (the data set's default)")
        for name in ("epochs", "batch_size", "hidden", "eval_every", "probe_batches",
                     "probe_epochs"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "must be an int >= 1")
        for name in ("final_constant_lr_epochs", "probe_steps"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "must be an int >= 0")
        if self.model_width is not None:
            if not is_int(self.model_width) or self.model_width < 1:
                raise bad("model_width", "must be None (default widths) or an int >= 1")
            if self.model != "airbench":
                raise bad("model_width", "only model 'airbench' uses it; leave it at None")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise bad(name, "must be None (whole split) or an int >= 1")
        size = self.train_size()
        if self.batch_size > size:
            raise bad("batch_size", f"larger than the training set ({size} images)")

    def run_id(self) -> str:
        """Readable name plus an 8-hex hash of the full config."""
        d = asdict(self)
        if not self.probe:  # ids of configs without the probe are those of schema 1
            for k in PROBE_FIELDS:
                d.pop(k)
        for k in OPTIONAL_FIELDS:  # unset: the id of the configs that predate the field
            if d[k] is None:
                d.pop(k)
        h = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
        parts = [self.dataset, self.model, self.method]
        spec = get_method(self.method, "network")
        if spec.sam:
            parts.append(f"rho{self.rho:g}")
        if spec.switch:
            parts.append(f"sw{self.switch_frac:g}")
        parts += [f"s{self.seed}", h]
        return "_".join(parts)

    def replace(self, **kw: Any) -> RunConfig:
        return dataclasses.replace(self, **kw)

    def augments(self) -> bool:
        """Flip + translate during training: ``augment``, else the data set's registry default."""
        return self.augment if self.augment is not None else DATASETS[self.dataset].augment

    def train_size(self) -> int:
        """Images in the training subset this config asks for."""
        size = DATASETS[self.dataset].train_size
        return min(self.n_train or size, size)
