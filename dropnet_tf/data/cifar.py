"""CIFAR-10 / CIFAR-100 from the official python or binary distributions."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np

from dropnet_tf.data.common import (
    DatasetFormatError,
    _NotFound,
    _Raw,
)


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
