"""Durable storage of iterative-pruning results (JSON lines, CSV and NPZ; never pickle).

An iterative-pruning run can take hours, so whatever it has finished must survive a crash,
a ``kill -9`` or a full disk at any moment.  Every write in this module therefore goes
through :func:`atomic_write_bytes`: the new content is written to a temporary file in the
same directory, flushed and ``fsync``-ed, then moved over the final name with
:func:`os.replace` (atomic on POSIX and Windows).  A reader sees either the old file or
the new one, never a half-written one, and a failed write leaves the old file untouched.

This module deliberately imports neither TensorFlow nor Keras, so results can be read,
summarised and plotted on a machine without them.

Record schema
-------------
:class:`ResultsFile` stores one JSON object per line; the iterative pruning loop writes
one record per (experiment, metric, seed, init, pruning fraction, cycle)::

    {
      "experiment": "digits_model_a",      # str, name of the experiment / sweep
      "metric": "minimum",                 # str, pruning metric (minimum, maximum, random,
                                           #   minimum_layer, ..., apoz, apoz_layer, oracle)
      "seed": 0,                           # int
      "init": "original",                  # "original" (rewind to the initial weights)
                                           #   or "random" (fresh random initialisation)
      "pruning_fraction": 0.2,             # float, fraction of remaining units pruned per cycle
      "cycle": 3,                          # int, 0 = the unpruned network
      "fraction_remaining": 0.512,         # float, overall fraction of nodes/filters left
      "units_per_layer": {"mask_1": 10},   # {layer name: int}, units still active
      "fraction_remaining_per_layer": {"mask_1": 0.5},   # {layer name: float}
      "collapsed_layers": [],              # [layer names] with no unit left
      "train_accuracy": 0.99, "train_loss": 0.03,
      "val_accuracy": 0.97, "val_loss": 0.09,
      "test_accuracy": 0.96, "test_loss": 0.11,          # floats (None = NaN, see below)
      "epochs": 37,                        # int, epochs trained in this cycle
      "compact_training": False,           # bool, this cycle trained the compacted model
      "wall_seconds": 12.5,                # float
      "stop_reason": "early_stopping",     # str or None
      # optional: "test_top5_accuracy": float, "oracle_similarity": float
    }

JSON conversion rules (:func:`to_jsonable`): NumPy scalars become Python ``int`` /
``float`` / ``bool``, NumPy arrays and tuples become lists, :class:`pathlib.Path` becomes
``str``.  **Non-finite floats (NaN, +inf, -inf) are written as JSON ``null``** (strict
JSON has no NaN), so they read back as ``None``; a diverged run's ``NaN`` loss is
therefore recorded, not rejected.  Any other type raises :class:`TypeError` naming the
offending key *before* anything is written.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

# The file helpers live in dropnet_tf.core.io; they stay importable from here.
from dropnet_tf.core.io import (
    PathLike,
    atomic_write_bytes,
    atomic_write_text,
    load_npz,
    save_npz_atomic,
    to_jsonable,
)

try:  # POSIX advisory locks serialise concurrent appenders on one machine.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "save_npz_atomic",
    "load_npz",
    "to_jsonable",
    "flatten_record",
    "write_csv",
    "ResultsFile",
]

def flatten_record(record: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys for a CSV row.

    ``{"units_per_layer": {"mask_1": 10}}`` → ``{"units_per_layer.mask_1": 10}``.  Lists
    (and empty dicts) become JSON strings; ``None`` stays ``None`` (an empty CSV cell).
    """
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                visit(f"{prefix}{sep}{key}" if prefix else str(key), item)
        elif isinstance(value, (Mapping, list, tuple, np.ndarray)):
            flat[prefix] = json.dumps(to_jsonable(value), ensure_ascii=False)
        else:
            flat[prefix] = to_jsonable(value)

    for key, value in record.items():
        visit(str(key), value)
    return flat


def write_csv(path: PathLike, rows: Iterable[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """Flatten ``rows`` (see :func:`flatten_record`) and write them to ``path`` atomically.

    Columns appear in first-seen order across the rows unless ``columns`` is given; a
    row lacking a column gets an empty cell.  Floats are written with ``repr`` precision.
    Returns the path as ``str``.
    """
    flat_rows = [flatten_record(row) for row in rows]
    if columns is None:
        seen: dict[str, None] = {}
        for row in flat_rows:
            for key in row:
                seen.setdefault(key, None)
        columns = list(seen)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in flat_rows:
        writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
    return atomic_write_text(path, buffer.getvalue())


# --------------------------------------------------------------------------------------
# ResultsFile
# --------------------------------------------------------------------------------------

_MISSING = object()


@contextlib.contextmanager
def _directory_lock(directory: str) -> Iterator[None]:
    """Exclusive advisory lock on ``directory`` (POSIX ``flock``), so that concurrent
    processes appending to files in it cannot lose each other's records.  No-op where
    directory locks are unavailable (Windows, some network file systems)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # pragma: no cover
            pass
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class CorruptResultsError(ValueError):
    """A results file that cannot be read as it is (a torn or non-JSON line): the message names
    the file and line and says how to repair it; nothing is dropped silently."""

    #: The entry points print the message as one paragraph and exit 1, without a traceback.
    user_fixable = True


class ResultsFile:
    """A JSON-lines results file: one JSON object (one record) per line.

    Every :meth:`append` rewrites the whole file atomically (existing text + the new line,
    via :func:`atomic_write_text`), so a crash can never leave a half-written line and a
    finished cycle is never lost.  The files are small (one line per pruning cycle), so the
    rewrite costs well under a millisecond per record.  Appends from several processes on
    the same machine are serialised with a lock on the parent directory.

    Reading is strict: a line that is not a JSON object raises :class:`ValueError` naming
    the file and line number, instead of silently dropping data.  ``append`` validates the
    existing file the same way before writing, so a corrupt file is never extended.

    Example::

        results = ResultsFile("runs/digits/results.jsonl")
        if results.last_cycle(metric="minimum", seed=0) is None:
            results.append({"metric": "minimum", "seed": 0, "cycle": 0, ...})
        rows = results.records(metric="minimum", init="original")
        results.to_csv("runs/digits/results.csv")
    """

    def __init__(self, path: PathLike):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"ResultsFile({self.path!r})"

    def exists(self) -> bool:
        return os.path.exists(self.path)

    # ---- reading ----------------------------------------------------------------------

    def _read_text(self) -> str:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return ""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            raise CorruptResultsError(
                f"{self.path}: line {line} is not valid UTF-8 ({err.reason}); the file is "
                "corrupt. Nothing was dropped: repair or remove that line by hand."
            ) from err

    def _parse(self, text: str) -> list[dict]:
        records = []
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorruptResultsError(
                    f"{self.path}: line {lineno} is not valid JSON ({err.msg} at column "
                    f"{err.colno}); the file was probably truncated or corrupted by a "
                    "non-atomic writer. Nothing was dropped: repair or remove that line by "
                    "hand."
                ) from err
            if not isinstance(record, dict):
                raise CorruptResultsError(
                    f"{self.path}: line {lineno} holds a JSON {type(record).__name__}, not an "
                    "object; every line of a results file must be one record (a JSON object)."
                )
            records.append(record)
        return records

    def records(self, **filters: Any) -> list[dict]:
        """All records whose keys equal every filter value, in file order.

        A record lacking a filtered key does not match (``stop_reason=None`` matches only
        records that store ``null``).  Filter values go through :func:`to_jsonable` first,
        so ``seed=np.int64(0)`` or a tuple filter compare like what was stored.  A missing
        file gives ``[]``.
        """
        wanted = {key: to_jsonable(value, key) for key, value in filters.items()}
        return [
            record
            for record in self._parse(self._read_text())
            if all(record.get(key, _MISSING) == value for key, value in wanted.items())
        ]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.records())

    def last_cycle(self, **filters: Any) -> int | None:
        """The largest ``"cycle"`` among the matching records, or ``None`` if there is none."""
        cycles = [r["cycle"] for r in self.records(**filters) if r.get("cycle") is not None]
        return max(cycles) if cycles else None

    # ---- writing ----------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> dict:
        """Append one record atomically; return the JSON-converted record as stored."""
        return self.extend([record])[0]

    def extend(self, records: Iterable[Mapping[str, Any]]) -> list[dict]:
        """Append several records in one atomic write (all or none are stored)."""
        converted = []
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise TypeError(f"a record must be a dict, got {type(record).__name__}")
            converted.append(to_jsonable(record, f"record[{i}]" if i else "record"))
        if not converted:
            return []
        lines = "".join(
            json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in converted
        )
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with _directory_lock(directory):
            text = self._read_text()
            self._parse(text)  # never extend a corrupt file
            if text and not text.endswith("\n"):
                text += "\n"
            atomic_write_text(self.path, text + lines)
        return converted

    def replace(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict:
        """Replace the last record equal to ``old`` by ``new``, atomically; return ``new`` as stored.

        Every other line is kept byte for byte.  Raises :class:`KeyError` (and writes
        nothing) when no record equals ``old``.  Used when a finished run is continued
        under other stop rules: its last record loses its stop reason.
        """
        if not isinstance(new, Mapping):
            raise TypeError(f"a record must be a dict, got {type(new).__name__}")
        wanted = to_jsonable(old, "old")
        converted = to_jsonable(new, "record")
        line = json.dumps(converted, ensure_ascii=False, allow_nan=False)
        directory = os.path.dirname(os.path.abspath(self.path))
        with _directory_lock(directory):
            text = self._read_text()
            self._parse(text)
            lines = text.split("\n")
            for index in range(len(lines) - 1, -1, -1):
                if lines[index].strip() and json.loads(lines[index]) == wanted:
                    break
            else:
                raise KeyError(f"{self.path}: no record equals the one to replace ({wanted!r:.200})")
            lines[index] = line
            text = "\n".join(lines)
            atomic_write_text(self.path, text if text.endswith("\n") else text + "\n")
        return converted

    def to_csv(self, csv_path: PathLike, records: Iterable[Mapping[str, Any]] | None = None) -> str:
        """Write ``records`` (default: all records of this file) as a flat CSV, atomically.

        Nested dicts become dotted columns (``units_per_layer.mask_1``), lists become JSON
        strings, ``None`` an empty cell; columns are in first-seen order.  Returns the path.
        """
        return write_csv(csv_path, self.records() if records is None else records)
