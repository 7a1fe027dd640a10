"""Record files that must survive: refused records kept aside, results never lost to a
late filesystem error.

A record this code cannot read (it does not parse, or it is from a newer schema) is
renamed ``<run_id>.json.refused`` and its run refused while that file stays; any other bad
record is renamed the same way and recomputed. Nothing is deleted. Before training the
result path is checked (:func:`check_result_path`); a record that cannot be written after
training is kept in a temp file that the error names (:func:`save_or_fallback`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .config import RunConfig
from .store import (
    SCHEMA_VERSION,
    check_writable,
    parse_record,
    read_result,
    validate_record,
    write_json_atomic,
)

ASIDE = ".refused"  # <run_id>.json.refused[.N]: a record this code must not overwrite


def move_aside(path: Path) -> Path:
    """Rename ``path`` to a free ``<name>.refused[.N]`` beside it (never deleting anything)."""
    for i in range(1000):
        dest = path.with_name(path.name + ASIDE + (f".{i}" if i else ""))
        if not dest.exists():
            os.rename(path, dest)
            return dest
    raise FileExistsError(f"{path}: 1000 refused copies already beside it; clear them")


def _who_reads(path: Path) -> str:
    """Which checkout wrote (and so reads) the record at ``path``, as far as it says."""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        rec = json.loads(path.read_text())  # lenient: just for the message
        git = rec["provenance"].get("git") or {}
        return (f"schema {rec.get('schema_version')!r}, written by commit "
                f"{git.get('commit', '?')}")
    return "it does not parse"


def finished_records(folder: Path, configs: list[RunConfig], sweep: str
                     ) -> dict[str, dict[str, Any] | None | bool]:
    """Each config's run id -> its valid record, None (to compute) or False (refused).

    A record that does not parse or comes from a newer schema is moved aside to
    ``<run_id>.json.refused`` and its run refused (False) while that file is there: this
    code cannot read it and must not overwrite it. Any other bad record is moved aside and
    the run recomputed. Each case is named in a warning.
    """
    out: dict[str, dict[str, Any] | None | bool] = {}
    for c in configs:
        rid = c.run_id()
        path = folder / f"{rid}.json"
        if path.is_dir():  # not a record: check_result_path refuses it before training
            out[rid] = None
            continue
        rec, why = validate_record(path, c, sweep)
        if why:
            dest = move_aside(path)
            print(f"[{sweep}] WARNING {why}; moved to {dest.name}")
        blocker = _blocked(folder, rid) if rec is None else None
        if blocker is not None:
            print(f"[{sweep}] WARNING {rid}: refused, not recomputed: {blocker.name} "
                  f"({_who_reads(blocker)}) needs a checkout that reads it; move it back "
                  "and use that checkout, or delete it to recompute")
            out[rid] = False
        else:
            if why:
                print(f"[{sweep}] {rid} will be recomputed")
            out[rid] = rec
    return out


def _blocked(folder: Path, rid: str) -> Path | None:
    """A refused record of ``rid`` this code cannot read (unparsable or newer schema)."""
    for p in sorted(folder.glob(f"{rid}.json{ASIDE}*")):
        try:
            v = parse_record(p.read_text()).get("schema_version", 1)
        except (OSError, ValueError, AttributeError):
            return p
        if not isinstance(v, int) or v > SCHEMA_VERSION:
            return p
    return None


def served_records(folder: Path, configs: list[RunConfig] | None, sweep: str
                   ) -> list[dict[str, Any]]:
    """The records the chapters may use: valid ones of the sweep's runs, in its order.

    With the sweep's configs known, files of runs outside it are refused (not served);
    with no configs, a self-consistent file (name = run id) is served. Every refused file
    is named in a warning; nothing is moved or deleted here.
    """
    import warnings

    known = {c.run_id(): c for c in configs or []}
    recs: dict[str, dict[str, Any]] = {}
    for p in sorted(Path(folder).glob("*.json")):
        if p.stem in known:
            rec, why = validate_record(p, known[p.stem], sweep)
        elif configs is not None:
            rec, why = None, f"{p}: run {p.stem!r} is not in sweep {sweep!r}"
        else:
            rec = read_result(p)
            why = "" if rec is not None and rec.get("run_id") == p.stem else (
                f"{p}: unreadable, unfinished or its run_id is not its file name")
        if why:
            warnings.warn(f"refused {why}; move it away or re-run the sweep", stacklevel=3)
        if rec is not None:
            recs[p.stem] = rec
    ordered = [recs.pop(i) for i in known if i in recs]
    return ordered + list(recs.values())


def check_result_path(path: Path) -> None:
    """Before training: ``path`` can be created as a file (no folder in the way; the folder
    is writable, read-only filesystems included). Raises OSError naming the path and fix."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder where the run's result file goes; move "
                                "it away (or pass another --results DIR)")
    check_writable(path.parent)


class RecordNotSaved(OSError):
    """The record could not be written; the message names the fallback file that holds it."""


def save_or_fallback(path: Path, rec: dict[str, Any]) -> None:
    """Write ``rec`` to ``path``; if that fails, to a temp file, and raise naming it."""
    try:
        write_json_atomic(path, rec)
    except OSError as e:
        fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}.", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(rec, f, indent=1, allow_nan=False)
        raise RecordNotSaved(e.errno, f"could not write {path} ({e.strerror}); the record "
                             f"is kept in {tmp}: copy it there once fixed") from None
