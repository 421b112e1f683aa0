"""Datasets of the experiments, loaded as in-memory NumPy arrays: :func:`load_dataset`.

See :mod:`dropnet_tf.data.datasets` for the data protocol and where the arrays come from;
the modules are listed, with what each holds, in the README's Layout section.
"""

from dropnet_tf.data.common import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    DATASETS,
    HOW_TO,
    SOURCES,
    DatasetFormatError,
    DatasetUnavailableError,
)
from dropnet_tf.data.datasets import Dataset, load_dataset
from dropnet_tf.data.image_folder import default_cache_dir, read_image_folder
from dropnet_tf.data.idx import read_idx

__all__ = [
    "CACHE_DIR_ENV",
    "DATA_DIR_ENV",
    "DATASETS",
    "HOW_TO",
    "SOURCES",
    "Dataset",
    "DatasetFormatError",
    "DatasetUnavailableError",
    "default_cache_dir",
    "load_dataset",
    "read_idx",
    "read_image_folder",
]
