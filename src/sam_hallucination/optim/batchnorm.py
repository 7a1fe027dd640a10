"""BatchNorm during SAM: keep running statistics from updating in the perturbed pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

_BN = nn.modules.batchnorm._BatchNorm


def disable_running_stats(model: nn.Module) -> None:
    """Stop BatchNorm running statistics (and ``num_batches_tracked``) from updating.

    Sets ``track_running_stats = False`` on every BatchNorm module (remembering the old
    value). In train mode the layer still normalises with the batch statistics; in eval
    mode it still uses the stored running statistics. Undo with :func:`enable_running_stats`.
    """
    for m in model.modules():
        if isinstance(m, _BN) and not hasattr(m, "_sam_backup_track"):
            m._sam_backup_track = m.track_running_stats
            m.track_running_stats = False


def enable_running_stats(model: nn.Module) -> None:
    """Undo :func:`disable_running_stats`."""
    for m in model.modules():
        if isinstance(m, _BN) and hasattr(m, "_sam_backup_track"):
            m.track_running_stats = m._sam_backup_track
            del m._sam_backup_track


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: BatchNorm running statistics do not update inside the block.

    Use it around the perturbed forward pass of the SAM closure, so running statistics
    update once per SAM step (from the pass at the unperturbed weights).
    """
    disable_running_stats(model)
    try:
        yield model
    finally:
        enable_running_stats(model)
