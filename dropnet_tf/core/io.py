"""Durable file writes and reads shared by every package: atomic writes, NPZ state, JSON values.

Every write goes through :func:`atomic_write_bytes`: the new content is written to a
temporary file in the same directory, flushed and ``fsync``-ed, then moved over the final
name with :func:`os.replace` (atomic on POSIX and Windows), and the directory is synced
(:func:`fsync_directory`).  A reader sees either the old file or the new one, never a
half-written one.  :func:`to_jsonable` states the JSON conversion rules (see
:mod:`dropnet_tf.harness.results`).  Imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pathlib
import secrets
import stat
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "PathLike",
    "fsync_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "save_npz_atomic",
    "load_npz",
    "to_jsonable",
]

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


def fsync_directory(directory: str) -> None:
    """Make a rename durable by syncing its directory (best effort; no-op where unsupported)."""
    flags = getattr(os, "O_DIRECTORY", 0) | os.O_RDONLY
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically and durably; return the path as ``str``.

    The bytes go to a hidden temporary file in the same directory (so that the final
    :func:`os.replace` never crosses a file system), which is flushed and ``fsync``-ed
    before it replaces ``path``.  Missing parent directories are created.  If anything
    fails, the temporary file is removed, the exception propagates and ``path`` keeps its
    previous content.  An existing file's permission bits are preserved; a new file gets
    ``0o666`` minus the umask, like :func:`open`.
    """
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)

    while True:
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue

    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)
    return path


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> str:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    No newline translation is done: what is passed is exactly what is stored.
    """
    return atomic_write_bytes(path, text.encode(encoding))


# --------------------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------------------


def save_npz_atomic(path: PathLike, **arrays: Any) -> str:
    """Save named arrays to an uncompressed ``.npz`` file atomically; return the path.

    The path is used exactly as given (unlike :func:`numpy.savez`, no ``.npz`` suffix is
    added).  Object arrays are refused with :class:`ValueError`, because storing them
    would need pickle.
    """
    converted = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise ValueError(
                f"save_npz_atomic: array {name!r} has dtype {arr.dtype}; object arrays would "
                "need pickle, which dropnet_tf never uses. Convert it to a numeric or string "
                "array first."
            )
        converted[name] = arr
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **converted)
    return atomic_write_bytes(path, buffer.getvalue())


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file into memory (``allow_pickle=False``).

    Raises :class:`ValueError` naming the file if it holds an object (pickled) array or is
    damaged or truncated (never a bare ``BadZipFile`` / ``zlib.error``).
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        if isinstance(error, ValueError) and "pickle" in str(error):
            raise ValueError(f"{path} holds an object (pickled) array, which dropnet_tf never loads ({error}).") from error
        raise ValueError(
            f"{path} is not a readable .npz file ({type(error).__name__}: {error}); it is damaged or truncated."
        ) from error


# --------------------------------------------------------------------------------------
# JSON conversion and CSV flattening
# --------------------------------------------------------------------------------------


def to_jsonable(value: Any, _where: str = "value") -> Any:
    """Return ``value`` converted to plain JSON types (see the module docstring).

    NumPy scalars/arrays → Python scalars/lists; tuples → lists; ``Path`` → ``str``;
    NaN/±inf → ``None``; integer dict keys → ``str``.  Anything else raises
    :class:`TypeError` naming where in the structure it was found.
    """
    if value is None or isinstance(value, str):
        return str(value) if isinstance(value, np.str_) else value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return [to_jsonable(v, f"{_where}[{i}]") for i, v in enumerate(value.tolist())]
        return to_jsonable(value.tolist(), _where)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                skey = str(key)
            elif isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
                skey = str(int(key))
            else:
                raise TypeError(
                    f"{_where}: dictionary key {key!r} of type {type(key).__name__} is not a "
                    "string; JSON object keys must be strings"
                )
            out[skey] = to_jsonable(item, f"{_where}[{skey!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{_where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, pathlib.PurePath):
        return str(value)
    raise TypeError(
        f"{_where}: object of type {type(value).__name__} is not JSON serialisable "
        f"({value!r:.80})"
    )
