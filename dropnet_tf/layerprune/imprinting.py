"""Block importance by weight imprinting, LayerPrune's own layer criterion.

LayerPrune (Elkerdawy et al., ACCV 2020, Section 3.2) ranks blocks by how much accuracy each
adds: after every block a linear classifier is *imprinted* (Qi, Brown & Lowe, "Low-Shot
Learning with Imprinted Weights", CVPR 2018, Section 3) instead of trained, and a block's
importance is the accuracy of the classifier after it minus the accuracy after the block
before it.  The supplement (Section 1.1) computes it in one pass over the training set.

Imprinting, as implemented here, for the feature map ``F`` after a block:

* embedding ``e(x) = g(x) / ||g(x)||``, ``g(x)`` the global average pooling of ``F(x)``
  (per channel mean over the spatial axes);
* class weight ``w_c = m_c / ||m_c||``, ``m_c`` the mean of the embeddings of the examples of
  class ``c`` in the imprinting set;
* prediction ``argmax_c <e(x), w_c>`` (cosine similarity).

An all-zero vector stays zero when normalised (its cosine with every class is 0).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.layerprune.blocks import Block, find_blocks

_EPS = 1e-12


def _as_blocks(model, blocks) -> list[Block]:
    if isinstance(blocks, (str, Block)):
        blocks = [blocks]
    blocks = list(blocks)
    if not blocks:
        raise ValueError("blocks is empty: give at least one Block (see find_blocks).")
    known = None
    result = []
    for item in blocks:
        if isinstance(item, Block):
            result.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"blocks must hold Block objects or block names, got {item!r}.")
        if known is None:
            known = {block.name: block for block in find_blocks(model)}
        if item not in known:
            raise ValueError(f"Unknown block {item!r}; the model's blocks are {list(known)}.")
        result.append(known[item])
    layer_names = {layer.name for layer in model.layers}
    for block in result:
        for name in (block.input_layer, block.output_layer):
            if name not in layer_names:
                raise ValueError(f"Block '{block.name}' refers to layer '{name}', which is not in model '{model.name}'.")
    return result


def _labels(y, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = np.argmax(y, axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{what} must hold one integer label (or one one-hot row) per example: expected {n} labels, "
            f"got an array of shape {np.asarray(y).shape}."
        )
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"{what} must hold integer class labels, got values such as {y[:5].tolist()}.")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{what} holds a negative class label ({int(y.min())}); labels must be 0..num_classes-1.")
    return y


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def embedding_model(model, layer_names: Sequence[str]):
    """A model with one output per layer name: that layer's output, globally average-pooled.

    Part of LayerPrune's imprinting criterion (Elkerdawy et al., ACCV 2020, Section 3.2):
    the pooling is inside the graph, so ``predict`` returns ``(batch, channels)`` vectors and
    never whole feature maps.  Rank-4 outputs get a GlobalAveragePooling2D, rank-3 a
    GlobalAveragePooling1D, rank-2 outputs are used as they are.
    """
    outputs = []
    for index, name in enumerate(layer_names):
        tensor = model.get_layer(name).output
        rank = len(tensor.shape)
        if rank == 4:
            tensor = keras.layers.GlobalAveragePooling2D(name=f"imprint_gap_{index}")(tensor)
        elif rank == 3:
            tensor = keras.layers.GlobalAveragePooling1D(name=f"imprint_gap_{index}")(tensor)
        elif rank != 2:
            raise ValueError(f"Layer '{name}' has an output of rank {rank}; imprinting needs rank 2, 3 or 4.")
        outputs.append(tensor)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # Keras 3 warns on [x] vs x
    return keras.Model(inputs, outputs, name=f"{model.name}_imprinting")


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, _EPS)


def _embed(embedder, x, batch_size: int) -> list[np.ndarray]:
    outputs = embedder.predict(x, batch_size=batch_size, verbose=0)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [_normalise(np.asarray(out, dtype=np.float64)) for out in outputs]


def imprinted_weights(embeddings: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, dim)`` imprinted class weights (Qi et al., CVPR 2018, Section 3.1).

    ``embeddings`` are L2-normalised; each class weight is the L2-normalised mean of its
    class's embeddings.  A class without examples gets a row of NaN (never predicted).
    """
    sums = np.zeros((num_classes, embeddings.shape[1]))
    np.add.at(sums, y, embeddings)
    counts = np.bincount(y, minlength=num_classes)
    weights = _normalise(sums / np.maximum(counts, 1)[:, None])
    weights[counts == 0] = np.nan
    return weights


def _accuracy(embeddings: np.ndarray, weights: np.ndarray, y: np.ndarray) -> float:
    scores = embeddings @ np.nan_to_num(weights, nan=0.0).T
    scores[:, np.isnan(weights[:, 0])] = -np.inf  # classes absent from the imprinting set
    return float(np.mean(np.argmax(scores, axis=1) == y))


def _check_inputs(x, y, x_eval, y_eval, batch_size, num_classes):
    batch_size = _check_batch_size(batch_size)
    if (x_eval is None) != (y_eval is None):
        raise ValueError("Give both x_eval and y_eval, or neither (then (x, y) is used for both).")
    n = len(x)
    if n == 0:
        raise ValueError("x is empty: imprinting needs at least one example per class.")
    y = _labels(y, n, "y")
    y_eval_arr = None if y_eval is None else _labels(y_eval, len(x_eval), "y_eval")
    largest = int(max(y.max(), -1 if y_eval_arr is None or not y_eval_arr.size else y_eval_arr.max()))
    if num_classes is None:
        num_classes = largest + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    elif largest >= num_classes:
        raise ValueError(f"Labels go up to {largest} but num_classes is {num_classes}.")
    return y, y_eval_arr, batch_size, int(num_classes)


def imprinting_accuracy_at(
    model,
    layer_names: Sequence[str],
    x,
    y,
    *,
    x_eval=None,
    y_eval=None,
    batch_size: int = 256,
    num_classes: int | None = None,
) -> dict[str, float]:
    """``{layer name: accuracy of a classifier imprinted on that layer's pooled output}``.

    The measurement behind LayerPrune's imprinting criterion (Elkerdawy et al., ACCV 2020,
    Section 3.2; Qi et al., CVPR 2018, Section 3), see the module docstring; arguments as in
    :func:`imprinting_accuracies`.  One ``predict`` pass per data set for all layers.
    """
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    layer_names = list(dict.fromkeys(layer_names))
    if not layer_names:
        raise ValueError("layer_names is empty: give at least one layer to imprint on.")
    known = {layer.name for layer in model.layers}
    unknown = [name for name in layer_names if name not in known]
    if unknown:
        raise ValueError(f"Layers {unknown} are not in model '{model.name}'.")
    y, y_eval_arr, batch_size, num_classes = _check_inputs(x, y, x_eval, y_eval, batch_size, num_classes)
    embedder = embedding_model(model, layer_names)
    train = dict(zip(layer_names, _embed(embedder, x, batch_size)))
    if x_eval is None:
        evaluation, y_eval_arr = train, y
    else:
        evaluation = dict(zip(layer_names, _embed(embedder, x_eval, batch_size)))
    result = {}
    for name in layer_names:
        weights = imprinted_weights(train[name], y, num_classes)
        result[name] = _accuracy(evaluation[name], weights, y_eval_arr)
    return result


def imprinting_accuracies(
    model,
    blocks,
    x,
    y,
    *,
    x_eval=None,
    y_eval=None,
    batch_size: int = 256,
    num_classes: int | None = None,
) -> np.ndarray:
    """Accuracy of an imprinted classifier before the first block and after every block.

    LayerPrune's imprinting criterion (Elkerdawy et al., ACCV 2020, Section 3.2; Qi et al.,
    CVPR 2018): see the module docstring for the classifier.  The class weights come from
    ``(x, y)``; the accuracy is measured on ``(x_eval, y_eval)`` (default: ``(x, y)`` again,
    the paper's one pass over the training set).  All embeddings come from one
    ``Model.predict`` of a multi-output model with the pooling inside the graph
    (:func:`embedding_model`), in inference mode (BatchNorm uses its moving statistics).

    Args:
        model: a built functional model.
        blocks: :class:`~dropnet_tf.layerprune.blocks.Block` objects (or block names of
            :func:`~dropnet_tf.layerprune.blocks.find_blocks`) in network order.
        x, y: imprinting examples (a numpy array or anything ``predict`` takes with a
            ``len``) and their integer (or one-hot) labels.
        x_eval, y_eval: evaluation examples and labels (both or neither).
        batch_size: batch size of ``predict``.
        num_classes: number of classes; default ``max label + 1``.  Classes without
            imprinting examples are never predicted.

    Returns:
        float array of ``len(blocks) + 1`` accuracies: index 0 is the classifier on the first
        block's *input* (the baseline), index ``i`` the one after ``blocks[i - 1]``.
    """
    blocks = _as_blocks(model, blocks)
    points = [blocks[0].input_layer] + [block.output_layer for block in blocks]
    found = imprinting_accuracy_at(
        model, points, x, y, x_eval=x_eval, y_eval=y_eval, batch_size=batch_size, num_classes=num_classes
    )
    return np.asarray([found[name] for name in points], dtype=np.float64)


def imprinting_importance(model, blocks, x, y, **kwargs) -> dict[str, float]:
    """``{block name: accuracy gained by the block}``, LayerPrune's imprinting importance.

    Elkerdawy et al. (ACCV 2020, Section 3.2): the importance of a block is the imprinting
    accuracy on its output minus the imprinting accuracy on its input, i.e. for consecutive
    blocks the difference of neighbouring entries of :func:`imprinting_accuracies`, whose
    keyword arguments (``x_eval``, ``y_eval``, ``batch_size``, ``num_classes``) are accepted.
    Lower means less important; a block can have a negative importance.
    """
    blocks = _as_blocks(model, blocks)
    points = []
    for block in blocks:
        points += [block.input_layer, block.output_layer]
    found = imprinting_accuracy_at(model, points, x, y, **kwargs)
    return {block.name: float(found[block.output_layer] - found[block.input_layer]) for block in blocks}


__all__ = [
    "embedding_model",
    "imprinted_weights",
    "imprinting_accuracies",
    "imprinting_accuracy_at",
    "imprinting_importance",
]
