"""What every dataset reader shares: names, errors, the raw-array container, data roots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


#: Names accepted by :func:`load_dataset`.
DATASETS = (
    "mnist", "fashion_mnist", "cifar10", "cifar10_jpeg", "cifar100", "tiny_imagenet", "digits"
)

#: Values accepted for the ``source`` argument of :func:`load_dataset`.
SOURCES = ("auto", "local", "tfds", "sklearn")

#: Environment variable naming a directory that holds the dataset folders.
DATA_DIR_ENV = "DROPNET_DATA_DIR"

#: Environment variable naming the cache directory (see :func:`default_cache_dir`).
CACHE_DIR_ENV = "DROPNET_CACHE_DIR"

_NUM_CLASSES = {
    "mnist": 10,
    "fashion_mnist": 10,
    "cifar10": 10,
    "cifar10_jpeg": 10,
    "cifar100": 100,
    "tiny_imagenet": 200,  # the local loader uses len(wnids.txt), 200 for the official data
    "digits": 10,
}

# Which sources can provide which dataset, in the order tried by source="auto".
_SOURCES_FOR = {
    "mnist": ("local", "tfds"),
    "fashion_mnist": ("local", "tfds"),
    "cifar10": ("local", "tfds"),
    "cifar10_jpeg": ("local",),
    "cifar100": ("local", "tfds"),
    "tiny_imagenet": ("local",),
    "digits": ("sklearn",),
}

# Names of the datasets in tensorflow-datasets.
_TFDS_NAMES = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
}

# Sub-folder names, inside a data root, that may hold a dataset ("a folder named after the
# dataset", plus common spellings from other tools: torchvision, Keras, the zalando repository).
_ALIASES = {
    "mnist": ("mnist", "MNIST", "MNIST/raw", "mnist/raw"),
    "fashion_mnist": (
        "fashion_mnist",
        "fashion-mnist",
        "FashionMNIST",
        "FashionMNIST/raw",
        "fashion-mnist/data/fashion",
    ),
    "cifar10": ("cifar10", "cifar-10", "CIFAR10", "cifar_10"),
    "cifar10_jpeg": ("cifar10_jpeg", "cifar10-jpeg"),
    "cifar100": ("cifar100", "cifar-100", "CIFAR100", "cifar_100"),
    "tiny_imagenet": ("tiny_imagenet", "tiny-imagenet", "TinyImageNet"),
}

# Standard folder names of the official distributions (what the archives unpack to).
_DISTRIBUTION_FOLDERS = {
    "mnist": (),
    "fashion_mnist": (),
    "cifar10": ("cifar-10-batches-py", "cifar-10-batches-bin"),
    "cifar10_jpeg": (),
    "cifar100": ("cifar-100-python", "cifar-100-binary"),
    "tiny_imagenet": ("tiny-imagenet-200",),
}

#: How to provide each dataset's files by hand, as told in the errors of load_dataset and the scripts.
HOW_TO = {
    "mnist": (
        "the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz) in D/mnist/"
    ),
    "fashion_mnist": (
        "the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz) in "
        "D/fashion_mnist/ (on Debian/Ubuntu: `apt install dataset-fashion-mnist`, found "
        "automatically)"
    ),
    "cifar10": (
        "the folder cifar-10-batches-py/ (from cifar-10-python.tar.gz) or cifar-10-batches-bin/ "
        "(from cifar-10-binary.tar.gz) of https://www.cs.toronto.edu/~kriz/cifar.html in D/"
    ),
    "cifar10_jpeg": (
        "the image folder cifar10_jpeg/ holding train/<class>/*.jpg and test/<class>/*.jpg "
        "(the 10 CIFAR-10 class names as folder names), or the archive cifar10_jpeg.tar.gz "
        "that unpacks to it, in D/ (D may also be the folder itself)"
    ),
    "cifar100": (
        "the folder cifar-100-python/ (from cifar-100-python.tar.gz) or cifar-100-binary/ "
        "(from cifar-100-binary.tar.gz) of https://www.cs.toronto.edu/~kriz/cifar.html in D/"
    ),
    "tiny_imagenet": (
        "the folder tiny-imagenet-200/ (from http://cs231n.stanford.edu/tiny-imagenet-200.zip: "
        "wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt) in D/"
    ),
}


class DatasetUnavailableError(RuntimeError):
    """No source could provide the requested dataset.

    Attributes:
        dataset: the dataset name.
        attempts: ``(source, reason)`` pairs, one per source tried, in order.
    """

    #: The entry points print the message as one paragraph and exit 1, without a traceback.
    user_fixable = True

    def __init__(self, message: str, dataset: str = "", attempts: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.dataset = dataset
        self.attempts = list(attempts)


class DatasetFormatError(ValueError):
    """A dataset file was found but its content is not in the expected format."""


class _NotFound(Exception):
    """Internal: a source does not have the dataset (the message says why)."""



class _Raw:
    """Official arrays before splitting: uint8 images (N, H, W[, C]) and integer labels."""

    def __init__(self, x_train, y_train, x_test, y_test, num_classes: int, scale: float = 255.0):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.num_classes = num_classes
        self.scale = scale



# --------------------------------------------------------------------------------------------
# Local files
# --------------------------------------------------------------------------------------------


def _system_roots() -> list[Path]:
    roots = [Path("/usr/share/datasets"), Path("/usr/local/share/datasets")]
    keras_home = os.environ.get("KERAS_HOME")
    roots.append(Path(keras_home) / "datasets" if keras_home else Path("~/.keras/datasets"))
    return [r.expanduser() for r in roots]


def _search_roots(data_dir) -> tuple[list[Path], bool, list[str]]:
    """Directories searched for dataset folders, whether ``data_dir`` was given, a description."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root], True, [f"data_dir={root}"]
    roots, described = [], []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        roots.append(Path(env).expanduser())
        described.append(f"${DATA_DIR_ENV}={roots[0]}")
    system = _system_roots()
    roots += system
    described.append("system folders " + ", ".join(str(r) for r in system))
    return roots, False, described


def _candidate_dirs(name: str, data_dir) -> tuple[list[Path], list[str]]:
    """Existing directories that may hold ``name``'s files, and a description of the search."""
    roots, explicit, described = _search_roots(data_dir)
    dists = _DISTRIBUTION_FOLDERS[name]
    dirs: list[Path] = []
    for root in roots:
        bases = [root / alias for alias in _ALIASES[name]]
        if explicit:  # the user pointed at the dataset folder itself
            bases.insert(0, root)
        for base in bases:
            dirs.append(base)
            dirs += [base / d for d in dists]
        dirs += [root / d for d in dists]
    seen, unique = set(), []
    for d in dirs:
        if d not in seen and d.is_dir():
            seen.add(d)
            unique.append(d)
    return unique, described
