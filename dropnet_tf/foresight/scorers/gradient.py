"""Gradient-based pruning (thesis Section 2.2.2, eq. 2.2): s(θ) = |θ · g|.

``loss_gradients`` is the one backward pass the first-order scorers share: ∂L/∂θ of the
mean cross-entropy on a batch, the model in training mode (BatchNorm on batch statistics,
as the papers' reference code scores), its non-trainable state restored afterwards.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dropnet_tf.core.backend import tf
from dropnet_tf.core.objective import as_batch, cross_entropy, preserved_state
from dropnet_tf.foresight.scorers.base import WeightScorer


def loss_gradients(model, weights: Sequence, x, y, training: bool = True) -> dict[str, np.ndarray]:
    """``{weight.name: ∂L/∂θ}`` of the mean cross-entropy on ``(x, y)``, one ``GradientTape``.

    The gradient is taken at the current (masked) values, so a pruned weight is zero but
    its gradient in general is not: scores that multiply by θ give it zero.

    Raises:
        ValueError: when a weight does not influence the loss (its gradient is None),
            e.g. a layer that is not on the path from the model's input to its output.
    """
    variables = [w.variable for w in weights]
    with preserved_state(model):
        with tf.GradientTape() as tape:
            loss = cross_entropy(model, tf.convert_to_tensor(x), y, training=training)
        grads = tape.gradient(loss, variables)
    out = {}
    for weight, grad in zip(weights, grads):
        if grad is None:
            raise ValueError(
                f"The loss does not depend on '{weight.name}' (no gradient); is the layer used in the model's forward pass?"
            )
        if isinstance(grad, tf.IndexedSlices):  # embeddings-style sparse gradients
            grad = tf.convert_to_tensor(grad)
        out[weight.name] = grad.numpy().astype(np.float64)
    return out


class GradientScorer(WeightScorer):
    """s(θ) = |θ · ∂L/∂θ| (thesis eq. 2.2), on one batch of data.

    ``L`` is the mean softmax cross-entropy of the batch ``data=(x, y)`` (the whole batch is
    used; pass the mini-batch you mean to score with).  This is also the first-order Taylor
    estimate of the loss change from zeroing θ, which is why it multiplies by θ.
    """

    name = "gradient"
    needs_data = True

    def score(self, model, weights, data=None, rng=None):
        x, y = as_batch(data, "the gradient scorer's data")
        grads = loss_gradients(model, weights, x, y)
        return {w.name: np.abs(w.variable.numpy().astype(np.float64) * grads[w.name]) for w in weights}
