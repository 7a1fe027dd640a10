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

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import load_dataset, subset
from .experiments import device_name, git_info, json_safe, write_json_atomic
from .models import MLP

Tensor = torch.Tensor
METHODS = ("gd", "sam", "switch", "sgd-sam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
SCHEMA_VERSION = 1


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


RESULTS_DIR = repo_root() / "results" / "mlp"


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

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.rho, bool) or not isinstance(self.rho, (int, float)):
            raise TypeError(f"rho must be a real number, got {self.rho!r}")
        if not math.isfinite(self.rho) or self.rho < 0:
            raise ValueError(f"rho must be finite and >= 0, got {self.rho!r}")
        if self.method == "gd" and self.rho != 0:
            raise ValueError(f"method='gd' takes rho=0, got rho={self.rho!r}; use method='sam'")
        if self.method in ("sam", "switch") and self.rho <= 0:
            raise ValueError(f"method={self.method!r} needs rho > 0, got {self.rho!r}; "
                             "use method='gd' for rho=0")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.switch_frac < 1:
            raise ValueError(f"switch_frac must be in [0, 1), got {self.switch_frac!r}")
        for name in ("n_train", "n_test", "pool", "hidden", "steps", "log_every", "batch_size",
                     "slice_points", "grid_points"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if isinstance(self.continue_steps, bool) or not isinstance(self.continue_steps, int) \
                or self.continue_steps < 0:
            raise ValueError(f"continue_steps must be an int >= 0, got {self.continue_steps!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("data_root")
        return d

    def run_id(self) -> str:
        """Readable name plus a hash of every hashed field, e.g. ``sam_rho2_3f9a1c0b``."""
        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        tag = self.method if self.method == "gd" else f"{self.method}_rho{self.rho:g}"
        if self.weight_decay:
            tag += f"_wd{self.weight_decay:g}"
        return f"{tag}_{h}"


# ----------------------------------------------------------------------------- problem
@dataclass
class Problem:
    """Training/test tensors (flattened, normalised) and the model shape."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    in_features: int
    num_classes: int
    dataset: str


_PROBLEMS: dict[tuple, Problem] = {}


def _to_tensor(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], pool: int,
               dtype: torch.dtype) -> Tensor:
    t = torch.from_numpy(x).to(torch.float64).div_(255.0)  # (N, H, W, C)
    t = (t - torch.tensor(mean, dtype=torch.float64)) / torch.tensor(std, dtype=torch.float64)
    t = t.permute(0, 3, 1, 2)
    if pool > 1:
        t = F.avg_pool2d(t, pool)
    return t.reshape(len(t), -1).to(dtype).contiguous()


def load_problem(cfg: FullBatchConfig) -> Problem:
    """The fixed class-balanced subset of ``cfg.dataset`` as tensors (cached in memory)."""
    key = (cfg.dataset, cfg.data_root, cfg.n_train, cfg.n_test, cfg.pool, cfg.seed, cfg.dtype)
    if key not in _PROBLEMS:
        ds = subset(load_dataset(cfg.dataset, root=cfg.data_root), cfg.n_train, cfg.n_test,
                    seed=cfg.seed)
        dt = DTYPES[cfg.dtype]
        xtr = _to_tensor(ds.x_train, ds.mean, ds.std, cfg.pool, dt)
        xte = _to_tensor(ds.x_test, ds.mean, ds.std, cfg.pool, dt)
        _PROBLEMS[key] = Problem(xtr, torch.from_numpy(ds.y_train), xte,
                                 torch.from_numpy(ds.y_test), xtr.shape[1], ds.num_classes,
                                 ds.name)
    return _PROBLEMS[key]


# ----------------------------------------------------------------------------- flat model
class FlatMLP:
    """An :class:`~sam_hallucination.models.MLP` evaluated at a flat weight vector ``w``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = [n for n, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.sizes = [s.numel() for s in self.shapes]

    def init_vector(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).clone()

    def unflatten(self, w: Tensor) -> dict[str, Tensor]:
        parts = torch.split(w, self.sizes)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def logits(self, w: Tensor, x: Tensor) -> Tensor:
        return torch.func.functional_call(self.model, self.unflatten(w), (x,))

    def loss(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.logits(w, x), y)

    def loss_grad(self, w: Tensor, x: Tensor, y: Tensor) -> tuple[float, Tensor, float]:
        """(L(w), ∇L(w), accuracy) on (x, y)."""
        with torch.enable_grad():
            wr = w.detach().requires_grad_(True)
            out = self.logits(wr, x)
            loss = F.cross_entropy(out, y)
            (g,) = torch.autograd.grad(loss, wr)
        acc = float((out.detach().argmax(1) == y).to(torch.float64).mean())
        return float(loss.detach()), g.detach(), acc

    def accuracy(self, w: Tensor, x: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            return float((self.logits(w, x).argmax(1) == y).to(torch.float64).mean())


def build_model(cfg: FullBatchConfig, prob: Problem) -> FlatMLP:
    """The seeded 2-layer ReLU MLP (PyTorch default init) in ``cfg.dtype``."""
    torch.manual_seed(cfg.seed)
    model = MLP(prob.in_features, cfg.hidden, prob.num_classes, depth=2)
    return FlatMLP(model.to(DTYPES[cfg.dtype]))


# ----------------------------------------------------------------------------- one point
def network_activity(net: FlatMLP, w: Tensor, x: Tensor) -> dict[str, float]:
    """How much the network at ``w`` still depends on its input.

    ``live_units``: fraction of hidden ReLU units positive on at least one example;
    ``active_frac``: mean fraction of hidden units positive per example;
    ``logit_spread``: mean over classes of the standard deviation of the logits across
    examples (0 means the same output for every input).
    """
    acts: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out.detach()))
             for m in net.model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            logits = net.logits(w, x)
    finally:
        for h in hooks:
            h.remove()
    h = torch.cat([a > 0 for a in acts], dim=1) if acts else torch.zeros(len(x), 0, dtype=bool)
    return {"live_units": float(h.any(0).to(torch.float64).mean()),
            "active_frac": float(h.to(torch.float64).mean()),
            "logit_spread": float(logits.std(0).mean())}


def point_metrics(net: FlatMLP, w: Tensor, x: Tensor, y: Tensor, rho: float,
                  weight_decay: float = 0.0) -> dict[str, Any]:
    """Everything the chapter measures at one weight vector (full batch).

    Keys: ``f`` (= L + λ/2‖w‖²), ``loss`` (L), ``acc``, ``grad_norm`` ‖∇f(w)‖,
    ``loss_grad_norm`` ‖∇L(w)‖, ``f_plus`` L(w⁺), ``sam_norm`` ‖d(w)‖ = ‖∇L(w⁺) + λw‖,
    ``ratio`` = sam_norm / grad_norm, ``w_norm``; and the tensors ``grad`` (∇f), ``u``
    (unit ascent direction of L) and ``d`` (the SAM direction; ∇f for rho = 0).
    """
    loss, g, acc = net.loss_grad(w, x, y)
    gf = g + weight_decay * w
    gn = float(g.norm())
    u = g / gn if gn > 0 else torch.zeros_like(g)
    if rho > 0:
        loss_p, g_p, _ = net.loss_grad(w + rho * u, x, y)
        d = g_p + weight_decay * w
    else:
        loss_p, d = loss, gf
    f = loss + 0.5 * weight_decay * float(w.dot(w))
    grad_norm, sam_norm = float(gf.norm()), float(d.norm())
    return {"f": f, "loss": loss, "acc": acc, "grad_norm": grad_norm, "loss_grad_norm": gn,
            "f_plus": loss_p, "sam_norm": sam_norm,
            "ratio": sam_norm / grad_norm if grad_norm > 0 else math.inf,
            "w_norm": float(w.norm()), "grad": gf, "u": u, "d": d}


_LOG_KEYS = ("f", "loss", "acc", "grad_norm", "f_plus", "sam_norm", "ratio", "w_norm")


def _log_row(step: int, m: dict[str, Any]) -> dict[str, Any]:
    return {"step": step, **{k: m[k] for k in _LOG_KEYS}}


def _logged(k: int, total: int, every: int) -> bool:
    return k % every == 0 or k == total


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
    from .optim import SAM

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
        xb, yb = x[idx], y[idx]
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()

        def closure(xb=xb, yb=yb):
            F.cross_entropy(model(xb), yb).backward()

        if rho > 0:
            opt.step(closure)
        else:
            opt.step()
        opt.zero_grad()
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
        from .diagnostics import stall_diagnostics

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


def run_cached(cfg: FullBatchConfig, results_dir: str | Path | None = None,
               recompute: bool = False, problem: Problem | None = None) -> dict[str, Any]:
    """Load ``results/mlp/<run_id>.json`` if it exists (same config), else run and store it.

    The record adds ``config``, ``run_id``, ``source`` ("cache" or "computed"), ``path`` and
    ``provenance`` (device, torch, python, git commit, UTC time) to :func:`run`'s output.
    """
    path = result_path(cfg, results_dir)
    if path.exists() and not recompute:
        rec = json.loads(path.read_text())
        if rec.get("config") != json_safe(cfg.to_dict()):
            raise ValueError(f"{path} holds a different config; delete it or pass recompute=True")
        rec["source"], rec["path"] = "cache", str(path)
        return rec
    out = run(cfg, problem)
    rec = json_safe({"schema_version": SCHEMA_VERSION, "run_id": cfg.run_id(),
                  "config": cfg.to_dict(), **out,
                  "provenance": {"device": "cpu", "device_name": device_name("cpu"),
                                 "torch": torch.__version__,
                                 "python": __import__("platform").python_version(),
                                 "git": git_info(), "threads": torch.get_num_threads(),
                                 "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime())}})
    write_json_atomic(path, rec)
    rec = json.loads(path.read_text())  # exactly what a later cache hit returns
    rec["source"], rec["path"] = "computed", str(path)
    return rec


# ----------------------------------------------------------------------------- chapter grid
RHOS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
SWITCH_RHOS = (1.0, 2.0, 5.0)
STOCHASTIC_RHOS = (0.0, 0.2, 2.0, 5.0)
WD_ABLATION = 5e-3
LONG_STEPS = 12000
TAIL_FRAC = 0.2
SEED_RHOS = (0.0, 1.0, 2.0, 5.0)
STALL_RATIO = 0.1
SENSITIVITY: dict[str, dict[str, Any]] = {
    "28x28": {"pool": 1}, "width256": {"hidden": 256}, "n4000": {"n_train": 4000},
    "lr0.02": {"lr": 0.02}}


def chapter_configs(base: FullBatchConfig | None = None) -> dict[str, FullBatchConfig]:
    """Every run of chapter 4, by name: ``gd``, ``sam-<ρ>``, ``switch-<ρ>``, ``sgd-sam-<ρ>``,
    and the weight-decay ablation ``gd-wd``/``sam-wd-<ρ>``."""
    b = base or FullBatchConfig()
    out = {"gd": replace(b, method="gd", rho=0.0)}
    out.update({f"sam-{r:g}": replace(b, method="sam", rho=r) for r in RHOS})
    out.update({f"switch-{r:g}": replace(b, method="switch", rho=r) for r in SWITCH_RHOS})
    out.update({f"sgd-sam-{r:g}": replace(b, method="sgd-sam", rho=r) for r in STOCHASTIC_RHOS})
    # one long run at the largest radius: does the near-stall become an exact fixed point?
    out[f"sam-{RHOS[-1]:g}-long"] = replace(b, method="sam", rho=RHOS[-1], steps=LONG_STEPS,
                                            log_every=100)
    # sensitivity of the large-radius behaviour to resolution, width, subset size, step size
    big = replace(b, method="sam", rho=RHOS[-1])
    for name, kw in SENSITIVITY.items():
        out[f"sens-{name}"] = replace(big, **kw)
    # a second seed (new initialisation and new training subset) for the key radii
    for r in SEED_RHOS:
        key = "gd" if r == 0 else f"sam-{r:g}"
        out[f"seed1-{key}"] = replace(out[key], seed=1)
    wd = replace(b, weight_decay=WD_ABLATION)
    out["gd-wd"] = replace(wd, method="gd", rho=0.0)
    out[f"sam-wd-{RHOS[-1]:g}"] = replace(wd, method="sam", rho=RHOS[-1])
    return out


PROFILES: dict[str, dict[str, Any]] = {
    # quick: the same runs, loaded from results/mlp/ (computed only when a file is missing)
    "quick": {"recompute": False},
    # full: recompute every run (about 15 CPU-minutes on one core)
    "full": {"recompute": True},
}


def config_fields() -> list[str]:
    return [f.name for f in fields(FullBatchConfig)]


def run_chapter(profile: str = "quick", names: list[str] | None = None,
                results_dir: str | Path | None = None, verbose: bool = False,
                base: FullBatchConfig | None = None) -> dict[str, dict[str, Any]]:
    """All chapter-4 records by name (cached ones loaded; ``full`` recomputes).

    ``base`` changes the shared settings, e.g. ``FullBatchConfig(dataset="mnist",
    data_root=...)``; runs whose config has no cached file are computed and stored.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
    cfgs = chapter_configs(base)
    if names is not None:
        bad = sorted(set(names) - set(cfgs))
        if bad:
            raise ValueError(f"unknown run names {bad}; valid: {sorted(cfgs)}")
        cfgs = {n: cfgs[n] for n in names}
    out = {}
    for name, cfg in cfgs.items():
        rec = run_cached(cfg, results_dir, recompute=PROFILES[profile]["recompute"])
        if verbose:
            print(f"{name}: {rec['source']} {rec['path']} ({rec['wall_time_s']:.1f} s)", flush=True)
        out[name] = rec
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Run (or load) the chapter-4 MLP runs.")
    ap.add_argument("names", nargs="*", help="run names (default: all); see chapter_configs()")
    ap.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args(argv)
    run_chapter(args.profile, args.names or None, args.results_dir, verbose=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ----------------------------------------------------------------------------- summaries
def curve(record: dict[str, Any], key: str, continuation: bool = False
          ) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a logged metric; ``continuation=True`` appends the GD phase."""
    rows = record["log"] + (record["continuation_log"][1:] if continuation else [])
    steps = np.array([r["step"] for r in rows])
    vals = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
    return steps, vals


def tail_medians(record: dict[str, Any], frac: float = TAIL_FRAC) -> dict[str, Any]:
    """Medians over the logged points of the last ``frac`` of the run (SAM's norms oscillate
    from step to step, so one iterate is a noisy summary): ``*_tail`` keys."""
    start = (1 - frac) * record["config"]["steps"]
    rows = [r for r in record["log"] if r["step"] >= start]
    out = {}
    for key in ("grad_norm", "sam_norm", "ratio", "drift"):
        v = [r[key] for r in rows if r.get(key) is not None]
        out[f"{key}_tail"] = float(np.median(v)) if v else None
    return out


def stalled_steps(record: dict[str, Any], threshold: float = STALL_RATIO) -> int:
    """Iterations (to the logging resolution) with ‖∇f(w⁺)‖ < threshold·‖∇f(w)‖ in the run."""
    rows = [r for r in record["log"] if r["step"] > 0 and r.get("sam_active", True)]
    cfg = record["config"]
    every = cfg["log_every"] * (4 if cfg["method"] == "sgd-sam" else 1)
    return every * sum(r["ratio"] is not None and r["ratio"] < threshold for r in rows)


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """Final state and decisive-test numbers of one run, flat."""
    fin, cont, cfg = record["final"], record["continuation"], record["config"]
    last = record["log"][-1]
    tail = tail_medians(record)
    return {"method": cfg["method"], "rho": cfg["rho"], "weight_decay": cfg["weight_decay"],
            "steps": cfg["steps"], "f": fin["f"], "acc": fin["acc"], "test_acc": fin["test_acc"],
            "grad_norm": fin["grad_norm"], "sam_norm": fin["sam_norm"], "ratio": fin["ratio"],
            "f_plus": fin["f_plus"], "drift": last.get("drift"), **tail,
            "stalled_steps": stalled_steps(record),
            "ratio_min": min((r["ratio"] for r in record["log"][1:] if r["ratio"] is not None),
                             default=None),
            "f_after": cont["f"], "f_drop": cont["f_drop"],
            "rel_drop": cont["f_drop"] / fin["f"] if fin["f"] else math.nan,
            "acc_after": cont["acc"], "test_acc_after": cont["test_acc"],
            "grad_norm_after": cont["grad_norm"], "continue_steps": cont["steps"]}


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Fixed-width text table; ``columns`` = [(key, header, format spec)]."""
    def cell(v: Any, spec: str) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    body = [[cell(r[k], spec) for k, _, spec in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def provenance_line(name: str, record: dict[str, Any]) -> str:
    """Where a record came from: file, source, commit, wall time, torch, device."""
    p = record.get("provenance", {})
    git = p.get("git", {}) or {}
    return (f"{name:>12}: {record.get('source', '?'):8} {Path(record.get('path', '?')).name}  "
            f"commit {str(git.get('commit', 'unknown'))[:10]}  torch {p.get('torch', '?')}  "
            f"{p.get('device_name', '?')}  wall time {record['wall_time_s']:.1f} s")
