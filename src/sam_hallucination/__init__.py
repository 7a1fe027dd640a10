"""sam_hallucination: the library behind the book "SAM can hallucinate minimizers".

Layers, lowest first; imports point down (see ARCHITECTURE.md and tests/test_architecture.py):

- ``checks``, ``methods``: argument validation; the one registry of method names.
- ``rd``: SAM on functions of R^d: ``landscapes``, ``sam``, ``dynamics`` (engine, fixed
  points, phases).
- ``optim``: the SAM optimizer for PyTorch models, its perturbation, the BatchNorm helper.
- ``data`` (registry, sources, loader), ``models``, ``diagnostics``.
- ``runs``: config, one train step, loop, probe, full-batch study, sweeps, store, CLI.
- ``report``, ``plotting``: the chapters' tables and figures; the plot style.

Import the layer packages (``sam_hallucination.rd.dynamics``, ``sam_hallucination.report``,
...); the CLIs are ``python -m sam_hallucination.runs`` and ``python -m
sam_hallucination.runs.fullbatch``.
"""

__version__ = "0.1.0"
