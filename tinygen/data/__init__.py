"""tinygen.data: datasets and batching on plain numpy arrays.

Nothing here depends on tinygen's Tensor; callers wrap the arrays themselves.
"""

from .errors import DataError
from .fashion_mnist import (
    CLASSES,
    EMBEDDED_SUBSET,
    SubsetWarning,
    cache_dir,
    find_fashion_mnist,
    load_embedded_subset,
    load_fashion_mnist,
    recording_sources,
)
from .download import DownloadError, download_fashion_mnist
from .datasets import DATASETS, load_dataset
from .idx import read_idx, write_idx
from .loader import BatchLoader
from .transforms import (
    binarize_dynamic,
    binarize_threshold,
    quantize_8bit,
    to_symmetric,
    to_unit,
)

__all__ = [
    "BatchLoader",
    "CLASSES",
    "DATASETS",
    "DataError",
    "DownloadError",
    "SubsetWarning",
    "binarize_dynamic",
    "binarize_threshold",
    "cache_dir",
    "download_fashion_mnist",
    "find_fashion_mnist",
    "recording_sources",
    "EMBEDDED_SUBSET",
    "load_dataset",
    "load_embedded_subset",
    "load_fashion_mnist",
    "quantize_8bit",
    "read_idx",
    "to_symmetric",
    "to_unit",
    "write_idx",
]
