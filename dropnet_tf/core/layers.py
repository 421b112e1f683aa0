"""Keras layers of dropnet_tf."""

from __future__ import annotations

import numpy as np

from dropnet_tf.core.backend import keras, register_serializable, tf


@register_serializable(package="dropnet_tf")
class MaskLayer(keras.layers.Layer):
    """Multiply the input by a binary, non-trainable mask over its last axis.

    DropNet (Tan & Motani, ICML 2020, Section 2) trains ``f(x; m ⊙ n)``: a mask
    ``m ∈ {0, 1}^{|n|}`` over the nodes of a Dense layer or the filters of a Conv2D layer.
    Placed on the post-activation output, a unit whose mask entry is 0 is exactly zero for
    every downstream layer and receives no gradient, which is the same as removing it.

    The mask is stored as a non-trainable weight named ``mask``, so it is saved with
    ``model.save("x.keras")`` and restored by ``keras.models.load_model``.  It broadcasts
    over every axis but the last, so the same layer serves Dense (batch, units) and Conv2D
    (batch, height, width, filters) outputs.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        # While the greedy oracle scores candidates, a (batch, units) tensor of per-sample
        # masks replaces the stored mask; see dropnet_tf.dropnet.oracle.  Never serialised.
        self._per_sample_mask = None

    def build(self, input_shape):
        units = input_shape[-1]
        if units is None:
            raise ValueError(
                f"MaskLayer '{self.name}' needs a known size on the last axis, got input shape "
                f"{tuple(input_shape)}."
            )
        self.mask = self.add_weight(
            name="mask",
            shape=(int(units),),
            initializer="ones",
            trainable=False,
            dtype="float32",
        )
        super().build(input_shape)

    @property
    def units(self) -> int:
        """Number of nodes or filters the mask covers."""
        return int(self.mask.shape[0])

    def call(self, inputs):
        if self._per_sample_mask is not None:
            mask = tf.cast(self._per_sample_mask, inputs.dtype)
            # (batch, units) -> (batch, 1, ..., 1, units) to broadcast over spatial axes.
            extra_axes = len(inputs.shape) - 2
            mask = tf.reshape(mask, tf.concat([tf.shape(mask)[:1], [1] * extra_axes, tf.shape(mask)[1:]], 0))
            return inputs * mask
        return inputs * tf.cast(self.mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_mask(self) -> np.ndarray:
        """The current mask as a float32 numpy array of 0s and 1s."""
        return np.asarray(self.mask.numpy(), dtype=np.float32)

    def validated_mask(self, mask) -> np.ndarray:
        """``mask`` as float32, after checking its shape ``(units,)`` and that it is binary."""
        array = np.asarray(mask, dtype=np.float32)
        if array.shape != (self.units,):
            raise ValueError(
                f"Mask for layer '{self.name}' must have shape ({self.units},), got {array.shape}."
            )
        if not np.all((array == 0.0) | (array == 1.0)):
            bad = np.unique(array[(array != 0.0) & (array != 1.0)])[:5]
            raise ValueError(
                f"Mask for layer '{self.name}' must contain only 0 and 1, found values {bad.tolist()}."
            )
        return array

    def set_mask(self, mask) -> None:
        """Assign a new mask in place (no retracing of compiled train functions)."""
        self.mask.assign(self.validated_mask(mask))

    def get_config(self):
        return super().get_config()


def mask_outputs(layer, model=None) -> list:
    """Every output tensor of ``layer`` in ``model``: one per call of a shared MaskLayer.

    A group's mask is one layer called at each of the group's exits; its statistics are
    summed over all of them (``layer.output`` is only the first call's).  Calls made in
    other models (a masked model called on new inputs inside a bigger one) are left out.
    """
    nodes = list(getattr(layer, "_inbound_nodes", None) or [])
    own = getattr(model, "_nodes", None)
    if own is not None and len(nodes) > 1:
        # Keras 3 keys a functional model's nodes as "<id(operation)>_ib-<node index>".
        nodes = [node for index, node in enumerate(nodes) if f"{id(layer)}_ib-{index}" in own] or nodes[:1]
    if len(nodes) <= 1:
        return [layer.output]
    outputs = []
    for node in nodes:
        tensors = getattr(node, "outputs", None)
        if tensors is None:  # tf-keras
            tensors = node.output_tensors
        outputs.append(keras.tree.flatten(tensors)[0] if hasattr(keras, "tree") else list(tensors)[0])
    return outputs
