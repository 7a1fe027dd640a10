"""Find or fetch data sets before anything long starts: ``python -m sam_hallucination.data
fashion-mnist`` (what ``make book`` and ``make test`` run first). Exits 1 with one line when a
data set is neither on disk nor downloadable."""

from __future__ import annotations

import argparse
import sys

from .registry import DATASETS, get_spec
from .sources import locate_idx, resolve_cache_dir


def main(argv: list[str] | None = None) -> int:
    idx = [n for n, s in DATASETS.items() if s.source == "idx"]
    ap = argparse.ArgumentParser(prog="python -m sam_hallucination.data", description=__doc__)
    ap.add_argument("names", nargs="+", choices=idx, help="IDX data sets to find or fetch")
    args = ap.parse_args(argv)
    for name in args.names:
        try:
            paths = locate_idx(get_spec(name), None, None, resolve_cache_dir())
        except FileNotFoundError as e:
            print(e, file=sys.stderr)
            return 1
        print(f"{name}: {paths[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
