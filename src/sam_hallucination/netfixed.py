"""An exact hallucinated point in a small network? Newton on ∇L(w + ρ u(w)) = 0, dense.

Chapter 4's stall is approximate: SAM's step hovers near, but not at, zero. Here the network is
small enough for dense linear algebra (a 196 → 8 → 10 ReLU MLP, 1,666 parameters, on 200
Fashion-MNIST images, float64), so the fixed-point equation of SAM,

    G(w) = ∇L(w⁺) = 0,   w⁺ = w + ρ ∇L(w)/‖∇L(w)‖,

can be solved directly, starting from where SAM itself stalls. The Jacobian is

    DG(w) = ∇²L(w⁺) B(w),   B = I + ρ (I − uuᵀ) ∇²L(w)/‖∇L(w)‖,

with both Hessians dense (``torch.func.hessian``). The solver is Levenberg–Marquardt on
‖G‖² (Newton's step when the damping is small), since DG is singular wherever ReLU units at
w⁺ are dead. :func:`run_study` does everything and returns a JSON-able record.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .fullbatch import FullBatchConfig, build_model, load_problem

Tensor = torch.Tensor


@dataclass(frozen=True)
class NetFixedConfig:
    """The study's settings (defaults: the book's run)."""

    n_train: int = 200
    hidden: int = 8
    pool: int = 2
    seed: int = 0
    rho: float = 2.0
    lr: float = 0.05
    sam_steps: int = 3000
    lm_iters: int = 60
    lm_lambda0: float = 1e-3
    tol: float = 1e-10
    restart_offset: float = 1e-4
    restart_steps: int = 3000
    dataset: str = "fashion-mnist"


class SmallNet:
    """L(w) on the fixed training subset, for a flat float64 weight vector w."""

    def __init__(self, cfg: NetFixedConfig, data_root: str | None = None) -> None:
        fcfg = FullBatchConfig(dataset=cfg.dataset, data_root=data_root, n_train=cfg.n_train,
                               n_test=cfg.n_train, pool=cfg.pool, hidden=cfg.hidden, seed=cfg.seed)
        self.prob = load_problem(fcfg)
        self.net = build_model(fcfg, self.prob)
        self.x, self.y = self.prob.x_train, self.prob.y_train
        self.w0 = self.net.init_vector()

    def loss(self, w: Tensor) -> Tensor:
        return self.net.loss(w, self.x, self.y)

    def grad(self, w: Tensor) -> Tensor:
        return torch.func.grad(self.loss)(w)

    def hess(self, w: Tensor) -> Tensor:
        return torch.func.hessian(self.loss)(w)

    def G(self, w: Tensor, rho: float) -> Tensor:
        g = self.grad(w)
        return self.grad(w + rho * g / g.norm())

    def DG(self, w: Tensor, rho: float) -> Tensor:
        g = self.grad(w)
        gn = g.norm()
        u = g / gn
        H = self.hess(w)
        Hp = self.hess(w + rho * u)
        B = torch.eye(len(w), dtype=w.dtype) + rho * (H - torch.outer(u, u @ H)) / gn
        return Hp @ B

    def dead_units_plus(self, w: Tensor, rho: float) -> int:
        """Hidden units that are off for every training image at w⁺."""
        g = self.grad(w)
        wp = w + rho * g / g.norm()
        p = self.net.unflatten(wp)
        names = list(p)
        h = self.x @ p[names[0]].T + p[names[1]]
        return int((h <= 0).all(0).sum())


def sam_run(net: SmallNet, w: Tensor, rho: float, lr: float, steps: int,
            w_ref: Tensor | None = None, every: int = 50) -> tuple[Tensor, list[dict]]:
    """Full-batch SAM; logs ‖∇L(w)‖, ‖∇L(w⁺)‖ and (if given) ‖w − w_ref‖ every ``every`` steps."""
    log = []
    for k in range(steps + 1):
        g = net.grad(w)
        gp = net.grad(w + rho * g / g.norm())
        if k % every == 0 or k == steps:
            row = {"step": k, "grad": float(g.norm()), "sam": float(gp.norm()), "loss": float(net.loss(w))}
            if w_ref is not None:
                row["dist"] = float((w - w_ref).norm())
            log.append(row)
        if k < steps:
            w = w - lr * gp
    return w, log


def levenberg_marquardt(net: SmallNet, w: Tensor, rho: float, *, iters: int = 60, lam0: float = 1e-3,
                        tol: float = 1e-10) -> tuple[Tensor, list[dict]]:
    """Minimise ‖G(w)‖² by Levenberg–Marquardt with the dense Jacobian; history per iteration."""
    lam = lam0
    r = net.G(w, rho)
    hist = [{"iter": 0, "residual": float(r.norm()), "grad": float(net.grad(w).norm()), "lambda": lam,
             "step": 0.0}]
    n = len(w)
    for it in range(1, iters + 1):
        if float(r.norm()) < tol:
            break
        J = net.DG(w, rho)
        JtJ, Jtr = J.T @ J, J.T @ r
        accepted = False
        for _ in range(30):
            delta = torch.linalg.solve(JtJ + lam * torch.eye(n, dtype=w.dtype), -Jtr)
            wn = w + delta
            rn = net.G(wn, rho)
            if torch.isfinite(rn).all() and float(rn.norm()) < float(r.norm()):
                w, r, accepted = wn, rn, True
                lam = max(lam / 10, 1e-15)
                break
            lam *= 10
        hist.append({"iter": it, "residual": float(r.norm()), "grad": float(net.grad(w).norm()),
                     "lambda": lam, "step": float(delta.norm()) if accepted else 0.0})
        if not accepted:
            break
    return w, hist


def run_study(cfg: NetFixedConfig | None = None, data_root: str | None = None,
              log: callable = print) -> dict:
    """SAM to a near-stall, Levenberg–Marquardt on G(w) = 0 from there, the SAM map's spectrum at
    the result, and SAM restarted ``restart_offset`` away from it."""
    cfg = cfg or NetFixedConfig()
    t0 = time.time()
    net = SmallNet(cfg, data_root)
    n_params = len(net.w0)
    w_sam, sam_log = sam_run(net, net.w0.clone(), cfg.rho, cfg.lr, cfg.sam_steps)
    log(f"SAM: {cfg.sam_steps} steps, |grad L| {sam_log[-1]['grad']:.3e}, |grad L(w+)| {sam_log[-1]['sam']:.3e}"
        f" ({time.time() - t0:.0f} s)")
    w_star, lm = levenberg_marquardt(net, w_sam, cfg.rho, iters=cfg.lm_iters, lam0=cfg.lm_lambda0, tol=cfg.tol)
    log(f"LM: {len(lm) - 1} iterations, residual {lm[-1]['residual']:.3e}, |grad L| {lm[-1]['grad']:.3e} "
        f"({time.time() - t0:.0f} s)")
    J = net.DG(w_star, cfg.rho)
    A = J.numpy()
    mu = np.linalg.eigvals(A)
    lam_T = 1 - cfg.lr * mu
    abs_T = np.abs(lam_T)
    sv = np.linalg.svd(A, compute_uv=False)
    log(f"spectrum done ({time.time() - t0:.0f} s)")
    v = torch.randn(n_params, generator=torch.Generator().manual_seed(cfg.seed), dtype=w_star.dtype)
    w_r0 = w_star + cfg.restart_offset * v / v.norm()
    _, restart = sam_run(net, w_r0, cfg.rho, cfg.lr, cfg.restart_steps, w_ref=w_star)
    log(f"restart done ({time.time() - t0:.0f} s)")
    res = float(net.G(w_star, cfg.rho).norm())
    return {
        "config": asdict(cfg), "n_params": n_params,
        "sam_log": sam_log, "lm_history": lm,
        "start": {"residual": float(net.G(w_sam, cfg.rho).norm()), "grad": float(net.grad(w_sam).norm()),
                  "loss": float(net.loss(w_sam))},
        "solution": {"residual": res, "grad": float(net.grad(w_star).norm()), "loss": float(net.loss(w_star)),
                     "dist_from_sam_end": float((w_star - w_sam).norm()), "w_norm": float(w_star.norm()),
                     "dead_units_at_w_plus": net.dead_units_plus(w_star, cfg.rho),
                     "loss_at_w_plus": float(net.loss(w_star + cfg.rho * net.grad(w_star) / net.grad(w_star).norm()))},
        "spectrum": {
            "spectral_radius_T": float(abs_T.max()),
            "n_abs_gt_1": int((abs_T > 1 + 1e-9).sum()),
            "n_abs_within_1e-9_of_1": int((np.abs(abs_T - 1) <= 1e-9).sum()),
            "n_mu_near_zero": int((np.abs(mu) < 1e-8 * max(1.0, np.abs(mu).max())).sum()),
            "min_real_mu": float(mu.real.min()), "max_abs_mu": float(np.abs(mu).max()),
            "rank_DG": int((sv > sv[0] * 1e-10).sum()),
            "top_abs_T": np.sort(abs_T)[::-1][:10].tolist(),
        },
        "restart": restart,
        "wall_time_s": round(time.time() - t0, 1),
        "finite": bool(math.isfinite(res)),
    }
