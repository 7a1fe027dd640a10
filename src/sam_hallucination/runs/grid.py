"""Sweeps as ordered lists of runs: the :class:`Sweep` record and the cell x seed grid."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..methods import get_method
from .config import RunConfig


@dataclass
class Sweep:
    """A named, ordered list of runs."""

    name: str
    description: str
    runs: list[RunConfig] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.runs)


def grid(base: RunConfig, rhos: Iterable[float], seeds: Iterable[int],
         methods: Iterable[str] = ("sgd", "sam"), switch_fracs: Iterable[float] = (0.1,),
         models: Iterable[str] | None = None) -> list[RunConfig]:
    """Cells rho x method (x switch fraction) x model, repeated per seed, seed-major.

    "sgd" gives one cell per model (rho = 0); rho = 0 is skipped for the SAM methods,
    since SAM with rho = 0 is SGD. "switch" with fraction 0 is the "sam" cell and is
    skipped. All cells of seed 0 come first, then seed 1, and so on.
    """
    cells: list[dict[str, Any]] = []
    for model in (models or [base.model]):
        for method in methods:
            spec = get_method(method, "network")
            if not spec.sam:
                cells.append(dict(model=model, method=method, rho=0.0))
                continue
            for rho in rhos:
                if rho == 0:
                    continue
                if spec.switch:
                    cells += [dict(model=model, method="switch", rho=float(rho),
                                   switch_frac=float(f)) for f in switch_fracs if f > 0]
                else:
                    cells.append(dict(model=model, method=method, rho=float(rho)))
    return [base.replace(seed=s, **c) for s in seeds for c in cells]


def _seed_major(runs: list[RunConfig]) -> list[RunConfig]:
    return sorted(runs, key=lambda r: r.seed)  # stable: keeps the cell order per seed

