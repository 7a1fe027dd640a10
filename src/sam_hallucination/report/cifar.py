"""Results of the CIFAR sweeps as sets and tables (Chapters 5 and 6).

A chapter shows the highest tier that exists (:func:`chapter_sets`): the GPU grid, else its
CPU-scale tier (labelled :data:`CPU_TIER_LABEL`). :func:`load_set` loads what exists of a
sweep (``results/<sweep>/``); with no results it can fall back to the CPU smoke sweep
(``smoke-cifar``), marked ``smoke=True`` and labelled :data:`SMOKE_LABEL` (the tests use
it; the chapters do not). Cells are ``(method, rho, switch_frac)``; :func:`summarize` gives
mean ± std (ddof = 1) over seeds and :func:`missing_runs` lists the runs without a result.
The probe's verdict is in :mod:`.probe`, the remedy and the tier comparison in :mod:`.compare`.
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
from .tiers import CPU_TIER_LABEL, SMOKE_LABEL, TIERS, tier_of

SMOKE_SWEEP = "smoke-cifar"
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
    """The records shown for one sweep, and their tier: "gpu" (the sweep itself), "cpu" (the
    CPU-scale tier standing in for a GPU grid) or "smoke" (the CPU smoke stand-in)."""

    sweep: str
    records: list[dict[str, Any]]
    expected: list[RunConfig] = field(default_factory=list)
    tier: str = "gpu"
    source: str = ""

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {self.tier!r}")

    @property
    def smoke(self) -> bool:
        """Whether these are the smoke stand-in (which says nothing about SAM)."""
        return self.tier == "smoke"

    @property
    def label(self) -> str:
        """What to put in titles: the smoke label, the CPU-tier label, or the sweep name."""
        return {"smoke": SMOKE_LABEL, "cpu": CPU_TIER_LABEL}.get(self.tier, f"sweep {self.sweep}")

    def present(self) -> int:
        """How many runs of the target sweep have a result (0 for a smoke stand-in)."""
        return 0 if self.smoke else len({r["run_id"] for r in self.records}
                                        & {c.run_id() for c in self.expected})


def cell_of(x: dict[str, Any] | RunConfig) -> Cell:
    """The (method, rho, switch_frac) cell of a record or config."""
    c = x if isinstance(x, RunConfig) else x["config"]
    get = (lambda k: getattr(c, k)) if isinstance(c, RunConfig) else c.get
    return (get("method"), float(get("rho")), float(get("switch_frac") or 0.0))


def load_set(sweep: str, results_dir: str | Path = "results", fallback: str | None = SMOKE_SWEEP,
             tier: str | None = None) -> ResultSet:
    """The results of ``sweep``; without any, the fallback smoke records of its methods.
    ``tier`` defaults to :func:`tier_of` ``sweep``."""
    expected = get_sweep(sweep).runs
    recs = load_results(sweep, results_dir)
    if recs or fallback is None:
        tier = tier or tier_of(sweep)
        return ResultSet(sweep, recs, expected, tier=tier, source=str(Path(results_dir) / sweep))
    methods = {c.method for c in expected}
    smoke = [r for r in load_results(fallback, results_dir) if r["config"]["method"] in methods]
    return ResultSet(sweep, smoke, expected, tier="smoke", source=str(Path(results_dir) / fallback))


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
        cpu = load_set(cpu_name, results_dir, fallback=None, tier="cpu")
        if cpu.records:
            return cpu
    return load_set(sweep, results_dir, fallback)


def chapter_sets(sweep: str, results_dir: str | Path = "results"
                 ) -> tuple[ResultSet, ResultSet | None]:
    """What a chapter shows for the GPU sweep ``sweep``: the highest tier with results (the
    GPU grid, else its CPU-scale tier), and the CPU tier beside it when the GPU grid is
    shown (None otherwise). Raises FileNotFoundError, naming the fix, when neither exists."""
    main = pick_set(sweep, results_dir, fallback=None)
    cpu_name = CPU_TIERS.get(sweep)
    if not main.records:
        tier = f" or its CPU-scale tier {cpu_name}" if cpu_name else ""
        raise FileNotFoundError(
            f"no results for {sweep}{tier} under {Path(results_dir).resolve()}; restore them "
            f"with `git checkout -- results/`, or run the sweep: `python -m "
            f"sam_hallucination.runs {cpu_name or sweep} --device cpu --threads 2`")
    if main.tier != "gpu" or cpu_name is None:
        return main, None
    cpu = load_set(cpu_name, results_dir, fallback=None, tier="cpu")
    return main, cpu if cpu.records else None


@dataclass
class ChapterResults:
    """What opens Chapter 5 or 6: the result set shown (``main``), the CPU tier beside a GPU
    grid (``cpu``), the GPU grid's coverage line, the tier paragraph and the provenance."""

    main: ResultSet
    cpu: ResultSet | None
    gpu_coverage: str
    source: str
    provenance: str

    def banner(self, what: str) -> Any:
        """The banner for a page whose GPU grid is owed (``plotting.coverage_warning``), or
        None when ``main`` is the GPU grid; ``what`` says what the grid tests."""
        from ..plotting import coverage_warning

        return coverage_warning(self.main.tier, self.gpu_coverage, what)


def chapter_results(sweep: str, results_dir: str | Path = "results") -> ChapterResults:
    """The one call that opens a CIFAR chapter for the GPU sweep ``sweep``
    (:func:`chapter_sets`, its coverage, :func:`tier_description`, :func:`provenance_text`)."""
    main, cpu = chapter_sets(sweep, results_dir)
    coverage = coverage_text(load_set(sweep, results_dir, fallback=None))
    return ChapterResults(main, cpu, coverage, tier_description(main, sweep, results_dir),
                          provenance_text(main))


def tier_lead(rs: ResultSet) -> str:
    """The italic lead-in that names where a verdict's numbers come from."""
    if rs.smoke:
        return f"*{SMOKE_LABEL}.*"
    return f"*{CPU_TIER_LABEL if rs.tier == 'cpu' else 'GPU grid'} (sweep `{rs.sweep}`).*"


def tier_description(rs: ResultSet, gpu_sweep: str, results_dir: str | Path = "results") -> str:
    """A Markdown paragraph: which tier the page shows, its network, data and budget (read
    from the records), and how much of the GPU grid ``gpu_sweep`` exists."""
    if not rs.records:
        return "No results."
    r0 = rs.records[0]
    c = r0["config"]
    budget = (f"{r0.get('n_params', 0):,}-parameter {c['model']} CNN, "
              f"{r0.get('n_train', 0):,} training images, {c['epochs']} epochs at batch "
              f"{c['batch_size']} + {c['final_constant_lr_epochs']} at LR {c['final_lr']:g}")
    if rs.smoke:
        return (f"**{SMOKE_LABEL}** ({budget}): it tests the code path and says nothing "
                "about SAM.")
    gpu = coverage_text(load_set(gpu_sweep, results_dir, fallback=None))
    if rs.tier == "cpu":
        return (f"**{CPU_TIER_LABEL}** (sweep `{rs.sweep}`, {len(rs.records)} runs: "
                f"{budget}). These are real training runs, and evidence about this small "
                f"network on this subset only; the GPU grid is owed ({gpu}).")
    return f"**The GPU grid** (sweep `{rs.sweep}`, {len(rs.records)} runs: {budget}); {gpu}."


def sgd_curve_text(rs: ResultSet, name: str = "test_acc") -> str:
    """SGD's mean test accuracy at each evaluated epoch, to show how far it has plateaued."""
    sgd = [r for r in rs.records if r["config"]["method"] == "sgd" and r["status"] == "ok"]
    if not sgd:
        return "no SGD run"
    n = min(len(r["epochs"]) for r in sgd)
    pts = []
    for e in range(n):
        vals = [r["epochs"][e].get(name) for r in sgd]
        if all(v is not None for v in vals):
            pts.append(f"{e + 1}: {100 * statistics.fmean(vals):.1f}%")
    main = sgd[0]["config"]["epochs"]
    return (f"SGD test accuracy by epoch ({len(sgd)} seeds; epochs after {main} run at the "
            f"constant LR): " + ", ".join(pts))


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
