"""The IDX file format (MNIST, Fashion-MNIST): ``.gz`` or raw, unsigned bytes only."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from .registry import DataIntegrityError


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) of unsigned bytes into a numpy array."""
    data = _read_bytes(Path(path))
    return _parse_idx(data, Path(path))


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataIntegrityError(f"{path} is not a valid gzip file ({e})") from e
    return raw


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataIntegrityError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    n = int(np.prod(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != n:
        raise DataIntegrityError(f"{path} is truncated: {body.size} bytes for shape {dims}")
    return body.reshape(dims)
