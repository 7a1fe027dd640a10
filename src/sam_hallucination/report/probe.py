"""The end-of-training probe of the CIFAR runs as rows, tables and a verdict (Chapters 5, 6).

:func:`probe_rows` reads each record's probe; :func:`stall_summary` classifies each radius
as "yes" (most seeds stall at a non-stationary point and SGD escapes), "no" or "undecided"
(the gradient itself is within noise of zero, so the probe has no power there), and
:func:`stall_verdict` turns that into a sentence that names the tier it describes.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from typing import Any

from .cifar import ResultSet, cell_name, cell_of, tier_lead


def probe_rows(rs: ResultSet, z: float = 3.0) -> list[dict[str, Any]]:
    """Per run with a probe: norms, noise floors, the stall test and the continuation drops.

    ``resolved``: the regularised gradient is more than ``z`` noise floors above 0 (without
    that the probe cannot tell a non-stationary point from a stationary one). ``stalled``:
    the expected SAM step is within ``z`` floors of 0 while the gradient is resolved.
    ``escapes``: SGD continuation from this run's end point lowers the fixed-batch loss by
    more than the control does, by over ``z`` standard errors of that loss (the decisive
    test of Chapter 4). The control is the matched-loss one when the record has it (SGD
    continued from the same-seed SGD run's snapshot closest in loss: ``ctl_drop``,
    ``ctl_gap`` = snapshot loss − this run's loss, ``ctl_epoch``); otherwise, for older
    records, SGD continued from the SGD run's end point. ``None`` when there is no control.
    ``rho_over_w``: ρ / ‖w‖ at the end (None in records older than the field).
    """
    records = rs.records if isinstance(rs, ResultSet) else list(rs)
    baseline = {r["config"]["seed"]: r["probe"]["sgd_continuation"].get("loss_drop")
                for r in records if r["config"]["method"] == "sgd" and r["status"] == "ok"
                and r.get("probe")}
    out = []
    for r in records:
        p = r.get("probe")
        if r["status"] != "ok" or not p:
            continue
        st, sgd, sam = p["stall"], p["sgd_continuation"], p.get("sam_continuation")
        se = st.get("loss_se")
        sgd_drop = sgd.get("loss_drop")
        ctl = p.get("sgd_control") or {}
        matched = ctl.get("status") == "ok" and ctl.get("loss_drop") is not None
        base = ctl["loss_drop"] if matched else baseline.get(r["config"]["seed"])
        escapes = None
        if base is not None and sgd_drop is not None and se is not None:
            escapes = sgd_drop - base > z * se
        resolved = st["grad_se"] is not None and st["grad_norm"] > z * st["grad_se"]
        stalled = (resolved and st["sam_step_se"] is not None
                   and st["sam_step_norm"] <= z * st["sam_step_se"])
        out.append({"cell": cell_of(r), "seed": r["config"]["seed"], "rho": p["rho"],
                    "grad_norm": st["grad_norm"], "grad_se": st["grad_se"],
                    "sam_step_norm": st["sam_step_norm"], "sam_step_se": st["sam_step_se"],
                    "ratio": st["ratio"], "loss": st["loss"], "loss_se": se,
                    "resolved": bool(resolved),
                    "stalled": bool(stalled) and p["rho"] > 0, "sgd_drop": sgd_drop,
                    "sam_drop": sam.get("loss_drop") if sam else None, "escapes": escapes,
                    "ctl_drop": ctl.get("loss_drop") if matched else None,
                    "ctl_gap": ctl.get("loss_gap") if matched else None,
                    "ctl_epoch": ctl.get("epoch") if matched else None,
                    "rho_over_w": p.get("rho_over_weight_norm"),
                    "sgd_test_acc_after": sgd.get("test_acc_after")})
    return out


def format_probe_table(rows: Sequence[dict[str, Any]], title: str) -> str:
    """Per-run probe numbers, 3 significant digits, as two tables (they fit the column):
    the stall diagnostics, then the continuation test.

    ``ctl drop``: SGD's drop from the same-seed SGD run's snapshot (epoch ``@ep``) closest in
    loss to this run's end point; ``gap``: that snapshot's loss minus this run's loss.
    """
    g = lambda v: "—" if v is None else f"{v:.3g}"  # noqa: E731
    diag = [f"{title}: stall diagnostics",
            f"{'cell':26s} {'seed':>4s} {'ρ/|w|':>8s} {'|grad|':>9s} {'floor':>9s} "
            f"{'|SAM step|':>10s} {'floor':>9s} {'ratio':>6s}  stalled"]
    cont = [f"{title}: continuation test (training-loss drops over the continuation)",
            f"{'cell':26s} {'seed':>4s} {'SGD drop':>10s} {'SAM drop':>10s} {'ctl drop':>10s} "
            f"{'gap':>10s} {'@ep':>4s}"]
    for r in rows:
        name = f"{cell_name(r['cell']):26s} {r['seed']:4d}"
        ep = "—" if r.get("ctl_epoch") is None else str(r["ctl_epoch"])
        stalled = "yes" if r["stalled"] else "no" if r.get("resolved", True) else "n/a"
        diag.append(f"{name} {g(r.get('rho_over_w')):>8s} {g(r['grad_norm']):>9s} "
                    f"{g(r['grad_se']):>9s} {g(r['sam_step_norm']):>10s} "
                    f"{g(r['sam_step_se']):>9s} {r['ratio']:6.2f}  {stalled}")
        cont.append(f"{name} {g(r['sgd_drop']):>10s} {g(r['sam_drop']):>10s} "
                    f"{g(r.get('ctl_drop')):>10s} {g(r.get('ctl_gap')):>10s} {ep:>4s}")
    return "\n".join(diag) + "\n\n" + "\n".join(cont)


def stall_summary(rs: ResultSet, z: float = 3.0) -> dict[str, Any]:
    """Per radius of the SAM runs (plain and warm-started): runs, resolved gradients, stalls,
    stalls with an SGD escape, the median step/gradient ratio and a status, "yes" (most
    runs stall and escape), "stall" (most stall, without the escape), "undecided" (most
    runs' gradient is within ``z`` noise floors of 0) or "no"; ``kind`` is the strongest
    status over all radii (:data:`STATUSES` order), or "owed" without any probe."""
    if rs.smoke:
        return {"kind": "owed", "radii": [], "rows": []}
    rows = [r for r in probe_rows(rs, z) if r["cell"][0] in ("sam", "switch") and r["rho"] > 0]
    by_rho: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        by_rho.setdefault(r["rho"], []).append(r)
    radii = []
    for rho in sorted(by_rho):
        rr = by_rho[rho]
        n, res = len(rr), sum(r["resolved"] for r in rr)
        k = sum(bool(r["stalled"] and r["escapes"]) for r in rr)
        st = sum(r["stalled"] for r in rr)
        status = ("yes" if 2 * k > n else "stall" if 2 * st > n
                  else "undecided" if 2 * res <= n else "no")
        radii.append({"rho": rho, "n": n, "resolved": res, "k": k, "status": status,
                      "stalled": st,
                      "median_ratio": statistics.median(r["ratio"] for r in rr)})
    stats = {d["status"] for d in radii}
    kind = next((k for k in STATUSES if k in stats), "owed")
    return {"kind": kind, "radii": radii, "rows": rows}


# A radius's status, strongest evidence first: stalled and escaped; stalled only; no stall
# where the gradient is resolved; gradient within noise.
STATUSES = ("yes", "stall", "no", "undecided")


def _rhos(radii: list[dict[str, Any]], status: str) -> str:
    return "{" + ", ".join(f"{d['rho']:g}" for d in radii if d["status"] == status) + "}"


def _span(vals: list[float]) -> str:
    lo, hi = f"{min(vals):.3f}", f"{max(vals):.3f}"
    return lo if lo == hi else f"{lo}–{hi}"


def continuation_text(rs: ResultSet, z: float = 3.0) -> str:
    """One sentence: SGD's loss drop from the SAM end points, from the SGD end points, and
    from the matched-loss control, and in how many runs SGD gained more than the control."""
    rows = [r for r in probe_rows(rs, z) if r["sgd_drop"] is not None]
    sam = [r for r in rows if r["cell"][0] in ("sam", "switch") and r["rho"] > 0]
    sgd = [r["sgd_drop"] for r in rows if r["cell"][0] == "sgd"]
    ctl = [r["ctl_drop"] for r in sam if r["ctl_drop"] is not None]
    if not sam:
        return ""
    esc = [r for r in sam if r["escapes"] is not None]
    txt = (f"SGD continuation lowered the training loss from the SAM end points by "
           f"{_span([r['sgd_drop'] for r in sam])}")
    if sgd:
        txt += f", from the SGD runs' end points by {_span(sgd)}"
    if ctl:
        txt += f", and from the SGD runs' snapshots at a matched loss by {_span(ctl)}"
    if esc:
        txt += (f"; it gained more than the control, by over {z:g} standard errors, in "
                f"{sum(bool(r['escapes']) for r in esc)}/{len(esc)} SAM runs")
    return txt + "."


def stall_slack(rs: ResultSet, rho: float, z: float = 3.0) -> list[dict[str, float]]:
    """Per stalled plain-SAM run at ``rho``: its step-to-gradient ratio and the largest ratio
    the stall test would still accept, z·(step's noise floor)/‖gradient‖. A ratio far below
    that bound is a shrunken step, not one the probe shows to vanish."""
    return [{"seed": r["seed"], "ratio": r["ratio"],
             "admits": z * r["sam_step_se"] / r["grad_norm"]}
            for r in probe_rows(rs, z) if r["stalled"] and r["rho"] == rho
            and r["cell"][0] == "sam"]


def continuation_ratios(rs: ResultSet) -> dict[float, list[float]]:
    """Per ρ, for each plain-SAM run: the loss drop of SAM's own continuation divided by that
    of SGD's continuation from the same weights (both one epoch at the small rate)."""
    out: dict[float, list[float]] = {}
    for r in probe_rows(rs):
        if r["cell"][0] == "sam" and r["sam_drop"] is not None and r["sgd_drop"]:
            out.setdefault(r["rho"], []).append(r["sam_drop"] / r["sgd_drop"])
    return dict(sorted(out.items()))


def stall_verdict(rs: ResultSet, z: float = 3.0) -> str:
    """A plain-language verdict from the probes that names its tier, or says it is owed.

    Evidence of a hallucinated minimizer in a SAM run: the SAM step is within noise of 0
    while the gradient is not (``stalled``) *and* SGD continuation from it lowers the loss
    more than the control does (``escapes``). A radius is "yes" if most probed seeds show
    both, "stall" if most stall without the escape, "undecided" if most seeds' gradient is
    within noise (the probe cannot tell there), and "no" otherwise.
    """
    lead = tier_lead(rs) + " "
    s = stall_summary(rs, z)
    if rs.smoke:
        return lead + ("Verdict owed to the GPU runs: only the CPU smoke run exists (1 epoch on "
                       "512 images), which proves the code path and says nothing about stalls.")
    radii = s["radii"]
    if not radii:
        return lead + "Verdict owed: no SAM run with an end-of-training probe exists yet."
    crit = (f"(criterion: SAM step within {z:g} noise floors of 0 at a gradient more than "
            f"{z:g} floors above 0)")
    clauses = {
        "yes": "Yes, at ρ ∈ {r}: SAM's expected step vanishes within noise at points that are "
               "not stationary, and plain SGD lowers the loss from there more than it does "
               "from the SGD run's snapshot at a matched loss. ",
        "stall": "A stall without an escape at ρ ∈ {r}: SAM's expected step is within noise "
                 "of zero where the gradient is resolved above it " + crit + ", the "
                 "signature of a hallucinated point at the probe's resolution, but SGD "
                 "continuation from there lowers the loss no more than it does from the SGD "
                 "run's snapshot at a matched loss, so the continuation test does not "
                 "confirm that SAM stopped where the loss could still fall easily. ",
        "no": "No, at ρ ∈ {r}: SAM's expected step does not vanish where the gradient is "
              "resolved " + crit + ". ",
        "undecided": "Undecided at ρ ∈ {r}: the regularised gradient is within "
                     f"{z:g} noise floors of zero in some runs (counts below), so the probe "
                     "cannot tell a "
                     "stall at a non-stationary point from a point that is stationary "
                     "within noise; a larger probe (more batches) is needed there. ",
    }
    if s["kind"] == "undecided":
        head = clauses["undecided"].replace("at ρ ∈ {r}", "at every probed radius")
    else:
        head = "".join(clauses[k].replace("{r}", _rhos(radii, k)) for k in STATUSES
                       if any(d["status"] == k for d in radii))
    parts = [f"ρ={d['rho']:g}: {d['resolved']}/{d['stalled']}/{d['k']} of {d['n']}, "
             f"{d['median_ratio']:.2f}" for d in radii]
    per = ("Per radius, runs with the gradient resolved / stalled / stalled and escaped by "
           "SGD, and the median ratio of SAM step to gradient: " + "; ".join(parts) + ".")
    cont = continuation_text(rs, z)
    return lead + head + per + (" " + cont if cont else "")



def power_table(strong: ResultSet, base: ResultSet, title: str) -> str:
    """The same runs probed on few and on many batches (configs equal but for
    ``probe_batches``): the gradient and the SAM step in units of their noise floors, and
    the many-batch run's final test accuracy minus its twin's (0 when training was
    identical). Rows: the twin from ``base``, then the run from ``strong``."""
    def twin_key(r: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in r["config"].items() if k != "probe_batches"},
                          sort_keys=True)

    twins = {twin_key(r): r for r in base.records}
    out = [title, f"{'cell':12s} {'seed':>4s} {'batches':>8s} {'|grad|/floor':>13s} "
                  f"{'|step|/floor':>13s} {'Δ test acc':>11s}"]
    for rec in strong.records:
        twin = twins.get(twin_key(rec))
        for r in ([twin] if twin else []) + [rec]:
            st = (r.get("probe") or {}).get("stall")
            if r["status"] != "ok" or not st:
                continue
            acc = r["final"].get("test_acc"), (twin or {}).get("final", {}).get("test_acc")
            diff = f"{acc[0] - acc[1]:+.4f}" if r is rec and None not in acc else "—"
            g = st["grad_norm"] / st["grad_se"] if st["grad_se"] else math.inf
            k = st["sam_step_norm"] / st["sam_step_se"] if st["sam_step_se"] else math.inf
            out.append(f"{cell_name(cell_of(r)):12s} {r['config']['seed']:4d} "
                       f"{r['config']['probe_batches']:8d} {g:13.2f} {k:13.2f} {diff:>11s}")
    return "\n".join(out)
