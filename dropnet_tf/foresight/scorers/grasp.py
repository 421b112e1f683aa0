"""GraSP, Gradient Signal Preservation (Wang, Zhang & Grosse 2020; thesis Section 3.5, eq. 3.6).

GraSP keeps the weights whose removal would most reduce the gradient norm after pruning.
With g = ∂L/∂θ and H the Hessian of the loss, the first-order change of ‖g‖² when θ is
removed is proportional to −θᵀHg, which gives the paper's score::

    S(−θ) = −θ ⊙ Hg                                                  (thesis eq. 3.6)

and the paper removes the weights with the **highest** S.  This package prunes the lowest
scores first, so :meth:`GraSPScorer.score` returns ``θ ⊙ Hg`` = −S, which orders the
weights the same way; :meth:`GraSPScorer.grasp_scores` returns S itself.

Procedure (as in the paper's reference code): draw ``samples_per_class`` examples of each
class, divide the logits by the temperature T (200 in the paper, so that the softmax is
not saturated and the gradient is informative at initialisation), take the gradient g
and hold it constant, then differentiate the inner product of the held g with the live
gradient once more: ∂(g_const · ∂L/∂θ)/∂θ = Hg.
"""

from __future__ import annotations

import numpy as np

from dropnet_tf.core.backend import tf
from dropnet_tf.core.objective import as_batch, preserved_state
from dropnet_tf.foresight.scorers.base import WeightScorer
from dropnet_tf.core.caching import PerModelCache, tf_variables
from dropnet_tf.foresight.scorers.obd import second_order_cross_entropy
from dropnet_tf.core.selection import as_generator


def balanced_indices(y, samples_per_class: int, rng) -> np.ndarray:
    """Indices of ``samples_per_class`` examples of every class in ``y`` (all of a class that
    has fewer), drawn without replacement, sorted."""
    y = np.asarray(y).reshape(-1)
    rng = as_generator(rng)
    chosen = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        take = min(int(samples_per_class), members.size)
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen))


def build_hessian_gradient(model, variables, temperature: float, from_logits=None, compile: bool = False):
    """``f(x, y) -> (g, Hg)`` for the cross-entropy at logits / ``temperature``.

    ``compile=True`` wraps it in ``tf.function``: faster per call, but tracing the
    double backward pass costs several forward/backward passes' time, which only pays
    off when the same model is scored repeatedly.
    """
    variables = tf_variables(variables)

    def hessian_gradient(x, y):
        with tf.GradientTape() as outer:
            outer.watch(variables)
            with tf.GradientTape() as inner:
                inner.watch(variables)
                loss = second_order_cross_entropy(model, x, y, temperature, training=True, from_logits=from_logits)
            live = inner.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            # g is the gradient at this same batch and these same weights, so it equals the
            # live gradient in value; stop_gradient makes it the constant vector of Hg.
            # Taking both from one forward pass saves the reference code's separate pass.
            held = [tf.stop_gradient(g) for g in live]
            inner_product = tf.add_n([tf.reduce_sum(h * g) for h, g in zip(held, live)])
        hg = outer.gradient(inner_product, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return held, hg

    return tf.function(hessian_gradient, reduce_retracing=True) if compile else hessian_gradient


class GraSPScorer(WeightScorer):
    """GraSP (thesis eq. 3.6); :meth:`score` returns θ ⊙ Hg = −S, lowest pruned first.

    Args:
        temperature: T dividing the logits in both derivatives (paper: 200).
        samples_per_class: examples drawn per class from ``data`` with the rng (paper: 10
            for CIFAR-10, i.e. 100 examples; a class with fewer examples gives all it has).
        compile: run the double backward pass as a ``tf.function`` (traced once per model
            and scorer).  Off by default: a pruning run scores once, and one eager call
            was faster than tracing plus one graph call (2.5-2.9 s against 3.1-3.9 s on
            a 0.6M-weight CNN on CPU; on a GPU tracing is pure host overhead).

    g and Hg are taken with respect to the prunable (masked) weights only, as the paper's
    code does for its conv/linear weights; pruned weights are zero and score zero.  The
    model runs in training mode and its BatchNorm statistics are restored afterwards.
    The reference code splits the batch into two halves to save memory and sums their
    gradients; that only scales g and Hg by a positive constant (and gives BatchNorm
    half-batch statistics), so the full batch is used here in one pass.
    """

    name = "grasp"
    needs_data = True

    def __init__(self, temperature: float = 200.0, samples_per_class: int = 10, compile: bool = False):
        temperature = float(temperature)
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a positive number, got {temperature}.")
        if isinstance(samples_per_class, bool) or not isinstance(samples_per_class, (int, np.integer)):
            raise ValueError(f"samples_per_class must be a positive integer, got {samples_per_class!r}.")
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be a positive integer, got {samples_per_class!r}.")
        self.temperature = temperature
        self.samples_per_class = int(samples_per_class)
        self.compile = bool(compile)
        self._cache = PerModelCache()

    def __repr__(self) -> str:
        return (
            f"GraSPScorer(temperature={self.temperature}, samples_per_class={self.samples_per_class}, "
            f"compile={self.compile})"
        )

    def sample(self, data, rng=None):
        """The balanced subset of ``data`` that GraSP differentiates: ``(x, y)``."""
        x, y = as_batch(data, "GraSP data")
        index = balanced_indices(y, self.samples_per_class, rng)
        return x[index], y[index]

    def gradient_and_hessian_gradient(self, model, weights, data, rng=None, sample: bool = True):
        """``(g, Hg)``, each ``{weight.name: float64 array}``, at temperature T.

        Args:
            sample: draw the balanced subset first (False: use all of ``data`` as given).
        """
        x, y = self.sample(data, rng) if sample else as_batch(data, "GraSP data")
        variables = [w.variable for w in weights]
        key = ("hg", self.temperature, self.compile, tuple(w.name for w in weights))
        fn = self._cache.get(
            model, key, lambda: build_hessian_gradient(model, variables, self.temperature, compile=self.compile)
        )
        with preserved_state(model):
            held, hg = fn(tf.convert_to_tensor(x), tf.convert_to_tensor(y))
        g = {w.name: np.asarray(v.numpy(), np.float64) for w, v in zip(weights, held)}
        h = {w.name: np.asarray(v.numpy(), np.float64) for w, v in zip(weights, hg)}
        return g, h

    def hessian_gradient(self, model, weights, data, rng=None, sample: bool = True) -> dict:
        """Hg, ``{weight.name: float64 array}`` (see :meth:`gradient_and_hessian_gradient`)."""
        return self.gradient_and_hessian_gradient(model, weights, data, rng, sample)[1]

    def grasp_scores(self, model, weights, data, rng=None) -> dict:
        """The paper's S(−θ) = −θ ⊙ Hg (eq. 3.6): the **highest** are removed."""
        return {name: -value for name, value in self.score(model, weights, data, rng).items()}

    def score(self, model, weights, data=None, rng=None):
        """θ ⊙ Hg = −S (eq. 3.6 negated): the lowest are removed, as in the paper."""
        hg = self.hessian_gradient(model, weights, data, rng)
        return {w.name: w.variable.numpy().astype(np.float64) * hg[w.name] for w in weights}


__all__ = ["GraSPScorer", "balanced_indices", "build_hessian_gradient"]
