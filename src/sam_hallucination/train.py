"""Compatibility path for the training loop, now :mod:`sam_hallucination.runs`."""

from .runs.config import LR_SCHEDULES, METHODS
from .runs.loop import build_model, lr_at, prepare_data, train
from .runs.probe import PROBE_BOOTSTRAP, PROBE_SEED_OFFSET, batch_loss, end_of_training_probe, fixed_batches
from .runs.step import build_optimizer, evaluate, grad_norm, train_step, trainable_weight_norm

__all__ = [
    "LR_SCHEDULES", "METHODS", "build_model", "lr_at", "prepare_data", "train", "PROBE_BOOTSTRAP",
    "PROBE_SEED_OFFSET", "batch_loss", "end_of_training_probe", "fixed_batches", "build_optimizer",
    "evaluate", "grad_norm", "train_step", "trainable_weight_norm",
]
