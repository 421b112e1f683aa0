"""The loss the data-driven scorers differentiate, and a guard for the model's state.

Scorers need logits (GraSP divides them by a temperature), but Keras models usually end
in a softmax.  ``logits`` returns log p for such models: log-softmax is invariant to a
constant shift, so softmax(log p / T) = softmax(z / T) and the cross-entropy is the same
as on the true logits z.
"""

from __future__ import annotations

import contextlib

import numpy as np

from dropnet_tf.core.backend import keras, tf


def outputs_are_probabilities(model) -> bool:
    """True when the model's last layer applies a softmax (so its outputs sum to one)."""
    last = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", None) or getattr(last, "__class__", type(None)).__name__
    return name.lower() == "softmax"


def logits(model, x, training: bool = True, from_logits: bool | None = None):
    """The model's logits on ``x`` (log-probabilities when it ends in a softmax)."""
    outputs = model(x, training=training)
    if from_logits is None:
        from_logits = not outputs_are_probabilities(model)
    if from_logits:
        return outputs
    return tf.math.log(tf.maximum(tf.cast(outputs, tf.float32), 1e-30))


def cross_entropy(model, x, y, temperature: float = 1.0, training: bool = True, from_logits: bool | None = None):
    """Mean softmax cross-entropy of integer labels ``y`` at logits / ``temperature``."""
    z = logits(model, x, training=training, from_logits=from_logits)
    z = tf.cast(z, tf.float32) / float(temperature)
    y = tf.cast(tf.reshape(y, [-1]), tf.int32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z))


@contextlib.contextmanager
def preserved_state(model):
    """Restore every non-trainable variable (BatchNorm statistics) on exit.

    Scoring runs the model in training mode, as the papers' reference code does, so that
    BatchNorm uses batch statistics; in Keras that also moves the moving averages, which
    scoring must not do.
    """
    saved = [(v, v.numpy()) for v in model.non_trainable_variables]
    try:
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)


def as_batch(data, what: str = "data"):
    """Check and convert ``(x, y)`` to a pair of arrays with the same first dimension."""
    if data is None:
        raise ValueError(f"This scorer needs {what}: pass data=(x, y) with a batch of training examples.")
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{what} must be a pair (x, y), got {type(data).__name__}.")
    x, y = data
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot labels
    y = y.reshape(-1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{what}: x has {len(x)} examples and y has {len(y)}; they must match and be non-empty.")
    return x, y


__all__ = ["outputs_are_probabilities", "logits", "cross_entropy", "preserved_state", "as_batch", "keras"]
