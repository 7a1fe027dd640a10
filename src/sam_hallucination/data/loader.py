"""Image data sets and a GPU-resident loader.

``load_dataset(name)`` returns an :class:`ImageDataset` of uint8 arrays (N, H, W, C)
and int64 labels, whatever the source format:

* ``"cifar10"``, ``"cifar100"``: the official python archives
  (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``), md5-verified;
* ``"cifar10-jpeg"``: the project's JPEG re-encoding of CIFAR-10
  (``cifar10_jpeg_compact.npz``, preferred, or ``cifar10_jpeg.npz``: the same JPEG bytes),
  decoded once in parallel and cached;
* ``"fashion-mnist"``, ``"mnist"``: the official IDX files, gzipped or not;
* ``"synthetic"``: a tiny seeded data set of noisy class templates (tests, smoke runs).

:class:`DeviceLoader` keeps a data set on the device, normalises there, and does
random-translate + flip augmentation in a few lines of torch (airbench style).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .registry import ImageDataset, get_spec
from .sources import READERS, resolve_cache_dir


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool | None = None,
                 cache_dir: str | os.PathLike | None = None) -> ImageDataset:
    """Load a data set by registry name.

    ``root`` is the folder holding the source files (default: $SAM_DATA_DIR or
    <repo>/../shared/data; for Fashion-MNIST, first Debian's /usr/share/datasets/fashion-mnist
    or $SAM_FASHION_MNIST_DIR; for MNIST and Fashion-MNIST, last the data cache).
    For ``"cifar10-jpeg"`` ``root`` may also be the .npz file itself.
    ``download=True`` fetches missing official files (CIFAR, MNIST, Fashion-MNIST) and
    checks their known hashes; the default (None) fetches only the small sets
    (``auto_fetch``: MNIST, Fashion-MNIST) into the data cache, and only without ``root``.
    Corrupted files raise :class:`DataIntegrityError` (a ValueError); missing files raise
    FileNotFoundError saying what to put where, in one line.
    """
    spec = get_spec(name)
    base = Path(root).expanduser() if root is not None else None
    return READERS[spec.source](spec, base, download, resolve_cache_dir(cache_dir))


def subset(ds: ImageDataset, n_train: int | None, n_test: int | None = None,
           seed: int = 0) -> ImageDataset:
    """A deterministic class-balanced subset.

    Images are visited in a seeded random order and taken round-robin over classes
    (the k-th image of every class before the (k+1)-th of any), so each class gets
    n // K or n // K + 1 images when it has enough. The kept indices are sorted, so
    the result depends only on (ds, n, seed). ``None`` keeps a split whole.
    """
    def pick(y: np.ndarray, n: int | None, which: str, rng: np.random.Generator) -> np.ndarray:
        if n is None or n >= len(y):
            return np.arange(len(y))
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"{which} must be a positive integer, got {n!r}")
        perm = rng.permutation(len(y))
        yp = y[perm]
        rank = np.empty(len(y), dtype=np.int64)
        for c in np.unique(yp):
            m = yp == c
            rank[m] = np.arange(m.sum())
        order = np.lexsort((np.arange(len(y)), rank))  # by rank, ties by random position
        return np.sort(perm[order[:n]])

    rng = np.random.default_rng(seed)
    i_tr = pick(ds.y_train, n_train, "n_train", rng)
    i_te = pick(ds.y_test, n_test, "n_test", rng)
    return replace(ds, x_train=ds.x_train[i_tr], y_train=ds.y_train[i_tr],
                   x_test=ds.x_test[i_te], y_test=ds.y_test[i_te])


def with_label_noise(ds: ImageDataset, fraction: float, seed: int = 0) -> ImageDataset:
    """Replace a seeded ``fraction`` of training labels by a different random class."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {fraction!r}")
    if fraction == 0:
        return ds
    rng = np.random.default_rng(seed + 7919)
    y = ds.y_train.copy()
    idx = rng.choice(len(y), size=int(round(fraction * len(y))), replace=False)
    y[idx] = (y[idx] + rng.integers(1, ds.num_classes, size=len(idx))) % ds.num_classes
    return replace(ds, y_train=y)


# Normalised copies already on a device, by source array: a sweep uploads its data once per
# process. The source array is kept with its copy, so its id is never reused while cached.
_ON_DEVICE: OrderedDict[tuple, tuple[np.ndarray, torch.Tensor]] = OrderedDict()
_ON_DEVICE_MAX = 6


def _normalised(x: np.ndarray | torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(x / 255 - mean) / std`` on ``device`` as (N, H, W, C); cached for numpy sources."""
    key = None
    if isinstance(x, np.ndarray):
        key = (id(x), x.shape, str(device), tuple(mean), tuple(std), dtype)
        hit = _ON_DEVICE.get(key)
        if hit is not None and hit[0] is x:
            _ON_DEVICE.move_to_end(key)
            return hit[1]
    t = torch.as_tensor(np.asarray(x)).to(device)
    if t.ndim == 3:
        t = t[..., None]
    m = torch.tensor(mean, device=device, dtype=torch.float32)
    s = torch.tensor(std, device=device, dtype=torch.float32)
    t = ((t.float() / 255.0 - m) / s).to(dtype)
    if key is not None:
        _ON_DEVICE[key] = (x, t)  # type: ignore[assignment]
        while len(_ON_DEVICE) > _ON_DEVICE_MAX:
            _ON_DEVICE.popitem(last=False)
    return t


class DeviceLoader:
    """Batches from data held on ``device`` (airbench style).

    The uint8 images are moved to the device once, normalised there with the data
    set's per-channel mean/std and stored as (N, H, W, C); loaders of the same numpy array
    share that copy. With ``train=True`` every epoch is reshuffled with a seeded
    ``torch.Generator`` on the device (all draws happen there: no host sync, no global
    seed) and each image gets a random
    translation by up to ``pad`` pixels (reflect padding + crop) and a random
    horizontal flip. Batches come out as (B, C, H, W) in channels_last memory
    format (a free permute of the stored layout) and in ``dtype``.
    """

    def __init__(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                 batch_size: int, *, mean: tuple[float, ...], std: tuple[float, ...],
                 device: str | torch.device = "cpu", train: bool = True, pad: int = 2,
                 flip: bool = True, drop_last: bool | None = None, seed: int = 0,
                 dtype: torch.dtype = torch.float32, channels_last: bool = True) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(x) != len(y):
            raise ValueError(f"x and y lengths differ: {len(x)} vs {len(y)}")
        if batch_size > len(x):
            raise ValueError(f"batch_size={batch_size} is larger than the data ({len(x)} images)")
        self.device = torch.device(device)
        self.x = _normalised(x, mean, std, self.device, dtype)  # (N, H, W, C)
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.long).to(self.device)
        self.batch_size, self.train = batch_size, train
        self.pad, self.flip = (pad, flip) if train else (0, False)
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _augment(self, xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, h, w, _ = xb.shape
        if self.flip:
            mask = torch.rand(b, generator=g, device=self.device) < 0.5
            xb = torch.where(mask[:, None, None, None], xb.flip(2), xb)
        if self.pad > 0:
            p = self.pad
            padded = torch.nn.functional.pad(xb.permute(0, 3, 1, 2), (p, p, p, p), mode="reflect")
            padded = padded.permute(0, 2, 3, 1)  # back to (B, H+2p, W+2p, C)
            dy = torch.randint(0, 2 * p + 1, (b,), generator=g, device=self.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=g, device=self.device)
            rows = dy[:, None] + torch.arange(h, device=self.device)
            cols = dx[:, None] + torch.arange(w, device=self.device)
            bi = torch.arange(b, device=self.device)[:, None, None]
            xb = padded[bi, rows[:, :, None], cols[:, None, :]]
        return xb

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self.generator
        n = len(self.y)
        idx = torch.randperm(n, generator=g, device=self.device) if self.train else None
        self.epoch += 1
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min(n, (i + 1) * self.batch_size))
            if idx is None:
                xb, yb = self.x[sl], self.y[sl]
            else:
                xb, yb = self.x[idx[sl]], self.y[idx[sl]]
            if self.train:
                xb = self._augment(xb, g)
            xb = xb.permute(0, 3, 1, 2)  # NHWC storage -> NCHW view, channels_last layout
            if not self.channels_last:
                xb = xb.contiguous()
            yield xb, yb
