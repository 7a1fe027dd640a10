"""Compatibility path and CLI entry point: ``python -m sam_hallucination.experiments …``.

The code lives in :mod:`sam_hallucination.runs` (config, sweeps, store, cli).
"""

import sys

from .runs.cli import main
from .runs.config import PROBE_FIELDS, RunConfig
from .runs.store import (
    SCHEMA_VERSION,
    device_name,
    git_info,
    json_safe,
    read_result,
    result_record,
    write_json_atomic,
)
from .runs.sweeps import (
    EPOCH_COST_S,
    SWEEPS,
    Sweep,
    estimate_seconds,
    get_sweep,
    grid,
    load_results,
    run_sweep,
)

__all__ = [
    "main", "PROBE_FIELDS", "RunConfig", "SCHEMA_VERSION", "device_name", "git_info", "json_safe",
    "read_result", "result_record", "write_json_atomic", "EPOCH_COST_S", "SWEEPS", "Sweep",
    "estimate_seconds", "get_sweep", "grid", "load_results", "run_sweep",
]

if __name__ == "__main__":
    sys.exit(main())
