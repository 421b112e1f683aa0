"""The training configuration: :class:`TrainingConfig`, the one description of a training run
for both engines of :func:`dropnet_tf.engines.training.fit`, and its checks.

:func:`training_config` turns None, a config or a preset into a config, :func:`check_config`
checks every field, and :func:`optimizer_config` reads the TFMOT baseline's JSON optimizer
spec (:data:`OPTIMIZER_FIELDS`) into a config; :func:`dropnet_tf.engines.optimizers.make_optimizer`
builds the optimizer a config describes.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.core.validation import check_int


#: Optimizer names that take the config's hyperparameters (learning rate, momentum, ...).
OPTIMIZER_NAMES = ("sgd", "adam")

#: What early stopping may monitor (logs both engines write).
MONITORS = ("val_loss", "val_accuracy", "loss")

#: The optimizer fields of a config: also the keys of the TFMOT baseline's JSON spec.
OPTIMIZER_FIELDS = ("optimizer", "learning_rate", "momentum", "nesterov", "weight_decay", "learning_rate_drops",
                    "weight_decay_mode")

#: How ``weight_decay`` enters the update (``TrainingConfig.weight_decay_mode``):
#:
#: * ``"decoupled"`` (the default, what this library always did): Keras' optimizer option
#:   ``SGD(weight_decay=wd)`` / ``Adam(weight_decay=wd)``, ``w <- w - lr*wd*w`` applied before
#:   the step and outside the momentum (Loshchilov & Hutter's decoupled decay, "AdamW");
#: * ``"coupled"``: L2 weight decay as Caffe, TF 1 (an L2 term in the loss) and PyTorch's
#:   ``SGD(weight_decay=wd)`` apply it: ``g <- g + wd*w``, so that it passes through the
#:   momentum (and Adam's moments).  Under momentum m the steady-state pull towards zero is
#:   1/(1-m) times the decoupled one: ten times at m = 0.9.  Without momentum (plain SGD)
#:   the two give the same update.
WEIGHT_DECAY_MODES = ("decoupled", "coupled")


@dataclass
class TrainingConfig:
    """How a network is trained, for either engine of :func:`~dropnet_tf.engines.training.fit`.

    Defaults follow DropNet Section 3.2.

    ``restore_best_weights=True`` evaluates the weights at minimum validation loss, as the
    paper's problem statement does (Section 2); the authors' notebooks left it False and
    evaluated the last epoch.  ``shuffle=True`` reshuffles every epoch; the notebooks
    trained with ``shuffle=False``.  Batch size 32 is Keras' default, which the notebooks
    used.  ``steps_per_call`` runs that many training steps per call into TensorFlow
    (engine "graph" only, see :class:`~dropnet_tf.engines.graph_trainer.GraphTrainer`), which
    is most of why a cycle here is much faster than the notebooks' loop.

    The optimizer: ``optimizer`` is None (SGD), a Keras name, a Keras Optimizer or a
    zero-argument factory.  With None, "sgd" or "adam", the hyperparameter fields
    (``learning_rate``, ``momentum``, ``nesterov``, ``weight_decay``,
    ``learning_rate_drops``) build it (:func:`~dropnet_tf.engines.optimizers.make_optimizer`);
    left at None they take the optimizer's own defaults (learning rate 0.1 for
    ``optimizer=None``).
    ``learning_rate_drops`` lists ``(iteration, factor)``: the rate is multiplied by
    ``factor`` at each iteration (SNIP Section 5: ×0.1 every 25k / 30k iterations).
    ``weight_decay_mode`` says how ``weight_decay`` acts (:data:`WEIGHT_DECAY_MODES`):
    ``"decoupled"`` (default, the behaviour before the option existed: Keras' optimizer
    option, ``w <- w - lr*wd*w`` outside the momentum) or ``"coupled"`` (``g <- g + wd*w``
    through the momentum, as Caffe, TF 1's L2 loss term and PyTorch's SGD do; SNIP's public
    code adds ``wd/2 * sum(w^2)`` to its loss).  Coupled decay acts on every variable the
    optimizer updates, the same set the decoupled option decays (Keras'
    ``exclude_from_weight_decay`` is respected by both); a masked weight that is zero stays
    zero under either.  It is applied inside the optimizer's per-variable step
    (:class:`~dropnet_tf.engines.optimizers.CoupledSGD`,
    :class:`~dropnet_tf.engines.optimizers.CoupledAdam`), after the gradients of a distributed
    step are summed over replicas, so every engine (graph, Keras ``fit``, distributed) gets
    the same update, and the stacked trainer reproduces both modes.

    Length: ``max_epochs`` epochs, or with ``iterations`` that many training steps.
    Early stopping (``early_stopping``) watches ``monitor`` with ``patience`` and
    ``restore_best_weights``, and needs validation data when it monitors a ``val_`` key.

    ``compact_training`` (DropNet's cycles only): "auto" (default) trains the compacted
    network each cycle and writes it back into the masked model where that is exact and saves
    time, else the masked model; True always compacts, refusing settings where that is not
    the same computation; False always trains the masked model
    (:mod:`dropnet_tf.compaction.training`).  Not part of a run's fingerprint: it changes
    results only by floating-point summation order.
    """

    optimizer: object = None  # None: SGD(learning_rate=0.1); or a name, or a zero-arg factory
    loss: object = "sparse_categorical_crossentropy"
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 5
    restore_best_weights: bool = True
    shuffle: bool = True
    steps_per_call: int = 128
    jit_compile: object = "auto"  # XLA for the training steps: True, False or "auto"
    eval_batch_size: int = 1024
    statistics_batch_size: int = 1024
    callbacks: Sequence = field(default_factory=tuple)
    train_transform: Callable | None = None  # applied to each (x, y) training batch, e.g. augmentation
    learning_rate: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    learning_rate_drops: tuple = ()
    # "decoupled" (Keras' option, outside momentum; the default) or "coupled" (L2 through the gradient)
    weight_decay_mode: str = "decoupled"
    iterations: int | None = None
    early_stopping: bool = True
    monitor: str = "val_loss"
    # DropNet's cycles: train the compacted network and write it back (dropnet_tf.compaction.training)
    compact_training: object = "auto"


#: Fields added when the config became the one training config, with their defaults: a
#: config that keeps them describes the same training as before (see ``run_fingerprint``).
ADDED_FIELDS = {
    "learning_rate": None, "momentum": None, "nesterov": None, "weight_decay": None, "learning_rate_drops": (),
    "iterations": None, "early_stopping": True, "monitor": "val_loss", "weight_decay_mode": "decoupled",
}


def training_config(config=None) -> TrainingConfig:
    """The :class:`TrainingConfig` of ``config``: None (the defaults), a TrainingConfig, or a
    preset with ``to_training_config()`` such as :class:`dropnet_tf.foresight.TrainingProtocol`."""
    if config is None:
        return TrainingConfig()
    if isinstance(config, TrainingConfig):
        return config
    if hasattr(config, "to_training_config"):
        return config.to_training_config()
    raise TypeError(
        "config must be a dropnet_tf.TrainingConfig, an object with to_training_config() "
        f"(e.g. a foresight TrainingProtocol) or None, got {type(config).__name__}."
    )


def is_optimizer(obj) -> bool:
    """Whether ``obj`` is a Keras optimizer instance (either Keras flavour, legacy included)."""
    classes = [keras.optimizers.Optimizer]
    legacy = getattr(getattr(keras.optimizers, "legacy", None), "Optimizer", None)
    if legacy is not None:
        classes.append(legacy)
    return isinstance(obj, tuple(classes))


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _tuned(config) -> list[str]:
    """The optimizer hyperparameter fields that are set."""
    tuned = [name for name in ("learning_rate", "momentum", "nesterov", "weight_decay") if getattr(config, name) is not None]
    if config.learning_rate_drops:
        tuned.append("learning_rate_drops")
    if config.weight_decay_mode != "decoupled":
        tuned.append("weight_decay_mode")
    return tuned


def _check_optimizer_fields(config) -> None:
    mode = config.weight_decay_mode
    if not isinstance(mode, str) or mode not in WEIGHT_DECAY_MODES:
        raise ValueError(f"TrainingConfig.weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {mode!r}.")
    optimizer = config.optimizer
    if not (optimizer is None or isinstance(optimizer, str) or is_optimizer(optimizer) or callable(optimizer)):
        raise TypeError(
            "TrainingConfig.optimizer must be None, a name, a Keras Optimizer or a zero-argument factory, "
            f"got {type(optimizer).__name__}."
        )
    tuned = _tuned(config)
    if tuned and not (optimizer is None or (isinstance(optimizer, str) and optimizer.lower() in OPTIMIZER_NAMES)):
        shown = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
        raise ValueError(
            f"TrainingConfig sets {tuned}, which build the optimizer only for optimizer None or one of "
            f"{OPTIMIZER_NAMES}, got optimizer={shown!r}; set them on the optimizer instead."
        )
    rate = config.learning_rate
    if rate is not None and (_is_bool(rate) or not isinstance(rate, numbers.Real) or not rate > 0):
        raise ValueError(f"TrainingConfig.learning_rate must be a number > 0 or None, got {rate!r}.")
    for name in ("momentum", "weight_decay"):
        value = getattr(config, name)
        if value is not None and (_is_bool(value) or not isinstance(value, numbers.Real) or not value >= 0):
            raise ValueError(f"TrainingConfig.{name} must be a number >= 0 or None, got {value!r}.")
    if config.nesterov is not None and not _is_bool(config.nesterov):
        raise TypeError(f"TrainingConfig.nesterov must be True, False or None, got {config.nesterov!r}.")
    drops = config.learning_rate_drops
    try:
        pairs = [(step, factor) for step, factor in drops]
    except (TypeError, ValueError):
        raise TypeError(
            f"TrainingConfig.learning_rate_drops must be a sequence of (iteration, factor) pairs, got {drops!r}."
        ) from None
    for step, factor in pairs:
        if _is_bool(step) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(
                f"TrainingConfig.learning_rate_drops: iteration must be an integer >= 0, got {step!r} in {drops!r}."
            )
        if _is_bool(factor) or not isinstance(factor, numbers.Real) or not factor > 0:
            raise ValueError(f"TrainingConfig.learning_rate_drops: factor must be a number > 0, got {factor!r} in {drops!r}.")


def check_config(config, *, min_epochs: int = 0) -> TrainingConfig:
    """``config`` (see :func:`training_config`) if every field is allowed; else the error names the
    field, the bad value and what is allowed."""
    config = training_config(config)
    minimums = {"batch_size": 1, "max_epochs": min_epochs, "patience": 0, "steps_per_call": 1, "eval_batch_size": 1,
                "statistics_batch_size": 1}
    for name, minimum in minimums.items():
        check_int(f"TrainingConfig.{name}", getattr(config, name), minimum)
    check_int("TrainingConfig.iterations", config.iterations, 1, allow_none=True)
    for name in ("restore_best_weights", "shuffle", "early_stopping"):
        if not _is_bool(getattr(config, name)):
            raise TypeError(f"TrainingConfig.{name} must be True or False, got {getattr(config, name)!r}.")
    jit = config.jit_compile
    if not (_is_bool(jit) or (isinstance(jit, str) and jit == "auto")):
        raise ValueError(f"TrainingConfig.jit_compile must be True, False or 'auto', got {config.jit_compile!r}.")
    compacted = config.compact_training
    if not (_is_bool(compacted) or (isinstance(compacted, str) and compacted == "auto")):
        raise ValueError(f"TrainingConfig.compact_training must be True, False or 'auto', got {compacted!r}.")
    if config.monitor not in MONITORS:
        raise ValueError(f"TrainingConfig.monitor must be one of {MONITORS}, got {config.monitor!r}.")
    _check_optimizer_fields(config)
    if not (isinstance(config.loss, str) or callable(config.loss)):
        raise TypeError(f"TrainingConfig.loss must be a Keras loss name or callable, got {type(config.loss).__name__}.")
    if isinstance(config.callbacks, (str, bytes)) or not hasattr(config.callbacks, "__iter__"):
        raise TypeError(f"TrainingConfig.callbacks must be a sequence of Keras callbacks, got {config.callbacks!r}.")
    if config.train_transform is not None and not callable(config.train_transform):
        raise TypeError(
            f"TrainingConfig.train_transform must be a callable (x, y) -> (x, y) or None, got {config.train_transform!r}."
        )
    return config


def optimizer_spec_fields(spec: Mapping) -> dict:
    """A copy of an optimizer spec mapping with ``"name"`` renamed ``"optimizer"``; unknown keys
    raise ValueError naming them and :data:`OPTIMIZER_FIELDS`."""
    spec = dict(spec)
    if "name" in spec:
        if "optimizer" in spec:
            raise ValueError("An optimizer spec may give 'name' or 'optimizer', not both.")
        spec["optimizer"] = spec.pop("name")
    unknown = sorted(set(spec) - set(OPTIMIZER_FIELDS))
    if unknown:
        raise ValueError(f"Unknown optimizer spec keys {unknown}; allowed: {list(OPTIMIZER_FIELDS)}.")
    return spec


def optimizer_config(spec) -> TrainingConfig:
    """A TrainingConfig holding an optimizer spec: a mapping with keys of :data:`OPTIMIZER_FIELDS`
    (the TFMOT baseline's JSON spec; ``"name"`` is an alias of ``"optimizer"``)."""
    spec = optimizer_spec_fields(spec)
    spec["learning_rate_drops"] = tuple(tuple(pair) for pair in (spec.get("learning_rate_drops") or ()))
    return TrainingConfig(**spec)


__all__ = [
    "MONITORS", "OPTIMIZER_FIELDS", "OPTIMIZER_NAMES", "WEIGHT_DECAY_MODES", "TrainingConfig",
    "check_config", "is_optimizer", "optimizer_config", "optimizer_spec_fields", "training_config",
]
