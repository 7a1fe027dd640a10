"""The sweep CLI: ``python -m sam_hallucination.runs …`` (see :mod:`.cli`)."""

import sys

from .cli import main

sys.exit(main())
