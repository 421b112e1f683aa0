"""The greedy oracle of DropNet Section 5, with every candidate scored in batched passes.

"The oracle ... greedily drops a node/filter out of all remaining node/filters available at
every iteration of Algorithm 1 such that the overall training loss is minimized"
(Tan & Motani, ICML 2020, Section 5).  The score of an active unit is the mean training loss
of the trained network with that one unit removed; the lowest score is dropped.

The naive way, as in the authors' notebook, rebuilds the model and evaluates the training
set once per candidate.  Here K candidates share one forward pass: the input batch is tiled
K times and each MaskLayer multiplies copy k by candidate k's mask (a per-sample mask).
That is exact because nothing in the network mixes samples at inference time (BatchNorm
uses its moving statistics).
"""

from __future__ import annotations

import numpy as np

from dropnet_tf.core.backend import tf
from dropnet_tf.core.masking import require_mask_layers
from dropnet_tf.core.scoring import UnitScorer, register_scorer
from dropnet_tf.engines.loop import per_sample_loss


def _candidates(layers):
    """(layer index, unit index) of every active unit, in layer order."""
    pairs = []
    for index, layer in enumerate(layers):
        for unit in np.flatnonzero(layer.get_mask() > 0):
            pairs.append((index, int(unit)))
    return pairs


def oracle_scores(
    model,
    x,
    y,
    loss="sparse_categorical_crossentropy",
    batch_size: int = 256,
    max_rows: int = 16384,
) -> dict[str, np.ndarray]:
    """Mean training loss with each active unit removed; inactive units score +inf.

    (:class:`OracleScorer`, the registry's ``"oracle"``, scores the increase of that loss
    over the current network's, which ranks the units the same way.)

    Args:
        model: a trained model with MaskLayers (its current masks are the starting point).
        x, y: the data the loss is measured on (the paper: the training set).
        loss: a Keras loss name, function or Loss object.
        batch_size: samples per pass; each pass evaluates up to ``max_rows // batch_size``
            candidates at once.
        max_rows: cap on (candidates × samples) rows in one forward pass (memory).
    """
    return _mean_losses(model, x, y, loss, batch_size, max_rows)[0]


def _mean_losses(model, x, y, loss, batch_size, max_rows, with_base=False):
    """``(oracle_scores, the current network's mean loss or None)``."""
    layers = require_mask_layers(model)
    base_masks = [layer.get_mask() for layer in layers]
    candidates = _candidates(layers)
    scores = {layer.name: np.full(layer.units, np.inf) for layer in layers}
    if not candidates and not with_base:
        return scores, None
    loss_per_sample = per_sample_loss(loss)
    x = np.asarray(x)
    y = np.asarray(y)
    batch_size = int(min(batch_size, len(x)))
    per_pass = max(1, max_rows // batch_size)

    # Shapes left open so one trace serves every chunk and the ragged last batch.
    signature = [
        tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)),
        tf.TensorSpec((None, *y.shape[1:]), tf.as_dtype(y.dtype)),
        [tf.TensorSpec((None, layer.units), tf.float32) for layer in layers],
    ]

    @tf.function(input_signature=signature)
    def summed_losses(x_batch, y_batch, candidate_masks):
        count = tf.shape(candidate_masks[0])[0]
        rows = tf.shape(x_batch)[0]
        tiled_x = tf.tile(x_batch, tf.concat([[count], tf.ones(tf.rank(x_batch) - 1, tf.int32)], 0))
        tiled_y = tf.tile(y_batch, tf.concat([[count], tf.ones(tf.rank(y_batch) - 1, tf.int32)], 0))
        for layer, masks in zip(layers, candidate_masks):
            layer._per_sample_mask = tf.repeat(masks, rows, axis=0)
        try:
            predictions = model(tiled_x, training=False)
        finally:
            for layer in layers:
                layer._per_sample_mask = None
        values = tf.reshape(tf.cast(loss_per_sample(tiled_y, predictions), tf.float64), (count, rows))
        return tf.reduce_sum(values, axis=1)

    totals = np.zeros(len(candidates))
    for start in range(0, len(candidates), per_pass):
        chunk = candidates[start : start + per_pass]
        candidate_masks = []
        for index, base in enumerate(base_masks):
            block = np.tile(base, (len(chunk), 1))
            for row, (layer_index, unit) in enumerate(chunk):
                if layer_index == index:
                    block[row, unit] = 0.0
            candidate_masks.append(tf.constant(block, tf.float32))
        for begin in range(0, len(x), batch_size):
            totals[start : start + len(chunk)] += summed_losses(
                tf.constant(x[begin : begin + batch_size]), tf.constant(y[begin : begin + batch_size]), candidate_masks
            ).numpy()
    for (layer_index, unit), total in zip(candidates, totals):
        scores[layers[layer_index].name][unit] = total / len(x)
    base = None
    if with_base:
        # The current network's loss: one more "candidate" that removes nothing, in a pass
        # of its own so that the candidates' passes are exactly those of oracle_scores.
        base_total = 0.0
        unchanged = [tf.constant(mask[None, :], tf.float32) for mask in base_masks]
        for begin in range(0, len(x), batch_size):
            base_total += summed_losses(
                tf.constant(x[begin : begin + batch_size]), tf.constant(y[begin : begin + batch_size]), unchanged
            ).numpy()[0]
        base = base_total / len(x)
    return scores, base


def oracle_scores_naive(model, x, y, batch_size: int = 256) -> dict[str, np.ndarray]:
    """The same scores, one ``model.evaluate`` per candidate (the baseline of bench/).

    The model must be compiled with the loss to measure.
    """
    layers = require_mask_layers(model)
    scores = {layer.name: np.full(layer.units, np.inf) for layer in layers}
    for layer_index, unit in _candidates(layers):
        layer = layers[layer_index]
        original = layer.get_mask()
        trial = original.copy()
        trial[unit] = 0.0
        layer.set_mask(trial)
        try:
            result = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
        finally:
            layer.set_mask(original)
        scores[layer.name][unit] = result["loss"]
    return scores


class OracleScorer(UnitScorer):
    """The greedy oracle of DropNet Section 5 as a scorer: the increase of the mean loss on
    ``data`` when the unit alone is removed, so the unit whose removal costs least is
    dropped first.  Inactive units score +inf.  It drops one unit per step unless told
    otherwise (``default_count = 1``), as in the paper.

    Args:
        loss: the loss to measure; None (default) takes the model's compiled loss, or
            sparse categorical cross-entropy when the model is not compiled.
        max_rows: cap on (candidates × samples) rows in one forward pass (memory).
    """

    name = "oracle"
    needs_data = True
    default_count = 1

    def __init__(self, name=None, scope=None, *, loss=None, max_rows: int = 16384):
        super().__init__(name, scope)
        self.loss = loss
        self.max_rows = max_rows

    def score(self, model, data=None, *, batch_size: int = 256):
        if data is None:
            raise ValueError(f"The scorer {self.name!r} needs data: pass data=(x, y), the training set.")
        x, y = data
        loss = self.loss
        if loss is None:
            loss = getattr(model, "loss", None) or "sparse_categorical_crossentropy"
        scores, base = _mean_losses(model, x, y, loss, batch_size, self.max_rows, with_base=True)
        return {name: value - base for name, value in scores.items()}


register_scorer(OracleScorer())


def mask_similarity(masks_a, masks_b) -> float:
    """Fraction of mask entries on which two mask dicts agree (the notebooks' measure)."""
    agree = total = 0
    for name in masks_a:
        a = np.asarray(masks_a[name]) > 0
        b = np.asarray(masks_b[name]) > 0
        agree += int(np.sum(a == b))
        total += a.size
    return agree / total
