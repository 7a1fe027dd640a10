"""Where data sets come from: paths, hash checks, downloads, and one reader per source kind.

Every reader takes ``(spec, root, download, cache)`` and returns an
:class:`~.registry.ImageDataset`; :data:`READERS` maps a spec's ``source`` to its reader.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..checks import repo_root
from .cache import NPZ_ERRORS, check_decoded, read_checked_cache, write_checked_cache
from .idx import _parse_idx, _read_bytes
from .registry import DATASETS, IDX_FILES, DataIntegrityError, DatasetSpec, ImageDataset

FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# Where Debian's dataset-fashion-mnist package is looked for; tests point it elsewhere to
# see what a machine without the package sees.
FASHION_DIR_ENV = "SAM_FASHION_MNIST_DIR"


class DatasetUnavailable(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message is one line saying how."""


def fashion_debian_dir() -> Path:
    """Debian's Fashion-MNIST folder: $SAM_FASHION_MNIST_DIR, else /usr/share/datasets/..."""
    env = os.environ.get(FASHION_DIR_ENV)
    return Path(env).expanduser() if env else FASHION_DEBIAN_DIR


def data_dir() -> Path:
    """Default data folder: $SAM_DATA_DIR, else <repo root>/../shared/data."""
    env = os.environ.get("SAM_DATA_DIR")
    return Path(env).expanduser() if env else repo_root().parent / "shared" / "data"


def resolve_cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Cache folder: ``path``, else $SAM_CACHE_DIR, else ~/.cache/sam_hallucination."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("SAM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sam_hallucination"


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, known: str | None) -> None:
    """Check ``path`` against ``known`` ("algo:hex"); raise DataIntegrityError on mismatch."""
    if known is None:
        return
    algo, _, expected = known.partition(":")
    got = file_hash(path, algo)
    if got != expected:
        raise DataIntegrityError(
            f"{path} is corrupted or not the official file: {algo} {got}, expected {expected}. "
            f"Delete it and download it again.")


def _missing(path: Path, url: str | None, extra: str = "") -> FileNotFoundError:
    how = f"download it from {url} and put it at {path}" if url else f"put it at {path}"
    return FileNotFoundError(
        f"Data file {path.name} not found in {path.parent}: {how}, "
        f"or call load_dataset(..., download=True).{extra}")


def _fetch(fname: str, root: Path, url: str, known: str | None, download: bool) -> Path:
    """Return root/fname, verified; download it with pooch when allowed and missing."""
    path = root / fname
    if path.exists():
        verify_file(path, known)
        return path
    if not download:
        raise _missing(path, url)
    import pooch

    root.mkdir(parents=True, exist_ok=True)
    try:
        out = pooch.retrieve(url, known_hash=known, fname=fname, path=root, progressbar=False)
    except ValueError as e:  # pooch reports hash mismatches as ValueError
        raise DataIntegrityError(f"downloaded {fname} failed its hash check: {e}") from e
    except Exception as e:  # offline, HTTP error...
        raise FileNotFoundError(
            f"could not download {url} ({type(e).__name__}: {e}); put {fname} at {path}") from e
    return Path(out)


# ----------------------------------------------------------------------------- CIFAR


def _read_cifar_tar(path: Path, spec: DatasetSpec) -> ImageDataset:
    """Read an official CIFAR python archive without extracting it."""
    ten = spec.name == "cifar10"
    folder = "cifar-10-batches-py" if ten else "cifar-100-python"
    train_names = [f"data_batch_{i}" for i in range(1, 6)] if ten else ["train"]
    label_key = b"labels" if ten else b"fine_labels"
    try:
        with tarfile.open(path, "r:gz") as tar:
            def load(member: str) -> dict:
                f = tar.extractfile(f"{folder}/{member}")
                if f is None:
                    raise KeyError(member)
                # The official archives are pickles; the file's hash was checked first.
                return pickle.load(f, encoding="bytes")  # noqa: S301

            def split(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
                parts = [load(n) for n in names]
                x = np.concatenate([np.asarray(p[b"data"], dtype=np.uint8) for p in parts])
                y = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
                return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), y

            x_tr, y_tr = split(train_names)
            x_te, y_te = split(["test_batch" if ten else "test"])
            meta = load("batches.meta" if ten else "meta")
            names = meta[b"label_names" if ten else b"fine_label_names"]
    except (tarfile.TarError, EOFError, OSError, KeyError, pickle.UnpicklingError) as e:
        raise DataIntegrityError(
            f"{path} is not a valid {spec.display} python archive "
            f"({type(e).__name__}: {e}); delete it and download it again") from e
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return ImageDataset(spec.display, x_tr, y_tr, x_te, y_te, classes, spec.mean, spec.std,
                        key=spec.name)


# ----------------------------------------------------------------------------- IDX


def _idx_file(folder: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` in ``folder``, whichever exists (the .gz first)."""
    return next((p for p in (folder / f"{stem}.gz", folder / stem) if p.exists()), None)


def idx_folders(spec: DatasetSpec, cache: Path) -> list[Path]:
    """Where an IDX set is looked for, in order: Debian's folder (Fashion-MNIST), the data
    folder, the data cache (where :func:`locate_idx` downloads it)."""
    debian = [fashion_debian_dir()] if spec.name == "fashion-mnist" else []
    return [*debian, data_dir() / spec.name, cache / spec.name]


def locate_idx(spec: DatasetSpec, root: Path | None, download: bool | None, cache: Path
               ) -> list[Path]:
    """The four IDX files of ``spec``: in ``root``, else the first of :func:`idx_folders`
    holding all four, else downloaded (hash-checked) into the cache.

    ``download=None`` downloads only when no ``root`` was named and the spec allows it.
    Missing and not downloadable: :class:`DatasetUnavailable`, one line naming both ways.
    """
    folders = [root] if root is not None else idx_folders(spec, cache)
    for folder in folders:
        found = [_idx_file(folder, stem) for stem in IDX_FILES]
        if all(found):
            return found  # type: ignore[return-value]
    fetch = download if download is not None else (root is None and spec.auto_fetch)
    target = root if root is not None else cache / spec.name
    apt = " apt-get install dataset-fashion-mnist (Debian/Ubuntu), or" \
        if spec.name == "fashion-mnist" else ""
    looked = ", ".join(str(f) for f in folders)
    if fetch:
        try:
            return [_fetch(f"{stem}.gz", target, f"{spec.url}{stem}.gz",
                           spec.hashes[f"{stem}.gz"], True) for stem in IDX_FILES]
        except FileNotFoundError as e:  # offline or an HTTP error: the cause's type says which
            raise DatasetUnavailable(
                f"{spec.display} not found in {looked} and its download from {spec.url} "
                f"failed ({type(e.__cause__ or e).__name__}):{apt} rerun online to "
                f"fetch it into {target}") from e
    raise DatasetUnavailable(
        f"{spec.display} not found in {looked}:{apt} put the four IDX files "
        f"({', '.join(f'{s}.gz' for s in IDX_FILES)}) in {target}, "
        f"or call load_dataset(..., download=True) to fetch them from {spec.url}")


def _load_idx_set(spec: DatasetSpec, paths: list[Path]) -> ImageDataset:
    arrays = []
    for stem, path in zip(IDX_FILES, paths, strict=True):
        data = _read_bytes(path)
        # Verify the uncompressed content, so official and repackaged .gz files both pass.
        known = spec.hashes.get(stem)
        expected = known.partition(":")[2] if known else None
        if expected is not None and hashlib.md5(data).hexdigest() != expected:
            raise DataIntegrityError(
                f"{path} is corrupted or not the official {spec.display} file "
                f"(md5 of its content {hashlib.md5(data).hexdigest()}, expected {expected})")
        arrays.append(_parse_idx(data, path))
    x_tr, y_tr, x_te, y_te = arrays
    classes = spec.classes or tuple(str(i) for i in range(int(y_tr.max()) + 1))
    return ImageDataset(spec.display, x_tr[..., None].copy(), y_tr, x_te[..., None].copy(),
                        y_te, classes, spec.mean, spec.std, key=spec.name)


# ----------------------------------------------------------------------------- JPEG copy


def _decode_chunk(args: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Decode concatenated JPEGs; ``offsets`` are relative to ``buf``."""
    from PIL import Image

    buf, offsets = args
    n = len(offsets) - 1
    out: np.ndarray | None = None
    for i in range(n):
        # formats=["JPEG"] skips format probing: ~30% faster on 32x32 images
        with Image.open(io.BytesIO(buf[offsets[i]:offsets[i + 1]]), formats=["JPEG"]) as im:
            arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
        if out is None:
            out = np.empty((n, *arr.shape), dtype=np.uint8)
        out[i] = arr
    assert out is not None
    return out


def decode_jpegs(buf: np.ndarray, offsets: np.ndarray, workers: int | None = None,
                 chunk: int = 2500) -> np.ndarray:
    """Decode JPEG image i = buf[offsets[i]:offsets[i+1]] for all i, in parallel."""
    n = len(offsets) - 1
    jobs = []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        a, b = int(offsets[s]), int(offsets[e])
        jobs.append((buf[a:b], offsets[s:e + 1] - a))
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1 or len(jobs) == 1:
        parts = [_decode_chunk(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            parts = list(ex.map(_decode_chunk, jobs))
    return np.concatenate(parts)


def _load_jpeg_npz(path: Path, cache: Path, spec: DatasetSpec, verify: bool = True
                   ) -> ImageDataset:
    if not path.exists():
        raise FileNotFoundError(
            f"CIFAR-10 JPEG copy not found at {path}; set SAM_DATA_DIR to the folder holding "
            f"{' or '.join((spec.file, *spec.alt_files))} or pass root=... "
            f"(see shared/data/README.md)")
    st = path.stat()
    tag = f"cifar10_jpeg_{st.st_size}_{int(st.st_mtime)}"
    cfile = cache / f"{tag}.npz"
    known = spec.hashes.get(path.name)
    if cfile.exists():
        arrs, why = read_checked_cache(cfile, known)
        if arrs is not None:
            return _jpeg_dataset(arrs, spec)
        print(f"decoded-image cache {cfile} is not usable ({why}); decoding {path} again")
    if verify and known:
        verify_file(path, known)
    try:
        with np.load(path, allow_pickle=False) as z:
            src = {k: z[k] for k in z.files}
        arrs = {
            "x_train": decode_jpegs(*jpeg_bytes(src, "train")),
            "y_train": src["train_labels"].astype(np.int64),
            "x_test": decode_jpegs(*jpeg_bytes(src, "test")),
            "y_test": src["test_labels"].astype(np.int64),
            "classes": np.asarray(src["classes"]).astype(str),
        }
        check_decoded(arrs)
    except NPZ_ERRORS as e:
        raise DataIntegrityError(
            f"{path} is corrupted or not a valid JPEG-copy .npz ({type(e).__name__}: {e}); "
            "delete it and copy it again (see shared/data/README.md)") from e
    source_hash = known or f"sha256:{file_hash(path)}"
    write_checked_cache(cache, cfile, arrs, source_hash)
    return _jpeg_dataset(arrs, spec)


def expand_compact(header: np.ndarray, scan: np.ndarray, offsets: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The compact file's images as whole JPEGs: image i = header + scan[offsets[i]:offsets[i+1]].

    Returns ``(buf, offsets)`` in the large file's layout (concatenated whole files).
    """
    header, offsets = np.asarray(header, np.uint8), np.asarray(offsets, np.int64)
    h, n, lengths = len(header), len(offsets) - 1, np.diff(offsets)
    if n < 0 or offsets[0] != 0 or (lengths < 0).any() or offsets[-1] != len(scan):
        raise ValueError("compact JPEG offsets do not index the scan bytes")
    out_off = np.concatenate([[0], np.cumsum(lengths + h)]).astype(np.int64)
    buf = np.empty(int(out_off[-1]), dtype=np.uint8)
    buf[(out_off[:-1, None] + np.arange(h)).ravel()] = np.tile(header, n)
    # byte j of the scan belongs to image i(j) and moves right by (i(j) + 1) headers
    owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
    buf[np.arange(len(scan), dtype=np.int64) + h * (owner + 1)] = scan
    return buf, out_off


def jpeg_bytes(src: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(buf, offsets)`` of a split's whole JPEG files, from the large or the compact file."""
    if "jpeg_header" in src:
        return expand_compact(src["jpeg_header"], src[f"{split}_scan"], src[f"{split}_offsets"])
    return src[f"{split}_jpeg"], src[f"{split}_offsets"]


def _jpeg_dataset(a: dict, spec: DatasetSpec) -> ImageDataset:
    return ImageDataset(spec.display, a["x_train"], a["y_train"], a["x_test"], a["y_test"],
                        tuple(a["classes"].tolist()), spec.mean, spec.std, key=spec.name)


# ----------------------------------------------------------------------------- synthetic


def synthetic_dataset(n_train: int = 1024, n_test: int = 256, num_classes: int = 10,
                      size: int = 16, channels: int = 3, noise: float = 60.0,
                      seed: int = 0) -> ImageDataset:
    """Noisy copies of random class templates: learnable in a few steps, no files needed."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(40, 215, size=(num_classes, size, size, channels))

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, num_classes, size=n)
        x = templates[y] + rng.normal(0, noise, size=(n, size, size, channels))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_tr, y_tr = make(n_train)
    x_te, y_te = make(n_test)
    return ImageDataset(DATASETS["synthetic"].display, x_tr, y_tr, x_te, y_te,
                        tuple(f"class{i}" for i in range(num_classes)), key="synthetic")


# ----------------------------------------------------------------------------- readers
Reader = Callable[[DatasetSpec, "Path | None", "bool | None", Path], ImageDataset]


def read_cifar_tar(spec: DatasetSpec, root: Path | None, download: bool, cache: Path
                   ) -> ImageDataset:
    """An official CIFAR python archive (md5-verified; downloaded when allowed)."""
    path = _fetch(spec.file, root or data_dir(), spec.url, spec.hashes.get(spec.file), download)
    return _read_cifar_tar(path, spec)


def read_idx_set(spec: DatasetSpec, root: Path | None, download: bool | None, cache: Path
                 ) -> ImageDataset:
    """The four IDX files, gzipped or not, found or fetched by :func:`locate_idx`."""
    return _load_idx_set(spec, locate_idx(spec, root, download, cache))


def read_jpeg_npz(spec: DatasetSpec, root: Path | None, download: bool, cache: Path
                  ) -> ImageDataset:
    """The project's JPEG copy: ``root`` is its folder or the .npz itself; decoded once, cached.

    In a folder the compact file (``spec.file``) is preferred over ``spec.alt_files``.
    """
    if root is not None and root.suffix == ".npz":
        return _load_jpeg_npz(root, cache, spec)
    folder = root if root is not None else data_dir()
    names = (spec.file, *spec.alt_files)
    path = next((folder / n for n in names if (folder / n).exists()), folder / spec.file)
    return _load_jpeg_npz(path, cache, spec)


def read_synthetic(spec: DatasetSpec, root: Path | None, download: bool, cache: Path
                   ) -> ImageDataset:
    return synthetic_dataset()


READERS: dict[str, Reader] = {"cifar-tar": read_cifar_tar, "idx": read_idx_set,
                              "jpeg-npz": read_jpeg_npz, "synthetic": read_synthetic}
