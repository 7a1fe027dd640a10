"""Chapter 3's continuation table: each branch's numerical ρ-interval against the interval
that the critical points of f predict."""

from __future__ import annotations

import numpy as np

from ...rd import dynamics as D

CONTINUATION_HEADER = (
    "branch                numerical interval  predicted interval  "
    "ends at               max error < 1e-4"
)


def predicted_ends(landscape, branch, critical, names):
    """The ρ-interval a branch of hallucinated points should span, and what ends it.

    A branch ends where its point x runs into a critical point c of f (there ∇f(x) → 0);
    since its perturbed point m = x⁺ stays put and ‖x − m‖ = ρ, that end is at ρ = ‖m − c‖.
    ``branch`` is a ``dynamics.continue_branch`` result on ``landscape``; m is solved at its
    middle point; c at each end is the point of ``critical`` ((label, point) pairs, the
    points as tensors) nearest the branch's first and last point, named by ``names``.
    Returns ((ρ_low, ρ_high), (name_low, name_high)).
    """
    if len(critical) != len(names):
        raise ValueError(f"{len(critical)} critical points but {len(names)} names")
    if len(branch.x) == 0:
        raise ValueError("the branch has no points")
    mid = len(branch.x) // 2
    m = D.solve_hallucinated(landscape, branch.x[mid], branch.rho[mid]).x_plus
    ends = [
        int(np.argmin([np.linalg.norm(branch.x[i] - c.numpy()) for _, c in critical]))
        for i in (0, -1)
    ]
    return (tuple(float((m - critical[e][1]).norm()) for e in ends),
            tuple(names[e] for e in ends))


def continuation_table(branches, predicted) -> str:
    """One line per branch (``{name: continue_branch result}``): its numerical ρ-interval, the
    predicted one and the critical points at its ends (``predicted[name]``, as
    :func:`predicted_ends` returns them), and whether both ends agree to 1e-4."""
    missing = set(branches) - set(predicted)
    if missing:
        raise ValueError(f"no prediction for {sorted(missing)}")
    lines = [CONTINUATION_HEADER]
    for name, br in branches.items():
        (p0, p1), (c0, c1) = predicted[name]
        lo, hi = br.rho_interval
        err = max(abs(lo - p0), abs(hi - p1))
        ends = f"{c0}, {c1}"
        lines.append(
            f"{name:20s}  ({lo:.4f}, {hi:.4f})    ({p0:.4f}, {p1:.4f})    {ends:20s}"
            f"  {str(err < 1e-4):>16s}"
        )
    return "\n".join(lines)
