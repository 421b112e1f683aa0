"""The arguments of DropNet's Algorithm 1: protocol presets and the checks run before anything is built.

:func:`check_prune_arguments` checks and normalises every argument of
:func:`dropnet_tf.dropnet.iterative.iterative_prune` but the model and data (it raises
naming the argument and what is allowed); :func:`resolve_protocol` applies a preset of
:data:`PROTOCOLS`.  :func:`dropnet_tf.run_experiment` calls the checks once for a whole
grid, so a bad argument fails before the first model is built.
"""

from __future__ import annotations

import dataclasses
import os

from dropnet_tf.harness.progress import split_callbacks
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.core.scoring import UNIT_SCORERS, get_scorer
from dropnet_tf.core.selection import SELECTIONS, validate_fraction
from dropnet_tf.engines.config import TrainingConfig, check_config
from dropnet_tf.core.validation import check_choice, check_int, check_path, check_real

INITS = ("original", "random")


#: Presets of ``protocol=``: the pruning rule and the training fields each one sets.
#: "paper" is the library's defaults (DropNet's text where it says, Section 3.2);
#: "notebook" is what the authors' notebooks did (see docs/dropnet.md, "Where the paper, the
#: authors' code and this library differ"): their selection rule, no layer-collapse guard, no
#: shuffling, the last epoch's weights and no XLA (with it off, issue 11 matched their
#: validation losses from the same θ0).  APoZ is this library's under both (fraction of zero
#: outputs over samples and positions): the paper and supplement define no other, and that
#: table's APoZ row, that the notebooks counted samples whose whole map is zero (which
#: differs for filters only), is not implemented.
PROTOCOLS = {
    "paper": {
        "selection": "exact",
        "min_units_per_layer": 1,
        "training": {"shuffle": True, "restore_best_weights": True},
    },
    "notebook": {
        "selection": "notebook",
        "min_units_per_layer": 0,
        "training": {"shuffle": False, "restore_best_weights": False, "jit_compile": False},
    },
}


def resolve_protocol(protocol=None, selection=None, min_units_per_layer=None, training=None):
    """``(selection, min_units_per_layer, training)`` for a run, with a preset applied.

    ``protocol=None`` applies no preset: unset arguments take the library defaults ("exact",
    1, ``TrainingConfig()``).  ``protocol="paper"`` or ``"notebook"`` (:data:`PROTOCOLS`)
    fills the unset arguments (None) from the preset, and the fields of ``training`` still at
    TrainingConfig's defaults; an argument or a non-default TrainingConfig field that
    contradicts the preset raises ValueError naming both values.
    """
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be None or one of {tuple(PROTOCOLS)}, got {protocol!r}.")
    if selection is not None and selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    if protocol is None:
        return (
            selection or "exact",
            1 if min_units_per_layer is None else min_units_per_layer,
            training or TrainingConfig(),
        )
    preset = PROTOCOLS[protocol]
    given = {"selection": selection, "min_units_per_layer": min_units_per_layer}
    for name, value in given.items():
        if value is not None and value != preset[name]:
            raise ValueError(
                f"protocol={protocol!r} sets {name}={preset[name]!r}, but {name}={value!r} was given; "
                f"drop one of them (protocol=None takes every setting as given)."
            )
    if training is not None and not isinstance(training, TrainingConfig):
        raise TypeError(f"training must be a TrainingConfig with protocol={protocol!r}, got {type(training).__name__}.")
    defaults = TrainingConfig()
    training = training or defaults
    for name, value in preset["training"].items():
        current = getattr(training, name)
        if current != value and current != getattr(defaults, name):
            raise ValueError(
                f"protocol={protocol!r} trains with {name}={value!r}, but the TrainingConfig has {name}={current!r}; "
                f"drop one of them (protocol=None takes every setting as given)."
            )
    training = dataclasses.replace(training, **preset["training"])
    return preset["selection"], preset["min_units_per_layer"], training


def check_training(training) -> TrainingConfig:
    """``training`` if it is a TrainingConfig whose every field is allowed (else the error names it)."""
    if training is None:
        return TrainingConfig()
    if not isinstance(training, TrainingConfig):
        raise TypeError(f"training must be a dropnet_tf.TrainingConfig or None, got {type(training).__name__}.")
    return check_config(training, min_epochs=1)


def check_prune_arguments(
    metric="minimum",
    *,
    fraction=0.2,
    kappa=None,
    min_fraction=0.1,
    max_cycles=None,
    init="original",
    seed=0,
    count=None,
    min_units_per_layer=None,
    selection=None,
    protocol=None,
    training=None,
    results=None,
    experiment="",
    verbose=1,
    callbacks=None,
) -> dict:
    """Every argument of :func:`iterative_prune` but the model and data, checked and normalised.

    Raises TypeError / ValueError naming the argument and what is allowed, before anything
    is built, trained or written.  :func:`dropnet_tf.run_experiment` calls it once for the
    whole grid, so a bad argument fails before the first model is built.
    """
    scorer = get_scorer(metric, kind="metric", allowed=sorted(UNIT_SCORERS))  # raises naming it and the allowed ones
    count = check_int("count", count, 1, allow_none=True)
    fraction = None if count is not None else validate_fraction(fraction)
    kappa = check_real("kappa", kappa, 0.0, 1.0, low_open=True, allow_none=True)
    min_fraction = check_real("min_fraction", min_fraction, 0.0, 1.0, high_open=True)
    max_cycles = check_int("max_cycles", max_cycles, 1, allow_none=True)
    init = check_choice("init", init, INITS)
    seed = check_int("seed", seed)
    min_units_per_layer = check_int("min_units_per_layer", min_units_per_layer, 0, allow_none=True)
    if training is not None and not isinstance(training, TrainingConfig):
        raise TypeError(f"training must be a dropnet_tf.TrainingConfig or None, got {type(training).__name__}.")
    selection, min_units_per_layer, training = resolve_protocol(protocol, selection, min_units_per_layer, training)
    training = check_training(training)
    dropped_per_cycle = count if count is not None else scorer.default_count
    if selection == "notebook" and dropped_per_cycle not in (None, 1):
        what = f"{scorer.name!r} drops {dropped_per_cycle} unit(s) per cycle" if count is None else f"count={count}"
        raise ValueError(
            f"selection='notebook' is a rule for a pruning fraction or for dropping one unit per cycle (the "
            f"notebooks' oracle comparison), but {what}; other counts have only selection='exact'."
        )
    if results is not None and not isinstance(results, ResultsFile):
        check_path("results", results, allow_none=True)
        if os.path.isdir(results):
            raise ValueError(f"results must be the path of a JSON-lines file, but {os.fspath(results)!r} is a directory.")
    if not isinstance(experiment, str):
        raise TypeError(f"experiment must be a str (a name stored in every record), got {experiment!r}.")
    verbose = check_int("verbose", verbose, 0)
    split_callbacks(callbacks)  # Keras callbacks and CycleCallbacks only, checked before anything runs
    callbacks = [] if callbacks is None else list(callbacks)
    return dict(
        fraction=fraction, kappa=kappa, min_fraction=min_fraction, max_cycles=max_cycles, init=init, seed=seed,
        count=count, min_units_per_layer=min_units_per_layer, selection=selection, protocol=protocol,
        training=training, results=results, experiment=experiment, verbose=verbose, callbacks=callbacks,
    )


def _unpack_data(data):
    """(x_train, y_train, x_val, y_val, x_test, y_test) from a Dataset or three (x, y) pairs."""
    if all(hasattr(data, key) for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")):
        return data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test
    try:
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise TypeError(
            "data must be a dropnet_tf.data.Dataset or ((x_train, y_train), (x_val, y_val), (x_test, y_test))."
        ) from None
    return x_train, y_train, x_val, y_val, x_test, y_test


def _sparse_labels(loss) -> bool:
    """Whether ``loss`` reads class labels (so labels are checked against the model's outputs)."""
    name = loss if isinstance(loss, str) else (getattr(loss, "name", None) or getattr(loss, "__name__", ""))
    return "categorical" in str(name).lower()


__all__ = ["INITS", "PROTOCOLS", "check_prune_arguments", "check_training", "resolve_protocol"]
