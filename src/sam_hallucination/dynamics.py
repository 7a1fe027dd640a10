"""Compatibility path: ``sam_hallucination.dynamics`` is :mod:`sam_hallucination.rd.dynamics`."""

import sys

from .rd import dynamics as _module

sys.modules[__name__] = _module
