"""sam_hallucination: the library behind the book "SAM can hallucinate minimizers".

Modules, by concept:

- ``sam``: SAM on functions of R^d (perturbation, surrogate, update, the mismatch).
- ``landscapes``: test functions with known critical points.
- ``dynamics``: batched SAM/GD iteration, hallucinated-point solver, Jacobians.
- ``optim``: the SAM optimizer for PyTorch models, with the switching remedy.
- ``diagnostics``: stall diagnostics at a model's current weights.
- ``data``, ``models``, ``train``, ``experiments``: the network experiments.
- ``plotting``: the book's plot style.
"""

__version__ = "0.1.0"
