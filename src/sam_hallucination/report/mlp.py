"""Chapters 4 and 4b's summaries of full-batch records: curves, tail medians, stalls, the
columns and rows of their tables, and the width-8 fixed-point study's report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runs.fullbatch.chapter import STALL_RATIO, TAIL_FRAC


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


def provenance_line(name: str, record: dict[str, Any]) -> str:
    """Where a record came from: file, source, commit, wall time, torch, device."""
    p = record.get("provenance", {})
    git = p.get("git", {}) or {}
    return (f"{name:>12}: {record.get('source', '?'):8} {Path(record.get('path', '?')).name}  "
            f"commit {str(git.get('commit', 'unknown'))[:10]}  torch {p.get('torch', '?')}  "
            f"{p.get('device_name', '?')}  wall time {record['wall_time_s']:.1f} s")


# ----------------------------------------------------------------------------- robustness
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def tail_values(record: dict[str, Any], key: str = "ratio", frac: float = TAIL_FRAC
                ) -> np.ndarray:
    """The logged values of ``key`` over the last ``frac`` of the run."""
    start = (1 - frac) * record["config"]["steps"]
    return np.array([r[key] for r in record["log"] if r["step"] >= start
                     and r.get(key) is not None], dtype=float)


def ratio_quantiles(record: dict[str, Any], qs: tuple[float, ...] = QUANTILES,
                    frac: float = TAIL_FRAC) -> dict[str, float]:
    """Quantiles of the step ratio ‖d(w)‖/‖∇f(w)‖ over the tail: ``q10``, ``q25``, ..."""
    v = tail_values(record, "ratio", frac)
    return {f"q{round(100 * q)}": float(np.quantile(v, q)) for q in qs}


def ratio_cdf(record: dict[str, Any], thresholds: np.ndarray, frac: float = TAIL_FRAC
              ) -> np.ndarray:
    """Fraction of the tail's logged ratios below each threshold (the empirical CDF)."""
    v = tail_values(record, "ratio", frac)
    return (v[None, :] < np.asarray(thresholds, dtype=float)[:, None]).mean(1)


def gd_equivalent_steps(f_value: float, gd_record: dict[str, Any]) -> float:
    """The first GD step (from initialisation, linear interpolation between log points) at
    which GD's loss is at or below ``f_value``; ``inf`` if GD never gets there."""
    s, f = curve(gd_record, "f", continuation=True)
    below = np.nonzero(f <= f_value)[0]
    if len(below) == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        return 0.0
    return float(s[i - 1] + (s[i] - s[i - 1]) * (f[i - 1] - f_value) / (f[i - 1] - f[i]))


def progress_fraction(record: dict[str, Any], gd_record: dict[str, Any]) -> float:
    """Threshold-free stall measure: GD-equivalent steps of SAM's final loss over SAM's
    steps. About 1 when SAM makes GD's progress, near 0 when it has not left the start."""
    return gd_equivalent_steps(record["final"]["f"], gd_record) / record["config"]["steps"]


def continuation_vs_gd(record: dict[str, Any], gd_record: dict[str, Any],
                       ks: tuple[int, ...] = (250, 500, 1500)) -> list[dict[str, float]]:
    """f after k steps of GD continued from the run's endpoint against f after k steps of
    GD from initialisation (``gap`` = the difference), and the two distances from the
    initialisation where logged."""
    steps = record["config"]["steps"]
    cont = {r["step"] - steps: r for r in record["continuation_log"]}
    gd = {r["step"]: r for r in gd_record["log"] + gd_record["continuation_log"]}
    out = []
    for k in ks:
        c, g = cont[k], gd[k]
        out.append({"k": k, "f_cont": c["f"], "f_gd": g["f"], "gap": c["f"] - g["f"],
                    "dist_cont": c.get("dist_init"), "dist_gd": g.get("dist_init")})
    return out


def settled_step(record: dict[str, Any], level: float) -> int:
    """The last logged step at which f was on the other side of ``level`` from the final
    f (0 if never): from then on the verdict "final f above/below level" is fixed."""
    s, f = curve(record, "f")
    above = f > level
    flips = np.nonzero(above != above[-1])[0]
    return int(s[flips[-1] + 1]) if len(flips) else 0


def onset(rows: list[dict[str, Any]], level: float) -> dict[float, float | None]:
    """Per ``alpha``: the smallest ``ratio`` (ρ/‖w₀‖) whose run ends with f > ``level``
    (None if none does). ``rows`` hold ``alpha``, ``ratio`` and ``f``."""
    out: dict[float, float | None] = {}
    for a in sorted({r["alpha"] for r in rows}):
        hit = [r["ratio"] for r in rows if r["alpha"] == a and r["f"] > level]
        out[a] = min(hit) if hit else None
    return out


def window_ratios(record: dict[str, Any], start: int, length: int) -> np.ndarray:
    """The logged step ratios at steps in [start, start + length] (e.g. right after the
    switch of a ``switch`` run)."""
    return np.array([r["ratio"] for r in record["log"]
                     if start <= r["step"] <= start + length], dtype=float)


def git_dirty(record: dict[str, Any]) -> bool | None:
    """Whether the record's provenance says the source tree was dirty (None: unknown)."""
    return ((record.get("provenance") or {}).get("git") or {}).get("dirty")


# ----------------------------------------------------------------------------- table columns
# Every Chapter 4 table names its columns by these keys, so a quantity has one header and one
# format wherever it is shown. Headers stay short: a table of six or seven of them fits a
# phone's 358 px column (tools/browser_check.py fails a page whose table scrolls there).
COLUMNS: dict[str, tuple[str, str]] = {
    "rho": ("rho", ".2f"), "run": ("run", "s"), "steps": ("steps", "d"),
    "f": ("f(w)", ".4f"), "acc": ("train acc", ".3f"), "test_acc": ("test acc", ".3f"),
    "grad_norm_tail": ("|grad f(w)|", ".2e"), "sam_norm_tail": ("|grad f(w+)|", ".2e"),
    "ratio_tail": ("ratio", ".3f"), "drift_tail": ("drift", ".2e"),
    "ratio": ("ratio(last)", ".3f"), "ratio_min": ("min ratio", ".3f"),
    "stalled_steps": ("stalled", "d"), "f_after": ("f(+1500 GD)", ".4f"),
    "f_drop": ("GD-drop", ".4f"), "rel_drop": ("drop/f", ".3f"),
    "acc_after": ("acc after", ".3f"), "test_acc_after": ("test after", ".3f"),
    "k": ("k", "d"), "f_cont": ("f after k GD steps", ".3f"), "f_gd": ("GD from init", ".3f"),
    "gap": ("gap", "+.3f"),
    # (a space lets a header wrap, so the column is as narrow as its numbers)
    "f_plus": ("f(w+)", ".4f"), "spread": ("spread (w)", ".3f"), "spread_p": ("spread (w+)", ".3f"),
    "act": ("active (w)", ".3f"), "act_p": ("active (w+)", ".3f"), "live_p": ("live (w+)", ".3f"),
    "g": ("|grad f|", ".3f"), "g_se": ("se", ".3f"), "h": ("|E step|", ".3f"),
    "h_se": ("se", ".3f"), "stall": ("stall(3se)", "s"),
    **{f"q{q}": (f"q{q}", ".3f") for q in (10, 25, 50, 75, 90)},
    "stalled_frac": ("stalled/steps", ".2f"), "prog": ("progress", ".4f"),
}


def columns(*specs: str | tuple[str, str] | tuple[str, str, str]) -> list[tuple[str, str, str]]:
    """``report.format_table`` columns from :data:`COLUMNS` keys; a ``(key, header)`` or
    ``(key, header, format)`` tuple overrides the key's header or format."""
    out = []
    for spec in specs:
        key, *over = (spec,) if isinstance(spec, str) else spec
        if key not in COLUMNS and len(over) < 2:
            raise KeyError(f"no column {key!r} in report.mlp.COLUMNS: add it there or give "
                           f"(key, header, format)")
        head, fmt = COLUMNS.get(key, ("", ""))
        out.append((key, *over, *(head, fmt)[len(over):]))
    return out


# The runs of Chapter 4b's tables, with the labels its rows show.
SETTINGS = {"sam-5": "main", "sam-5-long": "main, 12000 steps", "sens-28x28": "28x28 inputs",
            "sens-width256": "width 256", "sens-n4000": "4000 images", "sens-lr0.02": "lr 0.02",
            "gd-wd": "GD, weight decay 5e-3", "sam-wd-5": "weight decay 5e-3"}
# (SAM run, GD run from the same initialisation or None, label) for the ratio quantiles
RATIO_RUNS = (("sam-1", "gd", "main, rho 1"), ("sam-2", "gd", "main, rho 2"),
              ("sam-5", "gd", "main, rho 5"), ("sam-5-long", "gd", "main, rho 5, 12000 steps"),
              ("seed1-sam-5", "seed1-gd", "seed 1"), ("nostd-sam-5", "nostd-gd", "no standardisation"),
              ("sens-28x28", None, "28x28 inputs"), ("sens-width256", None, "width 256"),
              ("sens-n4000", None, "4000 images"), ("sens-lr0.02", None, "lr 0.02"),
              ("sam-wd-5", "gd-wd", "weight decay 5e-3"), ("noise-sam-5", "noise-gd", "20% labels flipped"))


def glue_values(prefix: str, values: dict[Any, Any]) -> None:
    """Glue each value as ``<prefix>-<key>`` for a chapter's prose (myst-nb's ``glue``; a
    float key as ``:g``, numpy numbers as Python ones, which ``{glue:text}`` formats)."""
    from myst_nb import glue

    for key, v in values.items():
        name = f"{prefix}-{format(key, 'g') if isinstance(key, float) else key}"
        glue(name, v.item() if isinstance(v, np.generic) else v, display=False)


# ----------------------------------------------------------------------------- table rows
def displacement(record: dict[str, Any], gd_record: dict[str, Any]) -> dict[str, float]:
    """How far a run moved: ``w0`` (‖w₀‖), ``sam`` and ``sam_cont`` (‖w − w₀‖ at its end and
    after its GD continuation), ``gd_cont`` and ``gd_steps`` (GD from the initialisation
    after as many steps as the continuation, and as the run), ``gd_eq`` (the GD steps worth
    the run's final loss, :func:`gd_equivalent_steps`)."""
    fin, cfg = record["final"], record["config"]
    gd_dist = dict(zip(*curve(gd_record, "dist_init", continuation=True), strict=True))
    return {"w0": float(fin["w0_norm"]), "sam": float(fin["dist_init"]),
            "sam_cont": float(record["continuation"]["dist_init"]),
            "gd_cont": float(gd_dist[cfg["continue_steps"]]),
            "gd_steps": float(gd_dist[cfg["steps"]]),
            "gd_eq": float(gd_equivalent_steps(fin["f"], gd_record))}


def activity_rows(records: dict[str, dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """The network at each run's end point w and at its perturbed point w+: loss, logit
    spread across images, active and live hidden units."""
    rows = []
    for n in names:
        fin = records[n]["final"]
        a, ap = fin["activity"], fin["activity_plus"]
        rows.append({"run": n, "rho": records[n]["config"]["rho"], "f": fin["f"],
                     "f_plus": fin["f_plus"], "spread": a["logit_spread"],
                     "spread_p": ap["logit_spread"], "act": a["active_frac"],
                     "act_p": ap["active_frac"], "live_p": ap["live_units"]})
    return rows


def stochastic_rows(records: dict[str, dict[str, Any]], names: Sequence[str],
                    z: float = 3.0) -> list[dict[str, Any]]:
    """Minibatch runs: :func:`summary_row` plus the stall diagnostics (gradient and expected
    SAM step with their noise floors, ``stall``: within ``z`` floors of zero, "yes"/"no")."""
    from ..diagnostics import StallDiagnostics

    rows = []
    for n in names:
        rec = records[n]
        d = rec["stall_diagnostics"]
        rows.append({**summary_row(rec), "g": d["grad_norm"], "g_se": d["grad_se"],
                     "h": d["sam_step_norm"], "h_se": d["sam_step_se"],
                     "act_p": rec["final"]["activity_plus"]["active_frac"],
                     "stall": "yes" if StallDiagnostics(**d).looks_stalled(z) else "no"})
    return rows


def quantile_rows(records: dict[str, dict[str, Any]],
                  runs: Sequence[tuple[str, str | None, str]]) -> list[dict[str, Any]]:
    """Per ``(name, GD reference or None, label)``: the ratio's tail quantiles, the share of
    stalled steps, the final loss and the progress fraction (None without a GD reference)."""
    rows = []
    for name, ref, label in runs:
        rec = records[name]
        rows.append({"name": name, "run": label, **ratio_quantiles(rec),
                     "stalled_frac": stalled_steps(rec) / rec["config"]["steps"],
                     "f": rec["final"]["f"],
                     "prog": None if ref is None else progress_fraction(rec, records[ref])})
    return rows


def scale_rows(robust: dict[str, dict[str, Any]], scales: Sequence[float],
               ratios: Sequence[float], level: float) -> list[dict[str, Any]]:
    """The initial-weight-scale sweep, one row per (``alpha``, ``ratio`` = ρ/‖w₀‖): ρ, final f,
    progress against GD from the same initialisation, and the step its f settled on its side
    of ``level`` (:func:`settled_step`)."""
    rows = []
    for a in scales:
        gd = robust[f"scale-a{a:g}-gd"]
        for r in ratios:
            rec = robust[f"scale-a{a:g}-r{r:g}"]
            rows.append({"alpha": a, "ratio": r, "rho": rec["config"]["rho"],
                         "f": rec["final"]["f"], "prog": progress_fraction(rec, gd),
                         "settled": settled_step(rec, level)})
    return rows


def scale_pivot(rows: list[dict[str, Any]], scales: Sequence[float], *keys: tuple[str, str, str]
                ) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """:func:`scale_rows` with one row per ratio and ``<key><a>`` per scale ``a`` (``rho``, ``f``,
    ``prog``), and the columns that show each ``(key, header, format)`` per scale."""
    piv: dict[float, dict[str, Any]] = {}
    for x in rows:
        piv.setdefault(x["ratio"], {"ratio": x["ratio"]}).update(
            {f"{k}{x['alpha']:g}": x[k] for k in ("rho", "f", "prog")})
    cols = [("ratio", "rho/|w0|", ".2f")]
    cols += [(f"{k}{a:g}", f"{h} (a={a:g})", fmt) for k, h, fmt in keys for a in scales]
    return [piv[r] for r in sorted(piv)], cols


def progress_onset(rows: list[dict[str, Any]], cut: float = 0.01) -> dict[float, float | None]:
    """Per ``alpha``: the smallest ratio whose progress fraction is below ``cut`` (None if none)."""
    return {a: min((x["ratio"] for x in rows if x["alpha"] == a and x["prog"] < cut), default=None)
            for a in sorted({x["alpha"] for x in rows})}


def noise_rows(robust: dict[str, dict[str, Any]], names: Sequence[str],
               gd: str = "noise-gd") -> list[dict[str, Any]]:
    """The label-noise runs: :func:`summary_row`, the median step ratio, the progress fraction
    and ``gap``, f after the GD continuation minus f of GD from the initialisation."""
    rows = []
    for n in names:
        rec = robust[n]
        k = rec["config"]["continue_steps"]
        rows.append({**summary_row(rec), "q50": ratio_quantiles(rec)["q50"],
                     "prog": progress_fraction(rec, robust[gd]),
                     "gap": continuation_vs_gd(rec, robust[gd], ks=(k,))[0]["gap"]})
    return rows


# ----------------------------------------------------------------------------- width-8 study
def netfixed_study(profile: str, data_root: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(config, study) of the width-8 fixed-point study: ``results/netfixed/study.json``
    loaded, or recomputed with ``profile="full"`` (two threads: a few CPU minutes)."""
    from ..checks import repo_root
    from ..runs import netfixed as nf
    from ..runs.cache import load_or_compute

    cfg = nf.NetFixedConfig()
    if profile == "full":
        import torch

        torch.set_num_threads(2)
    study = load_or_compute(repo_root() / "results" / "netfixed" / "study.json",
                            lambda: nf.run_study(cfg, data_root=data_root),
                            config={k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                            recompute=(profile == "full"))
    return cfg, study


def netfixed_lines(study: dict[str, Any], hidden: int, restart_steps: int) -> list[str]:
    """The width-8 fixed-point study (``runs.netfixed.run_study``) in words, one finding a line:
    the stall, Newton from it, the Jacobian check, each Newton attempt, the solution, its
    spectrum, and SAM restarted near it or continued."""
    st, lm1, sol = study["stall"], study["lm_from_stall"], study["solution"]
    spec, rst, sc = study["spectrum"], study["restart_end"], study["sam_continued"]
    fd = study["jacobian_fd_relerr"]
    out = [f"parameters: {study['n_params']}",
           f"SAM stalls at step {st['step']}: |grad L(w)| = {st['grad']:.3f}, "
           f"|G| = {st['residual']:.3f}",
           f"Newton from the stall: |G| {lm1[0]['residual']:.4f} -> {lm1[-1]['residual']:.4f} in "
           f"{len(lm1) - 1} iterations (moved {study['lm_from_stall_moved']:.1e}): fails",
           f"Jacobian vs central differences, relative error: h = 1e-5: below 1e-8: "
           f"{fd['1e-05'] < 1e-8}; h = 1e-4: above 0.1: {fd['1e-04'] > 0.1}"]
    for a in study["newton_attempts"]:
        fin = a["final_residual"]
        fin_text = "below 1e-10" if fin < 1e-10 else format(fin, ".1e")
        out.append(f"Newton from SAM's step {a['step']}: |G| {a['start_residual']:.1e} -> "
                   f"{fin_text} in {a['iterations']} iterations")
    out += [f"solution: |G(w*)| < 1e-10: {sol['residual'] < 1e-10}; |grad L(w*)| = "
            f"{sol['grad']:.3f}; L(w*) = {sol['loss']:.4f}; L(w*+) = log 10: "
            f"{abs(sol['loss_at_w_plus'] - math.log(10)) < 1e-12}",
            f"hidden units dead at w*+ for every image: {sol['dead_units_at_w_plus']} of "
            f"{hidden}; train accuracy at w*: {sol['train_acc']:.2f}",
            f"SAM map Jacobian I - eta DG(w*): rank of DG {spec['rank_DG']}; eigenvalues of "
            f"modulus 1: {spec['n_abs_within_1e-9_of_1']}, below 1: {spec['n_abs_lt_1']} "
            f"(largest {spec['max_abs_T_off_kernel']:.3f}), above 1: {spec['n_abs_gt_1']}; "
            f"spectral radius {spec['spectral_radius_T']:.3f}",
            f"SAM restarted 1e-4 away: |G| after {restart_steps} steps < 1e-14: "
            f"{rst['residual'] < 1e-14}; distance to w*: {rst['dist']:.1e}",
            f"SAM alone, continued to step {sc['steps']}: |G| < 1e-13: "
            f"{sc['residual'] < 1e-13}, distance to w*: {sc['dist_to_solution']:.1e}"]
    return out
