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
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dropnet_tf.data.common import (
    CACHE_DIR_ENV,
    _candidate_dirs,
    DATA_DIR_ENV,
    DatasetFormatError,
    DATASETS,
    DatasetUnavailableError,
    HOW_TO,
    _NotFound,
    _Raw,
    SOURCES,
    _SOURCES_FOR,
    _TFDS_NAMES,
)
from dropnet_tf.data.cifar import (
    _local_cifar10,
    _local_cifar100,
)
from dropnet_tf.data.idx import (
    _local_idx,
    read_idx,
)
from dropnet_tf.data.image_folder import (
    _candidate_archives,
    default_cache_dir,
    _local_cifar10_jpeg,
    _local_cifar10_jpeg_archive,
    _local_tiny_imagenet,
    read_image_folder,
    _resolve_cache_dir,
)
from dropnet_tf.data.tfds import (
    _load_tfds,
)


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
