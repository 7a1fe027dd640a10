"""The figures of Chapters 1 and 2: SAM's ρ-ball, its paths on the ring, the collapse of a
cloud of starts, the double well and the asymmetric function.

Each function draws one figure of the book from numbers the chapter computed (or computes
them through the engine when they are part of the picture only) and returns the matplotlib
figure, drawn for the text column (:data:`~sam_hallucination.plotting.COLUMN_WIDTH`).
"""

from __future__ import annotations

import numpy as np

from ...plotting import METHOD_COLORS, PALETTE

_CIRCLE = np.linspace(0, 2 * np.pi, 400)


def _circles(ax, rho: float, *, hallucinated_lw: float = 1.0, alpha: float = 0.6,
             labels: bool = True) -> None:
    """The unit circle of minimizers (dashed) and the hallucinated circle ‖x‖ = ρ − 1."""
    ax.plot(np.cos(_CIRCLE), np.sin(_CIRCLE), "k--", lw=1, label="minimizers of $f$" if labels else None)
    r = rho - 1
    ax.plot(r * np.cos(_CIRCLE), r * np.sin(_CIRCLE), color=PALETTE["vermillion"], lw=hallucinated_lw,
            alpha=alpha, label="hallucinated circle" if labels else None)


def rho_ball_figure(f, x0, rho: float, *, lim: float = 1.6):
    """Chapter 1's ρ-ball at ``x0`` on the landscape ``f`` (a function of (..., 2) tensors):
    contours of f, the ball, x⁺, SAM's step −∇f(x⁺) and −∇f^SAM(x) (directions, not lengths)."""
    import matplotlib.pyplot as plt
    import torch

    from ...rd import sam

    xp = sam.perturbed_point(f, x0, rho)
    g_plus = sam.sam_direction(f, x0, rho)
    g_sam = sam.sam_objective_grad(f, x0, rho)
    grid = np.linspace(-lim, lim, 301)
    X, Y = np.meshgrid(grid, grid)
    Z = f(torch.from_numpy(np.stack([X, Y], -1))).numpy()
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    ax.contour(X, Y, Z, levels=np.linspace(Z.min(), 3, 25), cmap="viridis", linewidths=0.8)
    ax.add_patch(plt.Circle(x0.numpy(), rho, fill=False, ls="--", color=PALETTE["black"]))
    ax.plot(*x0.numpy(), "o", color=PALETTE["blue"], label="$x$")
    ax.plot(*xp.numpy(), "s", color=PALETTE["vermillion"], label=r"$x^+ = x + \rho u(x)$")
    for g, color, label in ((g_plus, "vermillion", r"SAM step $-\nabla f(x^+)$"),
                            (g_sam, "green", r"$-\nabla f^{\mathrm{SAM}}(x)$")):
        step = -0.25 / g.norm().item() * g  # a fixed length: the arrows show directions
        ax.arrow(*x0.numpy(), *step.numpy(), width=0.012, color=PALETTE[color], label=label)
    ax.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    ax.legend(loc="lower left", fontsize=9)
    return fig


def ring_paths_figure(paths: dict, starts, rho: float, *, lim: float = 1.6):
    """Chapter 1's GD and SAM paths on the ring over its contours: ``paths`` maps a method
    ("gd", "sam") to iterates (steps + 1, n, 2); the circle ‖x‖ = ρ − 1 is dotted."""
    import matplotlib.pyplot as plt
    import torch

    from ...rd.landscapes import RING

    grid = np.linspace(-lim, lim, 301)
    X, Y = np.meshgrid(grid, grid)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    Z = RING(torch.from_numpy(np.stack([X, Y], -1))).numpy()
    ax.contour(X, Y, Z, levels=np.linspace(0, 3, 16), cmap="viridis", linewidths=0.8)
    labels = {"gd": "GD", "sam": rf"SAM, $\rho = {rho:g}$"}
    for method, path in paths.items():
        p = np.asarray(path)
        for i in range(p.shape[1]):
            ax.plot(p[:, i, 0], p[:, i, 1], ".-", ms=4, color=METHOD_COLORS[method],
                    label=labels[method] if i == 0 else None)
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot((rho - 1) * np.cos(t), (rho - 1) * np.sin(t), ":", color=METHOD_COLORS["sam"], lw=1.2,
            label=r"circle $r = \rho - 1$")
    s = np.asarray(starts)
    ax.plot(s[:, 0], s[:, 1], "k*", ms=10, label="starts")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    ax.legend(loc="lower left", fontsize=9)
    return fig


def gd_vs_sam_figure(runs: dict, rho: float, eta: float, *, lim: float = 1.15):
    """Chapter 2's two panels: GD and SAM paths from the same starts; ``runs`` maps "gd" and
    "sam" to :class:`~sam_hallucination.rd.dynamics.RunResult` with a history."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 4.3), sharey=True)
    for ax, (m, res) in zip(axes, runs.items(), strict=True):
        _circles(ax, rho)
        h = res.history.numpy()
        ax.plot(h[..., 0], h[..., 1], "-", color=METHOD_COLORS[m], lw=0.8, alpha=0.7)
        ax.plot(h[0, :, 0], h[0, :, 1], "o", color="0.5", ms=4, label="start")
        ax.plot(h[-1, :, 0], h[-1, :, 1], "o", color=METHOD_COLORS[m], ms=6,
                label=f"after {len(h) - 1} steps")
        ax.set_title(f"{m.upper()}, $\\eta = {eta}$" + (rf", $\rho = {rho}$" if m == "sam" else ""))
        ax.set(aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=4)
    return fig


def cloud_animation(hist: np.ndarray, rho: float, *, uid: str, alt: str, interval_ms: int = 300):
    """Chapter 2's animation: a cloud of SAM iterates, ``hist`` (steps + 1, n, 2), step by
    step over the minimizer circle and the hallucinated circle (an HTML player)."""
    import matplotlib.pyplot as plt

    from .animation import html_animation

    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    _circles(ax, rho, hallucinated_lw=1.5, alpha=1.0, labels=False)
    dots = ax.scatter(hist[0, :, 0], hist[0, :, 1], s=5, color=METHOD_COLORS["sam"])
    title = ax.set_title("SAM step 0")
    ax.set(aspect="equal", xlim=(-1.1, 1.1), ylim=(-1.1, 1.1))
    ax.grid(False)

    def draw(k: int) -> None:
        dots.set_offsets(hist[k])
        title.set_text(f"SAM step {k}")

    return html_animation(fig, draw, len(hist), uid=uid, alt=alt, interval_ms=interval_ms,
                          fmt="png", colors=16)


def double_well_figure(rho: float, eta: float):
    """Chapter 2's double well: f and f^SAM (left), the SAM map T against the diagonal with
    its fixed points ±(ρ − 1) (right)."""
    import matplotlib.pyplot as plt
    import torch

    from ...rd import dynamics as D
    from ...rd.landscapes import DOUBLE_WELL, DTYPE

    xs = torch.linspace(-2.2, 2.2, 881, dtype=DTYPE).reshape(-1, 1)
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
    axes[0].plot(xs, DOUBLE_WELL(xs), color=METHOD_COLORS["gd"], label="$f$")
    axes[0].plot(xs, DOUBLE_WELL(D.perturbed(DOUBLE_WELL, xs, rho)), color=METHOD_COLORS["sam"],
                 label=rf"$f^{{\mathrm{{SAM}}}}$, $\rho = {rho:g}$")
    axes[0].set_ylim(-0.3, 4)
    axes[0].set_xlabel("$x$")
    axes[0].legend()
    T = D.sam_map(DOUBLE_WELL, xs, rho, eta)
    axes[1].plot(xs, T, color=METHOD_COLORS["sam"], label=r"SAM map $T(x)$")
    axes[1].plot(xs, xs, "k:", lw=1, label="$T(x) = x$")
    for xv, lab in ((rho - 1, r"$\pm(\rho-1)$"), (1 - rho, None)):
        axes[1].plot(xv, xv, "o", color=PALETTE["vermillion"], ms=7, label=lab)
    axes[1].set(xlim=(-1.2, 1.2), ylim=(-1.6, 1.6), xlabel="$x$")
    axes[1].legend(loc="upper left")
    return fig


def asymmetric_figure(landscape, critical: list, hallucinated: list, ends, rho: float, *,
                      lim: float = 1.6):
    """Chapter 2's asymmetric function: f with its critical points (``critical``: (label, x)
    pairs), the hallucinated points with arrows to x⁺ (``hallucinated``: solves with ``x`` and
    ``x_plus``) and SAM's end points ``ends`` (left); SAM's field −∇f(x⁺) (right)."""
    import matplotlib.pyplot as plt
    import torch

    from ...rd import dynamics as D

    g = np.linspace(-lim, lim, 321)
    AX, AY = np.meshgrid(g, g)
    P = torch.as_tensor(np.stack([AX, AY], -1))
    V = -D.step_direction(landscape, P, rho).numpy()
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.9), sharey=True)
    axes[0].contourf(AX, AY, landscape(P).numpy(), levels=np.linspace(-0.4, 2.5, 30), cmap="viridis",
                     extend="max")
    axes[0].set_title("$f$ and SAM end points")
    axes[1].streamplot(AX, AY, V[..., 0], V[..., 1], color=np.log10(np.linalg.norm(V, axis=-1) + 1e-3),
                       cmap="magma_r", density=1.4, linewidth=0.7, arrowsize=0.7)
    axes[1].set_title(rf"SAM field $-\nabla f(x^+)$, $\rho = {rho:g}$")
    for ax in axes:
        for label, c in critical:
            kind = label.split()[1][:3] if "local" in label else "sad"
            ax.plot(c[0], c[1], {"min": "*", "max": "^", "sad": "x"}[kind],
                    color="w" if ax is axes[0] else "k", ms=11, mec="k")
        for s in hallucinated:
            ax.plot(*s.x, "o", color=PALETTE["vermillion"], ms=10, mec="k")
            ax.annotate("", xy=s.x_plus.numpy(), xytext=s.x.numpy(),
                        arrowprops={"arrowstyle": "->", "color": PALETTE["vermillion"], "lw": 1.5})
        ax.set(aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
        ax.grid(False)
    e = np.asarray(ends)
    axes[0].plot(e[:, 0], e[:, 1], ".", color=PALETTE["orange"], ms=3)
    return fig
