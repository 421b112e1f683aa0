"""Parameter and FLOP counters for Keras models, dense or masked.

FLOPs here are **multiply-accumulates** (MACs): one multiply and one add of a weight with an
input value count as one.  Only the layers that hold nearly all of a CNN's arithmetic are
counted; everything else (biases, activations, BatchNormalization, pooling, MaskLayer
multiplications, additions) is ignored:

==========================  =====================================================================
layer                       MACs per example
==========================  =====================================================================
Dense                       ``positions * in_features * units``  (``positions`` is 1 for a
                            ``(batch, features)`` input, ``T`` for ``(batch, T, features)``)
Conv1D / Conv2D / Conv3D    ``output positions * kh * kw * (C_in / groups) * C_out``, e.g.
                            ``H_out * W_out * kh * kw * C_in/groups * C_out`` for Conv2D
DepthwiseConv1D / 2D        ``output positions * kh * kw * C_in * depth_multiplier``
SeparableConv1D / 2D        the depthwise part above plus the pointwise ``1x1`` convolution
Conv1D/2D/3DTranspose       ``input positions * kh * kw * C_in * C_out``
==========================  =====================================================================

The shapes come from the layers' symbolic ``layer.input.shape`` / ``layer.output.shape``,
which every Sequential or functional model built on a known input shape has (Keras 3 and
tf-keras alike).  Each layer is counted once, at its first call.  Spatial sizes must be
known: an ``Input(shape=(None, None, 3))`` model raises a ValueError.

Masked models
-------------
:func:`count_flops` / :func:`count_parameters` with ``effective=False`` count a masked model
as the dense model it is computed as (a mask changes no shape).  With ``effective=True`` they
count what the masks leave: every masked node or filter removed from its layer **and** the
input rows/channels that carried it removed from the layers downstream (a masked conv filter
also removes ``kh * kw * C_out`` MACs per output position of the next convolution; a masked
filter in front of a ``Flatten`` removes ``H * W`` input rows of the Dense).  This is
implemented as counting ``dropnet_tf.compaction.compact(model)``, the physically smaller plain
model with the same outputs, so the count is exactly the cost of the model one would deploy.
"""

from __future__ import annotations

import math

from dropnet_tf.core.backend import keras
from dropnet_tf.core.masking import mask_layers

_layers = keras.layers


def _optional(name: str):
    """The keras.layers class ``name``, or a class nothing is an instance of."""
    return getattr(_layers, name, type(f"_Missing{name}", (), {}))


# Order matters: in tf-keras DepthwiseConv2D, SeparableConv2D and Conv2DTranspose subclass
# Conv2D, so the specialised classes are checked first.
_TRANSPOSED = tuple(_optional(n) for n in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"))
_SEPARABLE = tuple(_optional(n) for n in ("SeparableConv1D", "SeparableConv2D"))
_DEPTHWISE = tuple(_optional(n) for n in ("DepthwiseConv1D", "DepthwiseConv2D"))
_CONV = tuple(_optional(n) for n in ("Conv1D", "Conv2D", "Conv3D"))
_DENSE = (_layers.Dense,)


# ------------------------------------------------------------------------------ helpers


def _check_model(model, what: str) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what} expects a keras.Model, got {type(model).__name__}.")
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built, so its layers have no shapes yet; give it a "
            "keras.Input (or call model.build(input_shape)) before counting."
        )


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return batch_size


def _as_tuple(shape) -> tuple:
    if hasattr(shape, "as_list"):  # tf.TensorShape
        shape = shape.as_list()
    return tuple(None if d is None else int(d) for d in shape)


def _tensor_shape(layer, attribute: str) -> tuple:
    """``layer.input.shape`` or ``layer.output.shape`` as a tuple, with a clear error."""
    try:
        tensor = getattr(layer, attribute)
    except (AttributeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"Cannot read the {attribute} shape of layer '{layer.name}' ({type(layer).__name__}): "
            f"{error}  Counting needs a Sequential or functional model built on a known input "
            "shape; a subclassed model's layers have no symbolic inputs."
        ) from error
    if isinstance(tensor, (list, tuple)):
        if len(tensor) != 1:
            raise ValueError(f"Layer '{layer.name}' has {len(tensor)} {attribute}s; expected one.")
        tensor = tensor[0]
    return _as_tuple(tensor.shape)


def _known(shape: tuple, layer, attribute: str) -> tuple:
    """The non-batch part of ``shape``; every entry must be known."""
    rest = shape[1:]
    if any(d is None for d in rest):
        raise ValueError(
            f"Layer '{layer.name}' has {attribute} shape {shape} with an unknown non-batch size; "
            "FLOPs depend on it, so build the model on a fixed input shape (e.g. keras.Input((32, 32, 3)))."
        )
    return rest


def _kernel_size(variable) -> int:
    return int(math.prod(_as_tuple(variable.shape)))


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") != "channels_first"


def _positions(layer, attribute: str) -> int:
    """Spatial positions (every non-batch, non-channel element) of the layer's input/output."""
    shape = _known(_tensor_shape(layer, attribute), layer, attribute)
    spatial = shape[:-1] if _channels_last(layer) else shape[1:]
    return int(math.prod(spatial))


def _depthwise_kernel(layer):
    kernel = getattr(layer, "depthwise_kernel", None)  # tf-keras; Keras 3 calls it ``kernel``
    return kernel if kernel is not None else layer.kernel


def _layer_macs(layer) -> int | None:
    """MACs per example of one layer, or None for layers that are not counted."""
    if isinstance(layer, _TRANSPOSED):
        # Every input position is scattered through the whole (k..., C_out, C_in) kernel.
        return _positions(layer, "input") * _kernel_size(layer.kernel)
    if isinstance(layer, _SEPARABLE):
        positions = _positions(layer, "output")
        return positions * (_kernel_size(layer.depthwise_kernel) + _kernel_size(layer.pointwise_kernel))
    if isinstance(layer, _DEPTHWISE):
        return _positions(layer, "output") * _kernel_size(_depthwise_kernel(layer))
    if isinstance(layer, _CONV):
        # The kernel is (k..., C_in / groups, C_out): its size is the MACs of one position.
        return _positions(layer, "output") * _kernel_size(layer.kernel)
    if isinstance(layer, _DENSE):
        shape = _known(_tensor_shape(layer, "input"), layer, "input")
        return int(math.prod(shape)) * int(layer.units)
    return None


def _walk(model, prefix: str = ""):
    """Yield ``(qualified name, layer)`` for every layer, descending into nested models."""
    for layer in model.layers:
        name = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from _walk(layer, f"{name}/")
        else:
            yield name, layer


# ------------------------------------------------------------------------------ public API


def layer_flops(model, batch_size: int = 1) -> dict[str, int]:
    """MACs of every counted layer, ``{layer name: MACs for batch_size examples}``.

    Only Dense and convolution layers appear (see the module docstring for the formulas);
    the layers of a nested model are named ``"<nested model>/<layer>"``.  A MaskLayer changes
    no shape, so a masked model gives the dense model's numbers here.
    """
    _check_model(model, "layer_flops")
    batch_size = _check_batch_size(batch_size)
    counts: dict[str, int] = {}
    for name, layer in _walk(model):
        macs = _layer_macs(layer)
        if macs is not None:
            counts[name] = int(macs) * batch_size
    return counts


def count_flops(model, batch_size: int = 1, *, effective: bool = False) -> int:
    """Multiply-accumulates of one forward pass over ``batch_size`` examples.

    The sum over Dense and convolution layers of :func:`layer_flops`.

    Args:
        model: a built Sequential or functional Keras model (a ValueError names the problem
            otherwise: unbuilt model, unknown spatial size, subclassed model).
        batch_size: examples per forward pass; the count is linear in it.
        effective: for a model with MaskLayers, count only what the masks leave: masked units
            removed from their layer and the matching input rows/channels removed from every
            consumer downstream.  Computed as ``count_flops(compact(model))``.  A model
            without MaskLayers is counted as it is.  With False (the default) a masked model
            is counted as dense.
    """
    _check_model(model, "count_flops")
    batch_size = _check_batch_size(batch_size)
    if effective and mask_layers(model):
        from dropnet_tf.compaction.compact import compact  # compaction builds on the core

        return count_flops(compact(model), batch_size)
    return int(sum(layer_flops(model, batch_size).values()))


def count_parameters(model, trainable_only: bool = False, *, effective: bool = False) -> int:
    """Number of scalar parameters of ``model``.

    Every weight variable counts once (shared ones too), including non-trainable state such
    as BatchNormalization's moving mean and variance unless ``trainable_only`` is True —
    **except MaskLayer masks**: a mask is bookkeeping of the pruning method, not a parameter
    of the network, so it is never counted (``model.count_params()`` would count it).  Hence a
    masked model has exactly the parameter count of the same model built without masks.

    Args:
        model: a built Keras model.
        trainable_only: count only trainable weights.
        effective: for a model with MaskLayers, count the parameters the masks leave, i.e.
            ``count_parameters(compact(model), trainable_only)``: a masked unit's weights,
            bias, BatchNormalization entries and the downstream weights that read it are gone.
    """
    _check_model(model, "count_parameters")
    masks = mask_layers(model)
    if effective and masks:
        from dropnet_tf.compaction.compact import compact  # compaction builds on the core

        return count_parameters(compact(model), trainable_only)
    excluded = {id(layer.mask) for layer in masks if getattr(layer, "mask", None) is not None}
    variables = model.trainable_weights if trainable_only else model.weights
    seen: set[int] = set()
    total = 0
    for variable in variables:
        key = id(variable)
        if key in seen or key in excluded:
            continue
        seen.add(key)
        total += _kernel_size(variable)
    return int(total)


__all__ = ["count_flops", "count_parameters", "layer_flops"]
