"""The decoded-image cache: written with checks of its own contents, verified before use.

A cache file (uncompressed ``.npz``) holds the decoded arrays plus what it needs to check
itself: the hash of the source it was decoded from, the split sizes and image shape, the
training label counts and a CRC-32 of the arrays. :func:`read_checked_cache` returns the
arrays only if every check passes (else the reason, and the caller decodes again);
:func:`write_checked_cache` writes atomically and only warns when the folder is unwritable.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

# A corrupt .npz raises any of these (a truncated zip: BadZipFile; a bad member: zlib.error).
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)
_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def check_decoded(a: dict[str, np.ndarray]) -> None:
    """ValueError unless images and labels agree in number and labels index the classes."""
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.ndim != 4 or len(x) != len(y):
            raise ValueError(f"{split}: {len(y)} labels for images of shape {x.shape}")
        if len(y) and not (0 <= y.min() and y.max() < len(a["classes"])):
            raise ValueError(f"{split} labels outside 0..{len(a['classes']) - 1}")


def _content_checks(arrs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What a cache records about its own arrays: shapes, label counts, a CRC-32 checksum."""
    crc = 0
    for k in _ARRAYS[:4]:
        crc = zlib.crc32(np.ascontiguousarray(arrs[k]).data, crc)
    return {"check_shapes": np.asarray([arrs[k].shape[0] for k in _ARRAYS[:4]]
                                       + list(arrs["x_train"].shape[1:])),
            "check_label_counts": np.bincount(arrs["y_train"], minlength=len(arrs["classes"])),
            "check_crc32": np.asarray(crc, dtype=np.int64)}


def read_checked_cache(cfile: Path, source_hash: str | None
                       ) -> tuple[dict[str, np.ndarray] | None, str]:
    """A decoded-image cache's arrays, or ``(None, why)`` if it fails any of its checks.

    Checks: it loads (not truncated, not a bad zip), it was decoded from ``source_hash``
    (when known), and its shapes, label counts and CRC-32 match what it recorded.
    """
    try:
        with np.load(cfile, allow_pickle=False) as z:
            arrs = {k: z[k] for k in _ARRAYS}
            stored = {k: z[k] for k in ("check_shapes", "check_label_counts", "check_crc32",
                                        "source_hash")}
    except KeyError as e:
        return None, f"no {e} entry: written by an older version"
    except NPZ_ERRORS as e:
        return None, f"{type(e).__name__}: {e}"
    if source_hash is not None and str(stored.pop("source_hash")) != source_hash:
        return None, "decoded from another source file"
    try:
        got = _content_checks(arrs)
    except (ValueError, TypeError, IndexError) as e:
        return None, f"malformed arrays ({e})"
    for k, v in got.items():
        if not np.array_equal(v, stored[k]):
            return None, f"{k.removeprefix('check_')} differ from the recorded ones"
    return arrs, ""


def write_checked_cache(cache: Path, cfile: Path, arrs: dict[str, np.ndarray],
                        source_hash: str) -> None:
    """Write the cache atomically with its checks; an unwritable folder only warns."""
    import warnings

    tmp = None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        # Uncompressed .npz: loads in well under a second. Atomic write (temp + replace).
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{cfile.stem}.", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrs, **_content_checks(arrs), source_hash=np.asarray(source_hash))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache must be readable
        os.replace(tmp, cfile)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"cannot write the decoded-image cache in {cache} ({e.strerror or e}); "
                      "going on without a cache (set SAM_CACHE_DIR to a writable folder)",
                      stacklevel=3)
