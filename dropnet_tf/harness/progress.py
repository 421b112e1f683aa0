"""Progress of long training: per-epoch lines, per-cycle hooks and TensorBoard scalars (issue 16).

Iterative pruning (DropNet's Algorithm 1, ICML 2020, Section 2) trains the same network
once per cycle, and a paper script runs a grid of such runs.  Two kinds of observer see
that work:

* a **Keras callback** sees the epochs of one training call: :class:`EpochLine` prints
  one line per epoch from the ``on_epoch_end`` logs both engines of
  :mod:`dropnet_tf.engines.training` pass (``loss``, ``val_loss``, ``val_accuracy``);
* a :class:`CycleCallback` sees the runs and their cycles: when a run begins (its key,
  its first cycle, the epochs it has already trained), the Keras callbacks of each
  cycle's training, and each cycle's record.  :class:`TensorBoardLogger` is one: it
  writes per-epoch and per-cycle scalars for ``tensorboard --logdir DIR``;
* grids whose cells train once (foresight's runs, LayerPrune's arms) use :class:`RunScalars`:
  each training's epoch scalars in its own folder, and each run's summary numbers.

TensorBoard scalars are written with ``tf.summary.scalar`` (the ``tensorboard`` package is in
``requirements.txt``), in Keras' layout (``train/`` and ``validation/`` folders, ``epoch_<metric>``
tags), so the curves read as Keras users expect.  Epochs are counted over the whole run, not
per ``fit`` call as ``keras.callbacks.TensorBoard`` counts them, so that the cycles' curves
follow each other instead of overwriting steps 0, 1, 2, ... every cycle.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Mapping, Sequence

from dropnet_tf.core.backend import keras, tf


# ============================================================================ per-epoch line


class EpochLine(keras.callbacks.Callback):
    """Prints one line per epoch: epoch, loss, val_loss, val_accuracy and its seconds.

    The values are the ``on_epoch_end`` logs; keys a training call does not log (no
    validation data) are left out; ``keys`` shows other logs instead (e.g. a compiled
    metric of ``Model.fit``).  ``prefix`` starts every line (e.g. the run and cycle),
    and ``print_fn`` receives each line (default ``print`` with a flush).  The seconds are
    wall-clock from ``on_epoch_begin`` to ``on_epoch_end``, validation included.
    """

    #: The logged values shown, in this order, when present.
    KEYS = ("loss", "val_loss", "val_accuracy")

    def __init__(self, prefix: str = "", print_fn=None, keys: Sequence[str] | None = None):
        super().__init__()
        if not isinstance(prefix, str):
            raise TypeError(f"EpochLine prefix must be a str, got {prefix!r}.")
        if print_fn is not None and not callable(print_fn):
            raise TypeError(f"EpochLine print_fn must be callable or None, got {print_fn!r}.")
        if keys is not None and (isinstance(keys, str) or not all(isinstance(k, str) for k in keys)):
            raise TypeError(f"EpochLine keys must be a list of log names, got {keys!r}.")
        self.keys = self.KEYS if keys is None else tuple(keys)
        self.prefix = prefix
        self.print_fn = print_fn
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def format(self, epoch: int, logs: Mapping, seconds: float) -> str:
        parts = [f"epoch={int(epoch) + 1}"]  # counted from 1, as Keras' own progress bar does
        for key in self.keys:
            if logs and key in logs:
                parts.append(f"{key}={float(logs[key]):.4f}")
        parts.append(f"{seconds:.1f}s")
        return (self.prefix + " " if self.prefix else "") + " ".join(parts)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started if self._started is not None else float("nan")
        line = self.format(epoch, logs or {}, seconds)
        if self.print_fn is None:
            print(line, flush=True)
        else:
            self.print_fn(line)


# ============================================================================ per-cycle hooks


class CycleCallback:
    """Hooks of an iterative run's cycles; subclass and override what you need.

    An iterative pruning loop (:func:`dropnet_tf.iterative_prune`) calls, for each run:

    * :meth:`on_run_begin` with a dict: ``key`` (the run's identity, e.g. experiment,
      metric, seed, init), ``first_cycle`` (the cycle it starts at: > 0 when resumed),
      ``epochs_done`` (epochs trained by the cycles already recorded), ``units_per_layer``
      (each mask layer's size) and ``expected_cycles`` (cycles the run will have when its
      fraction rule stops it, or None when the loop cannot tell);
    * :meth:`keras_callbacks` before each cycle's training: Keras callbacks for that
      training call only;
    * :meth:`on_cycle_end` with the cycle's record once it is stored; a returned string is
      appended to the loop's progress line (``verbose >= 1``);
    * :meth:`on_run_end` with the run's records, also when the run raised (``error``).
    """

    def on_run_begin(self, run: Mapping) -> None:
        pass

    def keras_callbacks(self, cycle: int) -> list:
        return []

    def on_cycle_end(self, record: Mapping) -> str | None:
        return None

    def on_run_end(self, records: Sequence[Mapping], error: BaseException | None = None) -> None:
        pass


def split_callbacks(callbacks, what: str = "callbacks") -> tuple[list, list]:
    """``(keras_callbacks, cycle_callbacks)`` of a sequence mixing both kinds.

    Anything else raises TypeError naming the item and what is allowed (checked before any
    training, so a typo fails at once).
    """
    if callbacks is None:
        return [], []
    if isinstance(callbacks, (str, bytes, keras.callbacks.Callback, CycleCallback)) or not hasattr(
        callbacks, "__iter__"
    ):
        raise TypeError(
            f"{what} must be a list of Keras callbacks and dropnet_tf CycleCallbacks, got {callbacks!r} "
            f"(e.g. {what}=[{callbacks!r}])."
        )
    found_keras, found_cycle = [], []
    for item in callbacks:
        if isinstance(item, CycleCallback):
            found_cycle.append(item)
        elif isinstance(item, keras.callbacks.Callback):
            found_keras.append(item)
        else:
            raise TypeError(
                f"{what} may hold keras.callbacks.Callback and dropnet_tf.harness.progress.CycleCallback "
                f"instances, got {item!r} ({type(item).__name__})."
            )
    return found_keras, found_cycle


# ============================================================================ TensorBoard


def write_scalar(writer, tag: str, value, step: int) -> None:
    """One scalar event, as ``tf.summary.scalar(tag, value, step)`` writes it, through ``writer``."""
    with writer.as_default():
        tf.summary.scalar(tag, float(value), step=int(step))


def write_scalars(writer, values: Mapping, step: int) -> None:
    """:func:`write_scalar` for each ``tag: value``, leaving out None and NaN (a record's missing numbers)."""
    for tag, value in values.items():
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            write_scalar(writer, tag, value, step)


def _checked_log_dir(log_dir, owner: str) -> str:
    if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
        raise TypeError(f"{owner} log_dir must be a non-empty path, got {log_dir!r}.")
    if os.path.exists(log_dir) and not os.path.isdir(log_dir):
        raise ValueError(f"{owner} log_dir must be a folder, but {os.fspath(log_dir)!r} is a file.")
    return os.fspath(log_dir)


class EpochScalars(keras.callbacks.Callback):
    """Epoch logs as TensorBoard scalars, laid out as Keras' ``TensorBoard`` callback does.

    Training keys go to the ``train`` writer as ``epoch_<key>``, ``val_<key>`` to the
    ``validation`` writer as ``epoch_<key>``, at step ``offset + epoch``: a run of many
    cycles passes the epochs its earlier cycles trained, so each curve runs over the whole
    run instead of restarting at 0 in every cycle.
    """

    def __init__(self, train_writer, validation_writer, offset: int = 0):
        super().__init__()
        self.train_writer = train_writer
        self.validation_writer = validation_writer
        self.offset = int(offset)

    def on_epoch_end(self, epoch, logs=None):
        step = self.offset + int(epoch)
        for key, value in (logs or {}).items():
            if not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
                continue
            if key.startswith("val_"):
                write_scalar(self.validation_writer, f"epoch_{key[4:]}", value, step)
            else:
                write_scalar(self.train_writer, f"epoch_{key}", value, step)

    def on_train_end(self, logs=None):
        self.train_writer.flush()
        self.validation_writer.flush()


#: The record fields written once per cycle (step = cycle), when present.
CYCLE_FIELDS = (
    "fraction_remaining", "train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "val_loss", "test_loss",
    "epochs",
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def run_folder(key: Mapping) -> str:
    """``<experiment>/<metric>_seed<seed>_<init>`` of a run key (characters unsafe in a path become ``_``)."""
    experiment = str(key.get("experiment") or "dropnet")
    return safe_folder(experiment, f"{key.get('metric', 'run')}_seed{key.get('seed', 0)}_{key.get('init', 'original')}")


class TensorBoardLogger(CycleCallback):
    """TensorBoard scalars of every run and cycle, under ``log_dir`` (``tensorboard --logdir log_dir``).

    Each run gets the folder :func:`run_folder` of its key
    (``<log_dir>/<experiment>/<metric>_seed<k>_<init>/``) with three TensorBoard runs:

    * ``train/`` and ``validation/``: the epoch logs (:class:`EpochScalars`:
      ``epoch_loss``, and ``epoch_accuracy`` under validation), at a step that counts
      epochs over the whole run (a resumed run continues from the epochs its records hold);
    * ``cycles/``: per cycle (step = cycle) the record's :data:`CYCLE_FIELDS` under
      ``cycle/<field>`` and the units left in each mask layer under ``units/<layer>``.

    Writers are flushed after every cycle, so a run in progress can be watched.
    """

    def __init__(self, log_dir):
        self.log_dir = _checked_log_dir(log_dir, "TensorBoardLogger")
        self._writers: dict = {}
        self._epochs_done = 0
        self.folder = None

    def on_run_begin(self, run: Mapping) -> None:
        self._close()
        self.folder = os.path.join(self.log_dir, run_folder(run["key"]))
        self._writers = {name: tf.summary.create_file_writer(os.path.join(self.folder, name))
                         for name in ("train", "validation", "cycles")}
        self._epochs_done = int(run.get("epochs_done", 0))

    def keras_callbacks(self, cycle: int) -> list:
        if not self._writers:
            raise RuntimeError("TensorBoardLogger.keras_callbacks was called before on_run_begin.")
        return [EpochScalars(self._writers["train"], self._writers["validation"], offset=self._epochs_done)]

    def on_cycle_end(self, record: Mapping) -> None:
        writer, cycle = self._writers["cycles"], int(record["cycle"])
        write_scalars(writer, {f"cycle/{field}": record.get(field) for field in CYCLE_FIELDS}, cycle)
        write_scalars(writer, {f"units/{layer}": units for layer, units in (record.get("units_per_layer") or {}).items()},
                      cycle)
        for each in self._writers.values():
            each.flush()
        self._epochs_done += int(record.get("epochs", 0))
        return None

    def on_run_end(self, records, error=None) -> None:
        self._close()

    def _close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


# ============================================================================ grids of one training per cell


def safe_folder(*parts) -> str:
    """A relative folder from ``parts`` (characters unsafe in a path become ``_``, one folder per part)."""
    names = [_UNSAFE.sub("_", str(part)) for part in parts]
    if not names or any(not name or name in (".", "..") for name in names):
        raise ValueError(f"folder parts must be non-empty names, got {list(parts)!r}.")
    return os.path.join(*names)


class _OneTrainingScalars(EpochScalars):
    """EpochScalars of one training call under ``folder``: each writer made when its first
    value comes (a training without validation leaves no empty ``validation/``), closed
    when the training ends."""

    def __init__(self, folder: str):
        super().__init__(None, None)
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.train_writer is None and any(not key.startswith("val_") for key in logs):
            self.train_writer = tf.summary.create_file_writer(os.path.join(self.folder, "train"))
        if self.validation_writer is None and any(key.startswith("val_") for key in logs):
            self.validation_writer = tf.summary.create_file_writer(os.path.join(self.folder, "validation"))
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        for writer in (self.train_writer, self.validation_writer):
            if writer is not None:
                writer.close()


class RunScalars:
    """TensorBoard scalars of a grid whose cells train once each (foresight's runs, LayerPrune's arms).

    Such a run is one ``fit`` call, so its epochs need no offset (unlike
    :class:`TensorBoardLogger`'s cycles); :meth:`epoch_callbacks` gives the Keras callbacks
    of one training, writing ``<log_dir>/<folder>/train`` and ``validation`` in Keras'
    layout (:class:`EpochScalars`: ``epoch_loss``, ``epoch_<metric>``, step = epoch) and
    closing them when the training ends.  They only read the epoch logs, so they work
    under both engines of :mod:`dropnet_tf.engines.training`, ``DistributedTrainer`` included.
    :meth:`scalars` writes a run's summary (``tf.summary.scalar``) into
    ``<log_dir>/<folder>`` at any step (foresight: step = r, so TensorBoard draws accuracy
    against the compression ratio).  Call :meth:`close` when the grid is done.
    """

    def __init__(self, log_dir):
        self.log_dir = _checked_log_dir(log_dir, "RunScalars")
        self._writers: dict = {}

    def epoch_callbacks(self, folder: str) -> list:
        """Keras callbacks of one training: its epoch logs under ``<log_dir>/<folder>/{train,validation}``."""
        return [_OneTrainingScalars(os.path.join(self.log_dir, folder))]

    def scalars(self, folder: str, values: Mapping, step: int) -> None:
        """``tf.summary.scalar(tag, value, step)`` for each item of ``values`` (None and NaN left out), flushed."""
        path = os.path.join(self.log_dir, folder)
        writer = self._writers.get(path)
        if writer is None:
            writer = self._writers[path] = tf.summary.create_file_writer(path)
        write_scalars(writer, values, step)
        writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


__all__ = [
    "CYCLE_FIELDS", "CycleCallback", "EpochLine", "EpochScalars", "RunScalars", "TensorBoardLogger", "run_folder",
    "safe_folder", "split_callbacks", "write_scalar", "write_scalars",
]
