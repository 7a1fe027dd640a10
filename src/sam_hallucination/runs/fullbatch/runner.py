"""Full-batch GD and SAM on a small MLP: the runs behind the chapter on hallucinated minimizers.

Notation (per chapter 4). ``L(w)`` is the mean cross-entropy over a fixed training subset,
``λ`` the weight decay and ``f(w) = L(w) + λ/2 ‖w‖²`` the objective, so ``∇f(w) = ∇L(w) + λw``.
SAM follows the practical (davda54 / SGD-with-weight-decay) convention:

* ascent direction ``u(w) = ∇L(w)/‖∇L(w)‖`` (loss gradient only), ``w⁺ = w + ρ u(w)``;
* step ``w ← w − η d(w)`` with the SAM direction ``d(w) = ∇L(w⁺) + λw``.

A *stall* is a point where ``‖d(w)‖ ≈ 0`` while ``‖∇f(w)‖`` is clearly non-zero: SAM has
stopped at a point that is not stationary for ``f`` (a hallucinated minimizer). With
``λ = 0`` (the chapter's main grid) ``d(w) = ∇f(w⁺)`` exactly.

A run (:func:`run`) is one of

* ``method="gd"``: full-batch gradient descent on ``f``;
* ``method="sam"``: full-batch SAM at radius ``rho``;
* ``method="switch"``: GD for the first ``switch_frac`` of the steps, then SAM (the remedy);
* ``method="sgd-sam"``: stochastic (minibatch) SAM through :class:`sam_hallucination.optim.SAM`
  (``rho=0``: plain SGD), with full-batch metrics logged along the way and
  :func:`sam_hallucination.diagnostics.stall_diagnostics` at the end;

followed by the *decisive test*: ``continue_steps`` of plain GD (SGD for ``"sgd-sam"``) from
the final weights, and by 1-D/2-D loss slices through the endpoint, its perturbed point
``w⁺`` and the continued endpoint. Everything is returned as a JSON-ready dict;
:func:`run_cached` stores it atomically under ``results/mlp/`` with provenance and never
recomputes a result that exists.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...checks import repo_root
from ...diagnostics import stall_diagnostics
from ...optim import SAM
from ..step import train_step
from ..store import device_name, git_info, json_safe, write_json_atomic
from .config import FullBatchConfig
from .problem import (
    _LOG_KEYS,
    FlatMLP,
    Problem,
    _log_row,
    _logged,
    build_model,
    load_problem,
    network_activity,
    point_metrics,
)

Tensor = torch.Tensor
SCHEMA_VERSION = 1
RESULTS_DIR = repo_root() / "results" / "mlp"


# ----------------------------------------------------------------------------- runners
def _run_full_batch(cfg: FullBatchConfig, net: FlatMLP, w: Tensor, prob: Problem
                    ) -> tuple[Tensor, Tensor, list[dict[str, Any]]]:
    """GD / SAM / switch for cfg.steps full-batch steps. Returns (w_K, w_{K-2}, log)."""
    x, y, lam = prob.x_train, prob.y_train, cfg.weight_decay
    switch = round(cfg.switch_frac * cfg.steps) if cfg.method == "switch" else 0
    log: list[dict[str, Any]] = []
    hist = [w, w]
    w_last, k_last = w, 0
    for k in range(cfg.steps + 1):
        active = cfg.method in ("sam", "switch") and k >= switch
        # always measure ∇L(w⁺) at the run's rho when logging, so GD phases show it too
        measure = _logged(k, cfg.steps, cfg.log_every)
        m = point_metrics(net, w, x, y, cfg.rho if (active or measure) else 0.0, lam)
        if measure:
            # drift: mean velocity since the last log, ‖w_k − w_j‖ / (η (k − j))
            drift = float((w - w_last).norm()) / (cfg.lr * (k - k_last)) if k > k_last else None
            log.append({**_log_row(k, m), "drift": drift, "sam_active": active})
            w_last, k_last = w, k
        if k == cfg.steps:
            break
        if not math.isfinite(m["f"]):
            raise FloatingPointError(f"run {cfg.run_id()} diverged at step {k}")
        w = w - cfg.lr * (m["d"] if active else m["grad"])
        hist = [hist[1], w]
    return w, hist[0], log


def _minibatches(n: int, bs: int, gen: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - bs + 1, bs):
            yield perm[i:i + bs]


def _run_stochastic(cfg: FullBatchConfig, net: FlatMLP, w: Tensor, prob: Problem, rho: float,
                    steps: int, log_offset: int = 0, seed_offset: int = 0
                    ) -> tuple[Tensor, list[dict[str, Any]]]:
    """Minibatch SAM (rho > 0) or SGD (rho = 0) through optim.SAM; full-batch metrics logged."""
    x, y, lam = prob.x_train, prob.y_train, cfg.weight_decay
    model = net.model
    torch.nn.utils.vector_to_parameters(w.clone(), model.parameters())
    opt: torch.optim.Optimizer
    if rho > 0:
        opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=cfg.lr, weight_decay=lam)
    else:  # plain SGD, one backward per step
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=lam)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 + seed_offset)
    batches = _minibatches(len(y), cfg.batch_size, gen)
    log: list[dict[str, Any]] = []
    every = cfg.log_every * 4
    for k in range(steps + 1):
        if _logged(k, steps, every):
            wk = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
            log.append(_log_row(k + log_offset, point_metrics(net, wk, x, y, cfg.rho, lam)))
        if k == steps:
            break
        idx = next(batches)
        train_step(model, opt, x[idx], y[idx], F.cross_entropy)
    wk = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    return wk, log


def _continue_gd(cfg: FullBatchConfig, net: FlatMLP, w: Tensor, prob: Problem, offset: int
                 ) -> tuple[Tensor, list[dict[str, Any]]]:
    """Plain full-batch GD for cfg.continue_steps from w (the decisive test)."""
    x, y, lam = prob.x_train, prob.y_train, cfg.weight_decay
    log: list[dict[str, Any]] = []
    for k in range(cfg.continue_steps + 1):
        measure = _logged(k, cfg.continue_steps, cfg.log_every)
        m = point_metrics(net, w, x, y, cfg.rho if measure else 0.0, lam)
        if measure:
            log.append(_log_row(offset + k, m))
        if k == cfg.continue_steps:
            break
        w = w - cfg.lr * m["grad"]
    return w, log


def loss_slices(net: FlatMLP, w_end: Tensor, w_cont: Tensor, prob: Problem, rho: float,
                u: Tensor, points: int = 41, grid: int = 25, weight_decay: float = 0.0
                ) -> dict[str, Any]:
    """f along the ascent direction, along the segment to the continued endpoint, and on
    the plane through ``w_end`` spanned by ``u`` and the (orthogonalised) segment.

    ``ray``: f(w_end + s·u), s ∈ [−ρ/2, 3ρ/2] (s = ρ is w⁺). ``segment``:
    f(w_end + t·(w_cont − w_end)), t ∈ [−0.25, 1.25]. ``plane``: f(w_end + a·u + b·v̂),
    a over the ray's range, b ∈ [−0.25, 1.25]·‖v‖ with v the part of (w_cont − w_end)
    orthogonal to u; ``b_cont``/``a_cont`` place w_cont in the plane.
    """
    x, y = prob.x_train, prob.y_train

    def f(w: Tensor) -> float:
        with torch.no_grad():
            return float(net.loss(w, x, y)) + 0.5 * weight_decay * float(w.dot(w))

    delta = w_cont - w_end
    out: dict[str, Any] = {}
    ts = np.union1d(np.linspace(-0.25, 1.25, points), [0.0, 1.0])  # hits both endpoints
    out["segment"] = {"t": ts.tolist(), "f": [f(w_end + float(t) * delta) for t in ts],
                      "distance": float(delta.norm())}
    if rho > 0 and float(u.norm()) > 0:
        ss = np.union1d(np.linspace(-0.5 * rho, 1.5 * rho, points), [0.0, rho])  # w and w⁺
        out["ray"] = {"s": ss.tolist(), "f": [f(w_end + float(s) * u) for s in ss]}
        a_c = float(delta.dot(u))
        v = delta - a_c * u
        vn = float(v.norm())
        if vn > 0:
            vh = v / vn
            a_lo, a_hi = min(-0.5 * rho, a_c - 0.25 * rho), max(1.5 * rho, a_c + 0.25 * rho)
            aa = np.linspace(a_lo, a_hi, grid)
            bb = np.linspace(-0.25 * vn, 1.25 * vn, grid)
            z = [[f(w_end + float(a) * u + float(b) * vh) for a in aa] for b in bb]
            out["plane"] = {"a": aa.tolist(), "b": bb.tolist(), "f": z, "a_cont": a_c,
                            "b_cont": vn}
    return out


def run(cfg: FullBatchConfig, problem: Problem | None = None, keep_weights: bool = False
        ) -> dict[str, Any]:
    """Execute one run (training, GD continuation, slices); JSON-ready, no provenance.

    ``problem`` replaces the data set (tests use a tiny synthetic one). With
    ``keep_weights=True`` the output also holds ``weights`` = {"init", "final",
    "continued"} as tensors (not JSON-serialisable; never cached).
    """
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    prob = problem if problem is not None else load_problem(cfg)
    net = build_model(cfg, prob)
    w0 = net.init_vector()
    x, y, xt, yt = prob.x_train, prob.y_train, prob.x_test, prob.y_test
    if cfg.method == "sgd-sam":
        w, log = _run_stochastic(cfg, net, w0, prob, cfg.rho, cfg.steps)
        w_prev2 = None
    else:
        w, w_prev2, log = _run_full_batch(cfg, net, w0, prob)
    lam = cfg.weight_decay
    m = point_metrics(net, w, x, y, cfg.rho, lam)
    final = {k: m[k] for k in _LOG_KEYS}
    move2 = None if w_prev2 is None else float((w - w_prev2).norm())  # ‖w_K − w_{K−2}‖
    final.update(test_acc=net.accuracy(w, xt, yt), two_step_move=move2,
                 sam_step_over_lr=float(cfg.lr * m["sam_norm"]),
                 activity=network_activity(net, w, x),
                 activity_plus=network_activity(net, w + cfg.rho * m["u"], x))
    stall = None
    if cfg.method == "sgd-sam":
        torch.nn.utils.vector_to_parameters(w.clone(), net.model.parameters())
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed + 7))
        batches = [(x[perm[i:i + cfg.batch_size]], y[perm[i:i + cfg.batch_size]])
                   for i in range(0, len(y) - cfg.batch_size + 1, cfg.batch_size)]
        stall = stall_diagnostics(net.model, F.cross_entropy, batches, cfg.rho,
                                  weight_decay=lam, bootstrap=200, seed=cfg.seed).as_dict()
        w_c, clog = _run_stochastic(cfg, net, w, prob, 0.0, cfg.continue_steps,
                                    log_offset=cfg.steps, seed_offset=1)
    else:
        w_c, clog = _continue_gd(cfg, net, w, prob, cfg.steps)
    mc = point_metrics(net, w_c, x, y, cfg.rho, lam)
    cont = {k: mc[k] for k in _LOG_KEYS}
    cont.update(test_acc=net.accuracy(w_c, xt, yt), f_start=final["f"], f_drop=final["f"] - mc["f"],
                distance=float((w_c - w).norm()), steps=cfg.continue_steps)
    slices = loss_slices(net, w, w_c, prob, cfg.rho, m["u"], cfg.slice_points, cfg.grid_points,
                         lam)
    out = {"final": final, "continuation": cont, "stall_diagnostics": stall, "log": log,
           "continuation_log": clog, "slices": slices, "n_params": int(w.numel()),
           "dataset": prob.dataset, "wall_time_s": time.perf_counter() - t0}
    if keep_weights:
        out["weights"] = {"init": w0, "final": w, "continued": w_c}
    return out


# ----------------------------------------------------------------------------- cache
def result_path(cfg: FullBatchConfig, results_dir: str | Path | None = None) -> Path:
    return Path(results_dir or RESULTS_DIR) / f"{cfg.run_id()}.json"


def cached_record(path: Path, cfg: FullBatchConfig) -> tuple[dict[str, Any] | None, str]:
    """``(record, "")`` if ``path`` is a readable result of ``cfg``, else ``(None, why)``."""
    if not path.exists():
        return None, ""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    if not isinstance(rec, dict):
        return None, "not a JSON object"
    missing = [k for k in ("schema_version", "run_id", "config", "final", "continuation")
               if k not in rec]
    if missing:
        return None, f"missing field(s) {', '.join(missing)}"
    if rec["schema_version"] != SCHEMA_VERSION:
        return None, f"schema_version {rec['schema_version']!r}, this code writes {SCHEMA_VERSION}"
    if rec["run_id"] != cfg.run_id():
        return None, f"holds run {rec['run_id']!r}, not {cfg.run_id()!r}"
    if rec["config"] != json_safe(cfg.to_dict()):
        return None, "holds a different config"
    return rec, ""


def run_cached(cfg: FullBatchConfig, results_dir: str | Path | None = None,
               recompute: bool = False, problem: Problem | None = None) -> dict[str, Any]:
    """Load ``results/mlp/<run_id>.json`` if it exists (same config), else run and store it.

    The record adds ``config``, ``run_id``, ``source`` ("cache" or "computed"), ``path`` and
    ``provenance`` (device, torch, python, git commit, UTC time) to :func:`run`'s output.
    A cached file that is unreadable, lacks a field, or holds another run, config or schema
    is named in a log line and recomputed; an unwritable folder only warns (no cache).
    """
    path = result_path(cfg, results_dir)
    if not recompute:
        rec, why = cached_record(path, cfg)
        if rec is not None:
            rec["source"], rec["path"] = "cache", str(path)
            return rec
        if why:
            print(f"full-batch cache {path}: {why}; recomputing it")
    out = run(cfg, problem)
    rec = json_safe({"schema_version": SCHEMA_VERSION, "run_id": cfg.run_id(),
                  "config": cfg.to_dict(), **out,
                  "provenance": {"device": "cpu", "device_name": device_name("cpu"),
                                 "torch": torch.__version__,
                                 "python": __import__("platform").python_version(),
                                 "git": git_info(), "threads": torch.get_num_threads(),
                                 "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime())}})
    try:
        write_json_atomic(path, rec)
    except OSError as e:
        import warnings

        warnings.warn(f"cannot store {path} ({e.strerror or e}); the result is not cached "
                      "(pass a writable results_dir)", stacklevel=2)
        rec = json.loads(json.dumps(rec))  # what a cache hit would return
        rec["source"], rec["path"] = "computed", None
        return rec
    rec = json.loads(path.read_text())  # exactly what a later cache hit returns
    rec["source"], rec["path"] = "computed", str(path)
    return rec
