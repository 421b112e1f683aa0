"""Model builders for the foresight-pruning experiments (SNIP, ICLR 2019, and the thesis).

Every builder returns a functional :class:`keras.Model` and takes the same keyword arguments:

``input_shape``
    Shape of one example, without the batch axis.  The defaults are the dataset each paper
    uses the model on: MNIST for the LeNets and the RNNs (``(28, 28, 1)``; ``(28, 28)``
    rows x pixels for the RNNs), CIFAR-10 (``(32, 32, 3)``) for everything else.  They are
    also listed in :data:`FORESIGHT_INPUTS`.
``num_classes``
    Size of the softmax output, always ``Dense(num_classes, "softmax")`` named
    ``"predictions"`` (SNIP and the thesis prune that layer too, so it is masked as well).
``init``
    How weights are initialised, see :data:`INIT_OPTIONS` (SNIP's Table 3 names are
    accepted as aliases: ``"vs_x"``, ``"vs_h"``, ``"rn"``, ``"tn"``).  A Keras initializer
    instance is accepted too; every kernel then gets a copy of it (with a derived seed when
    ``seed`` is given), e.g. ``init=keras.initializers.RandomNormal(stddev=0.05)``.
``seed``
    None: unseeded initialisers.  An integer: every initialised weight tensor gets its own
    seed ``derive_layer_seed(seed, i)`` (``i`` counts initialised tensors in build order), so
    two builds with the same seed are identical and different tensors are not correlated.
``masked``
    True (default): the prunable layers are the masked twins of
    :mod:`dropnet_tf.core.masked_layers` (MaskedDense, MaskedConv2D, MaskedLSTM,
    MaskedGRU).  False: plain Keras layers, e.g. for tensorflow-model-optimization under
    tf-keras.  BatchNormalization layers are never masked (neither paper prunes them).

Initialisation options (:data:`INIT_OPTIONS`):

``"glorot_uniform"`` (``"vs_x"``)
    SNIP's VS-X: Glorot & Bengio (2010), U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
``"he_normal"`` (``"vs_h"``)
    SNIP's VS-H: He et al. (2015), truncated normal with variance 2 / fan_in.
``"random_normal"`` (``"rn"``) and ``"truncated_normal"`` (``"tn"``)
    SNIP's RN and TN: N(0, 1) and the same truncated at two standard deviations
    (stddev :data:`NORMAL_INIT_STDDEV` = 1.0).  SNIP does not state the stddev; 1.0 is the
    default of TF 1's ``tf.random_normal_initializer`` / ``tf.truncated_normal_initializer``
    (SNIP's code is TF 1), and a unit variance, far from the variance-scaled values, fits
    Table 3 (RN/TN break the GRU but not the LeNets; with stddev 0.05 RN would be almost
    VS-X on LeNet-300-100).  Note that this is *not* Keras' own ``"random_normal"`` (stddev
    0.05); pass an initializer instance for other values.
    SNIP used RN/TN only on the LeNets and RNNs: in a deep network such as ResNet-56 unit
    variance overflows to inf/NaN in inference mode, where BatchNorm does not normalise yet
    (training-mode calls, which the scorers make, stay finite).
``"pytorch_default"``
    The thesis' initialisation (Section 4.1.3): PyTorch's default for ``nn.Linear`` and
    ``nn.Conv2d``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for kernels *and* biases (see
    :class:`PyTorchDefaultUniform`).  For LSTM/GRU it follows ``torch.nn.LSTM``/``GRU``:
    every weight and bias is U(-1/sqrt(units), 1/sqrt(units)), without a forget-gate bias
    of one.
``"keras_default"``
    Keras' own defaults: Glorot-uniform kernels, orthogonal recurrent kernels, zero biases
    (LSTM forget-gate bias one), seeded when ``seed`` is given.
``"tf1_variance_scaling"`` (``"tf1_vs"``)
    What SNIP's public code initialises with (``network.py``: ``initializer_w_bp`` /
    ``initializer_w_ap`` default ``'vs'``): TF 1's ``tf.variance_scaling_initializer()``
    at its defaults, scale 1, ``fan_in``, truncated normal, i.e. variance 1 / fan_in
    (LeCun normal), not the Glorot-uniform VS-X that SNIP's Section 5 names.

Except for ``"pytorch_default"``, biases start at zero (SNIP's code does so for training;
biases are not pruned) and BatchNorm always at gamma = 1, beta = 0.  Recurrent layers use the chosen initialiser for both the input and the
recurrent kernel (SNIP's TF 1 cells hold them in one matrix) except for ``"keras_default"``.

:data:`FORESIGHT_MODELS` maps names to builders and :func:`build_foresight_model` builds by
name.  Parameter counts at the default input shapes (trainable parameters, with biases and
BatchNorm's gamma/beta; SNIP's own counts exclude BatchNorm) are given in each docstring.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dropnet_tf.core.backend import keras
# The shared builder helpers stay importable from here (dropnet_tf.models.foresight.INIT_OPTIONS ...).
from dropnet_tf.models.builders import (
    INIT_ALIASES,
    INIT_OPTIONS,
    NORMAL_INIT_STDDEV,
    TF_BN,
    TORCH_BN,
    LayerFactory,
    PyTorchDefaultUniform,
    check_masked,
    check_num_classes,
    check_seed,
    check_shape,
    check_stride,
    derive_layer_seed,
    is_int,
    resolve_init,
)

MNIST_IMAGE: tuple[int, int, int] = (28, 28, 1)
MNIST_ROWS: tuple[int, int] = (28, 28)  # 28 time steps (rows) of 28 pixels: row-by-row MNIST
CIFAR_IMAGE: tuple[int, int, int] = (32, 32, 3)

#: The thesis' VGG-16 for CIFAR ("M" is a 2x2 max-pooling).
VGG16_CONFIG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


# --------------------------------------------------------------------------------------------
# SNIP: LeNets (Section 5.1)
# --------------------------------------------------------------------------------------------


def lenet_300_100(
    *,
    input_shape: Sequence[int] = MNIST_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    name: str = "lenet_300_100",
):
    """LeNet-300-100 (LeCun et al., 1998) as in SNIP Section 5.1 / Table 1.

    ``flatten -> fc1: Dense(300, relu) -> fc2: Dense(100, relu) -> predictions``.
    266,610 parameters on MNIST (SNIP: 267k).  ``input_shape`` may be any shape; it is
    flattened.
    """
    input_shape = check_shape(input_shape, rank=0, what="any shape")
    num_classes = check_num_classes(num_classes)
    f = LayerFactory(init, seed, masked)

    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = f.dense(x, 300, "fc1", activation="relu")
    x = f.dense(x, 100, "fc2", activation="relu")
    return keras.Model(inputs, f.predictions(x, num_classes), name=name)


def lenet5_caffe(
    *,
    input_shape: Sequence[int] = MNIST_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    conv_activation: str | None = None,
    name: str = "lenet5_caffe",
):
    """LeNet-5-Caffe as in SNIP Section 5.1 / Table 1; with ReLUs it is the thesis' Table 4.1 CNN.

    ``conv1: Conv2D(20, 5x5, valid) -> pool1: MaxPool 2x2 -> conv2: Conv2D(50, 5x5, valid)
    -> pool2: MaxPool 2x2 -> flatten (4*4*50 = 800) -> fc1: Dense(500, relu) -> predictions``.
    431,080 parameters on MNIST (SNIP: 431k).

    ``conv_activation``: Caffe's LeNet and SNIP's code apply no non-linearity after the
    convolutions (the default, None); the thesis' Table 4.1 has a ReLU after each
    convolution, which :func:`thesis_cnn` sets.  The weights are the same either way.
    Height and width must be at least 16.
    """
    input_shape = check_shape(input_shape, rank=3, what="(height, width, channels)", min_size=16)
    num_classes = check_num_classes(num_classes)
    if conv_activation not in (None, "relu"):
        raise ValueError(f"conv_activation must be None or 'relu', got {conv_activation!r}.")
    f = LayerFactory(init, seed, masked)

    inputs = keras.Input(shape=input_shape, name="input")
    x = f.conv(inputs, 20, 5, "conv1", padding="valid", activation=conv_activation)
    x = keras.layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = f.conv(x, 50, 5, "conv2", padding="valid", activation=conv_activation)
    x = keras.layers.MaxPooling2D((2, 2), name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = f.dense(x, 500, "fc1", activation="relu")
    return keras.Model(inputs, f.predictions(x, num_classes), name=name)


def thesis_cnn(
    *,
    input_shape: Sequence[int] = MNIST_IMAGE,
    num_classes: int = 10,
    init="pytorch_default",
    seed: int | None = None,
    masked: bool = True,
    name: str = "thesis_cnn",
):
    """The thesis' "simple CNN" (Table 4.1, Section 4.1.2): LeNet-5-Caffe with ReLU convolutions.

    Same layers and 431,080 parameters as :func:`lenet5_caffe` (which it calls with
    ``conv_activation="relu"``); initialised with the thesis' PyTorch default by default.
    """
    return lenet5_caffe(
        input_shape=input_shape, num_classes=num_classes, init=init, seed=seed, masked=masked,
        conv_activation="relu", name=name,
    )


# --------------------------------------------------------------------------------------------
# SNIP: AlexNets (Section 5.3, Appendix D Table 5)
# --------------------------------------------------------------------------------------------

_ALEXNET_CONVS = ((96, 11), (256, 5), (384, 3), (384, 3), (256, 3))  # (filters, kernel size)


def _alexnet(k, input_shape, num_classes, init, seed, masked, first_stride, name):
    input_shape = check_shape(input_shape, rank=3, what="(height, width, channels)")
    num_classes = check_num_classes(num_classes)
    first_stride = check_stride(first_stride, "first_stride")
    f = LayerFactory(init, seed, masked)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for i, (filters, size) in enumerate(_ALEXNET_CONVS, start=1):
        x = f.conv(x, filters, size, f"conv{i}", strides=first_stride if i == 1 else 2)
        x = f.bn(x, f"conv{i}_bn")
        x = f.relu(x, f"conv{i}_relu")
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = f.dense(x, 1024 * k, f"fc{i}")
        x = f.bn(x, f"fc{i}_bn")
        x = f.relu(x, f"fc{i}_relu")
    return keras.Model(inputs, f.predictions(x, num_classes), name=name)


_ALEXNET_DOC = """

    Five convolutions ``conv1..conv5`` with kernels 11, 5, 3, 3, 3 and 96, 256, 384, 384, 256
    filters, all with stride 2 (no pooling), each followed by BatchNorm and ReLU; then
    ``flatten -> fc1: Dense(1024k) -> BN -> ReLU -> fc2: Dense(1024k) -> BN -> ReLU ->
    predictions``.  Convolutions and Dense layers have biases.

    Padding is ``"same"`` (as in SNIP's code): 32 -> 16 -> 8 -> 4 -> 2 -> 1, so ``fc1`` sees
    1 x 1 x 256 = 256 features as Table 5 says and the model has SNIP's parameter count;
    ``"valid"`` padding would shrink 32x32 to nothing before conv5.  (The text of Section 5.3
    says fc layers of 512 / 1024; Table 5 and SNIP's code use 1024k, which gives the table's
    counts.)  ``first_stride=4`` is SNIP's setting for Tiny-ImageNet (64 x 64 x 3).
    """


def alexnet_s(
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    first_stride: int = 2,
    name: str = "alexnet_s",
):
    return _alexnet(1, input_shape, num_classes, init, seed, masked, first_stride, name)


def alexnet_b(
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    first_stride: int = 2,
    name: str = "alexnet_b",
):
    return _alexnet(2, input_shape, num_classes, init, seed, masked, first_stride, name)


alexnet_s.__doc__ = (
    "AlexNet-s of SNIP (Section 5.3, Appendix D Table 5, k = 1): 5,070,218 parameters "
    "without BatchNorm on CIFAR-10 (SNIP: 5.1m), 5,077,066 with BatchNorm's gamma/beta." + _ALEXNET_DOC
)
alexnet_b.__doc__ = (
    "AlexNet-b of SNIP (Section 5.3, Appendix D Table 5, k = 2): 8,490,378 parameters "
    "without BatchNorm on CIFAR-10 (SNIP: 8.5m), 8,501,322 with BatchNorm's gamma/beta." + _ALEXNET_DOC
)


# --------------------------------------------------------------------------------------------
# SNIP: VGGs (Section 5.3, Appendix D Table 6)
# --------------------------------------------------------------------------------------------


def _vgg_blocks(version: str):
    """Per block: tuple of (filters, kernel size); "k" is the kernel of the marked convs."""
    k = 1 if version == "C" else 3
    return (
        ((64, 3), (64, 3)),
        ((128, 3), (128, 3)),
        ((256, 3), (256, 3), (256, k)),
        ((512, 3), (512, 3), (512, k)),
        ((512, 3), (512, 3), (512, k)),
    )


def _vgg(version, input_shape, num_classes, init, seed, masked, first_stride, name):
    first_stride = check_stride(first_stride, "first_stride")
    input_shape = check_shape(
        input_shape, rank=3, what="(height, width, channels)", min_size=32 * first_stride
    )
    num_classes = check_num_classes(num_classes)
    f = LayerFactory(init, seed, masked)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for b, block in enumerate(_vgg_blocks(version), start=1):
        for i, (filters, size) in enumerate(block, start=1):
            layer = f"block{b}_conv{i}"
            stride = first_stride if (b, i) == (1, 1) else 1
            x = f.conv(x, filters, size, layer, strides=stride)
            x = f.bn(x, f"{layer}_bn")
            x = f.relu(x, f"{layer}_relu")
        x = keras.layers.MaxPooling2D((2, 2), name=f"block{b}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2) if version in ("C", "D") else (1,):
        x = f.dense(x, 512, f"fc{i}")
        x = f.bn(x, f"fc{i}_bn")
        x = f.relu(x, f"fc{i}_relu")
    return keras.Model(inputs, f.predictions(x, num_classes), name=name)


_VGG_DOC = """

    Table 6: thirteen ``Conv2D(same, bias) -> BN -> ReLU`` layers ``block{b}_conv{i}`` in five
    blocks of 64, 64 | 128, 128 | 256 x 3 | 512 x 3 | 512 x 3 filters, each block ending in a
    2x2 max-pooling; on 32 x 32 inputs the last pooling leaves 1 x 1 x 512, so ``flatten``
    gives 512 features.  Then ``fc1: Dense(512) -> BN -> ReLU`` (and ``fc2`` likewise in
    VGG-C/D only) ``-> predictions``.  No dropout.  In VGG-C the third convolution of blocks
    3-5 is 1x1, in VGG-D and VGG-like 3x3.  ``first_stride=2`` is SNIP's setting for
    Tiny-ImageNet (64 x 64 x 3).  Height and width must be at least 32 x ``first_stride``.
    """


def vgg_c(
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    first_stride: int = 1,
    name: str = "vgg_c",
):
    return _vgg("C", input_shape, num_classes, init, seed, masked, first_stride, name)


def vgg_d(
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    first_stride: int = 1,
    name: str = "vgg_d",
):
    return _vgg("D", input_shape, num_classes, init, seed, masked, first_stride, name)


def vgg_like(
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    first_stride: int = 1,
    name: str = "vgg_like",
):
    return _vgg("like", input_shape, num_classes, init, seed, masked, first_stride, name)


vgg_c.__doc__ = (
    "VGG-C of SNIP (Section 5.3, Appendix D Table 6): 10,526,538 parameters without "
    "BatchNorm on CIFAR-10 (SNIP: 10.5m), 10,537,034 with BatchNorm's gamma/beta." + _VGG_DOC
)
vgg_d.__doc__ = (
    "VGG-D of SNIP (Section 5.3, Appendix D Table 6): 15,245,130 parameters without "
    "BatchNorm on CIFAR-10 (SNIP: 15.2m), 15,255,626 with BatchNorm's gamma/beta." + _VGG_DOC
)
vgg_like.__doc__ = (
    "VGG-like of SNIP (Section 5.3, Appendix D Table 6; Zagoruyko, 2015, one fc layer less): "
    "14,982,474 parameters without BatchNorm on CIFAR-10 (SNIP: 15.0m), 14,991,946 with "
    "BatchNorm's gamma/beta." + _VGG_DOC
)


# --------------------------------------------------------------------------------------------
# SNIP: wide ResNets (Section 5.3)
# --------------------------------------------------------------------------------------------


def wrn(
    depth: int = 16,
    width: int = 8,
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="glorot_uniform",
    seed: int | None = None,
    masked: bool = True,
    name: str | None = None,
):
    """WRN-depth-width of Zagoruyko & Komodakis (2016) for CIFAR, as used by SNIP Section 5.3.

    ``conv1: Conv2D(16, 3x3)``, then three stages of ``n = (depth - 4) / 6`` pre-activation
    basic blocks with ``16 * width``, ``32 * width``, ``64 * width`` filters (the first block
    of stages 2 and 3 has stride 2)::

        pre      = BN -> ReLU (block input)            "block{s}_{b}_bn1" / "_relu1"
        residual = conv1: Conv2D(3x3, stride)(pre) -> BN -> ReLU -> conv2: Conv2D(3x3)
        shortcut = block input, or "block{s}_{b}_shortcut": Conv2D(1x1, stride)(pre) when the
                   number of channels or the resolution changes
        out      = Add(shortcut, residual)

    then ``final_bn -> final_relu -> global average pooling (8x8 on CIFAR) -> predictions``.
    As in the authors' code: convolutions without bias (BatchNorm follows), the projection
    shortcut reads the pre-activated input, no dropout (SNIP prunes without dropout).
    """
    if not is_int(depth) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be an integer 6n + 4 >= 10 (e.g. 16, 22, 28), got {depth!r}.")
    if not is_int(width) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}.")
    input_shape = check_shape(input_shape, rank=3, what="(height, width, channels)", min_size=4)
    num_classes = check_num_classes(num_classes)
    f = LayerFactory(init, seed, masked)
    blocks = (depth - 4) // 6

    inputs = keras.Input(shape=input_shape, name="input")
    x = f.conv(inputs, 16, 3, "conv1", use_bias=False)
    for stage, filters in enumerate((16 * width, 32 * width, 64 * width), start=1):
        for block in range(1, blocks + 1):
            p = f"block{stage}_{block}"
            stride = 2 if stage > 1 and block == 1 else 1
            pre = f.relu(f.bn(x, f"{p}_bn1"), f"{p}_relu1")
            y = f.conv(pre, filters, 3, f"{p}_conv1", strides=stride, use_bias=False)
            y = f.relu(f.bn(y, f"{p}_bn2"), f"{p}_relu2")
            y = f.conv(y, filters, 3, f"{p}_conv2", use_bias=False)
            if stride != 1 or int(x.shape[-1]) != filters:
                shortcut = f.conv(pre, filters, 1, f"{p}_shortcut", strides=stride, use_bias=False)
            else:
                shortcut = x
            x = keras.layers.Add(name=f"{p}_add")([shortcut, y])
    x = f.relu(f.bn(x, "final_bn"), "final_relu")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, f.predictions(x, num_classes), name=name or f"wrn_{depth}_{width}")


def wrn_16_8(*, input_shape=CIFAR_IMAGE, num_classes=10, init="glorot_uniform", seed=None,
             masked=True, name="wrn_16_8"):
    """WRN-16-8 (SNIP Section 5.3): 10,961,370 parameters on CIFAR-10 (10,954,170 without BatchNorm).

    SNIP's Table 2 prints 10.0m, but its own pruned count (548k at 95% sparsity = 10.96m) and
    Zagoruyko & Komodakis' Table (11.0M) both give 11.0m; 10.0m is a typo.  See :func:`wrn`.
    """
    return wrn(16, 8, input_shape=input_shape, num_classes=num_classes, init=init, seed=seed,
               masked=masked, name=name)


def wrn_16_10(*, input_shape=CIFAR_IMAGE, num_classes=10, init="glorot_uniform", seed=None,
              masked=True, name="wrn_16_10"):
    """WRN-16-10 (SNIP Section 5.3): 17,116,634 parameters on CIFAR-10, 17,107,642
    without BatchNorm (SNIP: 17.1m).  See :func:`wrn`."""
    return wrn(16, 10, input_shape=input_shape, num_classes=num_classes, init=init, seed=seed,
               masked=masked, name=name)


def wrn_22_8(*, input_shape=CIFAR_IMAGE, num_classes=10, init="glorot_uniform", seed=None,
             masked=True, name="wrn_22_8"):
    """WRN-22-8 (SNIP Section 5.3): 17,158,106 parameters on CIFAR-10, 17,147,322
    without BatchNorm (SNIP: 17.2m).  See :func:`wrn`."""
    return wrn(22, 8, input_shape=input_shape, num_classes=num_classes, init=init, seed=seed,
               masked=masked, name=name)


# --------------------------------------------------------------------------------------------
# SNIP: recurrent networks (Section 5.3)
# --------------------------------------------------------------------------------------------


def _rnn(cell, units, input_shape, num_classes, init, seed, masked, input_projection, name):
    input_shape = check_shape(input_shape, rank=0, what="")
    if len(input_shape) not in (2, 3):
        raise ValueError(
            "input_shape must be (time steps, features), e.g. (28, 28), or an image "
            f"(height, width, channels) read row by row, e.g. (28, 28, 1); got {input_shape!r}."
        )
    num_classes = check_num_classes(num_classes)
    if not isinstance(input_projection, (bool, np.bool_)):
        raise ValueError(f"input_projection must be True or False, got {input_projection!r}.")
    f = LayerFactory(init, seed, masked)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    if len(input_shape) == 3:  # an image: one time step per row of width * channels values
        x = keras.layers.Reshape((input_shape[0], input_shape[1] * input_shape[2]), name="rows")(x)
    if input_projection:
        x = f.dense(x, units, "input_projection")  # linear, applied to every row
    x = f.recurrent_layer(x, cell, units, cell)
    return keras.Model(inputs, f.predictions(x, num_classes), name=name)


_RNN_DOC = """

    SNIP Section 5.3: one recurrent layer reading MNIST row by row (input ``(28, 28)``: 28
    time steps of 28 pixels), its last hidden state feeding ``predictions``.  An image shape
    ``(height, width, channels)`` such as ``(28, 28, 1)`` is accepted too and reshaped
    (layer ``"rows"``) to ``height`` steps of ``width * channels`` values.  SNIP's counts
    (LSTM 137k / 535k, GRU 104k / 404k) are reproduced only with a linear
    ``input_projection: Dense(units)`` applied to every row before the cell, as in the
    models of Zaremba et al. (2014) that SNIP cites, whose embedding size equals the hidden
    size: the recurrent layer then has 8u^2 (LSTM) / 6u^2 (GRU) weights.  Without it
    (``input_projection=False``) the counts would be 81,674 / 294,410 / 61,578 / 221,450,
    about 40% short.  The GRU is ``reset_after=False`` (Cho et al., 2014, and TF 1's
    ``GRUCell``: three biases per unit), which gives 103,690 / 403,978 against SNIP's
    104k / 404k; Keras' default ``reset_after=True`` would give 104,074 / 404,746 (405k).
    """


def lstm_s(*, input_shape=MNIST_ROWS, num_classes=10, init="glorot_uniform", seed=None,
           masked=True, input_projection=True, name="lstm_s"):
    return _rnn("lstm", 128, input_shape, num_classes, init, seed, masked, input_projection, name)


def lstm_b(*, input_shape=MNIST_ROWS, num_classes=10, init="glorot_uniform", seed=None,
           masked=True, input_projection=True, name="lstm_b"):
    return _rnn("lstm", 256, input_shape, num_classes, init, seed, masked, input_projection, name)


def gru_s(*, input_shape=MNIST_ROWS, num_classes=10, init="glorot_uniform", seed=None,
          masked=True, input_projection=True, name="gru_s"):
    return _rnn("gru", 128, input_shape, num_classes, init, seed, masked, input_projection, name)


def gru_b(*, input_shape=MNIST_ROWS, num_classes=10, init="glorot_uniform", seed=None,
          masked=True, input_projection=True, name="gru_b"):
    return _rnn("gru", 256, input_shape, num_classes, init, seed, masked, input_projection, name)


lstm_s.__doc__ = "LSTM-s of SNIP: 128 units, 136,586 parameters (SNIP: 137k)." + _RNN_DOC
lstm_b.__doc__ = "LSTM-b of SNIP: 256 units, 535,306 parameters (SNIP: 535k)." + _RNN_DOC
gru_s.__doc__ = "GRU-s of SNIP: 128 units, 103,690 parameters (SNIP: 104k)." + _RNN_DOC
gru_b.__doc__ = "GRU-b of SNIP: 256 units, 403,978 parameters (SNIP: 404k)." + _RNN_DOC


# --------------------------------------------------------------------------------------------
# Thesis: VGG-16 and ResNet-56 (Section 4.1.2)
# --------------------------------------------------------------------------------------------


def vgg16(
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="pytorch_default",
    seed: int | None = None,
    masked: bool = True,
    name: str = "vgg16",
):
    """The thesis' VGG-16 for CIFAR (Section 4.1.2): 14,728,266 parameters on CIFAR-10.

    The thesis does not spell the network out; this is the CIFAR VGG-16 of the
    pruning-at-initialisation literature (GraSP, SynFlow): thirteen ``Conv2D(3x3, same,
    bias) -> BN -> ReLU`` layers ``conv1..conv13`` with filters
    :data:`VGG16_CONFIG` (64, 64, M, 128, 128, M, 256 x 3, M, 512 x 3, M, 512 x 3; M a 2x2
    max-pooling ``pool1..pool4``), then ``global average pooling (2x2 -> 1x1) ->
    predictions: Dense(num_classes)``: no hidden fully-connected layers, so that nearly all
    weights are convolutional.  Convolutions keep PyTorch's default bias; BatchNorm uses
    PyTorch's momentum/epsilon (the thesis' models are PyTorch).  Height and width must be at
    least 16.
    """
    input_shape = check_shape(input_shape, rank=3, what="(height, width, channels)", min_size=16)
    num_classes = check_num_classes(num_classes)
    f = LayerFactory(init, seed, masked, bn=TORCH_BN)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    conv = pool = 0
    for item in VGG16_CONFIG:
        if item == "M":
            pool += 1
            x = keras.layers.MaxPooling2D((2, 2), name=f"pool{pool}")(x)
            continue
        conv += 1
        x = f.conv(x, item, 3, f"conv{conv}")
        x = f.bn(x, f"conv{conv}_bn")
        x = f.relu(x, f"conv{conv}_relu")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, f.predictions(x, num_classes), name=name)


def _zero_pad_shortcut(x, filters: int, prefix: str):
    """He et al.'s option-A shortcut: subsample 2x and zero-pad the new channels (no weights).

    Built from standard layers only (so it saves, clones and works with tf-keras and
    tensorflow-model-optimization): a 1x1 max-pooling with stride 2 is ``x[:, ::2, ::2]``,
    and the channels are padded (half before, half after) by viewing them as a spatial axis
    of a ZeroPadding3D.
    """
    x = keras.layers.MaxPooling2D((1, 1), strides=(2, 2), name=f"{prefix}_subsample")(x)
    height, width, channels = (int(d) for d in x.shape[1:])
    extra = filters - channels
    x = keras.layers.Reshape((height, width, channels, 1), name=f"{prefix}_to_5d")(x)
    x = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (extra // 2, extra - extra // 2)), name=f"{prefix}_pad")(x)
    return keras.layers.Reshape((height, width, filters), name=f"{prefix}_shortcut")(x)


def cifar_resnet(
    depth: int = 56,
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="pytorch_default",
    seed: int | None = None,
    masked: bool = True,
    shortcut: str = "A",
    name: str | None = None,
):
    """The CIFAR ResNet-``depth`` of He et al. (2016, Section 4.2), ``depth = 6n + 2``.

    ``conv1: Conv2D(16, 3x3) -> BN -> ReLU``, then three stages of ``n`` basic blocks with
    16, 32, 64 filters (the first block of stages 2 and 3 has stride 2)::

        residual = conv1: Conv2D(3x3, stride) -> BN -> ReLU -> conv2: Conv2D(3x3) -> BN
        out      = ReLU(Add(shortcut, residual))

    then ``global average pooling -> predictions``.  Convolutions have no bias (BatchNorm
    follows); BatchNorm uses PyTorch's momentum/epsilon.

    ``shortcut``: ``"A"`` (default, He et al.'s choice for CIFAR: identity shortcuts, with
    2x subsampling and zero-padded extra channels where the shape changes, so the shortcut
    has no weights and nothing to prune) or ``"B"`` (a ``Conv2D(1x1, stride 2) -> BN``
    projection where the shape changes, as in many PyTorch re-implementations; +2,752
    parameters, and the projections become prunable).
    """
    if not is_int(depth) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be an integer 6n + 2 >= 8 (e.g. 20, 32, 56, 110), got {depth!r}.")
    if shortcut not in ("A", "B"):
        raise ValueError(
            f"shortcut must be 'A' (zero-padding identity) or 'B' (1x1 projection), got {shortcut!r}."
        )
    input_shape = check_shape(input_shape, rank=3, what="(height, width, channels)", min_size=4)
    num_classes = check_num_classes(num_classes)
    f = LayerFactory(init, seed, masked, bn=TORCH_BN)
    blocks = (depth - 2) // 6

    inputs = keras.Input(shape=input_shape, name="input")
    x = f.conv(inputs, 16, 3, "conv1", use_bias=False)
    x = f.relu(f.bn(x, "conv1_bn"), "conv1_relu")
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, blocks + 1):
            p = f"block{stage}_{block}"
            stride = 2 if stage > 1 and block == 1 else 1
            y = f.conv(x, filters, 3, f"{p}_conv1", strides=stride, use_bias=False)
            y = f.relu(f.bn(y, f"{p}_bn1"), f"{p}_relu1")
            y = f.conv(y, filters, 3, f"{p}_conv2", use_bias=False)
            y = f.bn(y, f"{p}_bn2")
            if stride == 1 and int(x.shape[-1]) == filters:
                s = x
            elif shortcut == "A":
                s = _zero_pad_shortcut(x, filters, p)
            else:
                s = f.conv(x, filters, 1, f"{p}_shortcut", strides=stride, use_bias=False)
                s = f.bn(s, f"{p}_shortcut_bn")
            x = f.relu(keras.layers.Add(name=f"{p}_add")([s, y]), f"{p}_relu")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, f.predictions(x, num_classes), name=name or f"resnet{depth}")


def resnet56(
    *,
    input_shape: Sequence[int] = CIFAR_IMAGE,
    num_classes: int = 10,
    init="pytorch_default",
    seed: int | None = None,
    masked: bool = True,
    shortcut: str = "A",
    name: str = "resnet56",
):
    """The thesis' ResNet-56 (Section 4.1.2): He et al.'s CIFAR ResNet with 9 blocks per stage.

    853,018 parameters on CIFAR-10 with the default option-A shortcuts (He et al.: 0.85M),
    855,770 with ``shortcut="B"``.  See :func:`cifar_resnet`.
    """
    return cifar_resnet(56, input_shape=input_shape, num_classes=num_classes, init=init, seed=seed,
                        masked=masked, shortcut=shortcut, name=name)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

#: Builders by name, for configuration files and command lines.
FORESIGHT_MODELS: dict[str, Callable[..., "keras.Model"]] = {
    "lenet_300_100": lenet_300_100,
    "lenet5_caffe": lenet5_caffe,
    "thesis_cnn": thesis_cnn,
    "alexnet_s": alexnet_s,
    "alexnet_b": alexnet_b,
    "vgg_c": vgg_c,
    "vgg_d": vgg_d,
    "vgg_like": vgg_like,
    "wrn": wrn,
    "wrn_16_8": wrn_16_8,
    "wrn_16_10": wrn_16_10,
    "wrn_22_8": wrn_22_8,
    "lstm_s": lstm_s,
    "lstm_b": lstm_b,
    "gru_s": gru_s,
    "gru_b": gru_b,
    "vgg16": vgg16,
    "resnet56": resnet56,
    "cifar_resnet": cifar_resnet,
}

#: Default ``(input_shape, num_classes)`` of every registered model: the dataset its paper uses.
FORESIGHT_INPUTS: dict[str, tuple[tuple[int, ...], int]] = {
    name: (CIFAR_IMAGE, 10) for name in FORESIGHT_MODELS
}
FORESIGHT_INPUTS.update({name: (MNIST_IMAGE, 10) for name in ("lenet_300_100", "lenet5_caffe", "thesis_cnn")})
FORESIGHT_INPUTS.update({name: (MNIST_ROWS, 10) for name in ("lstm_s", "lstm_b", "gru_s", "gru_b")})

# Spellings used in the papers and in configuration files.
_ALIASES = {
    "lenet300": "lenet_300_100",
    "lenet5": "lenet5_caffe",
    "lenet_5_caffe": "lenet5_caffe",
    "simple_cnn": "thesis_cnn",
    "vgg_16": "vgg16",
    "resnet_56": "resnet56",
}


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return _ALIASES.get(key, key)


def build_foresight_model(name: str, /, **kwargs):
    """Build the model registered as ``name`` in :data:`FORESIGHT_MODELS` with ``kwargs``.

    Names are matched case-insensitively with ``-`` read as ``_``, so the papers' spellings
    work (``"LeNet-300-100"``, ``"VGG-like"``, ``"WRN-16-8"``, ``"ResNet-56"``).  ``name`` is
    positional-only, so ``kwargs`` may hold the Keras model's own ``name``.
    """
    key = _canonical(name) if isinstance(name, str) else None
    if key not in FORESIGHT_MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(sorted(FORESIGHT_MODELS))}.")
    return FORESIGHT_MODELS[key](**kwargs)


__all__ = [
    "CIFAR_IMAGE",
    "FORESIGHT_INPUTS",
    "FORESIGHT_MODELS",
    "INIT_ALIASES",
    "INIT_OPTIONS",
    "MNIST_IMAGE",
    "MNIST_ROWS",
    "NORMAL_INIT_STDDEV",
    "PyTorchDefaultUniform",
    "VGG16_CONFIG",
    "alexnet_b",
    "alexnet_s",
    "build_foresight_model",
    "cifar_resnet",
    "gru_b",
    "gru_s",
    "lenet5_caffe",
    "lenet_300_100",
    "lstm_b",
    "lstm_s",
    "resnet56",
    "thesis_cnn",
    "vgg16",
    "vgg_c",
    "vgg_d",
    "vgg_like",
    "wrn",
    "wrn_16_8",
    "wrn_16_10",
    "wrn_22_8",
]
