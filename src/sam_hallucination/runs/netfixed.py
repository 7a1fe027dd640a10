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

import time
from dataclasses import dataclass

import numpy as np
import torch

from .fullbatch import FullBatchConfig, Problem, build_model, load_problem

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
    stall_ratio: float = 0.1
    lm_iters: int = 15
    attempt_every: int = 50
    max_attempts: int = 20
    lm_lambda0: float = 1e-8
    newton_start_tol: float = 1e-4
    tol: float = 1e-10
    restart_offset: float = 1e-4
    restart_steps: int = 3000
    dataset: str = "fashion-mnist"


class SmallNet:
    """L(w) on the fixed training subset, for a flat float64 weight vector w."""

    def __init__(self, cfg: NetFixedConfig, data_root: str | None = None,
                 problem: Problem | None = None) -> None:
        fcfg = FullBatchConfig(dataset=cfg.dataset, data_root=data_root, n_train=cfg.n_train,
                               n_test=cfg.n_train, pool=cfg.pool, hidden=cfg.hidden, seed=cfg.seed)
        self.prob = problem if problem is not None else load_problem(fcfg)
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
            w_ref: Tensor | None = None, every: int = 50,
            stop_ratio: float | None = None) -> tuple[Tensor, list[dict]]:
    """Full-batch SAM; logs ‖∇L(w)‖, ‖∇L(w⁺)‖ and (if given) ‖w − w_ref‖ every ``every`` steps.

    With ``stop_ratio`` it stops at the first iterate where ‖∇L(w⁺)‖ < stop_ratio·‖∇L(w)‖ (a
    stall by chapter 4's criterion, with stop_ratio = 0.1) and logs that step.
    """
    log = []
    for k in range(steps + 1):
        g = net.grad(w)
        gp = net.grad(w + rho * g / g.norm())
        stop = stop_ratio is not None and float(gp.norm()) < stop_ratio * float(g.norm())
        if k % every == 0 or k == steps or stop:
            row = {"step": k, "grad": float(g.norm()), "sam": float(gp.norm()), "loss": float(net.loss(w))}
            if w_ref is not None:
                row["dist"] = float((w - w_ref).norm())
            log.append(row)
        if stop:
            break
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
    """The whole study, as a JSON-able record.

    1. SAM from the seeded initialisation until it stalls by chapter 4's criterion
       (‖∇L(w⁺)‖ < ``stall_ratio``·‖∇L(w)‖).
    2. Levenberg–Marquardt on G(w) = 0 from that stall point (``lm_iters`` iterations).
    3. SAM continued from the stall point up to ``sam_steps`` steps in all; its first iterate
       with ‖G‖ < ``newton_start_tol`` is the start of a second Levenberg–Marquardt solve.
    4. At the solution w*: the spectrum of the SAM map's Jacobian I − η DG(w*), and SAM
       restarted ``restart_offset`` away from w*.
    """
    cfg = cfg or NetFixedConfig()
    t0 = time.time()
    net = SmallNet(cfg, data_root)
    n_params = len(net.w0)
    rho, lr = cfg.rho, cfg.lr

    w_stall, stall_log = sam_run(net, net.w0.clone(), rho, lr, cfg.sam_steps, every=10,
                                 stop_ratio=cfg.stall_ratio)
    k_stall = stall_log[-1]["step"]
    log(f"SAM stalls (ratio < {cfg.stall_ratio}) at step {k_stall}: |grad L| {stall_log[-1]['grad']:.3e}, "
        f"|grad L(w+)| {stall_log[-1]['sam']:.3e} ({time.time() - t0:.0f} s)")
    w_lm1, lm1 = levenberg_marquardt(net, w_stall, rho, iters=cfg.lm_iters, lam0=cfg.lm_lambda0, tol=cfg.tol)
    log(f"LM from the stall: residual {lm1[0]['residual']:.3e} -> {lm1[-1]['residual']:.3e} "
        f"({time.time() - t0:.0f} s)")
    # Is the Jacobian right? Central differences along a random direction, two step sizes.
    v = torch.randn(n_params, generator=torch.Generator().manual_seed(cfg.seed + 1), dtype=w_stall.dtype)
    v = v / v.norm()
    Jv = net.DG(w_stall, rho) @ v
    fd_check = {}
    for h in (1e-4, 1e-5, 1e-6):
        fd = (net.G(w_stall + h * v, rho) - net.G(w_stall - h * v, rho)) / (2 * h)
        fd_check[f"{h:.0e}"] = float((fd - Jv).norm() / fd.norm())

    # SAM continued; every ``attempt_every`` steps once ‖G‖ < newton_start_tol, a Newton (LM) attempt
    # from SAM's current iterate, until one reaches ``tol``
    w, cont_log, attempts, w_star, w_newton0 = w_stall.clone(), [], [], None, None
    for k in range(k_stall, cfg.sam_steps + 1):
        g = net.grad(w)
        gp = net.grad(w + rho * g / g.norm())
        r = float(gp.norm())
        if (k - k_stall) % 50 == 0 or k == cfg.sam_steps:
            cont_log.append({"step": k, "grad": float(g.norm()), "sam": r, "loss": float(net.loss(w))})
        if (w_star is None and r < cfg.newton_start_tol and len(attempts) < cfg.max_attempts
                and (not attempts or k - attempts[-1]["step"] >= cfg.attempt_every)):
            ws, hist = levenberg_marquardt(net, w, rho, iters=cfg.lm_iters, lam0=cfg.lm_lambda0, tol=cfg.tol)
            attempts.append({"step": k, "start_residual": r, "final_residual": hist[-1]["residual"],
                             "iterations": len(hist) - 1, "history": [h["residual"] for h in hist]})
            log(f"LM from SAM's step {k}: residual {r:.3e} -> {hist[-1]['residual']:.3e} "
                f"({time.time() - t0:.0f} s)")
            if hist[-1]["residual"] < cfg.tol:
                w_star, w_newton0, lm2 = ws, w.clone(), hist
        if k < cfg.sam_steps:
            w = w - lr * gp
    w_cont = w
    k_newton0 = attempts[-1]["step"] if w_star is not None else None
    log(f"SAM continued to step {cfg.sam_steps}: |grad L(w+)| {cont_log[-1]['sam']:.3e} ({time.time() - t0:.0f} s)")
    if w_star is None:
        raise RuntimeError(f"no Newton attempt reached {cfg.tol}: {attempts}")
    J = net.DG(w_star, rho).numpy()
    mu = np.linalg.eigvals(J)
    abs_T = np.abs(1 - lr * mu)
    sv = np.linalg.svd(J, compute_uv=False)
    log(f"spectrum done ({time.time() - t0:.0f} s)")
    u = torch.randn(n_params, generator=torch.Generator().manual_seed(cfg.seed), dtype=w_star.dtype)
    w_r0 = w_star + cfg.restart_offset * u / u.norm()
    w_r, restart = sam_run(net, w_r0, rho, lr, cfg.restart_steps, w_ref=w_star)
    log(f"restart done ({time.time() - t0:.0f} s)")
    g_star = net.grad(w_star)
    wp = w_star + rho * g_star / g_star.norm()
    return {
        "n_params": n_params,
        "stall": {"step": k_stall, "residual": float(net.G(w_stall, rho).norm()),
                  "grad": float(net.grad(w_stall).norm()), "loss": float(net.loss(w_stall)),
                  "dead_units_at_w_plus": net.dead_units_plus(w_stall, rho)},
        "sam_log": stall_log + cont_log[1:],
        "lm_from_stall": lm1,
        "lm_from_stall_moved": float((w_lm1 - w_stall).norm()),
        "jacobian_fd_relerr": fd_check,
        "sam_continued": {"steps": cfg.sam_steps, "residual": float(net.G(w_cont, rho).norm()),
                          "grad": float(net.grad(w_cont).norm()),
                          "dist_to_solution": float((w_cont - w_star).norm())},
        "newton_start": {"step": k_newton0, "residual": float(net.G(w_newton0, rho).norm())},
        "newton_attempts": attempts,
        "lm_from_sam": lm2,
        "solution": {"residual": float(net.G(w_star, rho).norm()), "grad": float(g_star.norm()),
                     "loss": float(net.loss(w_star)), "loss_at_w_plus": float(net.loss(wp)),
                     "dist_from_newton_start": float((w_star - w_newton0).norm()),
                     "w_norm": float(w_star.norm()), "dead_units_at_w_plus": net.dead_units_plus(w_star, rho),
                     "train_acc": net.net.accuracy(w_star, net.x, net.y)},
        "spectrum": {
            "spectral_radius_T": float(abs_T.max()),
            "n_abs_gt_1": int((abs_T > 1 + 1e-9).sum()),
            "n_abs_within_1e-9_of_1": int((np.abs(abs_T - 1) <= 1e-9).sum()),
            "n_abs_lt_1": int((abs_T < 1 - 1e-9).sum()),
            "rank_DG": int((sv > sv[0] * 1e-10).sum()),
            "min_real_mu_nonzero": float(mu.real[np.abs(mu) > sv[0] * 1e-10].min()),
            "max_abs_T_off_kernel": float(abs_T[np.abs(mu) > sv[0] * 1e-10].max()),
            "top_abs_T": np.sort(abs_T)[::-1][:8].tolist(),
        },
        "restart": restart,
        "restart_end": {"residual": float(net.G(w_r, rho).norm()), "dist": float((w_r - w_star).norm())},
        "wall_time_s": round(time.time() - t0, 1),
    }
