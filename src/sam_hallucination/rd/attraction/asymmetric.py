"""The asymmetric function of Chapters 2, 3 and 3b, branch by branch: its critical points by
name, the closed-form branch table checked against autograd, and the points behind a saddle."""

from __future__ import annotations

import numpy as np
import torch

from ..dynamics import iterate
from ..landscapes import Landscape
from .quartics import eta_max_sam, point_analysis
from .surrogate import local_analysis, offset_start
from .survey import branch_scan, surrogate_gd_quartic

KINDS = ("min", "saddle", "max")


def named_critical_points(critical: list, kind: str) -> dict[str, np.ndarray]:
    """The critical points of one ``kind`` ("min", "saddle" or "max") from
    ``critical_points(C)[i]`` ((kind, point, eigenvalues) triples), named as the chapters name
    them: minimizers "min L" / "min R" by the sign of x, saddles "saddle lo" / "saddle up" by
    the sign of y, the maximizer "max"."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    out = {}
    for t, p, _ in critical:
        if t != kind:
            continue
        name = {"min": "min L" if p[0] < 0 else "min R",
                "saddle": f"saddle {'up' if p[1] > 0 else 'lo'}", "max": "max"}[kind]
        if name in out:
            raise ValueError(f"two critical points would both be named {name!r}: name them by hand")
        out[name] = p
    return out


def check_branch_table(landscape: Landscape, table: list[dict], *, rtol: float = 1e-8,
                       atol: float = 1e-9) -> None:
    """Recompute each row of :func:`~.survey.asymmetric_branch_table` with autograd through u(x)
    (:func:`~.surrogate.local_analysis`, third derivatives included) and raise if the closed
    form disagrees: the surrogate's Hessian eigenvalues, ρκ or SAM's spectral radius."""
    for row in table:
        la = local_analysis(landscape, row["x"], row["rho"], row["eta"])
        if not (np.allclose(la.surrogate_eigs, row["surrogate_eigs"], rtol=rtol, atol=atol)
                and abs(la.rho_kappa - row["rho_kappa"]) < atol
                and abs(la.sam_radius - row["sam_radius"]) < atol):
            raise AssertionError(f"closed form and autograd disagree at x⁺ = {row['x⁺']}, "
                                 f"rho = {row['rho']:.4f}: {la} vs {row}")


def behind_saddle_table(landscape: Landscape, C: np.ndarray, saddles: dict[str, np.ndarray],
                        rho: float = 1.0, *, steps: int = 4000, offset: float = 1e-3) -> list[dict]:
    """The maximizer-born hallucinated points whose x⁺ is a saddle of the quartic ``C`` (also
    given as ``landscape``), at ``rho``: ρκ, the signs of the surrogate's Hessian eigenvalues,
    and the distance to x* after ``steps`` steps of SAM and of GD on f^SAM from ``offset``
    away, both at η = η_max/2."""
    rows = [r for r in branch_scan(C, [rho], saddles) if r["birth"] == "max"]
    out = []
    for r in rows:
        x = np.array(r["x"])
        an = point_analysis(C[None], x[None], saddles[r["x⁺"]][None], np.array([rho]))
        eta = 0.5 * float(eta_max_sam(an["mu"])[0])
        x0 = offset_start(x, offset)
        d_sam = float((iterate(landscape, x0, rho=rho, eta=eta, steps=steps).x[0] - torch.as_tensor(x)).norm())
        gd = surrogate_gd_quartic(C[None], x0.numpy()[None], np.array([rho]), np.array([eta]), steps)
        out.append({"x⁺": r["x⁺"], "x": x, "rho_kappa": float(an["rho_kappa"][0]),
                    "signs": np.sign(an["surrogate_eigs"][0]).astype(int).tolist(), "eta": eta,
                    "dist_sam": d_sam, "dist_gd_surrogate": float(np.linalg.norm(gd[0] - x))})
    return out
