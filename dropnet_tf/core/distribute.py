"""One run on several devices: the ``tf.distribute`` strategy every method accepts (issue 16).

Training, evaluation and the statistics collector accept a ``tf.distribute.Strategy``:
``MirroredStrategy`` for the devices of one machine, ``MultiWorkerMirroredStrategy`` for
several machines (or processes; each reads ``TF_CONFIG``).  Under a strategy the library
trains and evaluates with :class:`dropnet_tf.engines.distributed_training.DistributedTrainer`
(``strategy.run``; Keras 3's ``Model.fit`` fails under ``MultiWorkerMirroredStrategy``),
which splits every global batch over the replicas and sums the gradients of each
replica's loss divided by the whole global batch's size, so the update is that of the
whole batch on one device; statistics come from ``Model.predict``.  The fast graph trainer (:class:`dropnet_tf.engines.graph_trainer.GraphTrainer`) keeps its
single-device path; ``strategy=None``, the default everywhere, changes nothing.

A model's variables belong to the strategy in whose scope they were created, so a model to
be trained under a strategy must be built inside ``with strategy.scope():``.  Entry points
check this (:func:`require_built_in_scope`) before any work, and the error names the fix;
:func:`clone_in_scope` rebuilds a model built outside, with its weights.

This module is the one place where a strategy is named, checked and entered.
"""

from __future__ import annotations

import contextlib
import json
import os

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.caching import tf_variables

#: ``--strategy`` choices of the paper scripts (:func:`make_strategy`).
STRATEGY_NAMES = ("mirrored", "multiworker")


def check_strategy(strategy, what: str = "strategy"):
    """``strategy`` if it is None or a ``tf.distribute.Strategy``; else TypeError naming it."""
    if strategy is None or isinstance(strategy, tf.distribute.Strategy):
        return strategy
    hint = (f" (a name such as {strategy!r} goes to dropnet_tf.core.distribute.make_strategy first)"
            if isinstance(strategy, str) else "")
    raise TypeError(
        f"{what} must be None or a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()), "
        f"got {strategy!r}{hint}."
    )


def make_strategy(name):
    """The strategy of a ``--strategy`` name: None → None, "mirrored" → ``MirroredStrategy()``
    (every device of this machine), "multiworker" → ``MultiWorkerMirroredStrategy()`` (the
    cluster described by the ``TF_CONFIG`` environment variable)."""
    if name is None:
        return None
    if name not in STRATEGY_NAMES:
        raise ValueError(f"strategy must be one of {STRATEGY_NAMES} or None, got {name!r}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not os.environ.get("TF_CONFIG"):
        raise ValueError(
            "strategy 'multiworker' reads the cluster from the TF_CONFIG environment variable, which is not set; "
            "set it on every worker, e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:port\", \"host2:port\"]}, "
            "\"task\": {\"type\": \"worker\", \"index\": 0}}'."
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def scope(strategy):
    """``strategy.scope()``, or a context that does nothing for None."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def _variables_outside(model, strategy) -> list[str]:
    """Names of ``model``'s variables that were not created in ``strategy``'s scope."""
    names = []
    for variable, inner in zip(model.weights, tf_variables(model.weights)):
        if not strategy.extended.variable_created_in_scope(inner):
            names.append(getattr(variable, "path", None) or variable.name)
    return names


def require_built_in_scope(model, strategy, what: str = "model") -> None:
    """Raise ValueError unless every variable of ``model`` was created in ``strategy.scope()``.

    Keras ties a model (and the optimizer built on it) to the strategy active when its
    variables were made; one built outside would train on one device or fail mid-run.
    """
    if strategy is None:
        return
    outside = _variables_outside(model, strategy)
    if outside:
        raise ValueError(
            f"The {what} {model.name!r} was built outside the strategy's scope ({len(outside)} of its "
            f"{len(model.weights)} variables, first {outside[0]!r}), so it cannot be trained under "
            f"{type(strategy).__name__}. Build it inside `with strategy.scope():`, or rebuild it there with "
            "dropnet_tf.core.distribute.clone_in_scope(model, strategy)."
        )


def model_strategy(model):
    """The non-default strategy whose scope ``model``'s variables were created in, or None."""
    variables = tf_variables(model.weights)
    if not variables or not isinstance(variables[0], tf.distribute.DistributedValues):
        return None
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or not strategy.extended.variable_created_in_scope(variables[0]):
        return None
    return strategy


def clone_in_scope(model, strategy):
    """A copy of ``model`` (Sequential or functional) built inside ``strategy.scope()``, with its weights.

    For a model built outside the scope (``keras.models.clone_model``, which rebuilds each
    layer from its config, then every weight copied, masks included).  The copy is a new
    object: what is trained is the copy; copy its weights back with
    ``model.set_weights(clone.get_weights())`` where the original must hold them.
    """
    check_strategy(strategy)
    if strategy is None:
        raise ValueError("clone_in_scope needs a strategy, got None.")
    with strategy.scope():
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    return clone


def worker_index(strategy=None) -> int:
    """This process's index among the workers: ``TF_CONFIG``'s task index for a multi-worker
    strategy, else 0 (chief).  Used to keep workers from writing the same file."""
    if strategy is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return int(task.get("index", 0))


__all__ = [
    "STRATEGY_NAMES", "check_strategy", "clone_in_scope", "make_strategy", "model_strategy", "require_built_in_scope",
    "scope", "worker_index",
]

