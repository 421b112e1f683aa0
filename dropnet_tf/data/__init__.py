"""Datasets of the experiments, loaded as in-memory NumPy arrays: :func:`load_dataset`.

See :mod:`dropnet_tf.data.datasets` for the data protocol and where the arrays come from.

=================  ==============================================================
``datasets``       Dataset, load_dataset (sources in order, split, scale), digits
``common``         dataset names, HOW_TO, errors, the raw-array container, data roots
``idx``            read_idx: MNIST / Fashion-MNIST IDX files
``cifar``          CIFAR-10 / CIFAR-100, python or binary distributions
``image_folder``   read_image_folder, cifar10_jpeg (folder or archive), Tiny ImageNet,
                   the ``.npz`` cache (default_cache_dir)
``tfds``           tensorflow-datasets, prepared or downloaded
=================  ==============================================================
"""

from dropnet_tf.data.datasets import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    DATASETS,
    HOW_TO,
    SOURCES,
    Dataset,
    DatasetFormatError,
    DatasetUnavailableError,
    default_cache_dir,
    load_dataset,
    read_idx,
    read_image_folder,
)

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
