"""Many runs at once: K models of one architecture trained as one batched computation.

:func:`train_batched` trains configs that differ only in method, ρ, switch point, ρ schedule
and seed (:func:`batch_key`) as one stack: weights and BatchNorm buffers are stacked along a
new leading axis (one slice a model) and the forward pass is ``vmap(functional_call)``.
Every model keeps what makes it a run of its own:

* its data stream: a loader seeded by its own seed (models of one seed share one stream,
  and then one un-batched input, which is the cheap case: sweeps are seed-major);
* its SAM perturbation ``e_k = ρ_k(t) g_k / ‖g_k‖`` with its own gradient norm and radius
  (``perturbation_scale`` of :mod:`sam_hallucination.optim.perturbation`, with a norm and a
  radius a model), its own switch step and ρ schedule (those of
  :class:`~sam_hallucination.optim.SAM`, step for step); models not in a SAM step this step
  keep their plain gradient;
* its BatchNorm running statistics (a slice of the stacked buffers; frozen in the perturbed
  pass, as :func:`~sam_hallucination.optim.frozen_bn_stats` does);
* its divergence: a non-finite loss marks only that run diverged (checked once an epoch;
  the slices never mix, so the others go on unchanged).

The base optimizer is torch SGD on the stacked tensors: element-wise, so each slice gets
exactly its own run's update. The result of each model is the dict :func:`~.loop.train`
returns (same keys; ``wall_time_s`` is the group's training time over K plus the model's
share of the probes). The probes' continuations of the whole group train as one stack too
(:mod:`.probe_batched`), so result files are unchanged. In float64 on the CPU the runs
match one-by-one training to ~1e-15 (``tests/test_batched.py``). ASAM (``adaptive``) is not
batched: :func:`batch_key` gives such configs a group of their own.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict
from typing import Any

import torch

from ..data import DeviceLoader, ImageDataset
from ..methods import get_method
from .config import RunConfig
from .loop import (
    _resolve_device,
    build_model,
    eval_batch_size,
    evaluates_at,
    lr_at,
    prepare_data,
    train,
)
from .probe_batched import probe_group
from .stack import Stack, cpu_state, norms

BATCH_FIELDS = ("method", "rho", "switch_frac", "seed")  # what may differ inside a group


def batch_key(config: RunConfig) -> str:
    """Configs with the same key can train as one stack (ASAM configs: each its own key)."""
    d = {k: v for k, v in asdict(config).items() if k not in BATCH_FIELDS}
    return repr(sorted(d.items())) + (config.run_id() if config.adaptive else "")


def batch_groups(configs: list[RunConfig], max_k: int, by_seed: bool = True
                 ) -> list[list[RunConfig]]:
    """Runs in groups of at most ``max_k`` compatible configs, in run order.

    A group is the next run plus the following runs with its key (and, with ``by_seed``,
    its seed: one data stream for the whole group, the cheap case), up to ``max_k``. So the
    order of first runs is kept and a sweep's SGD run (first of its seed) trains in the
    first group of its seed, before the SAM runs whose probe needs its snapshots.
    """
    left = list(configs)
    groups = []
    while left:
        key = (batch_key(left[0]), left[0].seed if by_seed else None)
        group = [c for c in left if (batch_key(c), c.seed if by_seed else None) == key
                 ][:max(1, max_k)]
        ids = {id(c) for c in group}
        left = [c for c in left if id(c) not in ids]
        groups.append(group)
    return groups


def train_group(configs: list[RunConfig], dataset: ImageDataset, device: str | torch.device,
                progress: bool = False) -> list[dict[str, Any]]:
    """One run: :func:`~.loop.train`; several compatible runs: :func:`train_batched`."""
    if len(configs) == 1:
        return [train(configs[0], dataset, device=device, progress=progress)]
    return train_batched(configs, dataset, device=device, progress=progress)


def _rho_at(config: RunConfig, t: int, switch: int, total: int) -> float:
    """The radius :class:`~sam_hallucination.optim.SAM` uses at step ``t`` (0 if not SAM)."""
    spec = get_method(config.method, "network")
    if not spec.sam or t < switch:
        return 0.0
    if spec.rho_schedule == "constant":
        return config.rho
    span = total - 1 - switch
    if span <= 0 or t >= total - 1:
        return 0.0
    return config.rho * max(0.0, (total - 1 - t) / span)


def _switch_step(config: RunConfig, main_steps: int) -> int:
    return int(round(config.switch_frac * main_steps)) if get_method(config.method,
                                                                     "network").switch else 0


def train_batched(configs: list[RunConfig], dataset: ImageDataset,
                  device: str | torch.device = "auto", progress: bool = False,
                  dtype: torch.dtype = torch.float32, model_kw: dict[str, Any] | None = None,
                  _poison: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Train compatible ``configs`` (one :func:`batch_key`) as one stack; one dict a run.

    Each dict is what :func:`~.loop.train` returns for that config. ``dtype`` and
    ``model_kw`` (passed to the model) serve the tests; ``_poison=(k, step)`` sets model
    ``k``'s weights to NaN before that step (tests of divergence isolation).
    """
    if len({batch_key(c) for c in configs}) != 1:
        raise ValueError("train_batched needs configs that differ only in " + ", ".join(BATCH_FIELDS))
    t_start = time.perf_counter()
    c0, k_models = configs[0], len(configs)
    dev = _resolve_device(device)
    ds = prepare_data(c0, dataset)
    conv = c0.model != "mlp"
    models = []
    for c in configs:
        torch.manual_seed(c.seed)
        m = build_model(c, ds, **(model_kw or {}))
        models.append(m.to(dev, dtype, memory_format=torch.channels_last) if conv
                      else m.to(dev, dtype))
    stack = Stack(models)
    augment = c0.augments()
    shared = len({c.seed for c in configs}) == 1

    def loader(seed: int) -> DeviceLoader:
        return DeviceLoader(ds.x_train, ds.y_train, c0.batch_size, mean=ds.mean, std=ds.std,
                            device=dev, train=True, pad=2 if augment else 0, flip=augment,
                            seed=seed, dtype=dtype, channels_last=conv)

    loaders = [loader(configs[0].seed)] if shared else [loader(c.seed) for c in configs]
    test_loader = DeviceLoader(ds.x_test, ds.y_test, eval_batch_size(len(ds.y_test)),
                               mean=ds.mean, std=ds.std, device=dev, train=False, dtype=dtype,
                               channels_last=conv)
    spe = len(loaders[0])
    main_steps = c0.epochs * spe
    n_epochs = c0.epochs + c0.final_constant_lr_epochs
    total = n_epochs * spe
    switch = [_switch_step(c, main_steps) for c in configs]
    # Radius of each model at each step, and whether it takes a SAM step (switch passed):
    # known in advance, so the step needs no host sync.
    rho_tab = [[_rho_at(c, t, switch[k], main_steps) for k, c in enumerate(configs)]
               for t in range(total + 1)]
    sam_tab = [[get_method(c.method, "network").sam and t >= switch[k]
                for k, c in enumerate(configs)] for t in range(total + 1)]
    rho_dev = torch.tensor(rho_tab, device=dev, dtype=torch.float64)
    sam_dev = torch.tensor(sam_tab, device=dev)
    opt = torch.optim.SGD(stack.trainable, lr=c0.lr, momentum=c0.momentum, nesterov=c0.nesterov,
                          weight_decay=c0.weight_decay)
    use_amp = c0.amp and dev.type == "cuda"
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp
                else contextlib.nullcontext)
    if use_amp:
        torch.backends.cudnn.benchmark = True
    probe_any = c0.probe
    snapshots: dict[int, list] = {k: [(0, cpu_state(stack.state(k)))] for k, c in enumerate(configs)
                                  if probe_any and not get_method(c.method, "network").sam}

    status = ["ok"] * k_models
    diverged_at: list[dict[str, int] | None] = [None] * k_models
    epochs: list[list[dict[str, Any]]] = [[] for _ in configs]
    step = 0
    train_s = 0.0
    for epoch in range(n_epochs):
        t0 = time.perf_counter()
        stack.train(True)
        zeros = lambda dt=torch.float64: torch.zeros(k_models, device=dev, dtype=dt)  # noqa: E731
        loss_sum, gn_sum, gnp_sum = zeros(), zeros(), zeros()
        correct, n_pert = zeros(torch.long), zeros(torch.long)
        losses: list[torch.Tensor] = []
        first_step, n_seen = step, 0
        for batches in zip(*loaders, strict=True):
            if shared:
                xb, yb = batches[0]
                yk = yb.expand(k_models, -1)
            else:
                xb = torch.stack([b[0] for b in batches])
                yk = torch.stack([b[1] for b in batches])
            if _poison is not None and _poison[1] == step:
                with torch.no_grad():
                    for p in stack.trainable:
                        p[_poison[0]] = float("nan")
            lr = lr_at(step, main_steps, c0.lr, c0.lr_schedule, c0.warmup_frac, c0.final_lr)
            for g in opt.param_groups:
                g["lr"] = lr
            active = sam_dev[step] if any(sam_tab[step]) else None
            loss, out, gn, gnp = stack.step(opt, xb, yk, shared, rho_dev[step], active,
                                            c0.label_smoothing, autocast)
            if gnp is not None:
                gnp_sum += torch.where(active, gnp.double(), 0.0)
                n_pert += active.long()
            gn_sum += gn.double()
            step += 1
            loss_d = loss.detach()
            loss_sum += loss_d.double() * yk.shape[1]
            correct += (out.detach().argmax(-1) == yk).sum(1)
            n_seen += yk.shape[1]
            losses.append(loss_d)
        finite = torch.isfinite(torch.stack(losses)).cpu()  # one host sync an epoch
        train_s += time.perf_counter() - t0
        w_norm = norms(stack.trainable, torch.float32).cpu().tolist()
        loss_l, acc_l = (loss_sum / max(1, n_seen)).cpu().tolist(), (correct.double() / max(1, n_seen)).cpu().tolist()
        gn_l = (gn_sum / max(1, spe)).cpu().tolist()
        np_l = n_pert.cpu().tolist()
        gnp_l = (gnp_sum / n_pert.clamp_min(1)).cpu().tolist()
        test = None
        if evaluates_at(c0, epoch + 1, n_epochs):
            test = stack.evaluate(test_loader, autocast)
        for k in range(k_models):
            if status[k] != "ok":
                continue
            rec: dict[str, Any] = {
                "epoch": epoch + 1, "step": step, "lr": lr,
                "rho": rho_tab[step][k] if sam_tab[step][k] else 0.0,
                "sam_active": bool(sam_tab[step][k]),
                "train_loss": loss_l[k], "train_acc": acc_l[k], "grad_norm": gn_l[k],
                "perturbed_grad_norm": gnp_l[k] if np_l[k] else None,
                "trainable_weight_norm": w_norm[k], "train_time_s": train_s / k_models,
            }
            if not bool(finite[:, k].all()):
                status[k] = "diverged"
                bad = int((~finite[:, k]).nonzero()[0, 0])
                diverged_at[k] = {"step": first_step + bad, "epoch": epoch}
                rec.update(test_loss=None, test_acc=None)
            elif test is not None:
                rec["test_loss"], rec["test_acc"] = test[0][k], test[1][k]
            else:
                rec["test_loss"] = rec["test_acc"] = None
            rec["epoch_time_s"] = (time.perf_counter() - t0) / k_models
            epochs[k].append(rec)
            if k in snapshots:
                snapshots[k].append((epoch + 1, cpu_state(stack.state(k))))
        if progress:
            print(f"  [batched K={k_models}] epoch {epoch + 1}/{n_epochs}: "
                  f"{time.perf_counter() - t0:.1f} s")
    shared_s = (time.perf_counter() - t_start) / k_models
    models_out = [stack.module(k) for k in range(k_models)]
    probed = [k for k, c in enumerate(configs) if c.probe and status[k] == "ok"]
    probes: dict[int, dict[str, Any]] = {}
    if probed:  # every continuation of every run of the group: one stack at a time
        found = probe_group([(models_out[k], configs[k], rho_tab[total][k], snapshots.get(k))
                             for k in probed], ds, dev, test_loader, augment, autocast,
                            chunk=max(k_models, 2))
        probes = dict(zip(probed, found, strict=True))
    outs = []
    for k in range(k_models):
        last = epochs[k][-1] if epochs[k] else {}
        probe = probes.get(k)
        outs.append({
            "status": status[k], "diverged_at": diverged_at[k], "epochs": epochs[k],
            "final": {n: last.get(n) for n in ("train_loss", "train_acc", "test_loss", "test_acc",
                                               "grad_norm", "perturbed_grad_norm",
                                               "trainable_weight_norm")},
            "steps": step, "steps_per_epoch": spe, "main_steps": main_steps,
            "wall_time_s": shared_s + (probe["time_s"] if probe else 0.0), "device": str(dev),
            "dataset": ds.name, "n_train": int(len(ds.y_train)), "n_test": int(len(ds.y_test)),
            "n_params": sum(p.numel() for p in models_out[k].parameters()), "probe": probe,
            "model": models_out[k], "batched": k_models,
        })
    return outs


def pick_batch(device: str = "cuda", ks: tuple[int, ...] = (1, 4, 8), model: str = "airbench",
               batch_size: int = 512, verbose: bool = True,
               results_dir: str | None = None) -> int:
    """The K in ``ks`` with the most runs per second for SAM runs of ``model`` on ``device``.

    From the CUDA calibration in ``results_dir`` when there is one (and ``device`` is CUDA),
    else by timing 8 SAM steps (4 epochs of 2 batches of synthetic 32x32 images) per K,
    after a warm-up at that K; K = 1 is the one-by-one loop. A larger K must beat the best
    smaller one by 10% to be chosen (batched convolutions are grouped convolutions: slower
    on some devices, e.g. ~0.5x on a CPU).
    """
    from ..data import synthetic_dataset
    from .estimate import load_calibration

    cal = load_calibration(results_dir) if results_dir and device.startswith("cuda") else None
    if cal and cal.get("group_epoch_s"):
        rates = {1: 1 / cal["epoch_s"]["sam"],
                 **{int(k): int(k) / t for k, t in cal["group_epoch_s"].items() if int(k) > 1}}
        best = 1
        for k in sorted(rates):
            if rates[k] > 1.1 * rates[best]:
                best = k
        if verbose:
            print(f"pick_batch: from {cal['source']}: runs/s {rates} -> K={best}", file=sys.stderr)
        return best

    ds = synthetic_dataset(n_train=2 * batch_size, n_test=batch_size, size=32, seed=0)
    base = RunConfig(dataset="synthetic", model=model, method="sam", rho=0.1, epochs=4,
                     batch_size=batch_size, n_train=2 * batch_size, n_test=batch_size,
                     eval_every=1000)
    dev = torch.device(device)

    def timed(k: int) -> float:
        group = [base.replace(rho=0.05 * (i + 1)) for i in range(k)]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        train_group(group, ds, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    best_k, best_rate = 1, 0.0
    for k in ks:
        timed(k)  # warm-up: allocator, cudnn autotuning
        rate = k / timed(k)
        if verbose:
            print(f"pick_batch: K={k}: {rate:.2f} runs/s", file=sys.stderr)
        if rate > 1.1 * best_rate:
            best_k, best_rate = k, rate
    return best_k
