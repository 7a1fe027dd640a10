"""The probes of a batched group: every continuation of every run as one stack.

For each run, :func:`~.probe.probe_plan` measures the stall diagnostics and picks the
matched-loss control; the continuations (SGD from the end point, SAM from the end point,
SGD from the control's snapshot) of all runs of the group then train together, as a
:class:`~.stack.Stack`, on the continuation batches (one seeded order a training seed, so
one shared input), each with its own radius (0: SGD); :func:`~.probe.probe_finish` files
the records. The records are those of :func:`~.probe.end_of_training_probe`.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
from torch import nn

from ..data import DeviceLoader, ImageDataset
from .probe import (
    continuation_loader,
    probe_finish,
    probe_plan,
    record_after,
    record_before,
)
from .stack import Stack


def continue_batched(starts: list[tuple[nn.Module, float]], config: Any, loader: DeviceLoader,
                     steps: int, batches: list[tuple[torch.Tensor, torch.Tensor]],
                     test_loader: DeviceLoader, autocast: Any = contextlib.nullcontext
                     ) -> list[dict[str, Any]]:
    """``steps`` SGD (radius 0) or SAM steps at ``config.final_lr`` from each start, at once.

    The records of :func:`~.probe._continue`, one a start; the start modules are not changed.
    """
    recs = [record_before(m, config, steps, r, batches) for m, r in starts]
    stack = Stack([m for m, _ in starts])
    stack.train(True)
    opt = torch.optim.SGD(stack.trainable, lr=config.final_lr, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)
    dev = stack.trainable[0].device
    rho = torch.tensor([r for _, r in starts], device=dev, dtype=torch.float64)
    active = rho > 0 if any(r > 0 for _, r in starts) else None
    done = 0
    while done < steps:
        for xb, yb in loader:
            if done >= steps:
                break
            stack.step(opt, xb, yb.expand(stack.k, -1), True, rho, active,
                       config.label_smoothing, autocast)
            done += 1
    return [record_after(rec, stack.module(k), config, batches, test_loader, autocast)
            for k, rec in enumerate(recs)]


def probe_group(items: list[tuple[nn.Module, Any, float, list | None]], ds: ImageDataset,
                device: torch.device, test_loader: DeviceLoader, augment: bool,
                autocast: Any = contextlib.nullcontext, chunk: int = 8) -> list[dict[str, Any]]:
    """Probes of ``items`` = (model, config, final radius, SGD snapshots or None), in order.

    Runs are planned in order (so an SGD run's snapshots are kept before the SAM runs of its
    seed look for them); continuations of one training seed train together, ``chunk`` at a
    time. Each probe's ``time_s`` is its plan plus its share of the continuations.
    """
    plans, jobs = [], []
    for i, (model, config, rho, snaps) in enumerate(items):
        t0 = time.perf_counter()
        out, js, ctx = probe_plan(model, config, ds, device, rho, snaps)
        plans.append([out, {}, ctx, time.perf_counter() - t0])
        jobs += [(i, key, m, r) for key, m, r in js]
    for seed in dict.fromkeys(items[i][1].seed for i, *_ in jobs):
        mine = [j for j in jobs if items[j[0]][1].seed == seed]
        for a in range(0, len(mine), chunk):
            part = mine[a:a + chunk]
            t0 = time.perf_counter()
            config, ctx = items[part[0][0]][1], plans[part[0][0]][2]
            loader = continuation_loader(config, ds, device, augment, ctx["dtype"])
            recs = continue_batched([(m, r) for _, _, m, r in part], config, loader,
                                    ctx["steps"], ctx["batches"], test_loader, autocast)
            share = (time.perf_counter() - t0) / len(part)
            for (i, key, _, _), rec in zip(part, recs, strict=True):
                plans[i][1][key] = rec
                plans[i][3] += share
    return [probe_finish(out, recs, seconds) for out, recs, _, seconds in plans]
