"""The stall test of the CPU study: does SAM's step vanish, point away, or cycle at an end point?

At a trained run's saved weights ``w`` (``<run_id>.pt`` beside its record), on the whole
un-augmented training subset cut into fixed batches ``B_1 … B_n`` (train-mode BatchNorm with
frozen running statistics, as a step sees the loss), :func:`stall_test` measures

* per batch: the regularised gradient ``g_i = ∇f_i(w) + λw`` and SAM's perturbed gradient
  ``h_i = ∇f_i(w + ρ u_i) + λw`` (``u_i`` the optimizer's own perturbation of that batch);
  from their Gram matrices (:func:`sam_hallucination.stats.gram_statistics`) the *debiased*
  ``‖E g‖`` and ``‖E h‖``, their ratio, cosine, projection and first-order progress, each with
  a 95% batch-bootstrap interval;
* the mechanism at ``w⁺``: logit spread, constant ("dead") GELU channels and the majority
  class share at ``w`` and at each batch's ``w + ρu_i``; the objective along the ascent
  segment ``w + tρ û`` (``û`` the normalised mean loss gradient, t in [0, 1.25]), with its
  curvature at both ends;
* continuations: ``epochs`` epochs of plain SGD and of SAM (at the run's ρ) at the constant
  rate ``lr`` from ``w`` (fresh momentum, the run's weight decay, one seeded batch order),
  each with its objective drop, the first-order prediction of that drop
  (``lr/(1-β)·steps·⟨∇F, E step⟩``), the path length and the net displacement (a cycle moves
  far and gets nowhere).

:func:`run_stall_tests` runs it for every finished run of a sweep that has weights, writing
``results/<sweep>-stall/<run_id>.json`` (resumable, one file per run, per-run lock).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import DeviceLoader, ImageDataset, load_dataset
from ..optim import foreach_copy, frozen_bn_stats, perturbation
from ..stats import gram_statistics
from .config import RunConfig
from .loop import build_model, prepare_data
from .probe import fixed_batches
from .step import build_optimizer, train_step
from .store import git_info, json_safe, parse_record, read_result, run_lock, write_json_atomic

STALL_SCHEMA = 2  # 2: the step estimate over independent partitions (1: over one partition)
PARTITIONS = 10
PARTITION_SEED = 50_021
CONT_EPOCHS = 5
CONT_LR = 0.01
SEED_OFFSET = 20_011  # the continuation's batch order (the same for every run of a seed)
SEGMENT_T = (0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0, 1.125, 1.25)
DEAD_STD = 1e-3  # a GELU channel whose output varies less than this over the probe set


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def _flat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in ts]).double()


class _Activity:
    """Hooks on every GELU: per-channel output moments over the batches seen."""

    def __init__(self, model: nn.Module) -> None:
        self.sums: dict[int, list[torch.Tensor]] = {}
        self.hooks = [m.register_forward_hook(self._hook(i)) for i, m in
                      enumerate(x for x in model.modules() if isinstance(x, nn.GELU))]
        self.on = True

    def _hook(self, i: int):
        def f(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            if not self.on:
                return
            o = out.detach().double().transpose(0, 1).reshape(out.shape[1], -1)
            s = self.sums.setdefault(i, [torch.zeros(o.shape[0], dtype=torch.float64)] * 3)
            self.sums[i] = [s[0] + o.shape[1], s[1] + o.sum(1), s[2] + (o * o).sum(1)]
        return f

    def dead_fraction(self) -> float:
        dead = total = 0
        for n, s1, s2 in self.sums.values():
            std = ((s2 / n - (s1 / n) ** 2).clamp_min(0)).sqrt()
            dead += int((std < DEAD_STD).sum())
            total += len(std)
        return dead / max(1, total)

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


def _logit_stats(logits: list[torch.Tensor]) -> dict[str, float]:
    z = torch.cat(logits).double()
    counts = torch.bincount(z.argmax(1), minlength=z.shape[1])
    return {"logit_spread": float(z.std(0).mean()), "majority_share": float(counts.max() / len(z))}


def _grad_pair(model: nn.Module, params: list[torch.Tensor], saved: list[torch.Tensor],
               x: torch.Tensor, y: torch.Tensor, rho: float, adaptive: bool,
               act_w: _Activity | None = None, act_p: _Activity | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, float, float, torch.Tensor, torch.Tensor]:
    """On one batch: ``∇f_B(w)``, ``∇f_B(w + ρu_B)`` (flat, float64), both losses and
    both outputs; the weights are back at ``saved`` afterwards."""
    if act_w is not None and act_p is not None:
        act_w.on, act_p.on = True, False
    with torch.enable_grad():
        out = model(x)
        loss = F.cross_entropy(out, y)
        g = list(torch.autograd.grad(loss, params))
    with torch.no_grad():
        torch._foreach_add_(params, perturbation(params, g, rho, adaptive=adaptive))
    if act_w is not None and act_p is not None:
        act_w.on, act_p.on = False, True
    try:
        with torch.enable_grad():
            out_p = model(x)
            loss_p = F.cross_entropy(out_p, y)
            h = list(torch.autograd.grad(loss_p, params))
    finally:
        with torch.no_grad():
            foreach_copy(params, saved)
    return (_flat(g), _flat(h), float(loss.detach()), float(loss_p.detach()), out.detach(),
            out_p.detach())


def _restore(model: nn.Module, params: list[torch.Tensor], saved: list[torch.Tensor],
             buffers: list[torch.Tensor]) -> None:
    with torch.no_grad():
        foreach_copy(params, saved)
        for b, s in zip(model.buffers(), buffers, strict=True):
            b.copy_(s)


def batch_vectors(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], rho: float,
                  weight_decay: float, adaptive: bool = False) -> dict[str, Any]:
    """Per-batch g_i, h_i (as Gram matrices), losses and the activity at w and w + ρu_i.

    The model is left bit-identical (weights, buffers, train flags).
    """
    params = _params(model)
    saved = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in model.buffers()]
    w = _flat(saved)
    gs, hs, lw, lp, zw, zp = [], [], [], [], [], []
    act_w, act_p = _Activity(model), _Activity(model)
    model.train()
    try:
        with frozen_bn_stats(model):
            for x, y in batches:
                g, h, loss, loss_p, out, out_p = _grad_pair(model, params, saved, x, y, rho,
                                                            adaptive, act_w, act_p)
                gs.append(g + weight_decay * w)
                hs.append(h + weight_decay * w)
                lw.append(loss)
                lp.append(loss_p)
                zw.append(out)
                zp.append(out_p)
    finally:
        _restore(model, params, saved, buffers)
        act_w.close()
        act_p.close()
    G, H = torch.stack(gs), torch.stack(hs)
    loss_grad = (G.mean(0) - weight_decay * w)
    return {"gg": (G @ G.T).numpy(), "hh": (H @ H.T).numpy(), "gh": (G @ H.T).numpy(),
            "loss": float(np.mean(lw)), "loss_perturbed": float(np.mean(lp)),
            "mean_loss_grad": loss_grad, "weight_norm": float(w.norm()),
            "at_w": {**_logit_stats(zw), "dead_fraction": act_w.dead_fraction()},
            "at_w_plus": {**_logit_stats(zp), "dead_fraction": act_p.dead_fraction()}}


def partition_estimate(model: nn.Module, ds: ImageDataset, batch_size: int, rho: float,
                       weight_decay: float, adaptive: bool = False, k: int = PARTITIONS,
                       seed: int = PARTITION_SEED, device: torch.device | None = None
                       ) -> dict[str, Any]:
    """‖E g‖, ‖E h‖ and the rest from ``k`` independent partitions of the training subset.

    Partition ``j`` cuts a fresh random permutation (seed ``seed + j``) into whole batches;
    its mean of ``g_i`` (and of ``h_i``) estimates E g (E h) over a random batch without
    bias, and the ``k`` means are independent, so the U-statistics over them, and the
    bootstrap over partitions, are unbiased. (The batches of *one* partition share no image:
    their gradients are negatively correlated and the U-statistic over them is biased low,
    the flaw of schema 1.) The model is left bit-identical.
    """
    dev = device or torch.device("cpu")
    params = _params(model)
    saved = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in model.buffers()]
    w = _flat(saved)
    G, H, n = [], [], 0
    model.train()
    try:
        with frozen_bn_stats(model):
            for j in range(k):
                batches = fixed_batches(ds, len(ds.y_train), batch_size, dev, seed=seed + j)
                sg = sh = 0.0
                for x, y in batches:
                    g, h, *_ = _grad_pair(model, params, saved, x, y, rho, adaptive)
                    sg, sh = sg + g, sh + h
                n = len(batches)
                G.append(sg / n + weight_decay * w)
                H.append(sh / n + weight_decay * w)
    finally:
        _restore(model, params, saved, buffers)
    Gm, Hm = torch.stack(G), torch.stack(H)
    st = gram_statistics((Gm @ Gm.T).numpy(), (Hm @ Hm.T).numpy(), (Gm @ Hm.T).numpy(),
                         seed=seed)
    return {"stats": {key: iv.as_dict() for key, iv in st.items()}, "partitions": k,
            "batches_per_partition": n, "seed": seed}


@torch.no_grad()
def objective(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
              weight_decay: float) -> float:
    """Mean loss over ``batches`` (train-mode BN, running stats frozen) + λ/2 ‖w‖²."""
    was = {m: m.training for m in model.modules()}
    model.train()
    try:
        with frozen_bn_stats(model):
            loss = sum(float(F.cross_entropy(model(x), y, reduction="sum")) for x, y in batches)
    finally:
        for m, flag in was.items():
            m.training = flag
    n = sum(len(y) for _, y in batches)
    return loss / n + 0.5 * weight_decay * float(_flat(_params(model)).norm()) ** 2


@torch.no_grad()
def segment_profile(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                    direction: torch.Tensor, rho: float, weight_decay: float) -> dict[str, Any]:
    """The objective along ``w + tρ û`` for t in SEGMENT_T, and its curvature at t = 0 and 1."""
    params = _params(model)
    saved = [p.detach().clone() for p in params]
    u = direction / direction.norm()
    chunks = torch.split(u, [p.numel() for p in params])
    vals = []
    try:
        for t in SEGMENT_T:
            for p, s, c in zip(params, saved, chunks, strict=True):
                p.copy_(s + (t * rho) * c.view_as(p).to(p.dtype))
            vals.append(objective(model, batches, weight_decay))
    finally:
        foreach_copy(params, saved)
    f = dict(zip(SEGMENT_T, vals, strict=True))
    h = 0.125 * rho  # second differences in the length along the segment
    return {"t": list(SEGMENT_T), "objective": vals,
            "curvature_at_w": (f[0.25] - 2 * f[0.125] + f[0.0]) / h**2,
            "curvature_at_w_plus": (f[1.125] - 2 * f[1.0] + f[0.875]) / h**2,
            "slope_at_w_plus": (f[1.125] - f[0.875]) / (2 * h)}


def continuation(model: nn.Module, config: RunConfig, ds: ImageDataset,
                 batches: list[tuple[torch.Tensor, torch.Tensor]], rho: float, epochs: int,
                 lr: float, device: torch.device, first_order_rate: float) -> dict[str, Any]:
    """``epochs`` epochs of SGD (rho = 0) or SAM at the constant rate ``lr`` on a copy."""
    m = copy.deepcopy(model)
    loader = DeviceLoader(ds.x_train, ds.y_train, config.batch_size, mean=ds.mean, std=ds.std,
                          device=device, train=True, pad=2 if config.augments() else 0,
                          flip=config.augments(), seed=config.seed + SEED_OFFSET,
                          channels_last=True)
    steps = epochs * len(loader)
    opt = build_optimizer(config, m, steps, lr=lr, rho=rho, method="sam" if rho > 0 else "sgd")
    params = _params(m)
    w0 = _flat(params)
    objs = [objective(m, batches, config.weight_decay)]
    path, prev = 0.0, w0

    def crit(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y)

    status = "ok"
    for _ in range(epochs):
        m.train()
        for xb, yb in loader:
            train_step(m, opt, xb, yb, crit)
            cur = _flat(params)
            path += float((cur - prev).norm())
            prev = cur
        if not bool(torch.isfinite(prev).all()):
            status = "diverged"
            break
        objs.append(objective(m, batches, config.weight_decay))
    drop = objs[0] - objs[-1]
    predicted = lr / (1 - config.momentum) * steps * first_order_rate
    return {"optimizer": "sam" if rho > 0 else "sgd", "rho": rho, "lr": lr, "epochs": epochs,
            "steps": steps, "status": status, "objective": objs, "drop": drop,
            "predicted_drop": predicted,
            "drop_over_predicted": drop / predicted if predicted > 0 else math.nan,
            "path_length": path, "displacement": float((prev - w0).norm())}


def end_rho(config: RunConfig) -> float:
    """The radius a run's optimizer ends at (0 for SGD and decayed ρ)."""
    return 0.0 if config.method in ("sgd", "rho-decay") else config.rho


def stall_test(config: RunConfig, state: dict[str, torch.Tensor], dataset: ImageDataset,
               rho: float | None = None, epochs: int = CONT_EPOCHS, lr: float = CONT_LR,
               device: str = "cpu") -> dict[str, Any]:
    """The whole test at one end point (see the module doc); ``rho`` defaults to the run's."""
    t0 = time.perf_counter()
    dev = torch.device(device)
    ds = prepare_data(config, dataset)
    torch.manual_seed(0)
    model = build_model(config, ds).to(dev, memory_format=torch.channels_last)
    model.load_state_dict(state)
    r = end_rho(config) if rho is None else rho
    batches = fixed_batches(ds, len(ds.y_train), config.batch_size, dev, seed=config.subset_seed)
    probe_rho = r if r > 0 else 0.05  # SGD end points: SAM's step at the study's smallest ρ
    v = batch_vectors(model, batches, probe_rho, config.weight_decay, config.adaptive)
    one = gram_statistics(v["gg"], v["hh"], v["gh"], seed=config.seed)
    est = partition_estimate(model, ds, config.batch_size, probe_rho, config.weight_decay,
                             config.adaptive, device=dev)
    st = est["stats"]
    sgd = continuation(model, config, ds, batches, 0.0, epochs, lr, dev,
                       st["grad_sq"]["estimate"])
    sam = continuation(model, config, ds, batches, probe_rho, epochs, lr, dev,
                       st["inner"]["estimate"])
    return {"probe_rho": probe_rho, "n_batches": len(batches),
            "n_images": len(batches) * config.batch_size,
            "loss": v["loss"], "loss_perturbed": v["loss_perturbed"],
            "objective": sgd["objective"][0], "weight_norm": v["weight_norm"],
            "rho_over_weight_norm": probe_rho / v["weight_norm"],
            "stats": st, "estimator": {k: est[k] for k in ("partitions",
                                                           "batches_per_partition", "seed")},
            "batch_stats": {k: iv.as_dict() for k, iv in one.items()},
            "mechanism": {"at_w": v["at_w"], "at_w_plus": v["at_w_plus"],
                          "segment": segment_profile(model, batches, v["mean_loss_grad"],
                                                     probe_rho, config.weight_decay)},
            "sgd_continuation": sgd, "sam_continuation": sam,
            "sam_over_sgd_drop": sam["drop"] / sgd["drop"] if sgd["drop"] > 0 else math.nan,
            "wall_time_s": time.perf_counter() - t0}


def read_stall(path: Path) -> dict[str, Any] | None:
    """A stall-test record (``<sweep>-stall/<run_id>.json``), or None if missing or unreadable.

    Not :func:`read_result`: a stall record has no run ``status``."""
    try:
        rec = parse_record(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("stall_schema") == STALL_SCHEMA else None


def run_stall_tests(sweep: str, configs: list[RunConfig], results_dir: str | Path = "results",
                    data_root: str | Path | None = None, max_runs: int | None = None,
                    only: set[str] | None = None) -> list[str]:
    """Stall-test every finished run of ``sweep`` that saved weights; return the ids done now.

    Records go to ``<results>/<sweep>-stall/<run_id>.json``; existing ones are kept.
    """
    src, out = Path(results_dir) / sweep, Path(results_dir) / f"{sweep}-stall"
    out.mkdir(parents=True, exist_ok=True)
    ds, done = None, []
    for c in configs:
        rid = c.run_id()
        if (only and rid not in only) or (out / f"{rid}.json").exists():
            continue
        rec, pt = read_result(src / f"{rid}.json"), src / f"{rid}.pt"
        if rec is None or rec.get("status") != "ok" or not pt.is_file():
            continue
        with run_lock(out, rid) as mine:
            if not mine or (out / f"{rid}.json").exists():
                continue
            ds = ds or load_dataset(c.dataset, root=data_root)
            state = torch.load(pt, map_location="cpu", weights_only=True)
            res = stall_test(c, state, ds)
            # an unresolved gradient makes some ratios NaN: stored as null, read back as NaN
            write_json_atomic(out / f"{rid}.json", json_safe({
                "stall_schema": STALL_SCHEMA, "run_id": rid, "sweep": sweep,
                "config": c.__dict__, "trained_final": rec.get("final"),
                "provenance": {**git_info(), "torch": torch.__version__,
                               "threads": torch.get_num_threads()},
                "result": res}))
            done.append(rid)
            print(f"  {rid}: ratio {res['stats']['ratio']['estimate']:.3f} "
                  f"[{res['stats']['ratio']['low']:.3f}, {res['stats']['ratio']['high']:.3f}], "
                  f"SAM/SGD drop {res['sam_over_sgd_drop']:.3f}, {res['wall_time_s']:.0f} s",
                  flush=True)
        if max_runs is not None and len(done) >= max_runs:
            break
    return done

