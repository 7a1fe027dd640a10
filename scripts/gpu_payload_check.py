"""Before a device call: would the payload (working tree + carried paths) fit?

    python scripts/gpu_payload_check.py --carry .data [--carry more] [--limit-mib 60] [--top 10]

The device tool sends the tracked files, the untracked files git does not ignore
(``git ls-files -co --exclude-standard``) and every path named in ``carry``; all together
must stay under 64 MiB. This sums them, prints the total and the biggest items, and exits
1 above the limit (default 60 MiB, leaving a margin), 2 when a carry path is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

MIB = 2**20


def payload(root: Path, carry: list[str]) -> dict[str, int]:
    """Bytes per file that the device tool would send (paths relative to root)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                         capture_output=True, check=True).stdout.decode()
    sizes: dict[str, int] = {}
    for rel in filter(None, out.split("\0")):
        p = root / rel
        if p.is_file() and not p.is_symlink():  # deleted tracked files are not sent
            sizes[rel] = p.stat().st_size
    for c in carry:
        base = root / c
        files = [base] if base.is_file() else [Path(d) / f for d, _, fs in os.walk(base) for f in fs]
        for p in files:
            if p.is_file() and not p.is_symlink():
                sizes[p.relative_to(root).as_posix()] = p.stat().st_size  # counted once
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--carry", action="append", default=[], help="a path the call carries (repeat)")
    p.add_argument("--limit-mib", type=float, default=60.0, help="fail above this (default 60)")
    p.add_argument("--top", type=int, default=10, help="how many of the biggest files to list")
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                   help="repository root (default: this script's repository)")
    a = p.parse_args(argv)
    missing = [c for c in a.carry if not (a.root / c).exists()]
    if missing:
        print(f"ERROR: carry path(s) missing: {', '.join(missing)} (e.g. mkdir -p .data && "
              f"cp ../shared/data/cifar10_jpeg_compact.npz .data/)", file=sys.stderr)
        return 2
    sizes = payload(a.root, a.carry)
    total = sum(sizes.values())
    carried = sum(n for f, n in sizes.items()
                  if any(f == c.rstrip("/") or f.startswith(c.rstrip("/") + "/") for c in a.carry))
    print(f"payload: {total / MIB:.1f} MiB in {len(sizes)} files "
          f"(working tree {(total - carried) / MIB:.1f} MiB, carried {carried / MIB:.1f} MiB); "
          f"limit {a.limit_mib:g} MiB")
    for f, n in sorted(sizes.items(), key=lambda kv: -kv[1])[:a.top]:
        print(f"  {n / MIB:8.2f} MiB  {f}")
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=a.root, capture_output=True,
                           text=True).stdout.strip()
    if dirty:
        print("WARNING: the working tree differs from HEAD (git status): the tree that travels is "
              "not the commit the results will name; commit first")
    if total > a.limit_mib * MIB:
        print(f"ERROR: {total / MIB:.1f} MiB exceeds {a.limit_mib:g} MiB: carry only "
              f".data/cifar10_jpeg_compact.npz (not cifar10_jpeg.npz), and commit or ignore big "
              f"untracked files", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
