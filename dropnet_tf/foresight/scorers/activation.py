"""Activation-based pruning (thesis Section 2.2.3, eq. 2.3): s(θ) = |θ · a|.

``a`` is the batch-averaged output of the activation that follows the layer holding θ,
one value per output unit of that layer, normalised per layer, and broadcast over the
weight tensor along its output-unit axis:

* Dense kernel (in, out): a has one value per output unit (averaged over the batch and,
  for inputs with a time axis, over time too);
* Conv kernel (*spatial, cin, cout): one value per output channel, averaged over the batch
  and every spatial position;
* DepthwiseConv2D kernel (kh, kw, cin, multiplier): output channel c·multiplier + m goes to
  kernel[..., c, m];
* LSTM / GRU kernel (in, gates·units) and recurrent kernel (units, gates·units): the
  layer's output h (averaged over batch and, with ``return_sequences``, time) per unit,
  repeated over the gate blocks (i, f, c, o for LSTM; z, r, h for GRU), since every gate
  block's column k feeds unit k.  h is the activation these weights produce; the gates'
  internal sigmoids are not separately observable from the model graph;
* masked biases / BatchNorm parameters: the same per-unit value (tiled when the bias holds
  several gate blocks).

"The activation following the layer" is the layer's own output when it applies a
nonlinearity (``Dense(..., activation="relu")``); when the layer is linear and its only
consumer is an activation layer (``ReLU``, ``Activation``, ``LeakyReLU``, ``ELU``,
``PReLU``, ``Softmax``), possibly after BatchNormalization / Dropout layers, that
activation's output is used.  Otherwise the (linear) layer output itself.

Normalisation (the thesis says only "normalized"): ``"max"`` (default) divides a layer's
|a| by its largest entry, so every layer's most active unit has a = 1 and global selection
compares layers on one scale; ``"l2"`` divides by the L2 norm of a; ``None`` leaves it.
A layer whose activations are all zero keeps a = 0.
"""

from __future__ import annotations

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.core.objective import as_batch, preserved_state
from dropnet_tf.foresight.scorers.base import WeightScorer

NORMALIZATIONS = ("max", "l2", None)

_ACTIVATION_LAYERS = tuple(
    cls
    for cls in (
        keras.layers.Activation,
        keras.layers.ReLU,
        keras.layers.LeakyReLU,
        keras.layers.ELU,
        keras.layers.PReLU,
        keras.layers.Softmax,
        getattr(keras.layers, "ThresholdedReLU", None),
    )
    if cls is not None
)
# Layers an activation may sit behind without changing which unit is which.
_TRANSPARENT_LAYERS = tuple(
    cls
    for cls in (
        keras.layers.BatchNormalization,
        keras.layers.LayerNormalization,
        keras.layers.Dropout,
        getattr(keras.layers, "GaussianNoise", None),
        getattr(keras.layers, "GaussianDropout", None),
        getattr(keras.layers, "SpatialDropout1D", None),
        getattr(keras.layers, "SpatialDropout2D", None),
    )
    if cls is not None
)


def _is_linear(layer) -> bool:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return True
    return getattr(activation, "__name__", "") == "linear"


def _first_output(tensor):
    return tensor[0] if isinstance(tensor, (list, tuple)) else tensor


def _producer_names(layer) -> list[str]:
    try:
        inputs = layer.input
    except (AttributeError, ValueError, RuntimeError):  # unused or shared layer
        return []
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    names = []
    for tensor in inputs:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            names.append(history[0].name)
    return names


def _consumers(model, layer) -> list:
    return [other for other in model.layers if other is not layer and layer.name in _producer_names(other)]


def activation_layer(model, layer):
    """The layer whose output is "the activation following" ``layer`` (module docstring)."""
    if isinstance(layer, keras.layers.RNN) or not _is_linear(layer):
        return layer
    current = layer
    for _ in range(len(model.layers)):
        consumers = _consumers(model, current)
        if len(consumers) != 1:
            return layer
        (current,) = consumers
        if isinstance(current, _ACTIVATION_LAYERS):
            return current
        if not isinstance(current, _TRANSPARENT_LAYERS):
            return layer
    return layer


def _symbolic_output(model, layer):
    try:
        return _first_output(layer.output)
    except (AttributeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"The activation scorer reads the output of layer '{layer.name}', but it has no single symbolic "
            f"output ({error}). Use a Sequential or functional model in which each masked layer is called once."
        ) from error


def activation_model(model, layers):
    """A ``keras.Model`` from the model's inputs to the activation after each of ``layers``."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"The activation scorer needs a model with symbolic inputs and outputs (Sequential with an Input, or "
            f"functional); {type(model).__name__!r} has none. Build it with keras.Input, or call it on a symbolic input."
        )
    outputs = [_symbolic_output(model, activation_layer(model, layer)) for layer in layers]
    try:
        # A single input passed unwrapped, so that calling the probe on an array matches it.
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Cannot read the activations of {[layer.name for layer in layers]} from the model's inputs ({error}); "
            f"layers inside nested models are not supported, flatten the model first."
        ) from error


def _per_unit_mean(activations: np.ndarray, channels_first: bool) -> np.ndarray:
    values = np.asarray(activations, np.float64)
    if channels_first and values.ndim > 2:
        values = np.moveaxis(values, 1, -1)
    return values.reshape(-1, values.shape[-1]).mean(axis=0)


def normalise(a: np.ndarray, normalization: str | None) -> np.ndarray:
    """Per-layer normalisation of the batch-averaged activations (module docstring)."""
    if normalization is None:
        return a
    scale = np.max(np.abs(a)) if normalization == "max" else np.linalg.norm(a)
    return a / scale if scale > 0 else np.zeros_like(a)


def broadcast_over_outputs(a: np.ndarray, weight) -> np.ndarray:
    """Reshape per-unit activations ``a`` to broadcast against ``weight`` (output axis last)."""
    shape = weight.shape
    layer = weight.layer
    is_depthwise = "depthwise" in weight.weight_name or "Depthwise" in type(layer).__name__
    if is_depthwise and len(shape) >= 3 and weight.weight_name != "bias":
        if a.size != shape[-2] * shape[-1]:
            raise ValueError(f"'{weight.name}': {a.size} activations for depthwise kernel {shape}.")
        return a.reshape((1,) * (len(shape) - 2) + (shape[-2], shape[-1]))
    n_out = shape[-1]
    if n_out % a.size != 0:
        raise ValueError(
            f"'{weight.name}' has {n_out} output units but its layer's activation has {a.size}; "
            f"the activation scorer cannot match them."
        )
    # Recurrent layers stack one block of units per gate along the output axis.
    tiled = np.tile(a, n_out // a.size)
    return tiled.reshape((1,) * (len(shape) - 1) + (n_out,))


class ActivationScorer(WeightScorer):
    """s(θ) = |θ · a| (thesis eq. 2.3), a the normalised batch-averaged activation.

    Args:
        normalization: ``"max"`` (default), ``"l2"`` or None, per layer; see the module
            docstring.
        training: run the model in training mode (BatchNorm on batch statistics, the same
            mode the gradient scorer uses); non-trainable state is restored afterwards.
    """

    name = "activation"
    needs_data = True

    def __init__(self, normalization: str | None = "max", training: bool = True):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
        self.normalization = normalization
        self.training = bool(training)

    def __repr__(self) -> str:
        return f"ActivationScorer(normalization={self.normalization!r}, training={self.training})"

    def unit_activations(self, model, weights, data) -> dict[str, np.ndarray]:
        """``{layer name: normalised batch-averaged activation per output unit}``."""
        x, _ = as_batch(data, "the activation scorer's data")
        layers = []
        for weight in weights:
            if all(layer is not weight.layer for layer in layers):
                layers.append(weight.layer)
        probe = activation_model(model, layers)
        with preserved_state(model):
            outputs = probe(x, training=self.training)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        result = {}
        for layer, output in zip(layers, outputs):
            channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
            mean = _per_unit_mean(np.asarray(output), channels_first and not isinstance(layer, keras.layers.RNN))
            result[layer.name] = normalise(mean, self.normalization)
        return result

    def score(self, model, weights, data=None, rng=None):
        activations = self.unit_activations(model, weights, data)
        return {
            w.name: np.abs(w.variable.numpy().astype(np.float64) * broadcast_over_outputs(activations[w.layer.name], w))
            for w in weights
        }
