"""Per-unit activation statistics, reduced in-graph batch by batch on top of ``Model.predict``.

DropNet (Tan & Motani, ICML 2020, Section 2) scores a node by its expected absolute
post-activation value over the t training samples,

    E(a_i) = (1/t) Σ_j |V(a_i | x_j)|,

and a filter by the average of that over its r constituent positions,

    E(f_i) = (1/r) Σ_k E(a_k)  =  (1/(t·r)) Σ_j Σ_k |V(a_k | x_j)|.

APoZ (Hu et al. 2016; DropNet supplement Section 4) is the fraction of a unit's outputs that
are exactly zero, over all samples and positions.

Both are sums over samples, so they are accumulated into float64 variables inside the
``predict_step`` and never need all activations at once: peak memory is one batch of
activations, whatever the number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.distribute import model_strategy
from dropnet_tf.core.distribute import scope as distribute_scope
from dropnet_tf.core.masking import require_mask_layers
from dropnet_tf.core.validation import check_inputs, check_int


@dataclass(frozen=True)
class UnitStatistics:
    """Per-unit statistics of every mask layer, keyed by mask-layer name.

    Attributes:
        mean_abs: E(a_i) for Dense nodes, E(f_i) for Conv2D filters (DropNet Section 2).
        apoz: fraction of zero outputs over all samples and positions (Hu et al. 2016).
        num_samples: t, the number of samples the statistics were computed on.
    """

    mean_abs: dict
    apoz: dict
    num_samples: int

    @property
    def layer_names(self) -> list[str]:
        return list(self.mean_abs)


def unit_sums(activation):
    """One batch of a mask layer's output reduced to per-unit sums, all float64.

    Returns ``(Σ|a|, number of exact zeros, values per unit)``: the sums over the batch's
    samples and (for a filter) positions from which E(a_i) / E(f_i) (DropNet Section 2) and
    APoZ (Hu et al. 2016) are divided out once all batches are in.  Sums and counts, not
    means, so that batches of any size (and several passes) add up exactly.
    """
    axes = list(range(len(activation.shape) - 1))
    activation = tf.cast(activation, tf.float32)
    values = tf.cast(tf.reduce_prod(tf.shape(activation)[:-1]), tf.float64)
    abs_sum = tf.cast(tf.reduce_sum(tf.abs(activation), axis=axes), tf.float64)
    zeros = tf.cast(tf.reduce_sum(tf.cast(tf.equal(activation, 0.0), tf.float32), axis=axes), tf.float64)
    return abs_sum, zeros, values


def statistics_from_sums(layer_names, abs_sums, zero_counts, value_counts, num_samples: int) -> UnitStatistics:
    """:class:`UnitStatistics` from the sums of :func:`unit_sums` accumulated over all samples."""
    if num_samples == 0:
        raise ValueError("collect_statistics got no samples.")
    mean_abs, apoz = {}, {}
    for name, abs_sum, zero_count, value_count in zip(layer_names, abs_sums, zero_counts, value_counts):
        count = float(value_count)
        mean_abs[name] = np.asarray(abs_sum, np.float64) / count
        apoz[name] = np.asarray(zero_count, np.float64) / count
    return UnitStatistics(mean_abs=mean_abs, apoz=apoz, num_samples=int(num_samples))


class _ReducingModel(keras.Model):
    """Runs the feature model and adds per-unit sums into accumulators, batch by batch."""

    def __init__(self, feature_model, distributed: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.feature_model = feature_model
        outputs = feature_model.outputs
        # Plain tf.Variables: internal state, never saved and never trained.  Under a
        # tf.distribute strategy (built in its scope) each replica adds into its own copy
        # and reading one sums the copies of every replica and worker: sums and counts are
        # reduced, never means of means.
        options = {"trainable": False}
        if distributed:
            options.update(synchronization=tf.VariableSynchronization.ON_READ, aggregation=tf.VariableAggregation.SUM)
        self.abs_sums = [tf.Variable(tf.zeros(t.shape[-1], tf.float64), **options) for t in outputs]
        self.zero_counts = [tf.Variable(tf.zeros(t.shape[-1], tf.float64), **options) for t in outputs]
        # Values per unit seen so far (samples × positions): counted per batch, because a
        # convolutional model may take inputs whose spatial size is only known at run time.
        self.value_counts = [tf.Variable(tf.zeros((), tf.float64), **options) for _ in outputs]

    def reset(self):
        for variable in self.abs_sums + self.zero_counts + self.value_counts:
            variable.assign(tf.zeros_like(variable))

    def call(self, inputs, training=False):
        return self.feature_model(inputs, training=training)

    def predict_step(self, data):
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        activations = self.feature_model(inputs, training=False)
        if not isinstance(activations, (list, tuple)):
            activations = [activations]
        for activation, abs_sum, zero_count, value_count in zip(
            activations, self.abs_sums, self.zero_counts, self.value_counts
        ):
            batch_abs, batch_zeros, batch_values = unit_sums(activation)
            value_count.assign_add(batch_values)
            abs_sum.assign_add(batch_abs)
            zero_count.assign_add(batch_zeros)
        # One number per batch (its size): the only thing predict concatenates.
        first = tf.nest.flatten(inputs)[0]
        return tf.reshape(tf.shape(first)[0], (1,))


class StatisticsCollector:
    """Reusable collector for one masked model.

    Building the reducing model and tracing its predict function costs about a second;
    the iterative loop builds one collector and calls :meth:`collect` once per cycle.

    A model built in a ``tf.distribute`` strategy's scope is read under that strategy:
    ``predict`` splits the batches over its replicas (and workers), and the per-unit sums
    and counts of all of them are added before dividing (:mod:`dropnet_tf.core.distribute`).
    """

    def __init__(self, model):
        from dropnet_tf.core.layers import mask_outputs  # the calls of a shared (group) mask

        layers = require_mask_layers(model)
        self._model = model
        self.layer_names = [layer.name for layer in layers]
        # A dependency group's mask is called at several places: its sums add over all of them.
        places = [mask_outputs(layer, model) for layer in layers]
        self._segments = [len(tensors) for tensors in places]
        strategy = model_strategy(model)
        with distribute_scope(strategy):
            feature_model = keras.Model(model.inputs, [t for tensors in places for t in tensors])
            self._reducer = _ReducingModel(feature_model, distributed=strategy is not None)

    def collect(self, x, batch_size: int = 256) -> UnitStatistics:
        """Statistics over all of ``x``: an array, or a ``tf.data.Dataset`` of x or (x, y).

        A dataset is used as it is batched; ``batch_size`` applies to arrays only.
        """
        batch_size = check_int("batch_size", batch_size, 1)
        if not isinstance(x, tf.data.Dataset):
            check_inputs(x, "collect_statistics", self._model)
        self._reducer.reset()
        if isinstance(x, tf.data.Dataset):
            sizes = self._reducer.predict(x, verbose=0)
        else:
            sizes = self._reducer.predict(x, batch_size=int(batch_size), verbose=0)
        return statistics_from_sums(
            self.layer_names, sums_by_mask([v.numpy() for v in self._reducer.abs_sums], self._segments),
            sums_by_mask([v.numpy() for v in self._reducer.zero_counts], self._segments),
            sums_by_mask([float(v.numpy()) for v in self._reducer.value_counts], self._segments), int(np.sum(sizes)),
        )


def sums_by_mask(sums: list, segments: list[int]) -> list:
    """Per-tensor sums added up per mask layer (``segments``: how many tensors each has)."""
    out, start = [], 0
    for count in segments:
        out.append(sum(sums[start:start + count]))
        start += count
    return out


def collect_statistics(model, x, batch_size: int = 256) -> UnitStatistics:
    """E(a_i) / E(f_i) and APoZ of every mask layer's units over all of ``x``.

    DropNet (ICML 2020) Section 2, expected absolute value of a node / filter; APoZ as in
    Hu et al. (2016).  Statistics are computed in inference mode on the masked
    (post-activation, post-mask) outputs, so pruned units have E = 0 and APoZ = 1.

    Args:
        model: a model with MaskLayers.
        x: inputs as an array (or structure of arrays), or a tf.data.Dataset yielding
            batches of x or (x, y[, sample_weight]).
        batch_size: batch size for arrays.
    """
    return StatisticsCollector(model).collect(x, batch_size=batch_size)
