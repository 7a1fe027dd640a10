"""Compatibility path: ``sam_hallucination.landscapes`` is :mod:`sam_hallucination.rd.landscapes`."""

import sys

from .rd import landscapes as _module

sys.modules[__name__] = _module
