"""The chapter-4 grid of runs, its profiles, and its CLI (``python -m sam_hallucination.runs.fullbatch``)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from .config import FullBatchConfig
from .runner import run_cached

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


def run_named(cfgs: dict[str, FullBatchConfig], profile: str, names: list[str] | None,
              results_dir: str | Path | None, verbose: bool) -> dict[str, dict[str, Any]]:
    """Records of the named configs (all by default): cached ones loaded, ``full`` recomputes."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
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


def run_chapter(profile: str = "quick", names: list[str] | None = None,
                results_dir: str | Path | None = None, verbose: bool = False,
                base: FullBatchConfig | None = None) -> dict[str, dict[str, Any]]:
    """All chapter-4 records by name (cached ones loaded; ``full`` recomputes).

    ``base`` changes the shared settings, e.g. ``FullBatchConfig(dataset="mnist",
    data_root=...)``; runs whose config has no cached file are computed and stored.
    """
    return run_named(chapter_configs(base), profile, names, results_dir, verbose)


def cli(description: str, runner: Any, argv: list[str] | None = None) -> int:
    """The command line of a named-run set: ``NAMES... [--profile] [--results-dir]``."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("names", nargs="*", help="run names (default: all)")
    ap.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args(argv)
    try:
        runner(args.profile, args.names or None, args.results_dir, verbose=True)
    except ValueError as e:  # an unknown run name: say which names exist
        ap.error(str(e))
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli("Run (or load) the chapter-4 MLP runs; see chapter_configs().", run_chapter, argv)


if __name__ == "__main__":
    raise SystemExit(main())
