"""Did building the book change a committed executed notebook beyond what may vary?

``make book`` re-executes every chapter into ``notebooks/*.ipynb``. This script compares
each one with its committed version (``git show <rev>:notebooks/<name>.ipynb``) and fails
if code and references disagree:

* cell sources must be identical;
* outputs of cells nbval checks (``# NBVAL_CHECK_OUTPUT``) must be identical after the
  sanitizers nbval uses (``tests/nbval_sanitize.cfg``): what nbval would compare;
* every other text output (stream, ``text/plain``, ``text/html``, ``text/markdown``, and the
  values ``glue()`` records for the prose, ``application/papermill.record/text/plain``) must
  have the same words and structure after those sanitizers, and every number must agree
  to a relative tolerance (``--rtol``, default 1e-3) or an absolute one (``--atol``, for
  numbers near 0).

What may legitimately vary is left out: images (PNG bytes change with the last digit of any
plotted value), timings and addresses (the sanitizers), and the last digits of floats in
unchecked outputs (rounding differs between CPUs: a plain ``git diff --exit-code`` fails
on an Intel machine against references made on an AMD one). Output counts per cell must
match (an output appearing or vanishing is a change).

    python scripts/notebook_drift.py                 # against HEAD, every chapter
    python scripts/notebook_drift.py --rev main notebooks/ch03_convergence.ipynb

Exit status 0: no drift; 1: drift (each difference is listed); 2: usage error.
"""

from __future__ import annotations

import argparse
import configparser
import json
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
TEXT_MIMES = ("text/plain", "text/html", "text/markdown")
CHECK_MARK = "NBVAL_CHECK_OUTPUT"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def sanitizers(path: Path = SANITIZE) -> list[tuple[re.Pattern[str], str]]:
    """The (regex, replacement) pairs of nbval's sanitize file, in file order."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path)
    return [(re.compile(cp[s]["regex"]), cp[s]["replace"]) for s in cp.sections()]


def sanitize(text: str, subs: list[tuple[re.Pattern[str], str]]) -> str:
    for rx, rep in subs:
        text = rx.sub(rep, text)
    return text


def output_texts(cell: dict) -> list[str]:
    """One string per output of a code cell (text parts only; images are skipped)."""
    out = []
    for o in cell.get("outputs", []):
        kind = o.get("output_type")
        if kind == "stream":
            out.append(f"[{o.get('name')}] " + _join(o.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            data = o.get("data", {})
            # glue() records (application/papermill.record/text/plain) are text too
            parts = [f"<{m}> " + _join(data[m]) for m in sorted(data)
                     if m.endswith(TEXT_MIMES)]
            out.append("\n".join(parts))
        elif kind == "error":
            out.append(f"[error] {o.get('ename')}: {o.get('evalue')}")
    return out


def _join(v: str | list[str]) -> str:
    return v if isinstance(v, str) else "".join(v)


def is_checked(cell: dict) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return CHECK_MARK in _join(cell.get("source", "")) or "nbval-check-output" in tags


def numbers_close(a: str, b: str, rtol: float, atol: float) -> bool:
    """Same text apart from numbers, and each pair of numbers within the tolerances."""
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    for x, y in zip(NUMBER.findall(a), NUMBER.findall(b), strict=True):
        fx, fy = float(x), float(y)
        if not math.isclose(fx, fy, rel_tol=rtol, abs_tol=atol):
            return False
    return True


def first_difference(a: str, b: str) -> tuple[str, str]:
    for la, lb in zip(a.splitlines(), b.splitlines(), strict=False):
        if la != lb:
            return la, lb
    return a[-200:], b[-200:]


def compare(ref: dict, new: dict, name: str, subs, rtol: float, atol: float) -> list[str]:
    """Differences between two notebooks, one line each."""
    problems = []
    rc = [c for c in ref["cells"]]
    nc = [c for c in new["cells"]]
    if [(c["cell_type"], _join(c["source"])) for c in rc] != \
            [(c["cell_type"], _join(c["source"])) for c in nc]:
        return [f"{name}: cell sources differ (re-execute the chapter and commit it)"]
    for i, (a, b) in enumerate(zip(rc, nc, strict=True)):
        if a["cell_type"] != "code":
            continue
        ta = [sanitize(t, subs) for t in output_texts(a)]
        tb = [sanitize(t, subs) for t in output_texts(b)]
        if len(ta) != len(tb):
            problems.append(f"{name} cell {i}: {len(ta)} text outputs committed, {len(tb)} now")
            continue
        checked = is_checked(a)
        for x, y in zip(ta, tb, strict=True):
            same = x == y if checked else numbers_close(x, y, rtol, atol)
            if not same:
                old, now = first_difference(x, y)
                kind = "checked output" if checked else "output"
                problems.append(f"{name} cell {i} ({kind}): committed {old.strip()[:160]!r}, "
                                f"now {now.strip()[:160]!r}")
    return problems


def committed(path: Path, rev: str) -> dict:
    rel = path.resolve().relative_to(ROOT).as_posix()
    text = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    return json.loads(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="executed notebooks (default: notebooks/*.ipynb)")
    p.add_argument("--rev", default="HEAD", help="the committed revision (default HEAD)")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance (unchecked)")
    p.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance (unchecked)")
    a = p.parse_args(argv)
    if not (a.rtol >= 0 and a.atol >= 0):
        p.error("--rtol and --atol must be >= 0")
    paths = a.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    subs = sanitizers()
    problems: list[str] = []
    for path in paths:
        try:
            ref = committed(path, a.rev)
        except subprocess.CalledProcessError:
            problems.append(f"{path.name}: not committed at {a.rev}")
            continue
        problems += compare(ref, json.loads(path.read_text()), path.name, subs, a.rtol, a.atol)
    for line in problems:
        print(line)
    print(f"notebook drift: {len(problems)} difference(s) in {len(paths)} notebook(s) "
          f"against {a.rev}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
