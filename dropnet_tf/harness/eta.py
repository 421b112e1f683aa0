"""How long a grid has left: one estimator and one progress line for every family (issue 16).

Every paper script runs a grid of cells into a results file (:mod:`dropnet_tf.harness.grid`):
DropNet's runs of many cycles, foresight's (method, r, seed) runs and LayerPrune's arms of
one training each.  Issue 16 asks for an ETA of the whole grid on each progress line,
estimated from the work finished *in this process*: cells resumed from the results file
count as done, but not in the time per unit of work, since their time was spent by an
earlier process.  So

    ETA = (seconds since this process began the grid's work / units finished since) × units left

with a unit a cycle (DropNet, :class:`dropnet_tf.dropnet.progress.GridETA`) or a run
(:class:`RunsETA`).  :class:`RateEstimator` is that formula, :func:`grid_line` the words
every family prints (``run i of n (r resumed), ETA ~ h:mm for the grid``; DropNet adds its
cycles done), :func:`format_duration` the ``h:mm``.

Imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Callable, Mapping, Sequence

from dropnet_tf.harness.results import ResultsFile


def format_duration(seconds: float) -> str:
    """``h:mm`` (minutes rounded up, so that a short remainder does not read as 0:00)."""
    minutes = max(0, int(-(-float(seconds) // 60)))
    return f"{minutes // 60}:{minutes % 60:02d}"


class RateEstimator:
    """Seconds left = (seconds since :meth:`start` / units :meth:`finished` since) × units left.

    ``clock`` returns seconds (default ``time.perf_counter``; a test passes its own).  Only
    the first :meth:`start` counts, so callers may call it before every unit of work.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}.")
        self.clock = clock
        self.started: float | None = None
        #: Units of work finished since :meth:`start` (in this process).
        self.finished_here = 0

    def start(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def finished(self, units: int = 1) -> None:
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units < 0:
            raise ValueError(f"units must be an integer >= 0, got {units!r}.")
        self.start()
        self.finished_here += int(units)

    def seconds_per_unit(self) -> float | None:
        """Mean seconds per finished unit, or None before the first one."""
        if not self.finished_here or self.started is None:
            return None
        return (self.clock() - self.started) / self.finished_here

    def eta_seconds(self, units_left: int) -> float | None:
        """Seconds for ``units_left`` more units at this process's pace, or None before any timing exists."""
        pace = self.seconds_per_unit()
        return None if pace is None else pace * max(0, units_left)


def grid_line(position: int, total: int, resumed: int = 0, eta_seconds: float | None = None,
              done: str | None = None) -> str:
    """``run i of n[, <done> done] (r resumed), ETA ~ h:mm for the grid``, the words of every family.

    ``done``: e.g. ``"5 cycles"`` (DropNet); ``(r resumed)`` only when r > 0; without a
    timing yet (``eta_seconds`` None) the line ends ``ETA after the first run``.
    """
    line = f"run {position} of {total}"
    if done is not None:
        line += f", {done} done"
    if resumed:
        line += f" ({resumed} resumed)"
    if eta_seconds is None or not math.isfinite(eta_seconds):
        return line + ", ETA after the first run"
    return line + f", ETA ~ {format_duration(eta_seconds)} for the grid"


def _same(value):
    """A key value as compared: numbers as floats (0.2 from the command line equals 0.2 in a
    record, 8 equals 8.0), anything else as it is (lists as tuples)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return tuple(_same(v) for v in value)
    return value


class RunsETA:
    """The grid ETA of a family whose cell is one run (foresight's (method, r, seed), LayerPrune's arms).

    Args:
        keys: the cells this process owns, in the order they run: one mapping per cell,
            the fields its record starts with (a ``--shard I/N`` process passes only its
            shard's cells).  Keys may have different fields (LayerPrune's baseline, filter
            and layer arms); a record belongs to the first key whose every field it equals.
        results: the grid's results file (path or ResultsFile): its cells count as done
            ("resumed") and are left out of the time estimate.
        clock: seconds (a test passes its own).

    Call :meth:`start` when the grid's work begins and :meth:`after_run` with each record
    this process appends; it returns ``"run i of n (r resumed), ETA ~ h:mm for the grid"``:
    i is the run's place among ``keys`` (from 1), r the cells found in ``results`` at the
    start, and the ETA the mean seconds per run finished here × the cells not yet done.
    """

    def __init__(self, keys: Sequence[Mapping], results=None, *, clock: Callable[[], float] = time.perf_counter):
        if isinstance(keys, Mapping) or not hasattr(keys, "__iter__"):
            raise TypeError(f"keys must be a list of cell keys (mappings), got {keys!r}.")
        self.keys = [dict(key) for key in keys]
        for key in self.keys:
            if not key:
                raise ValueError(f"each of keys must be a non-empty mapping of a cell's key fields, got {key!r}.")
        identities = [self._identity(key, sorted(key)) for key in self.keys]
        if len(set(identities)) != len(identities):
            twice = [str(key) for key, identity in zip(self.keys, identities) if identities.count(identity) > 1]
            raise ValueError(f"keys has duplicate cells: {twice[1:]} repeat {twice[0]}.")
        self._position = {identity: i for i, identity in enumerate(identities)}
        self._fields = list(dict.fromkeys(tuple(sorted(key)) for key in self.keys))  # the distinct field sets
        self.rate = RateEstimator(clock)
        self.done: set[int] = set()
        if results is not None:
            store = results if isinstance(results, ResultsFile) else ResultsFile(results)
            for record in store.records():
                position = self.position(record)
                if position is not None:
                    self.done.add(position)
        #: Cells already in the results file when this process began.
        self.resumed = len(self.done)

    @staticmethod
    def _identity(key: Mapping, fields) -> tuple:
        return tuple((name, _same(key.get(name))) for name in fields)

    def position(self, record: Mapping) -> int | None:
        """The 0-based place of the record's cell among ``keys``, or None when it is none of them."""
        for fields in self._fields:
            found = self._position.get(self._identity(record, fields))
            if found is not None:
                return found
        return None

    def start(self) -> None:
        """The grid's work begins (only the first call counts)."""
        self.rate.start()

    def eta_seconds(self) -> float | None:
        return self.rate.eta_seconds(len(self.keys) - len(self.done))

    def after_run(self, record: Mapping) -> str:
        """The run of ``record`` finished in this process: its progress line's ending."""
        position = self.position(record)
        if position is None:
            example = f", e.g. {self.keys[0]}" if self.keys else ""
            shown = {name: record[name] for name in list(record)[:6]}
            raise ValueError(f"RunsETA was given a record of no cell of its grid ({len(self.keys)} cells{example}): "
                             f"{shown}.")
        self.done.add(position)
        self.rate.finished()
        return grid_line(position + 1, len(self.keys), self.resumed, self.eta_seconds())


__all__ = ["RateEstimator", "RunsETA", "format_duration", "grid_line"]
