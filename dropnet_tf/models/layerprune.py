"""The CIFAR networks of LayerPrune (Elkerdawy et al., ACCV 2020): VGG19-BN and ResNet-56.

Both are plain Keras models (no MaskLayers); :func:`dropnet_tf.add_masks` turns them into
filter-prunable ones, and :func:`dropnet_tf.layerprune.blocks.remove_blocks` removes whole
layers (VGG) or residual blocks (ResNet) from them.

Every builder returns a functional :class:`keras.Model` whose output layer is
``predictions: Dense(num_classes, softmax)``.
"""

from __future__ import annotations

import numbers
from typing import Sequence

from dropnet_tf.core.backend import keras
from dropnet_tf.models.builders import TORCH_BN, LayerFactory, check_num_classes, check_shape
from dropnet_tf.models.foresight import cifar_resnet

#: The CIFAR VGG19-BN of the LayerPrune supplement (Table 3, "VGG19 (baseline)"): numbers are
#: the filters of a ``Conv2D(3x3) -> BN -> ReLU`` layer, "M" a 2x2 max-pooling.
VGG19_BN_CONFIG: tuple = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, 256, "M",
    512, 512, 512, 512, "M",
    512, 512, 512, 512, "M",
)


def _check_width_multiplier(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or value != value:
        raise ValueError(f"width_multiplier must be a positive number, got {value!r}.")
    if value == float("inf"):
        raise ValueError(f"width_multiplier must be a finite positive number, got {value!r}.")
    return float(value)


def scaled_width(filters: int, width_multiplier: float) -> int:
    """``round(filters * width_multiplier)``, at least 1: the widths :func:`vgg19_bn` uses.

    Scales the supplement's Table 3 widths of LayerPrune's VGG19-BN (Elkerdawy et al.,
    ACCV 2020) down for quick runs; ``width_multiplier=1`` gives the paper's network.
    """
    return max(1, int(round(filters * width_multiplier)))


def vgg19_bn(
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    width_multiplier: float = 1.0,
    init="pytorch_default",
    seed: int | None = None,
    name: str = "vgg19_bn",
):
    """The CIFAR VGG19-BN of LayerPrune (Elkerdawy et al., ACCV 2020, supplement Table 3).

    :data:`VGG19_BN_CONFIG` = ``[64, 64, M, 128, 128, M, 256 x 4, M, 512 x 4, M, 512 x 4, M]``:
    sixteen convolutions, block ``k`` (1..5, separated by the max-poolings) holding
    ``block{k}_conv{i}: Conv2D(3x3, same, use_bias=False) -> block{k}_bn{i}:
    BatchNormalization -> block{k}_relu{i}: ReLU``, then ``block{k}_pool: MaxPooling2D(2x2)``.
    After the fifth pooling (1 x 1 at 32 x 32): ``avg_pool: GlobalAveragePooling2D ->
    predictions: Dense(num_classes, softmax)``, the single linear classifier of the
    PyTorch CIFAR VGGs the paper fine-tunes (on a 1 x 1 map global pooling equals Flatten).

    Trainable parameters for widths ``w_1..w_16`` and ``c`` input channels:
    ``sum_i (9 * w_{i-1} * w_i + 2 * w_i)`` (``w_0 = c``; kernel, gamma, beta) plus
    ``(w_16 + 1) * num_classes``: 20,035,018 for CIFAR-10 at full width; with BatchNorm's
    moving mean and variance (``count_params()``) 20,046,026.  Note that the supplement's baseline row of Table 3
    prints six 512s in the last block; its pruned rows (4 layers there, 0 for removed ones)
    and the standard VGG19 have four, which is what is built here.

    ``width_multiplier`` scales every width (:func:`scaled_width`: rounded, at least one
    filter), e.g. ``1/16`` for quick CPU runs.  ``init`` and ``seed`` work as in
    :mod:`dropnet_tf.models.foresight` (``"pytorch_default"``: PyTorch's default
    ``nn.Conv2d`` / ``nn.Linear`` initialisation); BatchNorm uses PyTorch's momentum and
    epsilon.  Height and width must be at least 32 (five 2x2 poolings).
    """
    input_shape = check_shape(input_shape, rank=3, what="(height, width, channels)", min_size=32)
    num_classes = check_num_classes(num_classes)
    width_multiplier = _check_width_multiplier(width_multiplier)
    f = LayerFactory(init, seed, False, bn=TORCH_BN)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    block, conv = 1, 0
    for item in VGG19_BN_CONFIG:
        if item == "M":
            x = keras.layers.MaxPooling2D((2, 2), name=f"block{block}_pool")(x)
            block, conv = block + 1, 0
            continue
        conv += 1
        x = f.conv(x, scaled_width(item, width_multiplier), 3, f"block{block}_conv{conv}", use_bias=False)
        x = f.bn(x, f"block{block}_bn{conv}")
        x = f.relu(x, f"block{block}_relu{conv}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, f.predictions(x, num_classes), name=name)


def cifar_resnet_layerprune(
    depth: int = 56,
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    init="pytorch_default",
    seed: int | None = None,
    name: str | None = None,
):
    """The CIFAR ResNet-``depth`` of LayerPrune (Elkerdawy et al., ACCV 2020, supplement 1.3).

    He et al.'s CIFAR ResNet (``depth = 6n + 2``; ResNet-56: 3 stages of 9 basic blocks,
    each two 3x3 convolutions) as built by
    :func:`dropnet_tf.models.foresight.cifar_resnet` with plain Keras layers
    (``masked=False``) and **option-B shortcuts**: where a stage halves the resolution and
    doubles the width, the shortcut is a ``{p}_shortcut: Conv2D(1x1, stride 2) ->
    {p}_shortcut_bn`` projection.

    Why option B: He et al.'s option A subsamples and zero-pads the new channels, which this
    library builds from ``Reshape -> ZeroPadding3D -> Reshape`` layers (see
    ``_zero_pad_shortcut``).  A channel mask cannot be followed through those layers (the
    channels become a spatial axis of a 5-D tensor), so filter criteria and compaction
    could not prune the stage outputs.  The projection is an ordinary convolution, which they
    handle, and the LayerPrune code base (PyTorch CIFAR ResNets with ``downsample``
    projections) uses it too.  The two downsampling blocks hold the projections and change
    the shape, so they can never be replaced by the identity; the other ``3(n-1)`` blocks
    can (:func:`dropnet_tf.layerprune.blocks.resnet_blocks`).

    Layer names: ``conv1, conv1_bn, conv1_relu``, blocks ``block{stage}_{block}`` holding
    ``{p}_conv1, {p}_bn1, {p}_relu1, {p}_conv2, {p}_bn2, {p}_add, {p}_relu`` (+
    ``{p}_shortcut, {p}_shortcut_bn``), then ``avg_pool, predictions``.
    """
    return cifar_resnet(
        depth,
        input_shape=input_shape,
        num_classes=num_classes,
        init=init,
        seed=seed,
        masked=False,
        shortcut="B",
        name=name,
    )


def resnet56_layerprune(
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    init="pytorch_default",
    seed: int | None = None,
    name: str = "resnet56",
):
    """ResNet-56 of LayerPrune (Elkerdawy et al., ACCV 2020, supplement 1.3), option-B shortcuts.

    27 basic blocks (25 removable, 2 downsampling), 855,770 trainable parameters on CIFAR-10
    (860,026 with BatchNorm's moving statistics).  See :func:`cifar_resnet_layerprune` for the layout and why
    the shortcuts are projections.
    """
    return cifar_resnet_layerprune(
        56, input_shape=input_shape, num_classes=num_classes, init=init, seed=seed, name=name
    )


__all__ = [
    "VGG19_BN_CONFIG",
    "cifar_resnet_layerprune",
    "resnet56_layerprune",
    "scaled_width",
    "vgg19_bn",
]
