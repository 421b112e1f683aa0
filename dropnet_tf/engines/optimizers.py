"""Optimizer construction: :func:`make_optimizer`, the one place an optimizer is built from a
:class:`~dropnet_tf.engines.config.TrainingConfig` or from the TFMOT baseline's JSON spec.

Also SGD and Adam with coupled weight decay (:class:`CoupledSGD`, :class:`CoupledAdam`),
:func:`weight_decay_of` (the decay an optimizer applies, and how) and
:func:`optimizer_variables` (its state, for both Keras flavours).
"""

from __future__ import annotations

from collections.abc import Mapping

from dropnet_tf.core.backend import keras, register_serializable, tf
from dropnet_tf.engines.config import (TrainingConfig, _check_optimizer_fields, _tuned, is_optimizer, optimizer_config,
                                       training_config)


#: The learning rate of ``optimizer=None``: DropNet's SGD (Section 3.2).
DEFAULT_LEARNING_RATE = 0.1


def _coupled(base):
    """``base`` (Keras' SGD or Adam) with coupled weight decay: ``g <- g + wd*w`` before its step.

    The term is added in ``update_step``, the per-variable step both Keras flavours call
    after a distributed step has summed the replicas' gradients, so it enters once per step
    on every engine (``Model.fit``, :class:`~dropnet_tf.engines.graph_trainer.GraphTrainer`,
    the distributed trainer), exactly as an L2 term ``wd/2 * sum(w^2)`` in the loss would
    (Caffe's and PyTorch's weight decay, SNIP's public code), without entering the reported
    loss.
    """

    class Coupled(base):
        def __init__(self, *args, coupled_weight_decay: float = 0.0, **kwargs):
            if kwargs.get("weight_decay"):
                raise ValueError(
                    f"{base.__name__} with coupled weight decay takes it as coupled_weight_decay, not also as "
                    f"weight_decay={kwargs['weight_decay']!r} (Keras' decoupled option)."
                )
            super().__init__(*args, **kwargs)
            self.coupled_weight_decay = float(coupled_weight_decay)

        def update_step(self, gradient, variable, *args, **kwargs):
            if self.coupled_weight_decay and self._use_weight_decay(variable):
                if isinstance(gradient, tf.IndexedSlices):
                    gradient = tf.convert_to_tensor(gradient)
                decay = tf.cast(self.coupled_weight_decay, variable.dtype)
                gradient = gradient + decay * tf.convert_to_tensor(variable)
            return super().update_step(gradient, variable, *args, **kwargs)

        def get_config(self):
            config = super().get_config()
            config["coupled_weight_decay"] = self.coupled_weight_decay
            return config

    Coupled.__name__ = Coupled.__qualname__ = f"Coupled{base.__name__}"
    Coupled.__doc__ = (f"keras.optimizers.{base.__name__} with coupled weight decay (``g <- g + wd*w`` before "
                       "the step, through the momentum); see :func:`make_optimizer`.")
    return register_serializable(package="dropnet_tf")(Coupled)


#: SGD and Adam with coupled weight decay (``TrainingConfig(weight_decay_mode="coupled")``).
CoupledSGD = _coupled(keras.optimizers.SGD)
CoupledAdam = _coupled(keras.optimizers.Adam)


def weight_decay_of(optimizer) -> tuple[float, str]:
    """``(weight decay, mode)`` of a Keras optimizer: (0.0, "decoupled") when it has none."""
    coupled = getattr(optimizer, "coupled_weight_decay", 0.0)
    if coupled:
        return float(coupled), "coupled"
    decay = getattr(optimizer, "weight_decay", None)
    return float(decay or 0.0), "decoupled"


def _build_optimizer(name: str, learning_rate, momentum, nesterov, weight_decay, drops, mode: str = "decoupled"):
    rate = learning_rate
    if drops:
        steps = [int(step) for step, _ in drops]
        values = [learning_rate]
        for _, factor in drops:
            values.append(values[-1] * float(factor))
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)
    decay = weight_decay or None
    if decay and mode == "coupled":
        if name == "adam":
            return CoupledAdam(rate, coupled_weight_decay=decay)
        return CoupledSGD(rate, momentum=momentum, nesterov=nesterov, coupled_weight_decay=decay)
    if name == "adam":
        return keras.optimizers.Adam(rate, weight_decay=decay)
    return keras.optimizers.SGD(rate, momentum=momentum, nesterov=nesterov, weight_decay=decay)


def make_optimizer(config_or_spec=None):
    """The one optimizer factory: a new Keras optimizer from a config or a spec.

    ``config_or_spec``: a :class:`~dropnet_tf.engines.config.TrainingConfig` (or a preset with
    ``to_training_config()``), a mapping spec (:func:`~dropnet_tf.engines.config.optimizer_config`),
    or what ``TrainingConfig.optimizer`` takes: None (SGD at learning rate 0.1), a Keras name
    (``keras.optimizers.get``), an Optimizer (returned as it is) or a zero-argument factory
    (called).

    "sgd" / "adam" / None with hyperparameters set: ``SGD(rate, momentum, nesterov,
    weight_decay)`` or ``Adam(rate, weight_decay)``, where ``rate`` is a
    ``PiecewiseConstantDecay`` when ``learning_rate_drops`` are given and unset fields take
    the optimizer's defaults (momentum 0, no Nesterov, no weight decay; learning rate 0.1
    for None, Keras' default for a name).  With ``weight_decay_mode="coupled"`` and a
    weight decay, :class:`CoupledSGD` / :class:`CoupledAdam` (the same optimizers, the decay
    added to the gradient) instead of Keras' decoupled ``weight_decay`` option.
    """
    if isinstance(config_or_spec, Mapping):
        config = optimizer_config(config_or_spec)
    elif isinstance(config_or_spec, TrainingConfig) or hasattr(config_or_spec, "to_training_config"):
        config = training_config(config_or_spec)
    else:
        config = TrainingConfig(optimizer=config_or_spec)
    _check_optimizer_fields(config)
    optimizer = config.optimizer
    if is_optimizer(optimizer):
        return optimizer
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer()
    tuned = _tuned(config)
    if isinstance(optimizer, str) and not tuned:
        return keras.optimizers.get(optimizer)
    name = "sgd" if optimizer is None else optimizer.lower()
    rate = config.learning_rate
    if rate is None:
        rate = DEFAULT_LEARNING_RATE if optimizer is None else keras.optimizers.get(name).get_config()["learning_rate"]
    momentum = 0.0 if config.momentum is None else config.momentum
    nesterov = False if config.nesterov is None else config.nesterov
    return _build_optimizer(name, rate, momentum, nesterov, config.weight_decay, config.learning_rate_drops,
                            config.weight_decay_mode)


def optimizer_variables(optimizer) -> list:
    """The optimizer's state variables (iterations, slots), for both Keras flavours."""
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


__all__ = [
    "CoupledAdam", "CoupledSGD", "make_optimizer", "optimizer_variables", "weight_decay_of",
]
