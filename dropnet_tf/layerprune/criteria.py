"""Filter-pruning criteria of LayerPrune's comparison, as structured (per-unit) scores.

LayerPrune (Elkerdawy et al., ACCV 2020) compares removing whole layers with removing
filters chosen by the usual filter criteria; its supplement (Section 1.1, Table 1) names
them weight norm, Taylor, feature maps, batch-norm scale and geometric median.  Each
criterion here is one small :class:`dropnet_tf.core.scoring.UnitScorer` (``FilterCriterion`` is
its old name) whose only job is ``score``, registered in the one scorer registry:

=====================  =======================================================  ==========
name                   score of filter / node c of a masked layer               needs data
=====================  =======================================================  ==========
``l1_norm``            Σ |W[..., c]|  (Li et al. 2017)                          no
``l2_norm``            ‖W[..., c]‖₂   (the L2 variant)                          no
``taylor``             mean over mini-batches of (∂L/∂m_c)²  (Molchanov 2019)   yes
``feature_maps``       E_n |mean_spatial(a·∂L_n/∂a)|, ℓ2-normalised per layer   yes
                       (Molchanov et al. 2017)
``mean_activation``    E |a_c|: an alias of DropNet's ``minimum`` scorer        yes
``bn_scale``           |γ_c| of the BatchNormalization after the layer          no
                       (network slimming, Liu et al. 2017)
``geometric_median``   Σ_j ‖F_c − F_j‖₂ over the layer's active filters (FPGM)  no
=====================  =======================================================  ==========

Conventions, shared with :mod:`dropnet_tf.core.selection`: scores are keyed by MaskLayer name,
one float64 array of shape ``(units,)`` each, and **lower scores are pruned first**.  Scores
of units that are already masked do not matter to the selection (only active units are
candidates) but are always finite.

The weight criteria read the kernel of the Dense / Conv2D that produced a mask's units
(:func:`dropnet_tf.core.graph.mask_sources`); ``W[..., c]`` is the kernel slice of unit c (the
whole k×k×C_in filter of a Conv2D, the incoming weights of a Dense node); biases are not
part of it.  The data criteria use the softmax cross-entropy of integer labels on the
model's output (log of the probabilities when the model ends in a softmax, as in
:mod:`dropnet_tf.core.objective`) and run the model in **inference mode**: BatchNorm
uses its moving statistics and nothing about the model changes while it is scored, and
samples do not interact, which the per-sample gradients of ``feature_maps`` rely on.
Their gradient passes are traced once per model (``tf.function`` with the batch axis left
open) and reused for every mini-batch and every later call.
"""

from __future__ import annotations

import weakref

import numpy as np

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.caching import PerModelCache, tf_variables
from dropnet_tf.core.objective import as_batch, outputs_are_probabilities
from dropnet_tf.core.graph import mask_sources
from dropnet_tf.core.masking import require_mask_layers
from dropnet_tf.core.statistic_scorers import MinimumActivation
from dropnet_tf.core.scoring import DEFAULT_BATCH_SIZE, UNIT_SCORERS, UnitScorer, check_batch_size, get_scorer, register_scorer


# --------------------------------------------------------------------------- helpers


# One traced gradient pass per model, shared with the foresight scorers' cache.
_CACHE = PerModelCache()


def _labelled_data(data, criterion: str):
    """``data`` as ``(x, y)``: x an array, y int32 labels of shape (n,)."""
    if data is None:
        raise ValueError(
            f"The filter criterion {criterion!r} needs data: pass data=(x, y) with inputs and integer labels."
        )
    x, y = as_batch(data, f"data for the filter criterion {criterion!r}")
    return x, y.astype(np.int32)


def _batches(x, y, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield tf.constant(x[start : start + batch_size]), tf.constant(y[start : start + batch_size])


def _signature(x):
    return [
        tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)),
        tf.TensorSpec((None,), tf.int32),
    ]


def _single_output(outputs):
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != 1:
            raise ValueError(f"The data criteria need a model with one output, got {len(outputs)}.")
        outputs = outputs[0]
    return outputs


def _per_sample_losses(outputs, y, from_probabilities: bool):
    """Softmax cross-entropy of each sample; probabilities are turned into log-probabilities."""
    outputs = tf.cast(outputs, tf.float32)
    z = tf.math.log(tf.maximum(outputs, 1e-30)) if from_probabilities else outputs
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z)


def _producer_kernels(model) -> dict[str, np.ndarray]:
    """``{mask name: kernel of its producer as (fan-in, units) float64}``; column c is W[..., c]."""
    layers = require_mask_layers(model)
    sources = mask_sources(model)
    kernels = {}
    for layer in layers:
        producer, _ = sources[layer.name]
        kernel = np.asarray(producer.kernel.numpy(), np.float64)
        if kernel.shape[-1] != layer.units:
            raise ValueError(
                f"MaskLayer '{layer.name}' covers {layer.units} units but its producer '{producer.name}' "
                f"has {kernel.shape[-1]}."
            )
        kernels[layer.name] = kernel.reshape(-1, kernel.shape[-1])
    return kernels


#: The old name of the scorer base class: ``score(model, data=None, *, batch_size)``.
FilterCriterion = UnitScorer


# --------------------------------------------------------------------------- weight criteria


class L1NormCriterion(FilterCriterion):
    """Li et al., "Pruning filters for efficient ConvNets" (ICLR 2017), Section 3.1.

    s_c = Σ |K_c|, the sum of absolute kernel weights of filter c (for a Dense node, of its
    incoming weights); the filters with the smallest sums are pruned first.
    """

    name = "l1_norm"

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        return {name: np.abs(kernel).sum(axis=0) for name, kernel in _producer_kernels(model).items()}


class L2NormCriterion(FilterCriterion):
    """The L2 variant of Li et al. (ICLR 2017, Section 3.1): s_c = ‖K_c‖₂."""

    name = "l2_norm"

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        return {name: np.sqrt(np.square(kernel).sum(axis=0)) for name, kernel in _producer_kernels(model).items()}


class BatchNormScaleCriterion(FilterCriterion):
    """Network slimming (Liu et al., "Learning efficient convolutional networks through
    network slimming", ICCV 2017, Section 3, eq. 1): s_c = |γ_c|, the scaling factor of channel
    c in the BatchNormalization that follows the convolution.

    The BatchNormalization must lie between the mask's producer and the mask (if several
    do, the one nearest the producer is read).
    """

    name = "bn_scale"

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        layers = require_mask_layers(model)
        sources = mask_sources(model)
        scores = {}
        for layer in layers:
            producer, between = sources[layer.name]
            norms = [b for b in between if isinstance(b, keras.layers.BatchNormalization)]
            if not norms:
                raise ValueError(
                    f"The filter criterion 'bn_scale' needs a BatchNormalization between a layer and its mask; "
                    f"MaskLayer '{layer.name}' (after '{producer.name}') has none."
                )
            gamma = getattr(norms[0], "gamma", None)
            if gamma is None:
                raise ValueError(
                    f"The filter criterion 'bn_scale' reads the BatchNormalization scale γ, but "
                    f"'{norms[0].name}' before MaskLayer '{layer.name}' was built with scale=False."
                )
            gamma = np.asarray(gamma.numpy(), np.float64).reshape(-1)
            if gamma.shape != (layer.units,):
                raise ValueError(
                    f"BatchNormalization '{norms[0].name}' has {gamma.size} scales but MaskLayer "
                    f"'{layer.name}' covers {layer.units} units; bn_scale needs it on the channel axis."
                )
            scores[layer.name] = np.abs(gamma)
        return scores


class GeometricMedianCriterion(FilterCriterion):
    """FPGM (He et al., "Filter pruning via geometric median for deep convolutional neural
    networks acceleration", CVPR 2019, Section 3.4): within a layer,

        s_i = Σ_j ‖F_i − F_j‖₂,  j over the layer's active filters,

    the sum of Euclidean distances from filter i (its flattened kernel slice) to the other
    filters.  The filters nearest the geometric median of the layer (smallest sum) are the
    most replaceable and are pruned first.  Only active filters (mask 1) enter the sums,
    so the score changes as filters are removed (iterative pruning re-scores).

    The scores are distances within one layer; FPGM prunes layer by layer, which
    ``scope="layer"`` reproduces.
    """

    name = "geometric_median"

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        kernels = _producer_kernels(model)
        masks = {layer.name: layer.get_mask() for layer in require_mask_layers(model)}
        scores = {}
        for name, kernel in kernels.items():
            filters = kernel.T  # (units, fan-in)
            squared = np.square(filters).sum(axis=1)
            gram = filters @ filters.T
            distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * gram, 0.0))
            np.fill_diagonal(distances, 0.0)
            active = masks[name] > 0
            scores[name] = distances[:, active].sum(axis=1)
        return scores


# --------------------------------------------------------------------------- data criteria


class TaylorCriterion(FilterCriterion):
    """Molchanov et al., "Importance estimation for neural network pruning" (CVPR 2019),
    Section 3, the first-order Taylor importance of a group S of weights (a filter),
    I_S = (Σ_{s∈S} g_s w_s)², which the paper computes with a gate after each filter:

        I_c = (∂L/∂m_c)²,

    where m_c is a gate multiplying the output of filter c; here the MaskLayer's mask is
    the gate, and the derivative is taken at the current mask.  L is the mean
    cross-entropy of one mini-batch; I_c is averaged over the mini-batches of ``data``
    (each mini-batch counts once, as the paper averages its per-mini-batch estimates).
    """

    name = "taylor"
    needs_data = True

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        x, y = _labelled_data(data, self.name)
        batch_size = check_batch_size(batch_size)
        layers = require_mask_layers(model)
        key = ("taylor", x.shape[1:], x.dtype.str)
        gate_gradients = _CACHE.get(model, key, lambda: _build_gate_gradients(model, layers, x))
        totals = [np.zeros(layer.units, np.float64) for layer in layers]
        batches = 0
        for x_batch, y_batch in _batches(x, y, batch_size):
            for total, gradient in zip(totals, gate_gradients(x_batch, y_batch)):
                total += np.square(gradient.numpy().astype(np.float64))
            batches += 1
        return {layer.name: total / batches for layer, total in zip(layers, totals)}


def _build_gate_gradients(model, layers, x):
    """A traced ``f(x, y) -> [∂L/∂m for every mask]`` of the mean loss of the batch."""
    model_ref = weakref.ref(model)
    masks = tf_variables([layer.mask for layer in layers])
    probabilities = outputs_are_probabilities(model)

    @tf.function(input_signature=_signature(x))
    def gate_gradients(x_batch, y_batch):
        with tf.GradientTape() as tape:
            tape.watch(masks)
            outputs = _single_output(model_ref()(x_batch, training=False))
            loss = tf.reduce_mean(_per_sample_losses(outputs, y_batch, probabilities))
        return tape.gradient(loss, masks, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return gate_gradients


class FeatureMapCriterion(FilterCriterion):
    """Molchanov et al., "Pruning convolutional neural networks for resource efficient
    inference" (ICLR 2017), Section 2.2, eqs. 7-8: the first-order Taylor estimate of the
    loss change when feature map c is removed, for one sample

        Θ_n(c) = | (1/M) Σ_m a_{n,m,c} · ∂L_n/∂a_{n,m,c} |,

    M the spatial positions of the map (one for a Dense node), averaged over the samples of
    ``data``, followed by the paper's layer-wise ℓ2 normalisation Θ(c) / ‖Θ(layer)‖₂.

    a is the MaskLayer's output (the post-activation map downstream layers read).  The
    per-sample gradients come from one backward pass of the *sum* of per-sample losses:
    in inference mode sample n's loss depends only on sample n's activations.  A layer
    whose every score is 0 keeps zeros.
    """

    name = "feature_maps"
    needs_data = True

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        x, y = _labelled_data(data, self.name)
        batch_size = check_batch_size(batch_size)
        layers = require_mask_layers(model)
        key = ("feature_maps", x.shape[1:], x.dtype.str)
        batch_sums = _CACHE.get(model, key, lambda: _build_feature_map_sums(model, layers, x))
        totals = [np.zeros(layer.units, np.float64) for layer in layers]
        for x_batch, y_batch in _batches(x, y, batch_size):
            for total, value in zip(totals, batch_sums(x_batch, y_batch)):
                total += value.numpy()
        scores = {}
        for layer, total in zip(layers, totals):
            mean = total / len(x)
            norm = float(np.sqrt(np.square(mean).sum()))
            scores[layer.name] = mean / norm if norm > 0.0 else mean
        return scores


def _build_feature_map_sums(model, layers, x):
    """A traced ``f(x, y) -> [Σ_n |mean_spatial(a_n · ∂L_n/∂a_n)| for every mask]``."""
    outputs = model.outputs
    if outputs is None:
        raise TypeError(f"The filter criterion 'feature_maps' needs a functional or Sequential model; '{model.name}' has no graph.")
    output = _single_output(list(outputs))
    feature_model = keras.Model(model.inputs, [layer.output for layer in layers] + [output])
    masks = tf_variables([layer.mask for layer in layers])
    probabilities = outputs_are_probabilities(model)
    count = len(layers)

    @tf.function(input_signature=_signature(x))
    def batch_sums(x_batch, y_batch):
        with tf.GradientTape() as tape:
            # Watching the masks records every op downstream of each feature map.
            tape.watch(masks)
            values = feature_model(x_batch, training=False)
            maps, predictions = values[:count], values[count]
            loss = tf.reduce_sum(_per_sample_losses(predictions, y_batch, probabilities))
        gradients = tape.gradient(loss, maps, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        sums = []
        for a, g in zip(maps, gradients):
            product = tf.cast(a, tf.float64) * tf.cast(g, tf.float64)
            spatial = list(range(1, len(product.shape) - 1))
            per_sample = tf.reduce_mean(product, axis=spatial) if spatial else product
            sums.append(tf.reduce_sum(tf.abs(per_sample), axis=0))
        return sums

    return batch_sums


#: The activation criterion E|a_c| is DropNet's ``minimum`` scorer (one implementation);
#: ``mean_activation`` is its registry alias.
MeanActivationCriterion = MinimumActivation


# --------------------------------------------------------------------------- registry


for _criterion in (
    L1NormCriterion(),
    L2NormCriterion(),
    TaylorCriterion(),
    FeatureMapCriterion(),
    BatchNormScaleCriterion(),
    GeometricMedianCriterion(),
):
    register_scorer(_criterion)
register_scorer(get_scorer("minimum"), "mean_activation")

#: LayerPrune's filter criteria, a view of the scorer registry.
FILTER_CRITERIA: dict[str, UnitScorer] = {
    name: UNIT_SCORERS[name]
    for name in ("l1_norm", "l2_norm", "taylor", "feature_maps", "mean_activation", "bn_scale", "geometric_median")
}


def get_filter_criterion(criterion) -> UnitScorer:
    """A criterion by name (see ``FILTER_CRITERIA``; any registered scorer name resolves),
    or a scorer instance passed through."""
    return get_scorer(criterion, kind="filter criterion", allowed=sorted(FILTER_CRITERIA))


__all__ = [
    "FilterCriterion",
    "L1NormCriterion",
    "L2NormCriterion",
    "TaylorCriterion",
    "FeatureMapCriterion",
    "MeanActivationCriterion",
    "BatchNormScaleCriterion",
    "GeometricMedianCriterion",
    "FILTER_CRITERIA",
    "get_filter_criterion",
    "DEFAULT_BATCH_SIZE",
]
