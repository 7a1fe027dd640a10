"""Chapter 4, measured more robustly (issue 14): the extra runs, cached in
``results/mlp-robust/``.

* ``scale-a<α>-r<ρ/‖w₀‖>``: SAM with the initial weights multiplied by ``α`` and the radius
  set relative to the initial weight norm, ``ρ = (ρ/‖w₀‖)·‖w₀(α)‖`` (does the onset of the
  plateau collapse onto one ρ/‖w₀‖?); ``scale-a<α>-gd``: GD from the same initialisation;
* ``noise-gd``, ``noise-sam-<ρ>``: 20% of the training labels flipped;
* ``nostd-gd``, ``nostd-sam-5``: other preprocessing (pixels in [0, 1], no standardisation).

The same profiles as the chapter: ``quick`` loads the files, ``full`` recomputes them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ...checks import repo_root
from .chapter import cli, run_named
from .config import FullBatchConfig
from .problem import build_model, load_problem

ROBUST_DIR = repo_root() / "results" / "mlp-robust"
SCALE_RATIOS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)  # ρ/‖w₀‖
SCALE_REFINE = (0.3, 0.35, 0.4, 0.45)  # the onset, resolved to 0.05
INIT_SCALES = (0.5, 1.0, 2.0)  # α
SCALE_STEPS = 1500  # the sweep's runs are shorter than the chapter's 3000 steps
PLATEAU_F = 2.0  # "on the plateau": final f above this
LABEL_NOISE = 0.2
NOISE_RHOS = (1.0, 2.0, 5.0)


def init_norm(cfg: FullBatchConfig) -> float:
    """‖w₀‖ of the run's initial weights (the network only; no training)."""
    return float(build_model(cfg, load_problem(cfg)).init_vector().norm())


def scale_rho(base: FullBatchConfig, alpha: float, ratio: float) -> float:
    """The radius ``ratio·‖w₀(α)‖``, rounded to 4 significant digits (readable run ids)."""
    return float(f"{ratio * init_norm(replace(base, init_scale=alpha)):.4g}")


def robust_configs(base: FullBatchConfig | None = None) -> dict[str, FullBatchConfig]:
    """Every robustness run by name (see the module docstring)."""
    b = base or FullBatchConfig()
    out: dict[str, FullBatchConfig] = {}
    short = replace(b, method="sam", rho=1.0, steps=SCALE_STEPS, continue_steps=0, slice_points=5,
                    grid_points=1)
    for a in INIT_SCALES:
        for r in sorted(SCALE_RATIOS + SCALE_REFINE):
            out[f"scale-a{a:g}-r{r:g}"] = replace(short, init_scale=a,
                                                  rho=scale_rho(b, a, r))
        # GD from the same initialisation: the reference for the progress fraction
        out[f"scale-a{a:g}-gd"] = replace(short, init_scale=a, method="gd", rho=0.0)
    noisy = replace(b, label_noise=LABEL_NOISE)
    out["noise-gd"] = replace(noisy, method="gd", rho=0.0)
    for r in NOISE_RHOS:
        out[f"noise-sam-{r:g}"] = replace(noisy, method="sam", rho=r)
    nostd = replace(b, standardize=False)
    out["nostd-gd"] = replace(nostd, method="gd", rho=0.0)
    out["nostd-sam-5"] = replace(nostd, method="sam", rho=5.0)
    return out


def run_robust(profile: str = "quick", names: list[str] | None = None,
               results_dir: str | Path | None = None, verbose: bool = False,
               base: FullBatchConfig | None = None) -> dict[str, dict[str, Any]]:
    """The robustness records by name (cached ones loaded; ``full`` recomputes)."""
    return run_named(robust_configs(base), profile, names, results_dir or ROBUST_DIR, verbose)


def main(argv: list[str] | None = None) -> int:
    return cli("Run (or load) chapter 4's robustness runs; see robust_configs().", run_robust,
               argv)


if __name__ == "__main__":
    raise SystemExit(main())
