"""Execute the book's chapters with papermill, in _toc.yml order.

Each chapter's source is a MyST-markdown notebook ``notebooks/<name>.md``. It is
converted with jupytext, executed by papermill with ``profile`` injected, and
written as ``notebooks/<name>.ipynb``: the executed notebook the book renders
and the reference outputs that nbval checks. Any cell error stops the run with
a non-zero exit status.

The chapter executes into a temporary folder; the committed ``.ipynb`` is replaced
only when every cell succeeded, so a failed chapter leaves the tree untouched and
the failed notebook is kept (its path is printed) for reading the traceback.

    python scripts/execute_chapters.py                   # every chapter, profile quick
    python scripts/execute_chapters.py --profile full    # recompute (may need a GPU)
    python scripts/execute_chapters.py notebooks/ch01_sam.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
import papermill as pm
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Every chapter's ``profile`` parameter takes one of these (tests/test_execute_chapters.py
# checks the library's per-chapter PROFILES tables have exactly these keys).
PROFILES = ("quick", "full")


class ChapterFailed(Exception):
    """A chapter did not execute; ``kept`` is the failed notebook, outside the tree."""

    def __init__(self, message: str, kept: Path) -> None:
        super().__init__(message)
        self.kept = kept


def toc_chapters(toc_path: Path = ROOT / "_toc.yml") -> list[Path]:
    """Chapter sources (``notebooks/*.md``) in _toc.yml order."""
    toc = yaml.safe_load(toc_path.read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    out = []
    for f in files:
        src = ROOT / (Path(f).with_suffix("").as_posix() + ".md")
        if src.parent.name == "notebooks":
            out.append(src)
    return out


def execute(src: Path, profile: str, kernel: str = "python3") -> Path:
    """Convert one chapter with jupytext, execute it with papermill, and only on success
    replace ``notebooks/<name>.ipynb``; on failure raise :class:`ChapterFailed`."""
    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    if not src.exists():
        raise SystemExit(f"chapter source not found: {src}")
    nb = jupytext.read(src)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,md:myst"
    dst = src.with_suffix(".ipynb")
    work = Path(tempfile.mkdtemp(prefix=f"chapter-{src.stem}-"))
    tmp_in, tmp_out = work / f"{src.stem}.input.ipynb", work / dst.name
    jupytext.write(nb, tmp_in)
    try:
        pm.execute_notebook(
            str(tmp_in),
            str(tmp_out),
            parameters={"profile": profile},
            kernel_name=kernel,
            cwd=str(src.parent),
            progress_bar=False,
            request_save_on_cell_execute=False,
        )
    except Exception as e:  # a cell error, a dead kernel, a bad kernel name...
        tmp_in.unlink(missing_ok=True)
        what = (f"cell {e.exec_count}: {e.ename}: {e.evalue}"
                if isinstance(e, pm.PapermillExecutionError) else f"{type(e).__name__}: {e}")
        raise ChapterFailed(what, tmp_out) from e
    _tidy(tmp_out)
    # Copy beside the target, then rename: the committed file is replaced in one step.
    staged = dst.with_name(f".{dst.name}.new")
    shutil.copyfile(tmp_out, staged)
    os.replace(staged, dst)
    shutil.rmtree(work, ignore_errors=True)
    return dst


def _merge_streams(outputs: list) -> list:
    """Join consecutive stream outputs of the same name (their split varies from run to run)."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None
                and prev.get("output_type") == "stream" and prev.get("name") == out.get("name")):
            prev["text"] = prev["text"] + out["text"]
        else:
            merged.append(out)
    return merged


def _tidy(path: Path) -> None:
    """Make the executed notebook diff cleanly: drop timings and machine paths, merge split
    streams, give cells stable ids, and tag
    papermill's injected cell ``remove-cell`` so the book does not show the parameters twice."""
    nb = nbformat.read(path, as_version=4)
    for key in ("start_time", "end_time", "duration", "exception", "input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{path.stem[:4]}-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("chapters", nargs="*", type=Path, help="chapter sources (default: all, in _toc.yml order)")
    ap.add_argument("--profile", default="quick", choices=PROFILES,
                    help="papermill parameter 'profile' (quick: load results; full: recompute)")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--list", action="store_true", help="print the chapter sources and exit")
    args = ap.parse_args(argv)
    chapters = [c.resolve() for c in args.chapters] or toc_chapters()
    if args.list:
        print("\n".join(str(c.relative_to(ROOT)) for c in chapters))
        return 0
    for src in chapters:
        t0 = time.perf_counter()
        shown = src.relative_to(ROOT) if src.is_relative_to(ROOT) else src
        print(f"executing {shown} (profile={args.profile}) ...", flush=True)
        try:
            execute(src, args.profile, args.kernel)
        except ChapterFailed as e:
            kept = e.kept if e.kept.exists() else e.kept.parent
            print(f"FAILED: {src.name}: {e}; {src.with_suffix('.ipynb').name} left unchanged, "
                  f"the failed notebook is kept at {kept}", file=sys.stderr)
            return 1
        print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
