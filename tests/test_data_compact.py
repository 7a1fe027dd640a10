"""The compact CIFAR-10 JPEG file: same JPEG bytes as the large file, one shared header."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_data import make_jpeg_npz

from sam_hallucination.data import (
    DATASETS,
    decode_jpegs,
    expand_compact,
    file_hash,
    jpeg_bytes,
    load_dataset,
)
from sam_hallucination.data.sources import data_dir

SHARED = data_dir()
LARGE, COMPACT = SHARED / "cifar10_jpeg.npz", SHARED / "cifar10_jpeg_compact.npz"


def compact_from(large: Path, out: Path) -> None:
    """Write the compact layout of a large-layout .npz (as shared/data/README.md says)."""
    z = np.load(large)
    parts = {}
    header = None
    for split in ("train", "test"):
        buf, off = z[f"{split}_jpeg"], z[f"{split}_offsets"]
        files = [bytes(buf[off[i]:off[i + 1]]) for i in range(len(off) - 1)]
        h = len(files[0])
        for f in files[1:]:  # the longest common prefix
            h = next((k for k in range(min(h, len(f))) if f[k] != files[0][k]), min(h, len(f)))
        header = files[0][:h] if header is None else header[:min(h, len(header))]
        parts[split] = files
    assert header is not None
    for split, files in parts.items():
        tails = [f[len(header):] for f in files]
        parts[split] = (np.frombuffer(b"".join(tails), np.uint8),
                        np.concatenate([[0], np.cumsum([len(t) for t in tails])]).astype(np.int64))
    np.savez(out, jpeg_header=np.frombuffer(header, np.uint8),
             train_scan=parts["train"][0], train_offsets=parts["train"][1],
             train_labels=z["train_labels"], test_scan=parts["test"][0],
             test_offsets=parts["test"][1], test_labels=z["test_labels"], classes=z["classes"])


def test_expand_compact_rebuilds_whole_files():
    header = np.array([1, 2, 3], np.uint8)
    scan = np.array([9, 8, 7, 6], np.uint8)
    buf, off = expand_compact(header, scan, np.array([0, 1, 1, 4]))
    assert off.tolist() == [0, 4, 7, 13]
    assert buf.tolist() == [1, 2, 3, 9, 1, 2, 3, 1, 2, 3, 8, 7, 6]
    with pytest.raises(ValueError, match="offsets"):
        expand_compact(header, scan, np.array([0, 2, 1, 4]))


def test_compact_file_loads_like_the_large_one(tmp_path):
    (tmp_path / "large").mkdir()
    (tmp_path / "both").mkdir()
    make_jpeg_npz(tmp_path / "large" / "x.npz")
    compact_from(tmp_path / "large" / "x.npz", tmp_path / "c.npz")
    a = load_dataset("cifar10-jpeg", root=tmp_path / "large" / "x.npz", cache_dir=tmp_path / "c1")
    b = load_dataset("cifar10-jpeg", root=tmp_path / "c.npz", cache_dir=tmp_path / "c2")
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert a.classes == b.classes


def test_folder_prefers_the_compact_file(tmp_path):
    spec = DATASETS["cifar10-jpeg"]
    assert spec.file == "cifar10_jpeg_compact.npz" and spec.alt_files == ("cifar10_jpeg.npz",)
    # both names present under the registry's names: the compact one is read (and hash-checked)
    make_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    compact_from(tmp_path / "cifar10_jpeg.npz", tmp_path / "cifar10_jpeg_compact.npz")
    with pytest.raises(ValueError, match="cifar10_jpeg_compact.npz is corrupted"):
        load_dataset("cifar10-jpeg", root=tmp_path, cache_dir=tmp_path / "c")


@pytest.mark.skipif(not (LARGE.exists() and COMPACT.exists()), reason="shared CIFAR files absent")
def test_shared_compact_file_hash_and_bytes_match_the_large_file():
    assert f"sha256:{file_hash(COMPACT)}" == DATASETS["cifar10-jpeg"].hashes[COMPACT.name]
    big, small = dict(np.load(LARGE)), dict(np.load(COMPACT))
    for split, n in (("train", 50_000), ("test", 10_000)):
        np.testing.assert_array_equal(big[f"{split}_labels"], small[f"{split}_labels"])
        buf_a, off_a = jpeg_bytes(big, split)
        buf_b, off_b = jpeg_bytes(small, split)
        np.testing.assert_array_equal(off_a, off_b)  # every file has the same length...
        np.testing.assert_array_equal(buf_a, buf_b)  # ...and the same bytes
        assert len(off_a) == n + 1
        for sl in (slice(0, 300), slice(n - 200, n)):  # decoded pixels on slices
            i, j = sl.start, sl.stop
            xa = decode_jpegs(buf_a[off_a[i]:off_a[j]], off_a[i:j + 1] - off_a[i], workers=1)
            xb = decode_jpegs(buf_b[off_b[i]:off_b[j]], off_b[i:j + 1] - off_b[i], workers=1)
            np.testing.assert_array_equal(xa, xb)
            assert xa.shape == (j - i, 32, 32, 3)
