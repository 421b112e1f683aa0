"""Iterative Synaptic Flow Pruning (Tanaka et al. 2020; thesis Section 3.6, eqs. 3.7-3.8).

SynFlow scores without data.  Every parameter is replaced by its absolute value and an
all-ones input is fed forward; the sum of the outputs is the synaptic flow::

    R_SF = 1ᵀ (Π_l |θ^[l]|) 1                                        (thesis eq. 3.7)
    S_SF = ∂R/∂θ ⊙ θ                                                 (thesis eq. 3.8)

For a bias-free ReLU network each layer's scores sum to R (the conservation law of the
SynFlow paper), so no layer can be emptied while another still holds weights that carry
less flow; iterating the score → prune loop (100 rounds, exponential schedule, see
:func:`dropnet_tf.foresight.prune.prune_at_init`) keeps that balance as weights go.

R is a product of L layers of absolute weights and overflows float32 in deep networks,
so by default the model is cloned into a float64 twin (once per model, reused across the
rounds) that receives |θ| before every round; the original model is never modified.
"""

from __future__ import annotations

import warnings

import numpy as np

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.objective import outputs_are_probabilities
from dropnet_tf.foresight.scorers.base import WeightScorer
from dropnet_tf.core.caching import PerModelCache, tf_variables

DTYPES = ("float64", "float32")


def _is_float(value) -> bool:
    # Keras 3 reports dtypes as strings, tf-keras as tf.DType.
    return tf.as_dtype(value.dtype).is_floating


def _is_graph_model(model) -> bool:
    if isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False):
        return True
    return type(model).__name__ == "Functional"


def _is_softmax(layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _output_layer_names(model) -> set:
    names = set()
    for tensor in getattr(model, "outputs", None) or []:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            names.add(history[0].name)
    if not names and getattr(model, "layers", None):
        names.add(model.layers[-1].name)
    return names


class _Identity(keras.layers.Layer):
    """Stands in for a ``Softmax`` layer; accepts the ``mask`` argument Softmax receives."""

    def call(self, inputs, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def linear_twin(model, dtype: str = "float64"):
    """A clone of a Sequential / functional ``model`` computing in ``dtype``, with the
    softmax of its output layer(s) removed (weights are *not* copied).

    The softmax goes because the outputs of a softmax sum to one whatever the weights:
    R would be constant and every score zero.  Nested models are cloned the same way.
    """
    outputs = _output_layer_names(model)

    def clone(layer):
        if isinstance(layer, keras.Model):
            return linear_twin(layer, dtype)
        config = layer.get_config()
        config["dtype"] = dtype
        if layer.name in outputs and _is_softmax(layer):
            if isinstance(layer, keras.layers.Softmax):
                return _Identity(name=layer.name, dtype=dtype)
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _ones_inputs(model, input_shape, dtype):
    if input_shape is not None:
        shapes = [tuple(input_shape)]
        dtypes = [dtype]
    else:
        inputs = getattr(model, "inputs", None)
        if not inputs:
            raise ValueError(
                f"SynFlow feeds an all-ones input of the model's input shape, and {type(model).__name__!r} "
                f"does not declare one; pass SynFlowScorer(input_shape=(...)) without the batch dimension."
            )
        shapes = [tuple(int(d) for d in t.shape[1:]) for t in inputs]
        # Integer inputs (token ids) stay integer; float inputs take the computation dtype.
        dtypes = [dtype if _is_float(t) else t.dtype for t in inputs]
    ones = [tf.ones((1,) + shape, dtype=d) for shape, d in zip(shapes, dtypes)]
    return ones[0] if len(ones) == 1 else ones


def _float_pairs(source, target):
    """(source variable, twin variable) for every float weight, matched in order."""
    pairs = []
    src = [v for v in source.weights if _is_float(v)]
    dst = [v for v in target.weights if _is_float(v)]
    if len(src) != len(dst):
        raise RuntimeError(f"The twin has {len(dst)} float weights, the model {len(src)}.")
    for a, b in zip(src, dst):
        if tuple(a.shape) != tuple(b.shape):
            raise RuntimeError(
                f"Twin weight {b.name} has shape {tuple(b.shape)}, the model's {a.name} {tuple(a.shape)}."
            )
        pairs.append((a, b))
    return pairs


def _build_twin_scorer(model, weights, dtype, input_shape):
    twin = linear_twin(model, dtype)
    pairs = _float_pairs(model, twin)
    position = {id(a): i for i, (a, _) in enumerate(pairs)}
    missing = [w.name for w in weights if id(w.variable) not in position]
    if missing:
        raise RuntimeError(f"Prunable weights {missing} are not weights of the model.")
    sources = tf_variables([a for a, _ in pairs])
    targets = tf_variables([b for _, b in pairs])
    scored = [targets[position[id(w.variable)]] for w in weights]
    ones = _ones_inputs(twin, input_shape, dtype)

    @tf.function
    def synflow_scores():
        # |θ| for every float weight: kernels, biases, BatchNorm γ/β and its statistics
        # (the reference code takes abs of the whole state dict); masks are 0/1 already.
        for source, target in zip(sources, targets):
            target.assign(tf.cast(tf.abs(source), target.dtype))
        with tf.GradientTape() as tape:
            tape.watch(scored)
            flow = tf.reduce_sum(tf.cast(twin(ones, training=False), dtype))
        grads = tape.gradient(flow, scored, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return flow, [tf.abs(tf.cast(g, dtype) * tf.cast(v, dtype)) for g, v in zip(grads, scored)]

    return synflow_scores


def _build_inplace_scorer(model, weights, input_shape):
    variables = tf_variables([v for v in model.weights if _is_float(v)])
    scored = tf_variables([w.variable for w in weights])
    ones = _ones_inputs(model, input_shape, "float32")

    @tf.function
    def flow_gradient():
        with tf.GradientTape() as tape:
            tape.watch(scored)
            flow = tf.reduce_sum(tf.cast(model(ones, training=False), tf.float32))
        grads = tape.gradient(flow, scored, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return flow, [tf.abs(g * v) for g, v in zip(grads, scored)]

    def synflow_scores():
        signed = [v.numpy() for v in variables]
        try:
            for v, value in zip(variables, signed):
                v.assign(np.abs(value))
            return flow_gradient()
        finally:
            # Restore the signed values whatever happened.
            for v, value in zip(variables, signed):
                v.assign(value)

    return synflow_scores


class SynFlowScorer(WeightScorer):
    """SynFlow (thesis eqs. 3.7-3.8): |∂R/∂θ ⊙ θ| at |θ| with an all-ones input.

    Args:
        dtype: precision of the twin that computes R (``"float64"``; ``"float32"`` only to
            show or accept the overflow risk).
        input_shape: the input shape without the batch dimension, for models that do not
            declare one (subclassed models).

    Choices the paper leaves open, made here as in its reference code:

    * every float weight becomes |θ|: kernels, biases, BatchNorm γ, β *and* its moving
      statistics (at initialisation mean 0 and variance 1, which abs leaves as they are);
    * BatchNorm and Dropout run in inference mode (``training=False``), so BatchNorm uses
      its moving statistics rather than the statistics of a single all-ones example;
    * a softmax on an output layer is removed (R would be the constant batch size);
    * the score is returned as an absolute value, in float64 (it can exceed float32).

    Subclassed models cannot be cloned: they are scored in place in float32 (the signed
    weights are restored afterwards, also on error) and a ValueError names the problem if
    R overflows there or the model ends in a softmax.
    """

    name = "synflow"
    needs_data = False
    default_iterations = 100

    def __init__(self, dtype: str = "float64", input_shape=None):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
        self.dtype = dtype
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self._cache = PerModelCache()
        #: R of the last call (the synaptic flow), for inspection.
        self.last_flow: float | None = None

    def __repr__(self) -> str:
        return f"SynFlowScorer(dtype={self.dtype!r})"

    def _scorer_for(self, model, weights):
        """``(traced scorer, the dtype it computes in)``."""
        key = (self.dtype, self.input_shape, tuple(w.name for w in weights))
        if _is_graph_model(model):

            def build_twin():
                return _build_twin_scorer(model, weights, self.dtype, self.input_shape)

            return self._cache.get(model, key, build_twin), self.dtype
        if outputs_are_probabilities(model):
            raise ValueError(
                f"SynFlow needs the model's logits, but the subclassed model {type(model).__name__!r} ends in a "
                f"softmax that cannot be removed from outside; score a copy without the softmax."
            )
        if self.dtype != "float32":
            warnings.warn(
                f"SynFlow cannot clone the subclassed model {type(model).__name__!r} into float64; "
                f"scoring it in place in float32, which overflows in very deep networks.",
                RuntimeWarning,
                stacklevel=3,
            )

        def build_inplace():
            return _build_inplace_scorer(model, weights, self.input_shape)

        return self._cache.get(model, ("inplace",) + key, build_inplace), "float32"

    def score(self, model, weights, data=None, rng=None):
        scorer, dtype = self._scorer_for(model, weights)
        flow, scores = scorer()
        self.last_flow = float(flow.numpy())
        result = {w.name: np.asarray(s.numpy(), np.float64) for w, s in zip(weights, scores)}
        if not np.isfinite(self.last_flow) or not all(np.all(np.isfinite(s)) for s in result.values()):
            raise ValueError(
                f"The synaptic flow overflowed in {dtype} (R = {self.last_flow}); the network is too deep "
                f"or its weights too large" + (" for float32: use dtype='float64'." if dtype == "float32" else ".")
            )
        return result


__all__ = ["SynFlowScorer", "linear_twin", "DTYPES"]
