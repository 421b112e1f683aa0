"""Optimal Brain Damage (LeCun, Denker & Solla 1990; thesis Section 3.1, eq. 3.1).

The saliency of weight k is the loss increase a second-order Taylor expansion predicts
for deleting it (perturbation u_k = −θ_k), with the off-diagonal Hessian terms and the
gradient term dropped::

    s_k = h_kk · θ_k² / 2                                            (thesis eq. 3.1)

h_kk is the k-th diagonal entry of the Hessian of the cross-entropy on the given batch
with respect to the prunable weights.  Two ways to get it:

* ``"exact"``: one Hessian-vector product per basis vector e_k, read at entry k.  The
  products are batched ``c`` at a time as the Jacobian of ``E·∇L`` (E the c×n block of
  basis rows), which ``tf.GradientTape.jacobian`` vectorises with pfor.  n products cost
  n/c backward-over-backward passes, so it is only allowed up to ``exact_limit`` weights
  (the thesis' MNIST CNN is where OBD is run at all).
* ``"hutchinson"``: diag(H) ≈ mean_i z_i ⊙ H z_i over Rademacher probes z_i (E[z zᵀ] = I
  makes it unbiased), the same batched products with random rows.

The module also holds the pieces GraSP shares: :func:`second_order_cross_entropy` (the
loss in the model's own precision) and :class:`PerModelCache` (one traced function per
model, so repeated scoring does not retrace).
"""

from __future__ import annotations

import numpy as np

from dropnet_tf.core.backend import tf
from dropnet_tf.core.caching import PerModelCache, tf_variables
from dropnet_tf.core.objective import as_batch, logits, preserved_state
from dropnet_tf.foresight.scorers.base import WeightScorer
from dropnet_tf.core.selection import as_generator

HESSIAN_MODES = ("auto", "exact", "hutchinson")
_ROW_BUDGET = 1 << 26


def second_order_cross_entropy(model, x, y, temperature: float = 1.0, training: bool = True, from_logits=None):
    """Mean cross-entropy of integer labels at logits / ``temperature``, twice differentiable.

    Same value as :func:`dropnet_tf.core.objective.cross_entropy`, but written as
    ``−log_softmax`` gathered at the label and kept in float64 when the model computes in
    float64: finite-difference checks of second derivatives need that precision, which a
    cast to float32 would throw away.
    """
    z = logits(model, x, training=training, from_logits=from_logits)
    dtype = tf.float64 if z.dtype == tf.float64 else tf.float32
    z = tf.cast(z, dtype) / tf.cast(temperature, dtype)
    y = tf.cast(tf.reshape(y, [-1]), tf.int32)
    log_p = tf.nn.log_softmax(z, axis=-1)
    return -tf.reduce_mean(tf.gather(log_p, y, axis=1, batch_dims=1))


def _common_dtype(variables):
    return tf.float64 if any(v.dtype == tf.float64 for v in variables) else tf.float32


def build_hessian_rows(model, variables, temperature: float = 1.0, from_logits=None):
    """A traced ``f(x, y, rows) -> Σ_i rows_i ⊙ (H rows_i)`` over the flattened ``variables``.

    ``rows`` is a (c, n) block of directions; H is the Hessian of the batch cross-entropy
    with respect to ``variables``.  All c Hessian-vector products come from one forward
    and one backward pass: the Jacobian of ``rows · ∇L`` (back-over-back), vectorised.
    """
    variables = tf_variables(variables)
    dtype = _common_dtype(variables)

    @tf.function(reduce_retracing=True)
    def hessian_rows(x, y, rows):
        with tf.GradientTape() as outer:
            outer.watch(variables)
            with tf.GradientTape() as inner:
                inner.watch(variables)
                loss = second_order_cross_entropy(model, x, y, temperature, training=True, from_logits=from_logits)
            grads = inner.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            flat = tf.concat([tf.reshape(tf.cast(g, dtype), [-1]) for g in grads], axis=0)
            projected = tf.linalg.matvec(rows, flat)
        blocks = outer.jacobian(
            projected, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO, experimental_use_pfor=True
        )
        count = tf.shape(rows)[0]
        products = tf.concat([tf.reshape(tf.cast(b, dtype), [count, -1]) for b in blocks], axis=1)
        return tf.reduce_sum(rows * products, axis=0)

    return hessian_rows


def _split(flat: np.ndarray, weights) -> dict:
    out, start = {}, 0
    for w in weights:
        out[w.name] = flat[start : start + w.size].reshape(w.shape)
        start += w.size
    return out


class OBDScorer(WeightScorer):
    """OBD saliency s_k = h_kk · θ_k² / 2 (thesis eq. 3.1) on the given batch.

    Args:
        hessian: ``"exact"`` (one Hessian-vector product per weight; refused above
            ``exact_limit`` prunable weights), ``"hutchinson"`` (``probes`` Rademacher
            probes) or ``"auto"`` (exact up to ``exact_limit``, Hutchinson above).
        probes: Hutchinson probes.
        exact_limit: the most prunable weights the exact diagonal is computed for.
        chunk_size: Hessian-vector products per vectorised pass; memory grows with it
            (each product holds its own copy of the backward pass' activations).  pfor
            has no vectorised rule for the second derivative of a convolution's filter
            gradient and loops over the chunk there (TF logs "Conv2DBackpropFilter uses a
            while_loop"); the result is the same, and still faster than one pass per
            product in our measurements.

    The model runs in training mode (BatchNorm on batch statistics, as in the papers'
    code) and its BatchNorm statistics are restored afterwards.  The saliency is used as
    eq. 3.1 writes it, sign included: at initialisation some h_kk are negative, and those
    weights (whose deletion the quadratic model says *lowers* the loss) are pruned first.
    Pruned weights are zero, so their saliency is zero.
    """

    name = "obd"
    needs_data = True

    def __init__(self, hessian: str = "auto", probes: int = 64, exact_limit: int = 4096, chunk_size: int = 64):
        if hessian not in HESSIAN_MODES:
            raise ValueError(f"hessian must be one of {HESSIAN_MODES}, got {hessian!r}.")
        for label, value in (("probes", probes), ("exact_limit", exact_limit), ("chunk_size", chunk_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}.")
        self.hessian = hessian
        self.probes = int(probes)
        self.exact_limit = int(exact_limit)
        self.chunk_size = int(chunk_size)
        self._cache = PerModelCache()

    def __repr__(self) -> str:
        return f"OBDScorer(hessian={self.hessian!r}, probes={self.probes}, exact_limit={self.exact_limit})"

    def resolve_mode(self, n: int) -> str:
        """The Hessian mode used for ``n`` prunable weights."""
        if self.hessian == "auto":
            return "exact" if n <= self.exact_limit else "hutchinson"
        if self.hessian == "exact" and n > self.exact_limit:
            raise ValueError(
                f"The exact Hessian diagonal needs one Hessian-vector product per weight; the model has "
                f"{n} prunable weights, more than exact_limit={self.exact_limit}. Use hessian='hutchinson' "
                f"or raise exact_limit."
            )
        return self.hessian

    def hessian_diagonal(self, model, weights, data, rng=None, mode: str | None = None) -> dict:
        """``{weight.name: diag(H) entries with the weight's shape}`` as float64 arrays."""
        x, y = as_batch(data, "OBD data")
        variables = [w.variable for w in weights]
        n = sum(w.size for w in weights)
        mode = self.resolve_mode(n) if mode is None else mode
        if mode not in ("exact", "hutchinson"):
            raise ValueError(f"mode must be 'exact' or 'hutchinson', got {mode!r}.")
        dtype = _common_dtype(variables)
        key = ("rows", tuple(w.name for w in weights))
        rows_fn = self._cache.get(model, key, lambda: build_hessian_rows(model, variables))
        x = tf.convert_to_tensor(x)
        y = tf.convert_to_tensor(y)
        # The (chunk, n) block of directions is materialised: cap it at _ROW_BUDGET entries.
        chunk = max(1, min(self.chunk_size, n if mode == "exact" else self.probes, _ROW_BUDGET // n))
        total = np.zeros(n, np.float64)
        with preserved_state(model):
            if mode == "exact":
                for start in range(0, n, chunk):
                    # The last block is padded with zero rows (no retrace); they add nothing.
                    rows = np.zeros((chunk, n), dtype.as_numpy_dtype)
                    index = np.arange(start, min(start + chunk, n))
                    rows[np.arange(index.size), index] = 1.0
                    total += rows_fn(x, y, tf.constant(rows)).numpy()
            else:
                rng = as_generator(rng)
                for start in range(0, self.probes, chunk):
                    rows = (2 * rng.integers(0, 2, size=(chunk, n), dtype=np.int8) - 1).astype(dtype.as_numpy_dtype)
                    rows[min(chunk, self.probes - start) :] = 0.0
                    total += rows_fn(x, y, tf.constant(rows)).numpy()
                total /= self.probes
        return _split(total, weights)

    def score(self, model, weights, data=None, rng=None):
        diagonal = self.hessian_diagonal(model, weights, data, rng)
        return {w.name: diagonal[w.name] * np.square(w.variable.numpy().astype(np.float64)) / 2.0 for w in weights}


__all__ = [
    "OBDScorer",
    "second_order_cross_entropy",
    "build_hessian_rows",
    "PerModelCache",
    "HESSIAN_MODES",
    "tf_variables",
]
