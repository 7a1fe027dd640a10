"""Compatibility path: ``sam_hallucination.sam`` is :mod:`sam_hallucination.rd.sam`."""

import sys

from .rd import sam as _module

sys.modules[__name__] = _module
