"""Model builders, grouped by the paper whose figures they reproduce.

Its modules are listed, with what each holds, in the README's Layout section.  Every builder
is re-exported here (``from dropnet_tf.models import model_a, lenet_300_100``).
"""

from dropnet_tf.models.builders import (
    INIT_ALIASES,
    INIT_OPTIONS,
    NORMAL_INIT_STDDEV,
    LayerFactory,
    PyTorchDefaultUniform,
    derive_layer_seed,
)
from dropnet_tf.models.dropnet import (
    MODELS,
    VGG19_BLOCKS,
    build_model,
    model_a,
    model_b,
    model_c,
    resnet18,
    vgg19,
)
from dropnet_tf.models.foresight import (
    CIFAR_IMAGE,
    FORESIGHT_INPUTS,
    FORESIGHT_MODELS,
    MNIST_IMAGE,
    MNIST_ROWS,
    VGG16_CONFIG,
    alexnet_b,
    alexnet_s,
    build_foresight_model,
    cifar_resnet,
    gru_b,
    gru_s,
    lenet5_caffe,
    lenet_300_100,
    lstm_b,
    lstm_s,
    resnet56,
    thesis_cnn,
    vgg16,
    vgg_c,
    vgg_d,
    vgg_like,
    wrn,
    wrn_16_8,
    wrn_16_10,
    wrn_22_8,
)
from dropnet_tf.models.layerprune import (
    VGG19_BN_CONFIG,
    cifar_resnet_layerprune,
    resnet56_layerprune,
    scaled_width,
    vgg19_bn,
)

from dropnet_tf.models import dropnet, foresight, layerprune  # noqa: E402 (the submodules, already imported above)

# Each paper's module lists its own public names once; this package exports their union.
__all__ = list(dict.fromkeys(["LayerFactory", *dropnet.__all__, *foresight.__all__, *layerprune.__all__]))
