"""scripts/build_cifar10_jpeg.py on a small archive in the official format (pickled batches in
a tar.gz): quality-75 baseline JPEGs sorted by class, one shared header, the compact file's
format, and an image-by-image report against a reference copy."""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data import make_cifar10

import sam_hallucination.data.registry as R
from sam_hallucination.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_cifar10_jpeg as build  # noqa: E402


@pytest.fixture
def archive(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "official"
    root.mkdir()
    make_cifar10(root)
    md5 = hashlib.md5((root / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(R.DATASETS["cifar10"].hashes, "cifar-10-python.tar.gz", f"md5:{md5}")
    return root


def test_builds_the_compact_format_sorted_by_class(archive, tmp_path, capsys):
    out = tmp_path / "copy.npz"
    assert build.main(["--root", str(archive), "--out", str(out)]) == 1  # not the real copy
    assert "differs from the committed copy" in capsys.readouterr().out
    got = dict(np.load(out))
    official = load_dataset("cifar10", root=archive)
    order = np.argsort(official.y_train, kind="stable")
    assert got["train_labels"].tolist() == official.y_train[order].tolist()
    assert len(got["test_offsets"]) == len(official.y_test) + 1
    # image i = header + its scan bytes: a quality-75 baseline JPEG of the i-th sorted image
    header = bytes(got["jpeg_header"])
    o = got["train_offsets"]
    jpeg = header + bytes(got["train_scan"][o[0]:o[1]])
    assert jpeg == build.encode(official.x_train[order[0]])
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG" and im.size == (32, 32) and "progressive" not in im.info
    # the copy loads as the project's data set
    ds = load_dataset("cifar10-jpeg", root=out, cache_dir=tmp_path / "cache")
    assert ds.x_train.shape == official.x_train.shape and ds.classes == official.classes


def test_reports_how_many_images_are_byte_identical(archive, tmp_path, capsys):
    out, ref = tmp_path / "copy.npz", tmp_path / "reference.npz"
    build.main(["--root", str(archive), "--out", str(ref)])
    assert build.main(["--root", str(archive), "--out", str(out), "--against", str(ref)]) == 0
    assert "every image is byte-identical" in capsys.readouterr().out
    other = dict(np.load(ref))
    other["test_scan"] = other["test_scan"].copy()
    other["test_scan"][-1] ^= 0xFF  # the last test image's last byte
    np.savez(ref, **other)
    assert build.main(["--root", str(archive), "--out", str(out), "--against", str(ref)]) == 1
    text = capsys.readouterr().out
    n = len(other["test_offsets"]) - 1
    assert f"test: {n - 1} of {n} images byte-identical" in text and "train:" not in text
