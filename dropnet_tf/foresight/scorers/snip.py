"""SNIP: single-shot pruning by connection sensitivity (Lee et al., ICLR 2019, Section 4).

The connection sensitivity of weight j is (SNIP eqs. 5-6)

    g_j = ∂L(c ⊙ w; D) / ∂c_j  at c = 1,        s_j = |g_j| / Σ_k |g_k|,

and the top-κ connections by s are kept (eq. 7; the global selection of
:func:`~dropnet_tf.core.selection.select_weights`).  By the chain rule
∂L/∂c_j = w_j · ∂L/∂(c_j w_j), which at c = 1 is w_j · ∂L/∂w_j, so

    |∂L/∂c_j| = |w_j · ∂L/∂w_j|,

and that is how it is computed here: one backward pass to the weights, no extra
variables.  The thesis (Section 3.4, eq. 3.5, and its conclusion) states SNIP's score as
|∂L/∂w| alone and calls the w·g form of other implementations a mistake; the SNIP paper
itself warns that ∂L/∂c "is not to be confused with" ∂L/∂w (end of Section 4.1), and
``tests/test_foresight_scorers_first_order.py`` checks against an explicit c variable that
the w·g form is the derivative the paper defines and |∂L/∂w| is not.
"""

from __future__ import annotations

import numbers

import numpy as np

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.objective import as_batch
from dropnet_tf.foresight.scorers.base import WeightScorer
from dropnet_tf.foresight.scorers.gradient import loss_gradients
from dropnet_tf.core.selection import as_generator

#: the variance-scaling initialisers SNIP Algorithm 1 line 1 may use (Section 4.2, Fig. 3).
VARIANCE_SCALING_INITIALIZERS = {
    "glorot_uniform": keras.initializers.GlorotUniform,
    "glorot_normal": keras.initializers.GlorotNormal,
    "he_normal": keras.initializers.HeNormal,
    "he_uniform": keras.initializers.HeUniform,
}


class SNIPScorer(WeightScorer):
    """Connection sensitivity s_j = |g_j| / Σ_k |g_k| (SNIP eq. 6), g = ∂L/∂c = w ⊙ ∂L/∂w.

    The normaliser sums over *all* prunable weights of the model (the m connections of
    eq. 6), so the scores of one call sum to 1; it does not change the ranking.

    Args:
        batch_size: examples of ``data`` to score with.  None uses the whole batch given;
            otherwise a mini-batch of ``batch_size`` examples is drawn from it without
            replacement with the scorer's rng (Algorithm 1 line 2; the experiments use 100
            for MNIST, 128 for CIFAR).  A ``data`` with fewer examples is used whole.
        variance_scaling_init: None (score the weights as they are) or one of
            ``"glorot_uniform"``, ``"glorot_normal"``, ``"he_normal"``, ``"he_uniform"``:
            re-initialise every prunable weight with that Keras initializer *before*
            scoring (Algorithm 1 line 1, Section 4.2).  This changes the model's weights —
            they are the w the pruned network then trains from.  Each tensor gets its own
            seed drawn from the rng, so the draw is reproducible from ``prune_at_init``'s
            ``seed``; already-pruned entries stay zero; biases are left alone.
    """

    name = "snip"
    needs_data = True

    def __init__(self, batch_size: int | None = None, variance_scaling_init: str | None = None):
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}.")
        if variance_scaling_init is not None and variance_scaling_init not in VARIANCE_SCALING_INITIALIZERS:
            raise ValueError(
                f"variance_scaling_init must be None or one of {sorted(VARIANCE_SCALING_INITIALIZERS)}, "
                f"got {variance_scaling_init!r}."
            )
        self.batch_size = None if batch_size is None else int(batch_size)
        self.variance_scaling_init = variance_scaling_init

    def __repr__(self) -> str:
        return f"SNIPScorer(batch_size={self.batch_size!r}, variance_scaling_init={self.variance_scaling_init!r})"

    def minibatch(self, data, rng=None):
        """The ``(x, y)`` the scores are computed on (Algorithm 1 line 2)."""
        x, y = as_batch(data, "SNIP's data")
        if self.batch_size is None or self.batch_size >= len(x):
            return x, y
        rows = np.sort(as_generator(rng).choice(len(x), size=self.batch_size, replace=False))
        return x[rows], y[rows]

    def reinitialize(self, weights, rng=None) -> None:
        """Algorithm 1 line 1: w ← variance-scaling initialisation, keeping pruned entries zero."""
        if self.variance_scaling_init is None:
            return
        rng = as_generator(rng)
        initializer_class = VARIANCE_SCALING_INITIALIZERS[self.variance_scaling_init]
        for weight in weights:
            initializer = initializer_class(seed=int(rng.integers(2**31 - 1)))
            value = initializer(weight.shape, dtype=weight.variable.dtype)
            weight.variable.assign(value * tf.cast(weight.mask, weight.variable.dtype))

    @staticmethod
    def connection_gradients(model, weights, data) -> dict[str, np.ndarray]:
        """Signed g_j = ∂L(c ⊙ w)/∂c_j at c = 1 (SNIP eq. 5), computed as w_j · ∂L/∂w_j."""
        x, y = as_batch(data, "SNIP's data")
        grads = loss_gradients(model, weights, x, y)
        return {w.name: w.variable.numpy().astype(np.float64) * grads[w.name] for w in weights}

    def score(self, model, weights, data=None, rng=None):
        rng = as_generator(rng)
        batch = self.minibatch(data, rng)
        self.reinitialize(weights, rng)
        magnitudes = {name: np.abs(g) for name, g in self.connection_gradients(model, weights, batch).items()}
        total = sum(float(m.sum()) for m in magnitudes.values())
        if total == 0.0:
            # Every connection leaves the loss unchanged (e.g. a collapsed network): all
            # scores are equal, the selection breaks the ties at random.
            return magnitudes
        return {name: m / total for name, m in magnitudes.items()}
