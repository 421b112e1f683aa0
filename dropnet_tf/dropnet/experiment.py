"""Running one DropNet experiment: every metric × seed (× init) into one results file.

This is what the numbered scripts in ``paper_experiments/`` call.  Every argument of the
grid and the data are checked before the first model is built.  Runs already finished in the
results file are skipped without building a model when their state file's fingerprint (all
but the architecture) matches and the stop rules given still end them where they ended;
otherwise the run goes through :func:`dropnet_tf.iterative_prune`, which continues it or
refuses it naming the difference.  An interrupted run resumes after its last finished cycle,
so rerunning a script is always safe.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from typing import Callable, Iterable

from dropnet_tf.core.backend import keras
from dropnet_tf.dropnet.arguments import _sparse_labels, _unpack_data, check_prune_arguments
from dropnet_tf.dropnet.iterative import iterative_prune
from dropnet_tf.dropnet.population import (
    check_population,
    check_population_metric,
    check_population_training,
    population_prune,
)
from dropnet_tf.dropnet.state import (
    ResumeRefusedError, first_difference, run_fingerprint, state_path, stop_rule_verdict,
)
from dropnet_tf.harness.grid import RunGrid
from dropnet_tf.core.io import load_npz
from dropnet_tf.core.distribute import check_strategy
from dropnet_tf.core.distribute import scope as distribute_scope
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.engines.optimizers import make_optimizer
from dropnet_tf.core.validation import check_path, check_splits


def run_experiment(
    build_model: Callable[[int], object],
    data,
    metrics: Iterable[str],
    seeds: Iterable[int],
    results,
    experiment: str,
    inits: Iterable[str] = ("original",),
    order=None,
    population=None,
    strategy=None,
    **prune_kwargs,
) -> list[dict]:
    """Run :func:`dropnet_tf.iterative_prune` for each (metric, seed, init).

    Args:
        build_model: ``seed -> masked model``; called with Keras' global seed set to
            ``seed`` so the same seed gives the same θ0 for every metric (the paper
            compares metrics from the same initialisations).
        data: a :class:`dropnet_tf.data.Dataset` or three (x, y) pairs.
        metrics, seeds, inits: the grid.
        results: JSON-lines path shared by the whole grid.
        experiment: name stored in every record.
        order: a :class:`dropnet_tf.harness.shards.CellOrder`: run only one shard's
            (metric, seed, init) cells, numbered in this loop's order (default: all).
        population: None (default: one run after the other), an int N ≥ 1 or "auto": train
            the runs N at a time as one computation (:mod:`dropnet_tf.dropnet.population`;
            "auto": all of them, at most 64).  Same records, state files and resuming as
            separate runs, up to floating-point summation order.  Runs of a metric that is
            not a statistic metric (the oracle, the LayerPrune criteria) run separately
            afterwards, with a warning; other settings a population cannot reproduce raise.
        **prune_kwargs: passed to :func:`iterative_prune` (fraction, training,
            ``selection="exact"|"notebook"``, ``protocol=None|"paper"|"notebook"``, ...).
            A finished run stored with another selection rule or layer-collapse guard
            is refused rather than skipped.  ``callbacks=[...]`` (Keras callbacks and
            :class:`dropnet_tf.harness.progress.CycleCallback` hooks, e.g. a
            ``TensorBoardLogger`` or a :class:`dropnet_tf.dropnet.progress.GridETA`) go to
            every run; skipped runs call no hook.
        strategy: a ``tf.distribute.Strategy``: every model is built in its scope and
            pruned under it (see :func:`iterative_prune`); None (default): one device.

    Returns:
        Every record of this experiment in the results file.
    """
    check_strategy(strategy)
    metrics, seeds, inits = _check_grid(build_model, results, experiment, metrics, seeds, inits, prune_kwargs)
    checked = _check_runs(metrics, seeds, inits, results, experiment, prune_kwargs)
    splits = _check_data(data, checked)
    store = ResultsFile(results)
    grid = RunGrid(store, order=order)
    finished = _skip_rule(store, splits, experiment)
    run = _run_rule(build_model, data, store, experiment, strategy, prune_kwargs)
    if population is not None and strategy is not None:
        raise ValueError(
            f"population={population!r} and strategy={strategy!r} cannot be combined: a population stacks the runs "
            "on one device. Use one of them (population for many small runs, a strategy for one large run)."
        )
    if population is not None:
        _run_population(store, grid, build_model, data, metrics, seeds, inits, checked, finished, experiment,
                        population, prune_kwargs)
        return store.records(experiment=experiment)

    for metric in metrics:
        for seed in seeds:
            for init in inits:
                args = checked[metric if isinstance(metric, str) else id(metric), seed, init]
                key = {"experiment": experiment, "metric": metric, "seed": seed, "init": init}
                grid.cell(key, lambda: run(metric, seed, init),
                          skip=lambda done: finished(done, metric, seed, init, args))  # skipped without building a model
    return store.records(experiment=experiment)


def _check_grid(build_model, results, experiment, metrics, seeds, inits, prune_kwargs):
    """run_experiment's own arguments; returns the grid's metrics, seeds and inits as lists."""
    if not callable(build_model):
        raise TypeError(f"build_model must be a callable seed -> masked model, got {type(build_model).__name__}.")
    check_path("results", results)
    if not isinstance(experiment, str):
        raise TypeError(f"experiment must be a str (a name stored in every record), got {experiment!r}.")
    grid = {}
    for name, values in (("metrics", metrics), ("seeds", seeds), ("inits", inits)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{name} must be a list, got {values!r} (e.g. {name}=[{values!r}]).")
        grid[name] = list(values)
    metrics, seeds, inits = grid["metrics"], grid["seeds"], grid["inits"]
    if not metrics or not seeds or not inits:
        raise ValueError(f"metrics, seeds and inits must be non-empty, got {metrics}, {seeds}, {inits}.")
    reserved = {"seed", "init", "results", "experiment"} & set(prune_kwargs)
    if reserved:
        raise TypeError(f"run_experiment sets {sorted(reserved)} itself for every run; do not pass them in prune_kwargs.")
    allowed = set(inspect.signature(check_prune_arguments).parameters) - {"metric", "seed", "init", "results", "experiment"}
    unknown = sorted(set(prune_kwargs) - allowed)
    if unknown:
        raise TypeError(f"run_experiment got unknown argument(s) {unknown}; iterative_prune takes {sorted(allowed)}.")
    return metrics, seeds, inits


def _check_runs(metrics, seeds, inits, results, experiment, prune_kwargs) -> dict:
    """Every run's arguments, checked before the first model is built; keyed by (metric, seed, init)."""
    checked = {}
    for metric in metrics:
        for seed in seeds:
            for init in inits:
                checked[metric if isinstance(metric, str) else id(metric), seed, init] = check_prune_arguments(
                    metric, seed=seed, init=init, results=results, experiment=experiment, **prune_kwargs
                )
    return checked


def _check_data(data, checked) -> dict:
    """The checked train/val/test splits (labels as the first run's loss wants them)."""
    x_train, y_train, x_val, y_val, x_test, y_test = _unpack_data(data)
    splits = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
    first = next(iter(checked.values()))
    check_splits(splits, num_classes=getattr(data, "num_classes", None), labels=_sparse_labels(first["training"].loss))
    return splits


def _skip_rule(store, splits, experiment):
    """``finished(done, metric, seed, init, args)``: whether a stored run is finished and made
    with the same settings (then skipped); the data's fingerprint is computed on first need."""
    data_fingerprint = None

    def finished(done, metric, seed, init, args) -> bool:
        nonlocal data_fingerprint
        if not (done and done[-1].get("stop_reason")):
            return False
        stored = {"selection": done[-1].get("selection", "exact"),
                  "min_units_per_layer": done[-1].get("min_units_per_layer")}
        wanted = {"selection": args["selection"], "min_units_per_layer": args["min_units_per_layer"]}
        if stored != wanted:
            raise ResumeRefusedError(
                f"{store.path} holds a finished run of {experiment}/{metric}/seed={seed}/init={init} "
                f"made with {stored}, not {wanted}. Use another results file or experiment name."
            )
        if data_fingerprint is None:
            data_fingerprint = run_fingerprint(splits=splits)["data"]
        # When not, iterative_prune continues the run, or refuses it with the difference named.
        return _finished_and_same(store, done, metric, args, data_fingerprint)

    return finished


def _run_rule(build_model, data, store, experiment, strategy, prune_kwargs):
    """``run(metric, seed, init)``: builds the run's model from its seed and prunes it."""

    def run(metric, seed, init) -> None:
        keras.backend.clear_session()  # free the previous run's graph; keeps names stable
        keras.utils.set_random_seed(seed)
        with distribute_scope(strategy):  # the model's variables belong to the strategy
            model = build_model(seed)
        # iterative_prune appends each cycle's record itself, so a run resumes mid-way.
        iterative_prune(model, data, metric, seed=seed, init=init, results=store, experiment=experiment,
                        strategy=strategy, **prune_kwargs)

    return run

def _finished_and_same(store, records, metric, args, data_fingerprint) -> bool:
    """Whether a stored finished run stays finished under ``args`` with the same data, optimizer and settings.

    Everything but the architecture is compared with the fingerprint in the run's state file
    (a state file without one, or none, compares nothing).  When this says no, the run goes
    through :func:`iterative_prune`, which continues it or refuses it naming the difference.
    """
    verdict, _, _ = stop_rule_verdict(records, args["kappa"], args["min_fraction"])
    if verdict != "finished":
        return False
    key = {"experiment": args["experiment"], "metric": records[-1]["metric"], "seed": args["seed"], "init": args["init"]}
    path = state_path(store.path, key)
    if not os.path.exists(path):
        return True
    stored = load_npz(path).get("fingerprint")
    if stored is None:
        return True
    fraction, count = args["fraction"], args["count"]
    if metric == "oracle" and count is None:
        fraction, count = None, 1
    pruning = {
        "metric": records[-1]["metric"], "pruning_fraction": fraction, "drop_count": count,
        "min_units_per_layer": args["min_units_per_layer"], "selection": args["selection"], "init": args["init"],
        "seed": args["seed"],
    }
    current = run_fingerprint(
        optimizer=make_optimizer(args["training"]), training=args["training"], pruning=pruning
    )
    current["data"] = data_fingerprint
    return first_difference(json.loads(str(stored)), current) is None


def _run_population(store, grid, build_model, data, metrics, seeds, inits, checked, finished, experiment, population,
                    prune_kwargs) -> None:
    """run_experiment(population=...): the statistic metrics' runs as one population, the others separately."""
    cells = [(metric, seed, init) for metric in metrics for seed in seeds for init in inits]
    check_population(population, len(cells))  # a bad value is refused even where a shard owns no cell
    if grid.order is not None:
        # Number every cell in the sequential loop's order, as RunGrid.cell would, so that a
        # shard owns the same cells with or without a population; the cells this process
        # does not own are left out, and the separate runs below go through a grid that
        # numbers nothing again.
        owned = [
            (metric, seed, init) for metric, seed, init in cells
            if grid.order.take({"experiment": experiment, "metric": metric, "seed": seed, "init": init})
        ]
        cells, grid = owned, RunGrid(store)
        if not cells:
            return
    size = check_population(population, len(cells))
    check_population_training(next(iter(checked.values()))["training"])
    together, alone = [], []
    for metric, seed, init in cells:
        try:
            check_population_metric(metric)
        except ValueError:
            alone.append((metric, seed, init))
        else:
            together.append((metric, seed, init))
    if alone:
        names = sorted({m if isinstance(m, str) else getattr(m, "name", repr(m)) for m, _, _ in alone})
        warnings.warn(
            f"population={population!r}: the metric(s) {names} are not statistic metrics; their runs are trained "
            "separately after the population.", stacklevel=3,
        )
    pending = []
    for metric, seed, init in together:
        args = checked[metric if isinstance(metric, str) else id(metric), seed, init]
        key = {"experiment": experiment, "metric": metric, "seed": seed, "init": init}
        if not finished(grid.recorded(key), metric, seed, init, args):
            pending.append((metric, seed, init))
    if pending:
        keras.backend.clear_session()  # as before each separate run; the members' models then share one session
        population_prune(build_model, data, pending, population=min(size, len(pending)), results=store,
                         experiment=experiment, **prune_kwargs)
    for metric, seed, init in alone:
        args = checked[metric if isinstance(metric, str) else id(metric), seed, init]
        key = {"experiment": experiment, "metric": metric, "seed": seed, "init": init}

        def run(metric=metric, seed=seed, init=init) -> None:
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            iterative_prune(build_model(seed), data, metric, seed=seed, init=init, results=store,
                            experiment=experiment, **prune_kwargs)

        grid.cell(key, run, skip=lambda done, metric=metric, seed=seed, init=init, args=args: finished(
            done, metric, seed, init, args))
