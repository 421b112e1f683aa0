"""IDX files (MNIST, Fashion-MNIST): :func:`read_idx` and the local IDX reader."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from dropnet_tf.data.common import (
    DatasetFormatError,
    _NotFound,
    _Raw,
)


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
