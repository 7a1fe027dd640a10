"""Loaders read tiny archives in the official formats, built here (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam_hallucination import data as D
from sam_hallucination.data import (
    DataIntegrityError,
    DeviceLoader,
    ImageDataset,
    decode_jpegs,
    load_dataset,
    read_idx,
    subset,
    with_label_noise,
)

RNG = np.random.default_rng(0)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _add(tar: tarfile.TarFile, name: str, obj: dict) -> None:
    blob = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def make_cifar10(root: Path, per_batch: int = 4, n_test: int = 5) -> dict:
    """A tiny cifar-10-python.tar.gz: bytes keys, rows of 3072 = R plane, G, B."""
    parts = {}
    path = root / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch",
                                                                                  n_test)]:
            x = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            y = RNG.integers(0, 10, size=n).tolist()
            parts[name] = (x, y)
            _add(tar, f"cifar-10-batches-py/{name}", {b"data": x, b"labels": y})
        _add(tar, "cifar-10-batches-py/batches.meta",
             {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return parts


def make_cifar100(root: Path) -> dict:
    parts = {}
    with tarfile.open(root / "cifar-100-python.tar.gz", "w:gz") as tar:
        for name, n in (("train", 6), ("test", 3)):
            x = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            y = RNG.integers(0, 100, size=n).tolist()
            parts[name] = (x, y)
            _add(tar, f"cifar-100-python/{name}", {b"data": x, b"fine_labels": y,
                                                   b"coarse_labels": [0] * n})
        _add(tar, "cifar-100-python/meta",
             {b"fine_label_names": [f"f{i}".encode() for i in range(100)]})
    return parts


def idx_bytes(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def make_idx(root: Path, gz: bool = True) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, size=(7, 28, 28)),
        "train-labels-idx1-ubyte": RNG.integers(0, 10, size=7),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, size=(3, 28, 28)),
        "t10k-labels-idx1-ubyte": RNG.integers(0, 10, size=3),
    }
    raw_md5 = {}
    for stem, a in arrays.items():
        b = idx_bytes(a)
        raw_md5[stem] = hashlib.md5(b).hexdigest()
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(b))
        else:
            (root / stem).write_bytes(b)
    return {"arrays": arrays, "raw_md5": raw_md5}


def make_jpeg_npz(path: Path, n_train: int = 12, n_test: int = 6) -> None:
    def pack(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        blobs, labels = [], []
        for i in range(n):
            img = RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=75)
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
            labels.append(i % 10)
        offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        return np.concatenate(blobs), offsets, np.array(labels, dtype=np.uint8)

    tj, to, tl = pack(n_train)
    ej, eo, el = pack(n_test)
    np.savez(path, train_jpeg=tj, train_offsets=to, train_labels=tl, test_jpeg=ej,
             test_offsets=eo, test_labels=el,
             classes=np.array(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                               "horse", "ship", "truck"]))


def pil_decode(path: Path, split: str) -> np.ndarray:
    z = np.load(path)
    buf, off = z[f"{split}_jpeg"], z[f"{split}_offsets"]
    return np.stack([np.asarray(Image.open(io.BytesIO(buf[a:b].tobytes())).convert("RGB"))
                     for a, b in zip(off[:-1], off[1:], strict=True)])


# ----------------------------------------------------------------------------- CIFAR


def test_cifar10_archive_layout_and_hash(tmp_path, monkeypatch):
    parts = make_cifar10(tmp_path)
    monkeypatch.setitem(D.DATASETS["cifar10"].hashes, "cifar-10-python.tar.gz",
                        "md5:" + md5(tmp_path / "cifar-10-python.tar.gz"))
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.name == "CIFAR-10" and ds.key == "cifar10"
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (5, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    x0, y0 = parts["data_batch_1"]
    # official row layout: 1024 red, then green, then blue, row-major
    assert ds.x_train[0, 3, 5, 1] == x0[0, 1024 + 3 * 32 + 5]
    assert ds.x_train[0, 31, 0, 2] == x0[0, 2048 + 31 * 32]
    assert ds.y_train[:4].tolist() == y0
    assert ds.y_test.tolist() == parts["test_batch"][1]
    assert ds.classes == tuple(f"c{i}" for i in range(10))


def test_cifar10_official_hash_mismatch(tmp_path):
    make_cifar10(tmp_path)  # a tiny archive is not the official one
    with pytest.raises(DataIntegrityError, match="corrupted or not the official file"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar10_corrupted_archive(tmp_path, monkeypatch):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"\x1f\x8b not really a gzip stream")
    monkeypatch.setitem(D.DATASETS["cifar10"].hashes, path.name, "md5:" + md5(path))
    with pytest.raises(DataIntegrityError, match="not a valid CIFAR-10 python archive"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar_missing_file_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python\.tar\.gz.*toronto.*download"):
        load_dataset("cifar100", root=tmp_path)


def test_cifar_download_uses_pooch_with_known_hash(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    make_cifar10(src)
    calls = {}

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.update(url=url, known_hash=known_hash)
        dst = Path(path) / fname
        dst.write_bytes((src / fname).read_bytes())
        return str(dst)

    import pooch

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    monkeypatch.setitem(D.DATASETS["cifar10"].hashes, "cifar-10-python.tar.gz",
                        "md5:" + md5(src / "cifar-10-python.tar.gz"))
    ds = load_dataset("cifar10", root=tmp_path / "dl", download=True)
    assert calls["url"] == D.DATASETS["cifar10"].url
    assert calls["known_hash"] == D.DATASETS["cifar10"].hashes["cifar-10-python.tar.gz"]
    assert len(ds.y_train) == 20


def test_official_archive_hashes_are_the_toronto_ones():
    c10, c100 = D.DATASETS["cifar10"].hashes, D.DATASETS["cifar100"].hashes
    assert c10["cifar-10-python.tar.gz"] == "md5:c58f30108f718f92721af3b95e74349a"
    assert c100["cifar-100-python.tar.gz"] == "md5:eb9058c3a382ffc7106e4002c42a8d85"


def test_cifar100(tmp_path, monkeypatch):
    parts = make_cifar100(tmp_path)
    monkeypatch.setitem(D.DATASETS["cifar100"].hashes, "cifar-100-python.tar.gz",
                        "md5:" + md5(tmp_path / "cifar-100-python.tar.gz"))
    ds = load_dataset("cifar100", root=tmp_path)
    assert ds.name == "CIFAR-100" and ds.num_classes == 100
    assert ds.y_train.tolist() == parts["train"][1]
    assert ds.x_test[2, 7, 9, 0] == parts["test"][0][2, 7 * 32 + 9]


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_fashion_mnist(tmp_path, monkeypatch, gz):
    made = make_idx(tmp_path, gz=gz)
    for stem, md5_hex in made["raw_md5"].items():
        monkeypatch.setitem(D.DATASETS["fashion-mnist"].hashes, stem, "md5:" + md5_hex)
    ds = load_dataset("fashion-mnist", root=tmp_path)
    assert ds.name == "Fashion-MNIST" and ds.x_train.shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], made["arrays"]["train-images-idx3-ubyte"])
    assert ds.y_test.tolist() == made["arrays"]["t10k-labels-idx1-ubyte"].tolist()
    assert ds.classes[0] == "T-shirt/top" and ds.image_shape == (1, 28, 28)


def test_idx_hash_mismatch(tmp_path):
    make_idx(tmp_path)  # random content: not the official MNIST files
    with pytest.raises(DataIntegrityError, match="corrupted or not the official MNIST"):
        load_dataset("mnist", root=tmp_path)


def test_idx_truncated_and_bad_gzip(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(idx_bytes(np.arange(10))[:-3])
    with pytest.raises(DataIntegrityError, match="truncated"):
        read_idx(p)
    g = tmp_path / "y.gz"
    g.write_bytes(b"garbage")
    with pytest.raises(DataIntegrityError, match="not a valid gzip"):
        read_idx(g)


def test_idx_missing_names_apt_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="ossci-datasets"):
        load_dataset("mnist", root=tmp_path)


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="cifar10-jpeg.*fashion-mnist"):
        load_dataset("imagenet")


# ----------------------------------------------------------------------------- JPEG copy


def test_jpeg_copy_decode_and_cache(tmp_path, monkeypatch):
    npz = tmp_path / "tiny_jpeg.npz"
    make_jpeg_npz(npz)
    cache = tmp_path / "cache"
    ds = load_dataset("cifar10-jpeg", root=npz, cache_dir=cache)
    assert ds.name == "CIFAR-10 (JPEG copy)"
    np.testing.assert_array_equal(ds.x_train, pil_decode(npz, "train"))
    np.testing.assert_array_equal(ds.x_test, pil_decode(npz, "test"))
    assert ds.y_train.tolist() == [i % 10 for i in range(12)] and ds.classes[1] == "automobile"
    assert len(list(cache.glob("cifar10_jpeg_*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(D.sources, "decode_jpegs", boom)
    again = load_dataset("cifar10-jpeg", root=npz, cache_dir=cache)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_jpeg_parallel_decode_matches_serial(tmp_path):
    npz = tmp_path / "t.npz"
    make_jpeg_npz(npz, n_train=10, n_test=2)
    z = np.load(npz)
    serial = decode_jpegs(z["train_jpeg"], z["train_offsets"], workers=1)
    parallel = decode_jpegs(z["train_jpeg"], z["train_offsets"], workers=2, chunk=3)
    np.testing.assert_array_equal(serial, parallel)
    assert serial.shape == (10, 32, 32, 3)


def test_jpeg_copy_sha256_checked(tmp_path):
    npz = tmp_path / "cifar10_jpeg.npz"  # the shared file's name: its sha256 is known
    make_jpeg_npz(npz)
    with pytest.raises(DataIntegrityError, match="sha256"):
        load_dataset("cifar10-jpeg", root=tmp_path, cache_dir=tmp_path / "c")


def test_jpeg_copy_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="SAM_DATA_DIR"):
        load_dataset("cifar10-jpeg", root=tmp_path, cache_dir=tmp_path)


# ----------------------------------------------------------------------------- subset, loader


def toy(n: int = 200, k: int = 4, hw: int = 8) -> ImageDataset:
    rng = np.random.default_rng(1)
    y = np.sort(rng.integers(0, k, size=n))  # sorted by class, like the JPEG copy
    x = rng.integers(0, 256, size=(n, hw, hw, 3), dtype=np.uint8)
    return ImageDataset("toy", x, y, x[:50], y[:50], tuple("abcd"[:k]))


def test_subset_balanced_and_deterministic():
    ds = toy()
    s = subset(ds, 40, 20, seed=3)
    assert np.bincount(s.y_train).tolist() == [10, 10, 10, 10]
    assert len(s.y_test) == 20
    s2 = subset(ds, 40, 20, seed=3)
    np.testing.assert_array_equal(s.x_train, s2.x_train)
    s3 = subset(ds, 40, 20, seed=4)
    assert not np.array_equal(s.x_train, s3.x_train)
    assert subset(ds, None).x_train.shape == ds.x_train.shape
    assert s.mean == ds.mean  # normalisation statistics are the parent's
    with pytest.raises(ValueError, match="n_train"):
        subset(ds, -3)


def test_label_noise_fraction():
    ds = toy()
    noisy = with_label_noise(ds, 0.25, seed=0)
    assert (noisy.y_train != ds.y_train).sum() == 50
    with pytest.raises(ValueError, match="label_noise"):
        with_label_noise(ds, 1.5)


def test_device_loader_eval_normalises_in_order():
    ds = toy()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    L = DeviceLoader(ds.x_train, ds.y_train, 64, mean=mean, std=std, train=False)
    batches = list(L)
    assert len(L) == 4 and [len(b[1]) for b in batches] == [64, 64, 64, 8]
    x0, y0 = batches[0]
    assert x0.shape == (64, 3, 8, 8) and x0.is_contiguous(memory_format=torch.channels_last)
    want = (ds.x_train[:64].astype(np.float32) / 255 - mean) / np.array(std, dtype=np.float32)
    np.testing.assert_allclose(x0.permute(0, 2, 3, 1).numpy(), want, rtol=1e-5, atol=1e-5)
    assert y0.tolist() == ds.y_train[:64].tolist()


def test_device_loader_train_shuffles_and_augments():
    ds = toy()
    L = DeviceLoader(ds.x_train, ds.y_train, 50, mean=(0, 0, 0), std=(1, 1, 1), train=True,
                     pad=0, flip=True, seed=0)
    xs, ys = zip(*L, strict=True)
    y = torch.cat(ys)
    assert sorted(y.tolist()) == sorted(ds.y_train.tolist())  # a permutation, drop_last exact
    assert y.tolist() != ds.y_train.tolist()
    # with pad=0 every image is the original or its mirror image
    orig = torch.as_tensor(ds.x_train).float().permute(0, 3, 1, 2) / 255
    flat = orig.flatten(1)
    flips = 0
    for xb in xs:
        for img in xb:
            same = (flat == img.flatten()).all(1).any()
            mirrored = (flat == img.flip(-1).flatten()).all(1).any()
            assert bool(same or mirrored)
            flips += bool(mirrored and not same)
    assert 50 < flips < 150
    # seeded: the same seed gives the same epoch; the next epoch differs
    L2 = DeviceLoader(ds.x_train, ds.y_train, 50, mean=(0, 0, 0), std=(1, 1, 1), seed=0, pad=2)
    L3 = DeviceLoader(ds.x_train, ds.y_train, 50, mean=(0, 0, 0), std=(1, 1, 1), seed=0, pad=2)
    a, b = next(iter(L2))[0], next(iter(L3))[0]
    assert torch.equal(a, b)
    assert not torch.equal(next(iter(L2))[0], a)


def test_device_loader_translate_is_a_shifted_crop():
    x = np.arange(1 * 6 * 6 * 1, dtype=np.uint8).reshape(1, 6, 6, 1)
    L = DeviceLoader(x, np.zeros(1), 1, mean=(0,), std=(1 / 255,), pad=1, flip=False, seed=5)
    seen = set()
    for _ in range(30):
        img = next(iter(L))[0][0, 0]
        padded = np.pad(x[0, :, :, 0].astype(np.float32), 1, mode="reflect")
        hits = [(dy, dx) for dy in range(3) for dx in range(3)
                if np.allclose(padded[dy:dy + 6, dx:dx + 6], img.numpy())]
        assert hits
        seen.add(hits[0])
    assert len(seen) > 3


def test_device_loader_bad_batch():
    ds = toy()
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(ds.x_train, ds.y_train, 1000, mean=(0,) * 3, std=(1,) * 3)


# ----------------------------------------------------------------------------- the registry


def test_a_new_dataset_is_one_registry_entry(monkeypatch):
    """Registering a spec is all it takes for load_dataset and the run config to know it."""
    from sam_hallucination.runs.config import RunConfig

    spec = D.DatasetSpec("tiny", "Tiny", 1024, "synthetic", augment=True)
    monkeypatch.setitem(D.DATASETS, "tiny", spec)
    ds = load_dataset("tiny")
    assert len(ds.y_train) == 1024
    cfg = RunConfig(dataset="tiny", model="mlp", n_train=64, batch_size=32)
    assert cfg.augments() is True
    assert RunConfig(dataset="synthetic", model="mlp", batch_size=32).augments() is False
