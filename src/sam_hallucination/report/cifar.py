"""Results of the CIFAR sweeps as tables, verdicts and figures (Chapters 5 and 6).

:func:`load_set` loads what exists of a sweep (``results/<sweep>/``). When a sweep has no
results yet it falls back to the CPU smoke sweep (``smoke-cifar``), restricted to the
methods the sweep uses, and marks the set ``smoke=True``: every title, caption and table
made from it then says :data:`SMOKE_LABEL`. Cells are ``(method, rho, switch_frac)``;
:func:`summarize` gives mean ± std (ddof = 1) over seeds, :func:`missing_runs` lists the
runs of the sweep that have no result, and :func:`stall_verdict` turns the end-of-training
probes into a sentence (or says that the verdict is owed to the GPU runs).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..methods import method_labels
from ..runs.config import RunConfig
from ..runs.sweeps import get_sweep, load_results

SMOKE_LABEL = "CPU smoke run — not the experiment"
SMOKE_SWEEP = "smoke-cifar"
CPU_TIER_LABEL = "CPU scale: small CNN, 10k-image subset"
# Each GPU sweep's CPU-scale tier (issue 18): shown when the GPU grid has no results yet.
CPU_TIERS = {"cifar10-rho": "cifar10-cpu-rho", "cifar10-remedy": "cifar10-cpu-remedy"}
METHOD_LABELS = method_labels("network")

# Chapter profiles: "quick" only loads committed results; "full" runs the sweeps first.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"run": False, "device": "auto"},
    "full": {"run": True, "device": "cuda"},
}

Cell = tuple[str, float, float]  # (method, rho, switch_frac)


@dataclass
class ResultSet:
    """The records shown for one sweep, and whether they are the CPU smoke stand-in."""

    sweep: str
    records: list[dict[str, Any]]
    expected: list[RunConfig] = field(default_factory=list)
    smoke: bool = False
    source: str = ""
    cpu_tier: bool = False  # the CPU-scale tier standing in for a GPU grid

    @property
    def tier(self) -> str:
        """Which tier the records are: "gpu" (the sweep itself), "cpu" or "smoke"."""
        return "smoke" if self.smoke else "cpu" if self.cpu_tier else "gpu"

    @property
    def label(self) -> str:
        """What to put in titles: the smoke label, the CPU-tier label, or the sweep name."""
        if self.smoke:
            return SMOKE_LABEL
        return CPU_TIER_LABEL if self.cpu_tier else f"sweep {self.sweep}"

    def present(self) -> int:
        """How many runs of the target sweep have a result (0 for a smoke stand-in)."""
        return 0 if self.smoke else len({r["run_id"] for r in self.records}
                                        & {c.run_id() for c in self.expected})


def cell_of(x: dict[str, Any] | RunConfig) -> Cell:
    """The (method, rho, switch_frac) cell of a record or config."""
    c = x if isinstance(x, RunConfig) else x["config"]
    get = (lambda k: getattr(c, k)) if isinstance(c, RunConfig) else c.get
    return (get("method"), float(get("rho")), float(get("switch_frac") or 0.0))


def load_set(sweep: str, results_dir: str | Path = "results", fallback: str | None = SMOKE_SWEEP
             ) -> ResultSet:
    """The results of ``sweep``; without any, the fallback smoke records of its methods."""
    expected = get_sweep(sweep).runs
    recs = load_results(sweep, results_dir)
    if recs or fallback is None:
        return ResultSet(sweep, recs, expected, smoke=False, source=str(Path(results_dir) / sweep))
    methods = {c.method for c in expected}
    smoke = [r for r in load_results(fallback, results_dir) if r["config"]["method"] in methods]
    return ResultSet(sweep, smoke, expected, smoke=True, source=str(Path(results_dir) / fallback))


def pick_set(sweep: str, results_dir: str | Path = "results", cpu_sweep: str | None = None,
             fallback: str | None = SMOKE_SWEEP) -> ResultSet:
    """What a chapter shows for ``sweep``: its GPU grid if it has results, else its CPU-scale
    tier (``cpu_sweep``, default :data:`CPU_TIERS`) if that has results (labelled
    :data:`CPU_TIER_LABEL`), else the smoke stand-in (:func:`load_set`)."""
    gpu = load_set(sweep, results_dir, fallback=None)
    if gpu.records:
        return gpu
    cpu_name = cpu_sweep or CPU_TIERS.get(sweep)
    if cpu_name is not None:
        cpu = load_set(cpu_name, results_dir, fallback=None)
        if cpu.records:
            cpu.cpu_tier = True
            return cpu
    return load_set(sweep, results_dir, fallback)


def metric(rec: dict[str, Any], name: str, at: str = "final") -> float | None:
    """A number from a record: ``at="final"`` (end of training), ``"main"`` (end of the main
    schedule, before the constant-LR epochs) or ``"probe"`` (a dotted path in the probe,
    e.g. ``"stall.ratio"``). None when missing (a diverged run has no test accuracy)."""
    if at == "final":
        v = rec["final"].get(name)
    elif at == "main":
        i = rec["config"]["epochs"] - 1
        v = rec["epochs"][i].get(name) if len(rec["epochs"]) > i else None
    elif at == "probe":
        v = rec.get("probe")
        for k in name.split("."):
            v = v.get(k) if isinstance(v, dict) else None
    else:
        raise ValueError(f"at must be 'final', 'main' or 'probe', got {at!r}")
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def summarize(rs: ResultSet | Sequence[dict[str, Any]], name: str = "test_acc",
              at: str = "final") -> list[dict[str, Any]]:
    """One row per cell, in first-seen order: n, seeds, values, mean, std (ddof=1), diverged."""
    recs = rs.records if isinstance(rs, ResultSet) else rs
    rows: dict[Cell, dict[str, Any]] = {}
    for r in recs:
        row = rows.setdefault(cell_of(r), {"cell": cell_of(r), "seeds": [], "values": [],
                                           "diverged": 0})
        row["seeds"].append(r["config"]["seed"])
        row["diverged"] += r["status"] == "diverged"
        v = metric(r, name, at) if r["status"] == "ok" else None
        if v is not None:
            row["values"].append(v)
    out = []
    for row in rows.values():
        vals = row["values"]
        row.update(n=len(vals), mean=statistics.fmean(vals) if vals else None,
                   std=statistics.stdev(vals) if len(vals) > 1 else None)
        row["method"], row["rho"], row["switch_frac"] = row["cell"]
        out.append(row)
    return out


def missing_runs(rs: ResultSet) -> list[RunConfig]:
    """Runs of the target sweep without a result (all of them for a smoke stand-in)."""
    have = set() if rs.smoke else {r["run_id"] for r in rs.records}
    return [c for c in rs.expected if c.run_id() not in have]


def coverage_text(rs: ResultSet) -> str:
    """One line: how much of the sweep's grid exists, and which seeds are missing."""
    miss = missing_runs(rs)
    n = len(rs.expected)
    if rs.smoke:
        return (f"{rs.sweep}: 0/{n} runs present; showing the {SMOKE_SWEEP} results "
                f"({SMOKE_LABEL})")
    if not miss:
        return f"{rs.sweep}: all {n} runs present"
    by_seed: dict[int, int] = {}
    for c in miss:
        by_seed[c.seed] = by_seed.get(c.seed, 0) + 1
    seeds = ", ".join(f"seed {s}: {k} missing" for s, k in sorted(by_seed.items()))
    return f"{rs.sweep}: {n - len(miss)}/{n} runs present ({seeds})"


def cell_name(cell: Cell) -> str:
    method, rho, sw = cell
    if method == "sgd":
        return "SGD"
    if method == "switch":
        return f"SGD→SAM {sw:.0%} ρ={rho:g}"
    if method == "rho-decay":
        return f"ρ={rho:g} decayed to 0"
    return f"{METHOD_LABELS[method]} ρ={rho:g}"


def _pm(mean: float | None, std: float | None, scale: float, digits: int) -> str:
    if mean is None:
        return "—"
    s = f"{mean * scale:.{digits}f}"
    return s + (f" ± {std * scale:.{digits}f}" if std is not None else " (1 seed)")


def summary_table(rows: Iterable[dict[str, Any]], title: str, scale: float = 100.0,
                  digits: int = 1, unit: str = "%") -> str:
    """A fixed-width text table: cell, seeds present, mean ± std, diverged runs."""
    lines = [title, f"{'cell':30s} {'n':>2s}  {'mean ± std' + (' (' + unit + ')' if unit else ''):>20s}"
             f"  diverged"]
    for r in rows:
        lines.append(f"{cell_name(r['cell']):30s} {r['n']:2d}  "
                     f"{_pm(r['mean'], r['std'], scale, digits):>20s}  {r['diverged']:8d}")
    return "\n".join(lines)


def not_run_rows(sweeps: Iterable[str], results_dir: str | Path = "results") -> str:
    """Status lines for larger sweeps: runs present, or "not run here"."""
    lines = []
    for name in sweeps:
        n = len(get_sweep(name))
        k = len(load_results(name, results_dir))
        status = "not run here" if k == 0 else f"{k}/{n} runs present"
        lines.append(f"{name:26s} {n:3d} runs  {status}")
    return "\n".join(lines)


def provenance(rs: ResultSet) -> dict[str, Any]:
    """Devices, commits, torch versions and total wall time of the records shown."""
    prov = [r["provenance"] for r in rs.records]
    return {
        "source": rs.source,
        "smoke": rs.smoke,
        "tier": rs.tier,
        "runs": len(rs.records),
        "devices": sorted({f"{p['device'].split(':')[0]} ({p['device_name']})" for p in prov}),
        "commits": sorted({p["git"]["commit"][:10] + ("+dirty" if p["git"].get("dirty") else "")
                           for p in prov}),
        "torch": sorted({p["torch"] for p in prov}),
        "wall_time_s": sum(r["wall_time_s"] for r in rs.records),
    }


def provenance_text(rs: ResultSet) -> str:
    p = provenance(rs)
    head = f"{rs.label}: " if rs.tier != "gpu" else ""
    return (f"{head}{p['runs']} runs from {p['source']}; device {', '.join(p['devices']) or '-'}; "
            f"commit {', '.join(p['commits']) or '-'}; torch {', '.join(p['torch']) or '-'}; "
            f"total wall time {p['wall_time_s']:.0f} s")


# ----------------------------------------------------------------------------- the probe


def probe_rows(rs: ResultSet, z: float = 3.0) -> list[dict[str, Any]]:
    """Per run with a probe: norms, noise floors, the stall test and the continuation drops.

    ``stalled``: the expected SAM step is within ``z`` noise floors of 0 while the gradient
    is more than ``z`` floors above 0. ``escapes``: SGD continuation from this run's end point
    lowers the fixed-batch loss by more than the control does, by over ``z`` standard errors
    of that loss (the decisive test of Chapter 4: from a genuine minimizer, SGD gains no more
    than it gains anyway). The control is the matched-loss one when the record has it (SGD
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
        sam_drop = sam.get("loss_drop") if sam else None
        ctl = p.get("sgd_control") or {}
        matched = ctl.get("status") == "ok" and ctl.get("loss_drop") is not None
        base = ctl["loss_drop"] if matched else baseline.get(r["config"]["seed"])
        escapes = None
        if base is not None and sgd_drop is not None and se is not None:
            escapes = sgd_drop - base > z * se
        stalled = (st["sam_step_se"] is not None and st["grad_se"] is not None
                   and st["sam_step_norm"] <= z * st["sam_step_se"]
                   and st["grad_norm"] > z * st["grad_se"])
        out.append({"cell": cell_of(r), "seed": r["config"]["seed"], "rho": p["rho"],
                    "grad_norm": st["grad_norm"], "grad_se": st["grad_se"],
                    "sam_step_norm": st["sam_step_norm"], "sam_step_se": st["sam_step_se"],
                    "ratio": st["ratio"], "loss": st["loss"], "loss_se": se,
                    "stalled": bool(stalled) and p["rho"] > 0, "sgd_drop": sgd_drop,
                    "sam_drop": sam_drop, "escapes": escapes,
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
            f"{'cell':26s} {'seed':>4s} {'SGD drop':>9s} {'SAM drop':>9s} {'ctl drop':>9s} "
            f"{'gap':>9s} {'@ep':>4s}"]
    for r in rows:
        name = f"{cell_name(r['cell']):26s} {r['seed']:4d}"
        ep = "—" if r.get("ctl_epoch") is None else str(r["ctl_epoch"])
        diag.append(f"{name} {g(r.get('rho_over_w')):>8s} {g(r['grad_norm']):>9s} "
                    f"{g(r['grad_se']):>9s} {g(r['sam_step_norm']):>10s} "
                    f"{g(r['sam_step_se']):>9s} {r['ratio']:6.2f}  "
                    f"{'yes' if r['stalled'] else 'no'}")
        cont.append(f"{name} {g(r['sgd_drop']):>9s} {g(r['sam_drop']):>9s} "
                    f"{g(r.get('ctl_drop')):>9s} {g(r.get('ctl_gap')):>9s} {ep:>4s}")
    return "\n".join(diag) + "\n\n" + "\n".join(cont)


def stall_verdict(rs: ResultSet, z: float = 3.0) -> str:
    """A plain-language verdict from the probes, or a statement that it is owed.

    Evidence of a hallucinated minimizer in a SAM run: the SAM step is within noise of 0
    while the gradient is not (``stalled``) *and* SGD continuation from it lowers the loss
    more than SGD continuation from the SGD run's end point does (``escapes``). The verdict
    is "yes" for a radius if most probed seeds at that radius show both.
    """
    if rs.smoke:
        return ("Verdict owed to the GPU runs: only the CPU smoke run exists (1 epoch on 512 "
                "images), which proves the code path and says nothing about stalls.")
    rows = [r for r in probe_rows(rs, z) if r["cell"][0] in ("sam", "switch") and r["rho"] > 0]
    if not rows:
        return "Verdict owed to the GPU runs: no SAM run with an end-of-training probe exists yet."
    by_rho: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        by_rho.setdefault(r["rho"], []).append(r)
    parts, yes = [], []
    for rho in sorted(by_rho):
        rr = by_rho[rho]
        k = sum(bool(r["stalled"] and r["escapes"]) for r in rr)
        st = sum(bool(r["stalled"]) for r in rr)
        med = statistics.median(r["ratio"] for r in rr)
        parts.append(f"ρ={rho:g}: {st}/{len(rr)} runs stalled, {k}/{len(rr)} stalled and escaped "
                     f"by SGD (median step/gradient ratio {med:.2f})")
        if 2 * k > len(rr):
            yes.append(rho)
    head = (f"Yes, at ρ ∈ {{{', '.join(f'{x:g}' for x in yes)}}}: SAM's expected step vanishes "
            f"within noise at points that are not stationary, and plain SGD lowers the loss "
            f"from there. " if yes else
            "No: at no probed radius does SAM's expected step vanish at a non-stationary point "
            f"(criterion: step within {z:g} noise floors of 0, gradient above {z:g} floors, "
            "and SGD continuation gaining more than SGD gains from the SGD run's snapshot at a "
            "matched loss). ")
    return head + "; ".join(parts) + "."


def remedy_summary(rs: ResultSet) -> str:
    """Per ρ: plain SAM, the best warm-start fraction and decayed ρ, in accuracy points.

    Differences are quoted with the spread over seeds; a fraction "helps" only when its mean
    beats plain SAM's by more than the larger of the two standard deviations.
    """
    if rs.smoke:
        return ("Owed to the GPU runs: only the CPU smoke run exists (1 epoch on 512 images), "
                "too short for the methods to say anything about the remedy.")
    rows = [r for r in summarize(rs) if r["mean"] is not None]
    if not any(r["method"] == "switch" for r in rows):
        return "Owed to the GPU runs: no warm-start run exists yet."
    parts = []
    for rho in sorted({r["rho"] for r in rows if r["method"] == "switch"}):
        sam = next((r for r in rows if r["method"] == "sam" and r["rho"] == rho), None)
        sw = [r for r in rows if r["method"] == "switch" and r["rho"] == rho]
        best = max(sw, key=lambda r: r["mean"])
        dec = next((r for r in rows if r["method"] == "rho-decay" and r["rho"] == rho), None)
        txt = f"ρ={rho:g}: "
        if sam is not None:
            gain = best["mean"] - sam["mean"]
            noise = max(best["std"] or 0.0, sam["std"] or 0.0)
            helps = gain > noise and (best["n"] > 1 and sam["n"] > 1)
            txt += (f"SAM {100 * sam['mean']:.1f}%, best warm start {best['switch_frac']:.0%} "
                    f"{100 * best['mean']:.1f}% ({100 * gain:+.1f} points, "
                    f"{'beyond' if helps else 'within'} the seed spread)")
        else:
            txt += f"best warm start {best['switch_frac']:.0%} {100 * best['mean']:.1f}%"
        if dec is not None:
            txt += f", decayed ρ {100 * dec['mean']:.1f}%"
        parts.append(txt)
    return "; ".join(parts) + "."
