"""Chapter 4's runs from a shell: ``python -m sam_hallucination.runs.fullbatch [--profile full]``."""

from .chapter import main

raise SystemExit(main())
