"""Running one DropNet experiment: every metric × seed (× init) into one results file.

This is what the numbered scripts in ``paper_experiments/`` call.  Runs already finished
in the results file are skipped without building a model, and an interrupted run resumes
after its last finished cycle, so rerunning a script is always safe.
"""

from __future__ import annotations

from typing import Callable, Iterable

from dropnet_tf._keras import keras
from dropnet_tf.iterative import iterative_prune, resolve_protocol
from dropnet_tf.results import ResultsFile


def run_experiment(
    build_model: Callable[[int], object],
    data,
    metrics: Iterable[str],
    seeds: Iterable[int],
    results,
    experiment: str,
    inits: Iterable[str] = ("original",),
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
        **prune_kwargs: passed to :func:`iterative_prune` (fraction, training,
            ``selection="exact"|"notebook"``, ``protocol=None|"paper"|"notebook"``, ...).
            A finished run stored with another selection rule or layer-collapse guard
            is refused rather than skipped.

    Returns:
        Every record of this experiment in the results file.
    """
    store = ResultsFile(results)
    metrics, seeds, inits = list(metrics), list(seeds), list(inits)
    if not metrics or not seeds or not inits:
        raise ValueError(f"metrics, seeds and inits must be non-empty, got {metrics}, {seeds}, {inits}.")
    selection, min_units_per_layer, _ = resolve_protocol(
        prune_kwargs.get("protocol"),
        prune_kwargs.get("selection"),
        prune_kwargs.get("min_units_per_layer"),
        prune_kwargs.get("training"),
    )
    wanted = {"selection": selection, "min_units_per_layer": min_units_per_layer}
    for metric in metrics:
        for seed in seeds:
            for init in inits:
                done = store.records(experiment=experiment, metric=metric, seed=seed, init=init)
                if done and done[-1].get("stop_reason"):
                    stored = {"selection": done[-1].get("selection", "exact"),
                              "min_units_per_layer": done[-1].get("min_units_per_layer")}
                    if stored != wanted:
                        raise ValueError(
                            f"{store.path} holds a finished run of {experiment}/{metric}/seed={seed}/init={init} "
                            f"made with {stored}, not {wanted}. Use another results file or experiment name."
                        )
                    continue
                keras.backend.clear_session()  # free the previous run's graph; keeps names stable
                keras.utils.set_random_seed(seed)
                model = build_model(seed)
                iterative_prune(
                    model, data, metric, seed=seed, init=init, results=store, experiment=experiment, **prune_kwargs
                )
    return store.records(experiment=experiment)
