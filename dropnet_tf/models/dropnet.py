"""Model builders for the architectures of the DropNet paper (Tan & Motani, ICML 2020).

Every builder uses the Keras functional API, so a model is a graph of readably named layers,
and every builder has the same keyword arguments:

``input_shape``
    Shape of one example, without the batch axis.
``num_classes``
    Size of the softmax output layer, which is always ``Dense(num_classes, "softmax")``
    named ``"predictions"``.
``masked``
    When True (the default) a :class:`~dropnet_tf.core.layers.MaskLayer` is inserted exactly
    where the paper's figures write ``[Mask]``; it is named ``"<masked layer name>_mask"``.
    When False the same model is built without any mask layer (same trainable weights).
``seed``
    None gives Keras' default, unseeded initialisation (``glorot_uniform`` kernels, zero
    biases), as in the authors' code.  An integer makes the initial weights a deterministic
    function of ``seed``: every kernel gets its own ``GlorotUniform`` initializer whose seed
    is derived from ``(seed, index of the layer)`` (see :func:`derive_layer_seed`), so two
    builds with the same seed have identical weights, under Keras 3 and tf-keras alike,
    and different seeds give different weights.  Biases are zeros either way.
``name``
    Name of the returned :class:`keras.Model`.

The architectures follow the authors' original notebooks, which produced the paper's
figures, wherever those differ from the figure captions; each builder's docstring lists the
differences.  :data:`MODELS` maps names to builders and :func:`build_model` builds by name.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.models.builders import check_num_classes, check_seed, check_shape, derive_layer_seed, is_int

#: Convolutional blocks of VGG19 (Simonyan & Zisserman, 2014), as in the supplement's Fig. 1.
VGG19_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)


# --------------------------------------------------------------------------------------------
# Argument checking and seeding helpers
# --------------------------------------------------------------------------------------------


def _check_positive_int(value, what: str) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


def _check_widths(widths, what: str = "widths") -> tuple[int, ...]:
    is_sequence = isinstance(widths, (Sequence, np.ndarray)) and not isinstance(widths, (str, bytes))
    if not is_sequence:
        raise ValueError(f"{what} must be a non-empty sequence of positive integers, got {widths!r}.")
    widths = tuple(widths)
    if not widths:
        raise ValueError(f"{what} must be a non-empty sequence of positive integers, got {widths!r}.")
    for width in widths:
        if not is_int(width) or width < 1:
            raise ValueError(
                f"{what} must contain only positive integers, got {width!r} in {widths!r}."
            )
    return tuple(int(width) for width in widths)


def _check_input_shape(input_shape, *, image: bool, num_pools: int = 0) -> tuple[int, ...]:
    """Validate ``input_shape``; for images it is (height, width, channels) and must survive
    ``num_pools`` 2x2 max-poolings with at least one pixel left."""
    shape = check_shape(input_shape, rank=0, what="any shape")
    if image:
        if len(shape) != 3:
            raise ValueError(
                f"input_shape must be (height, width, channels) for a convolutional model, "
                f"got {input_shape!r}."
            )
        smallest = 2**num_pools
        if shape[0] < smallest or shape[1] < smallest:
            raise ValueError(
                f"input_shape {input_shape!r} is too small: the model has {num_pools} 2x2 "
                f"max-pooling layers, so height and width must be at least {smallest}."
            )
    return shape


class _Initializers:
    """Hands out one kernel initializer per weighted layer, in build order."""

    def __init__(self, seed: int | None):
        self.seed = seed
        self.index = 0

    def kernel(self):
        self.index += 1
        if self.seed is None:
            return "glorot_uniform"
        return keras.initializers.GlorotUniform(seed=derive_layer_seed(self.seed, self.index))


# --------------------------------------------------------------------------------------------
# Layer helpers
# --------------------------------------------------------------------------------------------


def _mask(x, layer_name: str, masked: bool):
    """``[Mask]`` after the layer called ``layer_name`` (no-op when ``masked`` is False)."""
    if masked:
        return MaskLayer(name=f"{layer_name}_mask")(x)
    return x


def _conv(x, filters: int, name: str, init: _Initializers):
    return keras.layers.Conv2D(
        filters,
        (3, 3),
        padding="same",
        activation="relu",
        kernel_initializer=init.kernel(),
        bias_initializer="zeros",
        name=name,
    )(x)


def _dense(x, units: int, name: str, init: _Initializers, activation: str = "relu"):
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=init.kernel(),
        bias_initializer="zeros",
        name=name,
    )(x)


def _pool(x, name: str):
    return keras.layers.MaxPooling2D((2, 2), name=name)(x)


def _predictions(x, num_classes: int, init: _Initializers):
    return _dense(x, num_classes, "predictions", init, activation="softmax")


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def model_a(
    widths: Sequence[int] = (40, 40),
    *,
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    masked: bool = True,
    seed: int | None = None,
    name: str = "model_a",
):
    """Model A of the paper's Fig. 2 (left): fully-connected hidden layers, e.g. FC40 - FC40.

    ``Input -> Flatten -> [Dense(w, relu) "dense_i" -> [Mask] "dense_i_mask"] for w in widths
    -> Dense(num_classes, softmax) "predictions"``.

    ``input_shape`` may be any shape (it is flattened), e.g. ``(28, 28, 1)`` for MNIST or
    ``(64,)`` for scikit-learn's 8x8 digits.
    """
    widths = _check_widths(widths)
    input_shape = _check_input_shape(input_shape, image=False)
    num_classes = check_num_classes(num_classes)
    init = _Initializers(check_seed(seed))

    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(widths, start=1):
        layer_name = f"dense_{i}"
        x = _dense(x, width, layer_name, init)
        x = _mask(x, layer_name, masked)
    outputs = _predictions(x, num_classes, init)
    return keras.Model(inputs, outputs, name=name)


def _conv_pool_stack(widths, input_shape, masked, init):
    """Models B and C: Conv2D(3x3, relu) -> [Mask] -> MaxPool per width, then Flatten."""
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for i, width in enumerate(widths, start=1):
        layer_name = f"conv_{i}"
        x = _conv(x, width, layer_name, init)
        x = _mask(x, layer_name, masked)
        x = _pool(x, f"pool_{i}")
    return inputs, keras.layers.Flatten(name="flatten")(x)


def model_b(
    widths: Sequence[int] = (64, 64),
    *,
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    masked: bool = True,
    seed: int | None = None,
    name: str = "model_b",
):
    """Model B of the paper's Fig. 2 (middle): convolutional layers, e.g. Conv64 - Conv64.

    For each width ``w``: ``Conv2D(w, 3x3, same, relu) "conv_i" -> [Mask] "conv_i_mask" ->
    MaxPooling2D(2x2) "pool_i"``; then ``Flatten -> Dense(num_classes, softmax)``.  There is
    no hidden Dense layer, as in the authors' code.  Height and width of ``input_shape`` must
    be at least ``2 ** len(widths)``.
    """
    widths = _check_widths(widths)
    input_shape = _check_input_shape(input_shape, image=True, num_pools=len(widths))
    num_classes = check_num_classes(num_classes)
    init = _Initializers(check_seed(seed))

    inputs, x = _conv_pool_stack(widths, input_shape, masked, init)
    outputs = _predictions(x, num_classes, init)
    return keras.Model(inputs, outputs, name=name)


def model_c(
    widths: Sequence[int] = (64, 64, 128, 128),
    dense_units: int = 256,
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    masked: bool = True,
    mask_dense: bool = False,
    seed: int | None = None,
    name: str = "model_c",
):
    """Model C of the paper's Fig. 2 (right): e.g. Conv64 - Conv64 - Conv128 - Conv128.

    For each width ``w``: ``Conv2D(w, 3x3, same, relu) "conv_i" -> [Mask] "conv_i_mask" ->
    MaxPooling2D(2x2) "pool_i"``; then ``Flatten -> Dense(dense_units, relu) "dense_1" ->
    Dense(num_classes, softmax)``.

    Choices that follow the authors' code rather than the figure:

    * a MaxPooling2D follows *every* convolution (32 -> 16 -> 8 -> 4 -> 2 on CIFAR-10), so
      height and width must be at least ``2 ** len(widths)``;
    * the hidden ``Dense(dense_units)`` layer is never masked by the original code, so it is
      unmasked by default; ``mask_dense=True`` adds a ``"dense_1_mask"`` after it.
    """
    widths = _check_widths(widths)
    dense_units = _check_positive_int(dense_units, "dense_units")
    input_shape = _check_input_shape(input_shape, image=True, num_pools=len(widths))
    num_classes = check_num_classes(num_classes)
    init = _Initializers(check_seed(seed))

    inputs, x = _conv_pool_stack(widths, input_shape, masked, init)
    x = _dense(x, dense_units, "dense_1", init)
    x = _mask(x, "dense_1", masked and mask_dense)
    outputs = _predictions(x, num_classes, init)
    return keras.Model(inputs, outputs, name=name)


def resnet18(
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    widths: Sequence[int] = (64, 128, 256, 512),
    blocks_per_stage: int = 2,
    masked: bool = True,
    seed: int | None = None,
    name: str = "resnet18",
):
    """ResNet18 without BatchNorm, as in the supplement's Fig. 1 (left) / Fig. A1.

    Layout (``C = widths[s-1]`` for stage ``s``, ``b`` the block within the stage)::

        stem_conv: Conv2D(widths[0], 3x3, same, relu) -> [Mask] -> stem_pool: MaxPool 2x2
        for each stage s, block b:
            main      = block{s}_{b}_conv_a: Conv2D(C, 3x3, same, relu) -> [Mask]
                     -> block{s}_{b}_conv_b: Conv2D(C, 3x3, same, relu) -> [Mask]
            shortcut  = block input, or, in the first block of every stage after the first,
                        block{s}_1_shortcut: Conv2D(C, 3x3, same, relu) -> [Mask]
            block{s}_{b}_add: Add([shortcut, main])       (no ReLU after, not masked)
        stage{s}_pool: MaxPool 2x2 after every stage but the last
        avg_pool: GlobalAveragePooling2D -> predictions: Dense(num_classes, softmax)

    With the default widths this has 1 + 4*4 + 3 = 20 masked convolutions holding 4800
    filters, and 4 max-poolings (height and width of ``input_shape`` must be at least 16).

    Deviation note: the text of the supplement's Fig. A1 says that a MaxPooling2D follows
    every two-convolution block.  The authors' code, which produced the paper's figures,
    instead pools once per stage (after stages 1-3, none after stage 4), uses a masked
    3x3 convolution (with ReLU) as the projection shortcut of the first block of stages 2-4,
    and has no ReLU after the addition; we follow the code.  The stem width is ``widths[0]``
    (64 by default), so stage 1 needs no projection; stages 2+ always get one in their first
    block, even if a custom ``widths`` keeps the channel count.
    """
    widths = _check_widths(widths)
    blocks_per_stage = _check_positive_int(blocks_per_stage, "blocks_per_stage")
    input_shape = _check_input_shape(input_shape, image=True, num_pools=len(widths))
    num_classes = check_num_classes(num_classes)
    init = _Initializers(check_seed(seed))

    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv(inputs, widths[0], "stem_conv", init)
    x = _mask(x, "stem_conv", masked)
    x = _pool(x, "stem_pool")
    for stage, width in enumerate(widths, start=1):
        for block in range(1, blocks_per_stage + 1):
            prefix = f"block{stage}_{block}"
            if stage > 1 and block == 1:
                shortcut = _conv(x, width, f"{prefix}_shortcut", init)
                shortcut = _mask(shortcut, f"{prefix}_shortcut", masked)
            else:
                shortcut = x
            main = _conv(x, width, f"{prefix}_conv_a", init)
            main = _mask(main, f"{prefix}_conv_a", masked)
            main = _conv(main, width, f"{prefix}_conv_b", init)
            main = _mask(main, f"{prefix}_conv_b", masked)
            x = keras.layers.Add(name=f"{prefix}_add")([shortcut, main])
        if stage < len(widths):
            x = _pool(x, f"stage{stage}_pool")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _predictions(x, num_classes, init)
    return keras.Model(inputs, outputs, name=name)


def vgg19(
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    dense_units: int = 256,
    blocks: Sequence[Sequence[int]] = VGG19_BLOCKS,
    masked: bool = True,
    mask_dense: bool = False,
    seed: int | None = None,
    name: str = "vgg19",
):
    """VGG19 with BatchNorm before every pooling, as in the supplement's Fig. 1 (right).

    Blocks ``[64, 64], [128, 128], [256 x 4], [512 x 4], [512 x 4]`` (``blocks``).  In block
    ``k`` every convolution ``block{k}_conv{i}`` is ``Conv2D(w, 3x3, same, relu) -> [Mask]``,
    except the last one, which is ``Conv2D(relu) -> block{k}_bn: BatchNormalization ->
    [Mask] -> block{k}_pool: MaxPooling2D(2x2)``.  Then ``Flatten -> Dense(dense_units, relu)
    "dense_1" -> Dense(num_classes, softmax)``.  Default: 16 masked convolutions holding 5504
    filters, 5 BatchNorms and 5 poolings (height and width must be at least 32).  For Tiny
    ImageNet pass ``dense_units=1024, num_classes=200, input_shape=(64, 64, 3)``.

    Choices that follow the authors' code:

    * BatchNormalization acts on the post-ReLU output of the block's last convolution and the
      mask comes *after* it (conv -> BN -> [Mask] -> pool), so a dropped filter is exactly 0
      at the pooling input whatever BN's shift is;
    * the hidden ``Dense(dense_units)`` is not masked by the original code; ``mask_dense=True``
      adds a ``"dense_1_mask"`` after it.
    """
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Sequence) or not blocks:
        raise ValueError(f"blocks must be a non-empty sequence of width sequences, got {blocks!r}.")
    blocks = tuple(_check_widths(block, f"blocks[{k}]") for k, block in enumerate(blocks))
    dense_units = _check_positive_int(dense_units, "dense_units")
    input_shape = _check_input_shape(input_shape, image=True, num_pools=len(blocks))
    num_classes = check_num_classes(num_classes)
    init = _Initializers(check_seed(seed))

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for k, block in enumerate(blocks, start=1):
        for i, width in enumerate(block, start=1):
            layer_name = f"block{k}_conv{i}"
            x = _conv(x, width, layer_name, init)
            if i == len(block):
                x = keras.layers.BatchNormalization(name=f"block{k}_bn")(x)
            x = _mask(x, layer_name, masked)
        x = _pool(x, f"block{k}_pool")
    x = keras.layers.Flatten(name="flatten")(x)
    x = _dense(x, dense_units, "dense_1", init)
    x = _mask(x, "dense_1", masked and mask_dense)
    outputs = _predictions(x, num_classes, init)
    return keras.Model(inputs, outputs, name=name)


#: Builders by name, for configuration files and command lines.
MODELS: dict[str, Callable[..., "keras.Model"]] = {
    "model_a": model_a,
    "model_b": model_b,
    "model_c": model_c,
    "resnet18": resnet18,
    "vgg19": vgg19,
}


def build_model(name: str, /, **kwargs):
    """Build the model registered as ``name`` in :data:`MODELS` with the builder's ``kwargs``.

    ``name`` is positional-only, so ``kwargs`` may hold the Keras model's own ``name``:
    ``build_model("model_a", widths=(20, 40), name="fc20_fc40")``.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}.")
    return MODELS[name](**kwargs)


__all__ = [
    "MODELS",
    "VGG19_BLOCKS",
    "build_model",
    "derive_layer_seed",
    "model_a",
    "model_b",
    "model_c",
    "resnet18",
    "vgg19",
]
