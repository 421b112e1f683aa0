"""One resumable run grid: key → skip if already recorded → run → append atomically.

Every experiment of the library is a grid of cells (DropNet: metric × seed × init;
foresight: method × compression × seed; LayerPrune: named arms), each identified by a
*key*, a dict of JSON-able values stored in its record.  :class:`RunGrid` runs a cell only
when the results file (a :class:`~dropnet_tf.harness.results.ResultsFile`, JSON lines rewritten
atomically) holds no record with that key, and appends the cell's record atomically as
soon as it finishes.  So an interrupted grid resumes where it stopped, a finished cell is
never redone or lost, and an exception in one cell keeps every earlier cell's record::

    grid = RunGrid("runs/table1.jsonl")
    for seed in (0, 1, 2):
        grid.cell({"experiment": "table1", "seed": seed}, lambda: {"top1": train(seed)})

A cell whose run returns ``None`` has stored its own records (DropNet appends one per
cycle as it goes); ``skip=`` replaces "any record with this key" by another test of the
stored records (DropNet: "finished, and made with the same settings").

``order=`` (a :class:`~dropnet_tf.harness.shards.CellOrder`) numbers the cells in the order
they are visited and runs only those it allows: one shard of a grid spread over machines
(issue 16, :mod:`dropnet_tf.harness.shards`), or none after a merge.  A cell it does not allow
is never run; :meth:`RunGrid.cell` returns its stored record, if any.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping

from dropnet_tf.harness.results import ResultsFile

#: What :meth:`RunGrid.run` does when a cell raises: stop there, or go on with the next one.
ERRORS = ("raise", "continue")


class RunGrid:
    """Cells of an experiment over one results file (see the module docstring).

    Args:
        results: a path or a :class:`~dropnet_tf.harness.results.ResultsFile`.
        log: optional ``record -> None`` called after each record a cell appends.
        order: a :class:`~dropnet_tf.harness.shards.CellOrder`: which cells this process runs
            (default: all).
    """

    def __init__(self, results, log: Callable[[dict], None] | None = None, order=None):
        self.results = results if isinstance(results, ResultsFile) else ResultsFile(results)
        self.log = log
        self.order = order
        #: ``(key, exception)`` of the cells that raised under ``errors="continue"``.
        self.failed: list[tuple[dict, BaseException]] = []

    @property
    def path(self):
        return self.results.path

    def recorded(self, key: Mapping[str, Any]) -> list[dict]:
        """Every stored record with this key, in file order."""
        return self.results.records(**dict(key))

    def done(self, key: Mapping[str, Any]) -> dict | None:
        """The last stored record with this key, or None."""
        found = self.recorded(key)
        return found[-1] if found else None

    def records(self, **match) -> list[dict]:
        return self.results.records(**match)

    def cell(
        self,
        key: Mapping[str, Any],
        run: Callable[[], Mapping[str, Any] | None],
        *,
        skip: Callable[[list[dict]], bool] | None = None,
        timed: str | None = None,
        log: Callable[[dict], None] | None = None,
    ) -> dict | None:
        """Run one cell unless it is recorded; returns its record (the stored one when skipped).

        Args:
            key: the cell's identity; its items come first in the record.
            run: ``() -> fields`` of the record (after the key), or None when the run stored
                its own records.
            skip: ``stored records -> bool``, whether the cell is done (default: any record).
            timed: also store the run's wall-clock seconds (rounded to 0.01) under this name.
            log: called with the appended record (default: the grid's ``log``).
        """
        key = dict(key)
        if self.order is not None and not self.order.take(key):
            return self.done(key)  # another shard's cell (or none runs): never run here
        found = self.recorded(key)
        if skip(found) if skip is not None else bool(found):
            return found[-1] if found else None
        start = time.perf_counter()
        outcome = run()
        if outcome is None:
            return None
        record = {**key, **dict(outcome)}
        if timed is not None:
            record[timed] = round(time.perf_counter() - start, 2)
        self.results.append(record)
        log = self.log if log is None else log
        if log is not None:
            log(record)
        return record

    def run(
        self,
        cells: Iterable[tuple[Mapping[str, Any], Callable[[], Mapping[str, Any] | None]]],
        *,
        skip: Callable[[list[dict]], bool] | None = None,
        timed: str | None = None,
        errors: str = "raise",
    ) -> list[dict | None]:
        """:meth:`cell` for each ``(key, run)``; returns their records in order.

        ``errors="raise"`` stops at the first cell that raises (the records before it are
        stored); ``"continue"`` notes it in :attr:`failed` and goes on (its result is None).
        """
        if errors not in ERRORS:
            raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}.")
        outcomes = []
        for key, run in cells:
            try:
                outcomes.append(self.cell(key, run, skip=skip, timed=timed))
            except Exception as error:  # noqa: BLE001 - "continue" keeps the grid going
                if errors == "raise":
                    raise
                self.failed.append((dict(key), error))
                outcomes.append(None)
        return outcomes


__all__ = ["ERRORS", "RunGrid"]
