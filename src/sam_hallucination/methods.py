"""The one method vocabulary: every optimisation method the book names, in one registry.

A method is one :class:`Method` entry here plus its optimizer code. ``scope`` says where a
method applies: ``"rd"`` (update rules on R^d, :mod:`sam_hallucination.rd`), ``"network"``
(mini-batch training runs, :mod:`sam_hallucination.runs`) and ``"full-batch"`` (the
chapter-4 MLP study). The SAM-optimizer fields say how a network method builds
:class:`~sam_hallucination.optim.SAM`: ``sam`` (uses SAM at all), ``switch`` (base steps
for the run's ``switch_frac`` first) and ``rho_schedule``.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("rd", "network", "full-batch")


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # how tables and legends name it
    scopes: tuple[str, ...]
    sam: bool = True  # perturbs before stepping
    switch: bool = False  # base optimizer first, then SAM (the remedy)
    rho_schedule: str = "constant"  # SAM radius schedule ("constant" | "linear")
    signal_switch: bool = False  # base optimizer until a measured signal switches SAM on


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("gd", "GD", ("rd", "full-batch"), sam=False),
    Method("sgd", "SGD", ("network",), sam=False),
    Method("sam", "SAM", ("rd", "network", "full-batch")),
    Method("usam", "USAM", ("rd",)),
    Method("switch", "SGD→SAM", ("network", "full-batch"), switch=True),
    Method("rho-decay", "ρ decayed to 0", ("network",), rho_schedule="linear"),
    Method("sgd-sam", "minibatch SAM", ("full-batch",)),
    Method("switch-signal", "SGD→SAM by signal", ("network",), signal_switch=True),
)}


def method_names(scope: str) -> tuple[str, ...]:
    """The methods of one scope, in registry order."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    return tuple(n for n, m in METHODS.items() if scope in m.scopes)


def get_method(name: str, scope: str) -> Method:
    """The registry entry for ``name``; ValueError naming the valid choices otherwise."""
    names = method_names(scope)
    if name not in names:
        raise ValueError(f"method must be one of {names}, got {name!r}")
    return METHODS[name]


def method_labels(scope: str) -> dict[str, str]:
    return {n: METHODS[n].label for n in method_names(scope)}
