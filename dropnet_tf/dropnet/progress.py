"""How long a DropNet grid has left: the cycles a run will have, and the grid's ETA (issue 16).

DropNet's Algorithm 1 (ICML 2020, Section 2) prunes a fixed share p of the remaining units
per cycle and stops once the fraction remaining is at most ``min_fraction``, so the number
of cycles of a run is known before it starts.  The closed form
ceil(log(min_fraction) / log(1 - p)) + 1 ignores the integer floors: each cycle drops
floor(p·R) units (at least one; per layer for the layer-wise metrics), which is fewer than
p·R.  For 80 units at p = 0.2 the remaining counts are 80, 64, 52, 42, 34, 28, 23, 19, 16,
13, 11, 9, 8, so the run has 13 cycles, where the closed form says 12.
:func:`expected_cycles` follows the selection code's counts exactly.

:class:`GridETA` is a :class:`~dropnet_tf.harness.progress.CycleCallback` for a whole grid
(the runs of :func:`dropnet_tf.run_experiment`, or of several calls sharing one results
file): after each cycle it says which run of the grid this is, how many cycles are done
(runs resumed from the results file count as done) and an ETA from the mean seconds per
cycle of this call times the cycles expected to remain.  The κ rule (``kappa``) can stop a
run earlier than its fraction rule, so with ``kappa`` the ETA is an upper bound.  The pace,
the line's words and ``h:mm`` are :mod:`dropnet_tf.harness.eta`'s, shared with the foresight
and LayerPrune grids (``format_duration`` is re-exported here).
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

from dropnet_tf.harness.eta import RateEstimator, format_duration, grid_line
from dropnet_tf.harness.progress import CycleCallback
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.core.scoring import get_scorer
from dropnet_tf.core.selection import SCOPES, prune_count, validate_fraction
from dropnet_tf.core.validation import check_int, check_real

#: The fields of a run key, in the order :func:`dropnet_tf.iterative_prune` stores them.
KEY_FIELDS = ("experiment", "metric", "seed", "init")


def expected_cycles(
    units_per_layer: Mapping[str, int] | Sequence[int],
    *,
    fraction: float | None = 0.2,
    count: int | None = None,
    scope: str = "global",
    min_fraction: float = 0.1,
    min_units_per_layer: int = 1,
) -> int:
    """Cycles a DropNet run has when its fraction rule stops it (cycle 0, the unpruned network, included).

    Cycle c trains with R_c units; the run stops after the first cycle with
    R_c / R_0 ≤ ``min_fraction``, or when no unit may be removed (every layer at
    ``min_units_per_layer``).  Between cycles, as :func:`dropnet_tf.core.selection.select_units`
    removes them: ``scope="global"`` drops floor(p·R) (at least one) of all R units,
    ``"layer"`` floor(p·R_l) (at least one) of each layer's R_l, each layer keeping
    ``min_units_per_layer``; with ``count`` exactly that many in all.  The notebook
    selection rule drops the same quota.
    """
    sizes = list(units_per_layer.values()) if isinstance(units_per_layer, Mapping) else list(units_per_layer)
    if not sizes:
        raise ValueError("units_per_layer must name at least one mask layer, got none.")
    for size in sizes:
        check_int("units_per_layer", size, 1)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
    count = check_int("count", count, 1, allow_none=True)
    fraction = None if count is not None else validate_fraction(fraction)
    min_fraction = check_real("min_fraction", min_fraction, 0.0, 1.0, high_open=True)
    min_units_per_layer = check_int("min_units_per_layer", min_units_per_layer, 0)
    total = sum(sizes)
    remaining = list(sizes)
    cycles = 1
    while sum(remaining) / total > min_fraction:
        spare = [max(0, r - min_units_per_layer) for r in remaining]
        if sum(spare) == 0:
            break  # "nothing left to prune": the run stops at this cycle
        if scope == "layer" and count is None:
            remaining = [r - min(prune_count(fraction, r), s) if r else 0 for r, s in zip(remaining, spare)]
        else:
            wanted = count if count is not None else prune_count(fraction, sum(remaining))
            left = min(wanted, sum(spare))
            # where the units go does not change the total, only the guard: take them from the spares
            for i, s in enumerate(spare):
                taken = min(s, left)
                remaining[i] -= taken
                left -= taken
        cycles += 1
    return cycles


def _key_tuple(key: Mapping) -> tuple:
    metric = key.get("metric")
    metric = metric if isinstance(metric, str) else getattr(metric, "name", str(metric))  # a UnitScorer's name
    return tuple(metric if name == "metric" else key.get(name) for name in KEY_FIELDS)


class GridETA(CycleCallback):
    """Progress of a grid of DropNet runs, appended to each cycle's line (``verbose >= 1``).

    Args:
        runs: the grid, in the order it runs: one mapping per run with its key
            (``experiment``, ``metric``, ``seed``, ``init``) and optionally ``fraction``
            (default 0.2), ``count`` and ``scope`` (default: the metric's scorer's).
        results: the grid's results file (path or ResultsFile): the cycles it already
            holds count as done, and a run whose last record has a stop reason is finished.
        min_fraction, min_units_per_layer: the grid's stop rule and layer guard
            (:func:`expected_cycles`).
        clock: seconds, for the mean time per cycle (a test passes its own).

    The layer sizes come from the first run that begins (every run of a DropNet script has
    the same architecture).  After each cycle :meth:`on_cycle_end` returns
    ``"run i of n, d cycles done (r resumed), ETA ~ h:mm for the grid"``: d counts every
    recorded cycle of the grid, r those that were in the results file when this call began,
    and the ETA is (seconds since the first run began / cycles finished since) × the cycles
    the unfinished runs are expected to have left.
    """

    def __init__(self, runs, results=None, *, min_fraction: float = 0.1, min_units_per_layer: int = 1,
                 clock=time.perf_counter):
        if isinstance(runs, Mapping) or not hasattr(runs, "__iter__"):
            raise TypeError(f"runs must be a list of run keys (mappings), got {runs!r}.")
        self.runs = []
        for run in runs:
            if not isinstance(run, Mapping) or any(name not in run for name in KEY_FIELDS):
                raise ValueError(f"each of runs must be a mapping with the keys {list(KEY_FIELDS)}, got {run!r}.")
            scorer = get_scorer(run["metric"])
            scope = run.get("scope") or scorer.default_scope
            count = check_int("count", run.get("count"), 1, allow_none=True)
            if count is None and scorer.default_count is not None:
                count = scorer.default_count  # the oracle drops one unit per cycle, as iterative_prune
            fraction = None if count is not None else validate_fraction(run.get("fraction", 0.2))
            if scope not in SCOPES:
                raise ValueError(f"scope must be one of {SCOPES}, got {scope!r} in {run!r}.")
            self.runs.append({"key": _key_tuple(run), "scope": scope, "fraction": fraction, "count": count})
        if not self.runs:
            raise ValueError("runs must hold at least one run, got none.")
        keys = [run["key"] for run in self.runs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"runs has duplicate keys: {sorted({k for k in keys if keys.count(k) > 1})}.")
        self.min_fraction = check_real("min_fraction", min_fraction, 0.0, 1.0, high_open=True)
        self.min_units_per_layer = check_int("min_units_per_layer", min_units_per_layer, 0)
        # the pace of this call's cycles: the one estimator every family's ETA uses (harness.eta)
        self.rate = RateEstimator(clock)
        self.units = None
        self.current = None
        # cycles recorded and finished per run, from the results file
        self.done = {key: 0 for key in keys}
        self.finished = {key: False for key in keys}
        if results is not None:
            store = results if isinstance(results, ResultsFile) else ResultsFile(results)
            last = {}
            for record in store.records():
                key = _key_tuple(record)
                if key in self.done:
                    self.done[key] += 1
                    last[key] = record
            for key, record in last.items():
                self.finished[key] = bool(record.get("stop_reason"))
        self.resumed = sum(self.done.values())

    def index(self, key: tuple) -> int:
        for i, run in enumerate(self.runs):
            if run["key"] == key:
                return i
        raise ValueError(
            f"GridETA was given a run {dict(zip(KEY_FIELDS, key))} that is not in its grid "
            f"({len(self.runs)} runs, e.g. {dict(zip(KEY_FIELDS, self.runs[0]['key']))})."
        )

    def expected(self, i: int) -> int:
        """Cycles run ``i`` will have in all (known ones as recorded, else :func:`expected_cycles`)."""
        run = self.runs[i]
        if self.finished[run["key"]]:
            return self.done[run["key"]]
        planned = expected_cycles(self.units, fraction=run["fraction"], count=run["count"], scope=run["scope"],
                                  min_fraction=self.min_fraction, min_units_per_layer=self.min_units_per_layer)
        return max(planned, self.done[run["key"]] + 1)  # an unfinished run has at least one cycle to go

    def cycles_left(self) -> int:
        return sum(self.expected(i) - self.done[run["key"]] for i, run in enumerate(self.runs)
                   if not self.finished[run["key"]])

    def eta_seconds(self) -> float | None:
        """Seconds the grid has left, or None before a cycle of this call has finished."""
        if self.units is None:
            return None
        return self.rate.eta_seconds(self.cycles_left())

    def on_run_begin(self, run: Mapping) -> None:
        key = _key_tuple(run["key"])
        self.current = self.index(key)
        if self.units is None:
            self.units = dict(run["units_per_layer"])
        self.rate.start()
        # The run's own records are the truth (e.g. a record replaced when a finished run goes on).
        self.done[key] = int(run.get("first_cycle", self.done[key]))
        self.finished[key] = False

    def on_cycle_end(self, record: Mapping) -> str:
        key = _key_tuple(record)
        self.done[key] = int(record["cycle"]) + 1
        self.finished[key] = bool(record.get("stop_reason"))
        self.rate.finished()
        total_done = sum(self.done.values())
        cycles = f"{total_done} cycle{'s' if total_done != 1 else ''}"
        return grid_line(self.index(key) + 1, len(self.runs), self.resumed, self.eta_seconds(), done=cycles)


def grid_runs(experiment: str, metrics, seeds, inits=("original",), *, fraction: float | None = 0.2,
              count: int | None = None) -> list[dict]:
    """The runs of one :func:`dropnet_tf.run_experiment` call, in its order (metric, seed, init)."""
    return [{"experiment": experiment, "metric": metric, "seed": seed, "init": init, "fraction": fraction,
             "count": count}
            for metric in metrics for seed in seeds for init in inits]


__all__ = ["GridETA", "KEY_FIELDS", "expected_cycles", "format_duration", "grid_runs"]
