"""One registry of image data sets: a new data set is one :class:`DatasetSpec` entry.

Each entry holds everything the library knows about a data set: its display name, training
set size, per-channel statistics, where its files come from and their known hashes, and
whether training augments it (flip + translate). :mod:`.sources` reads each ``source`` kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SOURCES = ("cifar-tar", "idx", "jpeg-npz", "synthetic")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class DatasetSpec:
    """What the library knows about one data set (see the module docstring)."""

    name: str  # registry key, e.g. "cifar10-jpeg"
    display: str  # human-readable; goes into results and figure labels
    train_size: int  # validates configs before anything is loaded
    source: str  # how :mod:`.sources` reads it (one of SOURCES)
    mean: tuple[float, ...] | None = None  # per-channel, [0, 1] scale (None: from the data)
    std: tuple[float, ...] | None = None
    augment: bool = False  # flip + translate during training by default
    url: str | None = None  # the archive (cifar-tar) or the folder of IDX files
    file: str | None = None  # the archive or .npz file name
    # Known hashes "algo:hex" by file name. IDX sets list the .gz files and the md5 of the
    # *uncompressed* content, so repackaged .gz files (e.g. Debian's) verify too.
    hashes: dict[str, str] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None  # class names when the files do not hold them
    # Other files that hold the same data, tried in order when ``file`` is absent.
    alt_files: tuple[str, ...] = ()
    # Fetch the official files into the data cache when absent and no folder was named:
    # only for small sets whose every file has a pinned hash.
    auto_fetch: bool = False

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")


def _idx_hashes(gz: dict[str, str], raw: dict[str, str]) -> dict[str, str]:
    return {**{f"{s}.gz": f"md5:{h}" for s, h in gz.items()},
            **{s: f"md5:{h}" for s, h in raw.items()}}


_CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("cifar10", "CIFAR-10", 50_000, "cifar-tar", *_CIFAR_STATS, augment=True,
                url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                file="cifar-10-python.tar.gz",
                hashes={"cifar-10-python.tar.gz": "md5:c58f30108f718f92721af3b95e74349a"}),
    DatasetSpec("cifar100", "CIFAR-100", 50_000, "cifar-tar",
                (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), augment=True,
                url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                file="cifar-100-python.tar.gz",
                hashes={"cifar-100-python.tar.gz": "md5:eb9058c3a382ffc7106e4002c42a8d85"}),
    DatasetSpec("cifar10-jpeg", "CIFAR-10 (JPEG copy)", 50_000, "jpeg-npz",
                (0.4913, 0.4821, 0.4465), (0.2470, 0.2435, 0.2616), augment=True,
                # the compact file (same JPEG bytes, one shared header) first, then the large one
                file="cifar10_jpeg_compact.npz", alt_files=("cifar10_jpeg.npz",),
                hashes={"cifar10_jpeg_compact.npz": "sha256:1fe451c72ea74fe01e99d77e59aec527ea87"
                                                    "972fe3dfe625603abb582c5060d7",
                        "cifar10_jpeg.npz": "sha256:b1091c5ea41ae05745b054dfe78e169e8ec1f4dc2df00"
                                            "4961759ace1b182b15c"}),
    DatasetSpec("fashion-mnist", "Fashion-MNIST", 60_000, "idx", (0.2860,), (0.3530,),
                # the official files; their md5s are those the Fashion-MNIST README publishes
                url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                classes=FASHION_CLASSES, auto_fetch=True, hashes=_idx_hashes(
                    {"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
                     "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
                     "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
                    {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                     "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                     "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                     "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"})),
    DatasetSpec("mnist", "MNIST", 60_000, "idx", (0.1307,), (0.3081,),
                url="https://ossci-datasets.s3.amazonaws.com/mnist/",
                classes=tuple(str(i) for i in range(10)), auto_fetch=True, hashes=_idx_hashes(
                    {"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                     "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
                     "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
                     "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
                    {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
                     "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
                     "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
                     "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"})),
    DatasetSpec("synthetic", "Synthetic (noisy templates)", 1024, "synthetic"),
)}

# Views of the registry under their historical names.
DATASET_NAMES = tuple(DATASETS)
DISPLAY_NAMES = {n: s.display for n, s in DATASETS.items()}
TRAIN_SIZES = {n: s.train_size for n, s in DATASETS.items()}


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name`` (case-insensitive); ValueError listing valid names."""
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return DATASETS[name.lower()]


class DataIntegrityError(ValueError):
    """A data file is corrupted or does not match its known hash."""


@dataclass
class ImageDataset:
    """A train/test image classification data set held as numpy arrays.

    ``x_*`` are uint8 (N, H, W, C); ``y_*`` are int64 (N,). ``mean``/``std`` are
    per-channel statistics on the [0, 1] scale, used by :class:`DeviceLoader`
    (computed from ``x_train`` when not given).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    key: str = field(default="", repr=False)  # registry name, e.g. "cifar10-jpeg"

    def __post_init__(self) -> None:
        for attr in ("x_train", "x_test"):
            x = getattr(self, attr)
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"{attr} must be uint8 (N, H, W, C), got {x.dtype} {x.shape}")
        for attr in ("y_train", "y_test"):
            setattr(self, attr, np.asarray(getattr(self, attr), dtype=np.int64))
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError("x and y must have the same length in each split")
        self.classes = tuple(str(c) for c in self.classes)
        if self.mean is None or self.std is None:
            x = self.x_train.reshape(-1, self.x_train.shape[-1]).astype(np.float64) / 255.0
            self.mean = tuple(float(v) for v in x.mean(0))
            self.std = tuple(float(v) for v in np.maximum(x.std(0), 1e-3))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W), the model's input shape."""
        _, h, w, c = self.x_train.shape
        return (c, h, w)

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, train={self.x_train.shape}, "
                f"test={self.x_test.shape}, classes={self.num_classes})")
