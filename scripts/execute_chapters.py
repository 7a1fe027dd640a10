"""Execute the book's chapters with papermill, in _toc.yml order.

Each chapter's source is a MyST-markdown notebook ``notebooks/<name>.md``. It is
converted with jupytext, executed by papermill with ``profile`` injected, and
written as ``notebooks/<name>.ipynb``: the executed notebook the book renders
and the reference outputs that nbval checks. Any cell error stops the run with
a non-zero exit status.

    python scripts/execute_chapters.py                   # every chapter, profile quick
    python scripts/execute_chapters.py --profile full    # recompute (may need a GPU)
    python scripts/execute_chapters.py notebooks/ch01_sam.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill as pm
import yaml

ROOT = Path(__file__).resolve().parents[1]


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
    """Convert one chapter with jupytext and execute it with papermill."""
    if not src.exists():
        raise SystemExit(f"chapter source not found: {src}")
    nb = jupytext.read(src)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,md:myst"
    dst = src.with_suffix(".ipynb")
    tmp = dst.with_name(f".{dst.stem}.input.ipynb")
    jupytext.write(nb, tmp)
    try:
        pm.execute_notebook(
            str(tmp),
            str(dst),
            parameters={"profile": profile},
            kernel_name=kernel,
            cwd=str(src.parent),
            progress_bar=False,
            request_save_on_cell_execute=False,
        )
    finally:
        tmp.unlink(missing_ok=True)
    _tidy(dst)
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
    ap.add_argument("--profile", default="quick", help="papermill parameter 'profile' (quick | full)")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--list", action="store_true", help="print the chapter sources and exit")
    args = ap.parse_args(argv)
    chapters = [c.resolve() for c in args.chapters] or toc_chapters()
    if args.list:
        print("\n".join(str(c.relative_to(ROOT)) for c in chapters))
        return 0
    for src in chapters:
        t0 = time.perf_counter()
        print(f"executing {src.relative_to(ROOT)} (profile={args.profile}) ...", flush=True)
        try:
            execute(src, args.profile, args.kernel)
        except pm.PapermillExecutionError as e:
            print(f"FAILED: {src.name}: cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
            return 1
        print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
