"""Datasets used in the DropNet experiments, loaded as in-memory NumPy arrays.

This module follows the data protocol of DropNet (Tan & Motani, ICML 2020), Section 3.2:

* every image is converted to ``float32`` and scaled to ``[0, 1]`` (pixel / 255; the embedded
  ``digits`` data, whose values are 0..16, is divided by 16), channel-last ``(H, W, C)`` with
  ``C = 1`` added for grayscale data; labels are ``int64`` class indices;
* the official training set is split into a training and a validation set with
  ``sklearn.model_selection.train_test_split(..., test_size=validation_fraction, stratify=y,
  random_state=split_seed)``, exactly as the authors' original code did (MNIST: 54000 / 6000,
  CIFAR-10: 45000 / 5000 with the default 10 %); the official test set is the test set.

Where the arrays come from (``source="auto"`` tries them in this order):

1. ``"local"`` -- the official distribution files on disk, found under ``data_dir`` (when given),
   otherwise under ``$DROPNET_DATA_DIR`` and then a few well-known system folders (Debian's
   ``dataset-fashion-mnist`` package in ``/usr/share/datasets/fashion-mnist``, the Keras cache
   ``~/.keras/datasets``).  No configuration is needed for files in those system folders.
2. ``"tfds"`` -- tensorflow-datasets: a dataset already prepared in the TFDS data directory,
   or (``download="auto"``, the default) downloaded as usual when the TFDS download host
   resolves.  An offline call stays fast: the checks are a directory listing and one DNS
   look-up with a 2 s limit, and tensorflow-datasets is not imported when they fail.
3. ``"sklearn"`` -- ``sklearn.datasets.load_digits`` (embedded in the scikit-learn wheel), for
   ``digits`` only.

``cifar10_jpeg`` (CIFAR-10 re-encoded as JPEG, in an image-folder layout) is only found locally:
its folder is listed by Keras' ``image_dataset_from_directory`` and decoded by Pillow
(:func:`read_image_folder`), and the decoded arrays are cached as an ``.npz`` under the cache
directory (:func:`default_cache_dir`, never the data directory), so only the first load decodes.
Nothing else is cached on disk.  Pixels stay ``uint8`` until the final float conversion of each
split.
When no source can provide a dataset, :class:`DatasetUnavailableError` says which sources were
tried, why each failed, and how to provide the files.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import zlib
import os
import pickle
import tarfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dropnet_tf.core.io import load_npz, save_npz_atomic

__all__ = [
    "CACHE_DIR_ENV",
    "DATASETS",
    "SOURCES",
    "Dataset",
    "DatasetFormatError",
    "DatasetUnavailableError",
    "default_cache_dir",
    "load_dataset",
    "read_idx",
    "read_image_folder",
]

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

    def __init__(self, message: str, dataset: str = "", attempts: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.dataset = dataset
        self.attempts = list(attempts)


class DatasetFormatError(ValueError):
    """A dataset file was found but its content is not in the expected format."""


class _NotFound(Exception):
    """Internal: a source does not have the dataset (the message says why)."""


# --------------------------------------------------------------------------------------------
# The Dataset container
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset split into training, validation and test arrays.

    ``x_*`` are ``float32`` arrays in ``[0, 1]`` of shape ``(N, H, W, C)``; ``y_*`` are ``int64``
    class indices of shape ``(N,)`` (DropNet Section 3.2).  ``source`` records where the data
    came from, e.g. ``"local:/usr/share/datasets/fashion-mnist"``,
    ``"tfds:/root/tensorflow_datasets"`` or ``"sklearn"``.
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} samples but y_{split} has {len(y)}")
            if np.ndim(y) != 1:
                raise ValueError(f"y_{split} must be 1-D class indices, got shape {np.shape(y)}")

    @property
    def input_shape(self) -> tuple:
        """Shape of one sample, ``x_train.shape[1:]`` (e.g. ``(28, 28, 1)``)."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, source={self.source!r}, train={len(self.y_train)}, "
            f"val={len(self.y_val)}, test={len(self.y_test)}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes})"
        )

    def subset(
        self,
        max_train: int | None = None,
        max_val: int | None = None,
        max_test: int | None = None,
        seed: int = 0,
    ) -> "Dataset":
        """Stratified random subsample of each split, for quick-scale runs.

        Each split keeps at most ``max_*`` samples (``None``: keep the whole split).  Samples are
        drawn per class, in proportion to the class sizes of that split (largest-remainder
        rounding, so the cap is met exactly); the kept samples stay in their original order.
        The same ``seed`` gives the same subset.
        """
        rng = np.random.default_rng(seed)
        arrays = {}
        for split, cap in (("train", max_train), ("val", max_val), ("test", max_test)):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if cap is not None:
                if isinstance(cap, bool) or int(cap) != cap or cap < 1:
                    raise ValueError(f"max_{split} must be a positive integer or None, got {cap!r}")
                if cap < len(y):
                    keep = _stratified_indices(y, int(cap), rng)
                    x, y = x[keep], y[keep]
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        return dataclasses.replace(self, **arrays)


def _stratified_indices(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n`` samples of ``y`` with per-class counts proportional to ``y``'s."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = counts * (n / len(y))
    quota = np.floor(exact).astype(np.int64)
    short = n - int(quota.sum())
    if short > 0:  # largest remainders first; ties go to the lower class index
        order = np.argsort(-(exact - quota), kind="stable")
        quota[order[:short]] += 1
    chosen = [
        rng.choice(np.flatnonzero(inverse == k), size=int(q), replace=False)
        for k, q in enumerate(quota)
        if q > 0
    ]
    return np.sort(np.concatenate(chosen))


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    validation_fraction: float = 0.1,
    split_seed: int = 42,
    *,
    download: bool | str = "auto",
    cache_dir: str | os.PathLike | None | bool = None,
) -> Dataset:
    """Load one of :data:`DATASETS` as a :class:`Dataset` (DropNet Section 3.2 protocol).

    Args:
        name: one of ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"cifar10_jpeg"``,
            ``"cifar100"``, ``"tiny_imagenet"``, ``"digits"``.  ``"cifar10_jpeg"`` is CIFAR-10
            re-encoded as JPEG in an image-folder layout (``train/<class>/*.jpg``,
            ``test/<class>/*.jpg``, labels = sorted class-folder names, which for the CIFAR-10
            names is the official label order); its pixels are close to but not those of the
            official files, so results on it must be labelled ``cifar10_jpeg``.
        data_dir: directory holding the dataset files.  When given it is the only place
            searched for local files (the directory itself, a sub-folder named after the
            dataset, or the official distribution folder such as ``cifar-10-batches-py``; for
            ``cifar10_jpeg`` also the archive ``cifar10_jpeg.tar.gz`` in it, or the archive
            itself), and it is also the TFDS data directory.  Nothing is ever written there.
            When omitted, local files are searched under ``$DROPNET_DATA_DIR`` (sub-folders
            only) and then in well-known system folders, and TFDS uses ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``.
        source: ``"auto"`` (local files, then tensorflow-datasets, then scikit-learn, as
            applicable), ``"local"``, ``"tfds"`` or ``"sklearn"`` (``digits`` only).
        validation_fraction: fraction of the official training set held out, stratified, as
            the validation set; must lie in ``(0, 1)``.
        split_seed: ``random_state`` of the stratified splits.
        download: allow tensorflow-datasets to download and prepare the dataset.  ``"auto"``
            (default) downloads only when the TFDS download host resolves within a couple of
            seconds, so a networked machine gets the normal tensorflow-datasets behaviour while
            an offline call fails fast instead of waiting minutes on retries; ``False`` never
            downloads (TFDS is then used only when already prepared); ``True`` always tries.
        cache_dir: where datasets decoded from image files (``cifar10_jpeg``) keep their
            decoded arrays, so that only the first load decodes: ``None`` (default)
            :func:`default_cache_dir` (``$DROPNET_CACHE_DIR``, else
            ``$XDG_CACHE_HOME/dropnet_tf``, else ``~/.cache/dropnet_tf``), a directory, or
            ``False`` for no cache.  The cache is keyed by the folder's path and the names,
            sizes and modification times of its images (or the archive's), so a changed
            folder is decoded again; a cache that cannot be written only gives a warning.

    Returns:
        A :class:`Dataset`.  Training and validation come from the official training set
        (``train_test_split(test_size=validation_fraction, stratify=y,
        random_state=split_seed)``), the test set is the official test set.  Exceptions:
        Tiny ImageNet, whose official ``test`` images have no labels, uses its labelled
        ``val`` folder as the test set and splits ``train``; ``digits``, which has no official
        split, first holds out a stratified 20 % test set (``random_state=split_seed``) and
        then splits the rest.

    Raises:
        ValueError: unknown ``name`` or ``source``, a source that cannot provide ``name``, or
            ``validation_fraction`` outside ``(0, 1)``.
        DatasetFormatError: a dataset file was found but is corrupt.
        DatasetUnavailableError: no source could provide the dataset; the message lists each
            source tried and why it failed, and how to provide the files.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    try:
        fraction_ok = 0.0 < float(validation_fraction) < 1.0
    except (TypeError, ValueError):
        fraction_ok = False
    if not fraction_ok:
        raise ValueError(
            f"validation_fraction must lie strictly between 0 and 1, got {validation_fraction!r}"
        )
    available = _SOURCES_FOR[name]
    if source != "auto" and source not in available:
        raise ValueError(
            f"Source {source!r} cannot provide dataset {name!r}; "
            f"sources for {name!r}: {', '.join(available)}"
        )

    if download not in (True, False, "auto"):
        raise ValueError(f"download must be True, False or 'auto', got {download!r}.")
    cache = _resolve_cache_dir(cache_dir)
    if name == "digits":
        return _load_digits(validation_fraction, split_seed)

    attempts: list[tuple[str, str]] = []
    for src in available if source == "auto" else (source,):
        try:
            if src == "local":
                raw, origin = _load_local(name, data_dir, cache)
            else:
                raw, origin = _load_tfds(name, data_dir, download)
        except _NotFound as reason:
            attempts.append((src, str(reason)))
            continue
        return _build(name, origin, raw, validation_fraction, split_seed)

    if name == "tiny_imagenet" and source == "auto":
        attempts.append(("tfds", "tiny_imagenet is not in tensorflow-datasets (skipped)"))
    if name == "cifar10_jpeg" and source == "auto":
        attempts.append(("tfds", "cifar10_jpeg is a local image folder only (skipped; "
                                 "tensorflow-datasets has the original files as 'cifar10')"))
    raise DatasetUnavailableError(_unavailable_message(name, attempts), name, attempts)


def _unavailable_message(name: str, attempts: Sequence[tuple[str, str]]) -> str:
    lines = [f"Dataset {name!r} is not available. Sources tried:"]
    lines += [f"  - {src}: {reason}" for src, reason in attempts]
    lines.append("How to provide it:")
    lines.append(
        f"  * put {HOW_TO[name]}, where D is a directory of your choice, then set "
        f"{DATA_DIR_ENV}=D or pass data_dir=D;"
    )
    if name in _TFDS_NAMES:
        lines.append(
            f"  * or, on a machine with network access, run once "
            f"load_dataset({name!r}, download=True) (or `tfds build {_TFDS_NAMES[name]}`) and "
            f"copy the resulting tensorflow_datasets folder here (~/tensorflow_datasets, "
            f"$TFDS_DATA_DIR or data_dir)."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Splitting and scaling
# --------------------------------------------------------------------------------------------


class _Raw:
    """Official arrays before splitting: uint8 images (N, H, W[, C]) and integer labels."""

    def __init__(self, x_train, y_train, x_test, y_test, num_classes: int, scale: float = 255.0):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.num_classes = num_classes
        self.scale = scale


def _to_float(x: np.ndarray, scale: float) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], channel-last with C=1 added to grayscale data."""
    out = np.divide(x, np.float32(scale), dtype=np.float32)
    if out.ndim == 3:
        out = out[..., np.newaxis]
    return out


def _labels(y, what: str, num_classes: int) -> np.ndarray:
    y = np.asarray(y).astype(np.int64, copy=False).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetFormatError(
            f"{what}: labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]"
        )
    return y


def _build(name: str, origin: str, raw: _Raw, fraction: float, seed: int) -> Dataset:
    """Stratified train/val split of the official training set (DropNet Section 3.2)."""
    from sklearn.model_selection import train_test_split

    y_full = _labels(raw.y_train, f"{name} training labels", raw.num_classes)
    y_test = _labels(raw.y_test, f"{name} test labels", raw.num_classes)
    if len(raw.x_train) != len(y_full) or len(raw.x_test) != len(y_test):
        raise DatasetFormatError(
            f"{name}: {len(raw.x_train)} training images but {len(y_full)} labels, "
            f"{len(raw.x_test)} test images but {len(y_test)} labels"
        )
    # Splitting an index vector gives exactly the permutation the original code obtained by
    # passing (x, y) to train_test_split, without copying the images.
    idx_train, idx_val = train_test_split(
        np.arange(len(y_full)), test_size=fraction, stratify=y_full, random_state=seed
    )
    return Dataset(
        name=name,
        source=origin,
        x_train=_to_float(raw.x_train[idx_train], raw.scale),
        y_train=y_full[idx_train],
        x_val=_to_float(raw.x_train[idx_val], raw.scale),
        y_val=y_full[idx_val],
        x_test=_to_float(raw.x_test, raw.scale),
        y_test=y_test,
        num_classes=raw.num_classes,
    )


def _load_digits(fraction: float, seed: int) -> Dataset:
    """scikit-learn's embedded 8x8 digits: 20 % stratified test hold-out, then train/val split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)  # integer values 0..16 stored as float64
    y = bunch.target.astype(np.int64)
    idx_rest, idx_test = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed
    )
    raw = _Raw(x[idx_rest], y[idx_rest], x[idx_test], y[idx_test], 10, scale=16.0)
    return _build("digits", "sklearn", raw, fraction, seed)


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


def _load_local(name: str, data_dir, cache: Path | None = None) -> tuple[_Raw, str]:
    dirs, described = _candidate_dirs(name, data_dir)
    finder: Callable[[Path], _Raw | None] = {
        "mnist": _local_idx,
        "fashion_mnist": _local_idx,
        "cifar10": _local_cifar10,
        "cifar10_jpeg": lambda d: _local_cifar10_jpeg(d, cache),
        "cifar100": _local_cifar100,
        "tiny_imagenet": _local_tiny_imagenet,
    }[name]
    partial: list[str] = []
    for d in dirs:
        try:
            raw = finder(d)
        except _NotFound as incomplete:  # some files there, not all
            partial.append(f"{d}: {incomplete}")
            continue
        if raw is not None:
            return raw, f"local:{d}"
    archives = _candidate_archives(name, data_dir)
    if archives:  # only when no unpacked folder was found
        return _local_cifar10_jpeg_archive(archives[0], cache), f"local:{archives[0]}"
    what = {
        "mnist": "IDX files",
        "fashion_mnist": "IDX files",
        "cifar10": "CIFAR-10 batches (python or binary version)",
        "cifar10_jpeg": "cifar10_jpeg image folder (train/<class>/, test/<class>/) or "
        "cifar10_jpeg.tar.gz",
        "cifar100": "CIFAR-100 files (python or binary version)",
        "tiny_imagenet": "tiny-imagenet-200 folder",
    }[name]
    message = f"no {what} under {'; '.join(described)}"
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        message = f"data_dir {Path(data_dir).expanduser()} does not exist or is not a directory"
    if partial:
        message += " (incomplete: " + "; ".join(partial) + ")"
    raise _NotFound(message)


# ---- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """File content, transparently gunzipped when it starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DatasetFormatError(
                f"{path}: corrupt or truncated gzip data ({type(error).__name__}: {error}); delete the file and "
                "download it again (or put an intact copy there)"
            ) from error
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    The header is two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; the data follows, big-endian, in C order.  Raises :class:`DatasetFormatError` on a
    bad magic number or a size mismatch.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetFormatError(
            f"{path}: not an IDX file (bad magic number {data[:4].hex() or '<empty>'}; "
            "expected 0000 followed by a type byte in 08/09/0b/0c/0d/0e and the number of dims)"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"{path}: IDX header truncated ({len(data)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetFormatError(
            f"{path}: IDX data size mismatch: header says shape {shape} ({expected} bytes), "
            f"file has {len(data) - header} bytes of data"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


_IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_file(d: Path, stems: Sequence[str]) -> Path | None:
    for stem in stems:
        for candidate in (d / stem, d / (stem + ".gz")):
            if candidate.is_file():
                return candidate
    return None


def _local_idx(d: Path) -> _Raw | None:
    found = {key: _find_file(d, stems) for key, stems in _IDX_FILES.items()}
    if not any(found.values()):
        return None
    missing = [stems[0] for key, stems in _IDX_FILES.items() if found[key] is None]
    if missing:
        raise _NotFound("missing " + ", ".join(missing))
    arrays = {key: read_idx(path) for key, path in found.items()}
    for key in ("x_train", "x_test"):
        if arrays[key].ndim != 3 or arrays[key].dtype != np.uint8:
            raise DatasetFormatError(
                f"{found[key]}: expected uint8 images of shape (N, H, W), got "
                f"{arrays[key].dtype} {arrays[key].shape}"
            )
    for key in ("y_train", "y_test"):
        if arrays[key].ndim != 1:
            raise DatasetFormatError(f"{found[key]}: expected 1-D labels, got {arrays[key].shape}")
    return _Raw(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], 10)


# ---- CIFAR -----------------------------------------------------------------------------------

_CIFAR_PIXELS = 3 * 32 * 32


def _cifar_rows_to_images(rows: np.ndarray, what: str) -> np.ndarray:
    """Official CIFAR rows (N, 3072), channel-major 3x32x32, -> uint8 (N, 32, 32, 3)."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != _CIFAR_PIXELS:
        raise DatasetFormatError(
            f"{what}: expected rows of {_CIFAR_PIXELS} bytes, got shape {rows.shape}"
        )
    return rows.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only builds the objects the official CIFAR batch files contain.

    The python version of CIFAR is distributed by its authors as pickled dicts, so reading it
    needs pickle.  Only NumPy's array reconstruction is allowed: a pickle asking for any
    other global is rejected instead of executed.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def _unpickle_cifar(path: Path) -> dict:
    # The official "python version" of CIFAR-10/100 is a set of Python pickles of dicts written
    # by Python 2; encoding="bytes" is how they must be read (keys come back as bytes).  Using
    # pickle here is acceptable because it is the official distribution format, and the
    # restricted unpickler above refuses anything but NumPy arrays.
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as error:  # noqa: BLE001 - any failure means a corrupt/foreign file
        raise DatasetFormatError(f"{path}: not a CIFAR python batch ({error})") from error
    if not isinstance(batch, dict) or b"data" not in batch:
        raise DatasetFormatError(f"{path}: not a CIFAR python batch (no b'data' entry)")
    return batch


def _cifar_python_split(paths: Sequence[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in paths:
        batch = _unpickle_cifar(path)
        if label_key not in batch:
            raise DatasetFormatError(f"{path}: no {label_key!r} entry")
        x = _cifar_rows_to_images(batch[b"data"], str(path))
        y = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
        if len(x) != len(y):
            raise DatasetFormatError(f"{path}: {len(x)} images but {len(y)} labels")
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _cifar_binary_split(
    paths: Sequence[Path], label_bytes: int, label_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Binary version: records of ``label_bytes`` label bytes followed by 3072 pixel bytes."""
    images, labels = [], []
    record = label_bytes + _CIFAR_PIXELS
    for path in paths:
        data = np.fromfile(path, dtype=np.uint8)
        if data.size == 0 or data.size % record:
            raise DatasetFormatError(
                f"{path}: size {data.size} is not a multiple of the {record}-byte CIFAR record"
            )
        data = data.reshape(-1, record)
        labels.append(data[:, label_index].astype(np.int64))
        images.append(_cifar_rows_to_images(data[:, label_bytes:], str(path)))
    return np.concatenate(images), np.concatenate(labels)


def _require(d: Path, names: Sequence[str]) -> list[Path] | None:
    """All of ``names`` in ``d``; None if none exist; _NotFound if only some do."""
    paths = [d / n for n in names]
    exists = [p.is_file() for p in paths]
    if not any(exists):
        return None
    if not all(exists):
        raise _NotFound("missing " + ", ".join(n for n, e in zip(names, exists) if not e))
    return paths


def _local_cifar10(d: Path) -> _Raw | None:
    train = [f"data_batch_{i}" for i in range(1, 6)]
    python = _require(d, train + ["test_batch"])
    if python is not None:
        x_train, y_train = _cifar_python_split(python[:5], b"labels")
        x_test, y_test = _cifar_python_split(python[5:], b"labels")
        return _Raw(x_train, y_train, x_test, y_test, 10)
    binary = _require(d, [f + ".bin" for f in train] + ["test_batch.bin"])
    if binary is not None:
        x_train, y_train = _cifar_binary_split(binary[:5], 1, 0)
        x_test, y_test = _cifar_binary_split(binary[5:], 1, 0)
        return _Raw(x_train, y_train, x_test, y_test, 10)
    return None


def _local_cifar100(d: Path) -> _Raw | None:
    python = _require(d, ["train", "test"])
    if python is not None and not (d / "train").is_dir():
        x_train, y_train = _cifar_python_split(python[:1], b"fine_labels")
        x_test, y_test = _cifar_python_split(python[1:], b"fine_labels")
        return _Raw(x_train, y_train, x_test, y_test, 100)
    binary = _require(d, ["train.bin", "test.bin"])
    if binary is not None:  # records: coarse label byte, fine label byte, 3072 pixels
        x_train, y_train = _cifar_binary_split(binary[:1], 2, 1)
        x_test, y_test = _cifar_binary_split(binary[1:], 2, 1)
        return _Raw(x_train, y_train, x_test, y_test, 100)
    return None


# ---- Image folders: cifar10_jpeg, and Tiny ImageNet's train/ ---------------------------------

#: Suffixes Keras' image-folder listing accepts (case-insensitive); other files are ignored.
_IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def _decode_images(
    paths: Sequence[str | Path], size: tuple[int, int], contents: Sequence[bytes] | None = None
) -> np.ndarray:
    """Decode image files into a uint8 ``(N, H, W, 3)`` array; grayscale/RGBA/palette -> RGB.

    With ``contents`` the images are decoded from those bytes and ``paths`` only name them.

    Pillow decodes, so JPEGs get libjpeg's accurate integer IDCT.  TensorFlow's
    ``decode_image``, which ``keras.utils.image_dataset_from_directory`` decodes with, uses
    the fast IDCT: on the CIFAR-10 JPEGs its red and blue channels come out about 1.2 grey
    levels darker on average.  A file that cannot be decoded, or whose size is not ``size``
    ``(height, width)``, raises :class:`DatasetFormatError` naming it (images are never
    resized).
    """
    from PIL import Image  # Pillow, a dependency of matplotlib

    height, width = size
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        path = paths[i]
        try:
            with Image.open(path if contents is None else io.BytesIO(contents[i])) as img:
                array = np.asarray(img.convert("RGB"))
        except Exception as error:  # noqa: BLE001 - any failure means an unreadable file
            raise DatasetFormatError(f"{path}: cannot decode image ({error})") from error
        if array.shape[:2] != (height, width):
            raise DatasetFormatError(
                f"{path}: expected a {width}x{height} image (width x height), "
                f"got {array.shape[1]}x{array.shape[0]}"
            )
        out[i] = array

    pool = ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)))
    try:
        for _ in pool.map(decode, range(len(paths))):
            pass
    finally:  # on the first error, drop the files not yet started
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def _list_image_folder(
    directory: Path,
    size: tuple[int, int],
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> tuple[list[str], np.ndarray, list[str]]:
    """``(paths, labels, class names)`` of ``directory/<class>/**/<image>``, as Keras lists it.

    :func:`keras.utils.image_dataset_from_directory` does the listing (``labels="inferred"``,
    ``shuffle=False``): class ``k`` is the ``k``-th of ``class_names``, by default the sorted
    non-hidden sub-folder names; the files come class by class, sorted, sub-folders included.
    Its dataset is only built, never iterated: the pixels come from :func:`_decode_images`.
    """
    from dropnet_tf.core.backend import KERAS_MAJOR, keras

    if not directory.is_dir():
        raise DatasetFormatError(f"{directory}: no such folder")
    if class_names is not None:
        missing = [c for c in class_names if not (directory / c).is_dir()]
        if missing:
            raise DatasetFormatError(
                f"{directory}: missing class folder(s) {', '.join(missing)} "
                f"({len(missing)} of the {len(class_names)} expected)"
            )
    options = {"verbose": False} if KERAS_MAJOR >= 3 else {}
    try:
        listing = keras.utils.image_dataset_from_directory(
            str(directory),
            labels="inferred",
            label_mode="int",
            class_names=None if class_names is None else list(class_names),
            image_size=size,
            shuffle=False,
            **options,
        )
    except ValueError as error:  # Keras: no image files at all
        raise DatasetFormatError(
            f"{directory}: no images in class folders ({error}); expected <class>/ folders of "
            f"{'/'.join(_IMAGE_SUFFIXES)} files"
        ) from error
    classes = [str(c) for c in listing.class_names]
    paths = [str(p) for p in listing.file_paths]
    index = {c: k for k, c in enumerate(classes)}
    labels = np.fromiter(
        (index[_relative(p, directory).split(os.sep, 1)[0]] for p in paths),
        dtype=np.int64,
        count=len(paths),
    )
    _check_classes(str(directory), classes, labels, num_classes)
    return paths, labels, classes


def _check_classes(where: str, classes: Sequence[str], labels: np.ndarray, num_classes) -> None:
    """The number of class folders is ``num_classes`` (when given) and none is empty."""
    if num_classes is not None and len(classes) != num_classes:
        raise DatasetFormatError(
            f"{where}: found {len(classes)} class folders ({', '.join(classes) or 'none'}), "
            f"expected {num_classes}"
        )
    counts = np.bincount(labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise DatasetFormatError(
            f"{where}: class folder(s) {', '.join(empty)} hold no images "
            f"({'/'.join(_IMAGE_SUFFIXES)} files)"
        )


def _relative(path: str, root: str | os.PathLike) -> str:
    """``path`` relative to ``root``; fast for the ``os.path.join(root, ...)`` paths Keras lists."""
    prefix = os.path.join(os.fspath(root), "")
    return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)


def read_image_folder(
    directory: str | os.PathLike,
    image_size: tuple[int, int],
    *,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode an image-folder dataset, ``directory/<class>/[...]/<image>``, into arrays.

    The folder is listed by :func:`keras.utils.image_dataset_from_directory` with labels
    inferred and ``shuffle=False``: label ``k`` is the ``k``-th class name, the sorted
    sub-folder names unless ``class_names`` gives them (then other sub-folders are ignored),
    and images come class by class in sorted file order.  Files ending in .bmp, .gif, .jpeg,
    .jpg or .png (any case) count; others are ignored.  Images are decoded by Pillow into RGB.

    Args:
        directory: the folder holding one sub-folder per class.
        image_size: ``(height, width)`` every image must have (they are never resized).
        class_names: the classes, in label order, each of which must be a sub-folder.
        num_classes: when given, the number of class folders required.

    Returns:
        ``(x, y, class_names)``: uint8 images ``(N, height, width, 3)``, int64 labels ``(N,)``
        and the class names in label order.

    Raises:
        DatasetFormatError: the folder is missing, has another number of class folders, a
            class folder without images, or an image that cannot be decoded or has another
            size; the message names the folder or file.
    """
    size = (int(image_size[0]), int(image_size[1]))
    paths, labels, classes = _list_image_folder(Path(directory), size, class_names, num_classes)
    return _decode_images(paths, size), labels, classes


# Decoded arrays of image folders are cached as .npz files, keyed by what was read.

_CACHE_FORMAT = 1  # bump when the same files would decode to other arrays


def default_cache_dir() -> Path:
    """Where decoded image folders are cached when ``cache_dir`` is not given.

    ``$DROPNET_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/dropnet_tf``, else
    ``~/.cache/dropnet_tf``.  Never inside a data directory, which may be read-only.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path("~/.cache")).expanduser() / "dropnet_tf"


def _resolve_cache_dir(cache_dir) -> Path | None:
    if cache_dir is None:
        return default_cache_dir()
    if cache_dir is False:
        return None
    if isinstance(cache_dir, bool) or not isinstance(cache_dir, (str, os.PathLike)):
        raise ValueError(
            f"cache_dir must be a directory path, None (the default, {default_cache_dir()}) or "
            f"False (no cache), got {cache_dir!r}"
        )
    return Path(cache_dir).expanduser()


def _cache_file(cache: Path, name: str, source: Path, content_key: str) -> Path:
    """``cache/<name>/<where>-<what>.npz``: one file per source path, named by its content key."""
    where = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return cache / name / f"{where}-{content_key}.npz"


def _files_key(root: Path, paths: Sequence[str], extra) -> str:
    """Hash of the files' names (relative to ``root``), sizes and modification times."""
    digest = hashlib.sha256(repr((_CACHE_FORMAT, extra)).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{_relative(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _read_cache(path: Path | None, num_classes: int) -> tuple[_Raw, list[str]] | None:
    """The cached arrays, or None when absent or unusable (then they are decoded again)."""
    if path is None or not path.is_file():
        return None
    try:
        arrays = load_npz(path)
        x_train, x_test = arrays["x_train"], arrays["x_test"]
        y_train, y_test = arrays["y_train"], arrays["y_test"]
        classes = [str(c) for c in arrays["class_names"]]
        ok = (
            x_train.dtype == x_test.dtype == np.uint8
            and x_train.ndim == x_test.ndim == 4
            and len(x_train) == len(y_train)
            and len(x_test) == len(y_test)
            and len(classes) == num_classes
        )
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file: decode again
        warnings.warn(f"ignoring unreadable dataset cache {path} ({error})", RuntimeWarning)
        return None
    if not ok:
        warnings.warn(f"ignoring dataset cache {path}: unexpected arrays", RuntimeWarning)
        return None
    raw = _Raw(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), num_classes)
    return raw, classes


def _write_cache(path: Path | None, raw: _Raw, classes: Sequence[str]) -> None:
    """Save the decoded arrays atomically and drop older caches of the same source."""
    if path is None:
        return
    try:
        save_npz_atomic(
            path,
            x_train=raw.x_train,
            y_train=raw.y_train,
            x_test=raw.x_test,
            y_test=raw.y_test,
            class_names=np.asarray(list(classes), dtype=str),
        )
    except OSError as error:
        warnings.warn(
            f"could not write the dataset cache {path} ({error}); the next load decodes the "
            f"images again. Point {CACHE_DIR_ENV} or cache_dir= at a writable directory, or "
            "pass cache_dir=False.",
            RuntimeWarning,
        )
        return
    where = path.name.split("-")[0]
    for stale in path.parent.glob(f"{where}-*.npz"):
        if stale != path:
            try:
                stale.unlink()
            except OSError:
                pass


# ---- CIFAR-10 as JPEG (cifar10_jpeg) ---------------------------------------------------------

_CIFAR10_JPEG_SIZE = (32, 32)

#: Archive names searched for in the data roots, per dataset.
_ARCHIVES = {"cifar10_jpeg": ("cifar10_jpeg.tar.gz", "cifar10_jpeg.tgz", "cifar10_jpeg.tar")}


def _local_cifar10_jpeg(d: Path, cache: Path | None) -> _Raw | None:
    """``d/train/<class>/*.jpg`` and ``d/test/<class>/*.jpg``, decoded once, then cached."""
    found = _cifar10_jpeg_folder(d, cache)
    return None if found is None else found[0]


def _cifar10_jpeg_folder(d: Path, cache: Path | None) -> tuple[_Raw, list[str]] | None:
    """:func:`_local_cifar10_jpeg`, with the class names."""
    train, test = d / "train", d / "test"
    if not train.is_dir() and not test.is_dir():
        return None
    if not train.is_dir() or not test.is_dir():
        have, lack = ("train", "test") if train.is_dir() else ("test", "train")
        raise _NotFound(f"has {have}/ but no {lack}/")
    num_classes = _NUM_CLASSES["cifar10_jpeg"]
    size = _CIFAR10_JPEG_SIZE
    train_paths, y_train, classes = _list_image_folder(train, size, num_classes=num_classes)
    test_paths, y_test, test_classes = _list_image_folder(test, size, num_classes=num_classes)
    if test_classes != classes:
        raise DatasetFormatError(
            f"{d}: train/ and test/ have different class folders "
            f"(train: {', '.join(classes)}; test: {', '.join(test_classes)})"
        )
    path = None
    if cache is not None:
        key = _files_key(d, train_paths + test_paths, ("folder", size, classes))
        path = _cache_file(cache, "cifar10_jpeg", d, key)
    cached = _read_cache(path, num_classes)
    if cached is not None and np.array_equal(cached[0].y_train, y_train) and np.array_equal(
        cached[0].y_test, y_test
    ):
        return cached[0], classes
    raw = _Raw(_decode_images(train_paths, size), y_train, _decode_images(test_paths, size), y_test,
               num_classes)
    _write_cache(path, raw, classes)
    return raw, classes


def _candidate_archives(name: str, data_dir) -> list[Path]:
    """Archives of ``name`` in the search roots (or ``data_dir`` itself when it is one)."""
    names = _ARCHIVES.get(name, ())
    if not names:
        return []
    roots, explicit, _ = _search_roots(data_dir)
    found = []
    if explicit and roots[0].is_file() and roots[0].name.endswith((".tar.gz", ".tgz", ".tar")):
        found.append(roots[0])
    for root in roots:
        found += [root / n for n in names if (root / n).is_file()]
    return found


def _archive_members(archive: Path) -> tuple[str, dict[str, list[tuple[str, bytes]]]]:
    """Image members ``[<top>/]{train,test}/<class>/.../<file>`` of ``archive``, read in memory.

    Returns ``top`` (``""`` when train/ and test/ are at the root) and
    ``{"train": [(path below the split folder, bytes), ...], "test": [...]}``.  The archive is
    streamed once and never unpacked: writing 60,000 small files costs far more than decoding
    them.  Only regular files count; links and other members are skipped.
    """
    splits: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}
    top = None
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                parts = [part for part in member.name.split("/") if part not in ("", ".")]
                if len(parts) >= 2 and parts[0] in splits:
                    where = ""
                elif len(parts) >= 3 and parts[1] in splits:
                    where = parts[0]
                else:
                    continue
                top = where if top is None else top
                rest = parts[1:] if where == "" else parts[2:]
                if where != top or len(rest) < 2 or rest[0].startswith("."):  # hidden class
                    continue
                if member.isfile() and parts[-1].lower().endswith(_IMAGE_SUFFIXES):
                    data = tar.extractfile(member).read()
                    splits[parts[0] if where == "" else parts[1]].append(("/".join(rest), data))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DatasetFormatError(f"{archive}: cannot read the archive ({error})") from error
    if top is None:
        raise DatasetFormatError(
            f"{archive}: expected cifar10_jpeg/train/<class>/ and cifar10_jpeg/test/<class>/ "
            "inside, found neither"
        )
    for split, members in splits.items():
        if not members:
            folder = f"{top}/{split}" if top else split
            raise DatasetFormatError(f"{archive}: no images under {folder}/")
    return top, splits


def _archive_split(archive: Path, top: str, split: str, members: list[tuple[str, bytes]]):
    """``(names, contents, labels, classes)`` of one split, ordered as a folder listing is."""

    def order(item):  # class, then the folder inside it, then the file name, as Keras lists
        parts = item[0].split("/")
        return parts[0], "/".join(parts[1:-1]), parts[-1]

    members = sorted(members, key=order)
    class_of = [name.split("/", 1)[0] for name, _ in members]
    classes = sorted(set(class_of))
    index = {c: k for k, c in enumerate(classes)}
    labels = np.asarray([index[c] for c in class_of], dtype=np.int64)
    folder = f"{top}/{split}" if top else split
    _check_classes(f"{archive}: {folder}", classes, labels, _NUM_CLASSES["cifar10_jpeg"])
    names = [f"{archive}: {folder}/{name}" for name, _ in members]
    return names, [data for _, data in members], labels, classes


def _local_cifar10_jpeg_archive(archive: Path, cache: Path | None) -> _Raw:
    """The folder inside ``archive`` (e.g. ``cifar10_jpeg.tar.gz``), read without unpacking.

    Cached by the archive's path, size and modification time; on a miss the archive is
    streamed once and its images are decoded from memory.  Nothing is ever written next to
    the archive, nor unpacked anywhere.  Labels and order are those of the unpacked folder.
    """
    num_classes = _NUM_CLASSES["cifar10_jpeg"]
    size = _CIFAR10_JPEG_SIZE
    path = None
    if cache is not None:
        stat = archive.stat()
        key = hashlib.sha256(
            repr((_CACHE_FORMAT, "archive", size, stat.st_size, stat.st_mtime_ns)).encode()
        ).hexdigest()[:20]
        path = _cache_file(cache, "cifar10_jpeg", archive, key)
    cached = _read_cache(path, num_classes)
    if cached is not None:
        return cached[0]
    top, splits = _archive_members(archive)
    train_names, train_data, y_train, classes = _archive_split(
        archive, top, "train", splits["train"]
    )
    test_names, test_data, y_test, test_classes = _archive_split(
        archive, top, "test", splits["test"]
    )
    del splits
    if test_classes != classes:
        raise DatasetFormatError(
            f"{archive}: train/ and test/ have different class folders "
            f"(train: {', '.join(classes)}; test: {', '.join(test_classes)})"
        )
    x_train = _decode_images(train_names, size, train_data)
    del train_data
    raw = _Raw(x_train, y_train, _decode_images(test_names, size, test_data), y_test, num_classes)
    _write_cache(path, raw, classes)
    return raw


# ---- Tiny ImageNet ---------------------------------------------------------------------------

_TINY_SIZE = (64, 64)


def _local_tiny_imagenet(d: Path) -> _Raw | None:
    """The official ``tiny-imagenet-200`` folder.

    Class ``k`` is the ``k``-th wnid of ``wnids.txt`` in sorted order.  ``train/<wnid>/images``
    is the training set (listed by :func:`read_image_folder`'s Keras listing, split into
    train/val by :func:`load_dataset`); the official ``val`` folder, labelled by
    ``val/val_annotations.txt`` (tab-separated: file name, wnid, box), is the test set, since
    the official test images have no labels.
    """
    wnids_file = d / "wnids.txt"
    if not wnids_file.is_file():
        return None
    annotations = d / "val" / "val_annotations.txt"
    if not (d / "train").is_dir() or not annotations.is_file():
        raise _NotFound("has wnids.txt but not train/ and val/val_annotations.txt")
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    index = {wnid: k for k, wnid in enumerate(wnids)}
    train_paths, train_labels, _ = _list_image_folder(d / "train", _TINY_SIZE, class_names=wnids)

    test_paths: list[Path] = []
    test_labels: list[int] = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise DatasetFormatError(
                f"{annotations}:{number}: expected 'file<TAB>wnid<TAB>...' with a wnid listed "
                f"in wnids.txt, got {line!r}"
            )
        test_paths.append(d / "val" / "images" / fields[0].strip())
        test_labels.append(index[fields[1].strip()])

    return _Raw(
        _decode_images(train_paths, _TINY_SIZE),
        train_labels,
        _decode_images(test_paths, _TINY_SIZE),
        np.asarray(test_labels, dtype=np.int64),
        len(wnids),
    )


# --------------------------------------------------------------------------------------------
# tensorflow-datasets
# --------------------------------------------------------------------------------------------


def _tfds_data_dir(data_dir) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _tfds_prepared(root: Path, tfds_name: str) -> bool:
    """Whether ``root/<name>/[<config>/]<version>/dataset_info.json`` exists (no TFDS import)."""
    base = root / tfds_name
    if not base.is_dir():
        return False
    for depth_1 in base.iterdir():
        if (depth_1 / "dataset_info.json").is_file():
            return True
        if depth_1.is_dir():
            for depth_2 in depth_1.iterdir():
                if (depth_2 / "dataset_info.json").is_file():
                    return True
    return False


_TFDS_DOWNLOAD_HOST = "storage.googleapis.com"


def _host_resolves(host: str, timeout: float = 2.0) -> bool:
    """Whether ``host`` resolves within ``timeout`` seconds (a DNS look-up, no traffic)."""
    import concurrent.futures
    import socket

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(socket.getaddrinfo, host, 443)
    try:
        future.result(timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - unresolvable, timed out: either way, offline
        return False
    finally:
        pool.shutdown(wait=False)


def _load_tfds(name: str, data_dir, download) -> tuple[_Raw, str]:
    tfds_name = _TFDS_NAMES[name]
    root = _tfds_data_dir(data_dir)
    prepared = _tfds_prepared(root, tfds_name)
    if download == "auto":
        download = not prepared and _host_resolves(_TFDS_DOWNLOAD_HOST)
        if not prepared and not download:
            raise _NotFound(f"{tfds_name!r} not prepared in {root} and {_TFDS_DOWNLOAD_HOST} "
                            "does not resolve (offline), so no download was tried")
    if not download and not prepared:
        raise _NotFound(f"{tfds_name!r} not prepared in {root} and download=False")
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise _NotFound(
            f"tensorflow-datasets is not installed ({error}); `pip install tensorflow-datasets`"
        ) from error
    try:
        train, test = tfds.load(
            tfds_name,
            split=["train", "test"],
            batch_size=-1,
            as_supervised=True,
            data_dir=str(root),
            download=download,
        )
        x_train, y_train = tfds.as_numpy(train)
        x_test, y_test = tfds.as_numpy(test)
    except Exception as error:  # noqa: BLE001 - offline, missing files, version mismatch...
        summary = " ".join(str(error).split())[:300]
        raise _NotFound(f"tfds.load({tfds_name!r}, data_dir={str(root)!r}) failed: "
                        f"{type(error).__name__}: {summary}") from error
    # TFDS images are already channel-last, (N, 28, 28, 1) for the grayscale datasets.
    x_train, x_test = np.asarray(x_train, dtype=np.uint8), np.asarray(x_test, dtype=np.uint8)
    return _Raw(x_train, y_train, x_test, y_test, _NUM_CLASSES[name]), f"tfds:{root}"
