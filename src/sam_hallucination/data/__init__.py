"""Layer 3, data: one registry of data set specs, their sources, and the loader.

A new data set is one :class:`DatasetSpec` entry in :data:`DATASETS` (plus a reader in
:mod:`.sources` if its file format is new).
"""

from .idx import read_idx
from .loader import DeviceLoader, load_dataset, subset, with_label_noise
from .registry import (
    DATASET_NAMES,
    DATASETS,
    DISPLAY_NAMES,
    TRAIN_SIZES,
    DataIntegrityError,
    DatasetSpec,
    ImageDataset,
    get_spec,
)
from .sources import (
    FASHION_DIR_ENV,
    READERS,
    DatasetUnavailable,
    data_dir,
    decode_jpegs,
    expand_compact,
    file_hash,
    jpeg_bytes,
    locate_idx,
    resolve_cache_dir,
    synthetic_dataset,
    verify_file,
)

__all__ = [
    "DeviceLoader", "load_dataset", "subset", "with_label_noise", "DATASET_NAMES", "DATASETS",
    "DISPLAY_NAMES", "TRAIN_SIZES", "DataIntegrityError", "DatasetSpec", "ImageDataset",
    "get_spec", "READERS", "data_dir", "decode_jpegs", "expand_compact", "file_hash", "jpeg_bytes", "read_idx",
    "resolve_cache_dir", "synthetic_dataset", "verify_file", "DatasetUnavailable", "FASHION_DIR_ENV",
    "locate_idx",
]
