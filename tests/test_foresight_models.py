"""Tests of dropnet_tf.models.foresight: parameter counts, layouts, masks, initialisers, seeds.

Run under Keras 3 with ``pytest tests/test_foresight_models.py`` and under tf-keras with
``TF_USE_LEGACY_KERAS=1 pytest -m both_keras tests/test_foresight_models.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import KERAS_MAJOR, keras
from dropnet_tf.core.masked_layers import MaskedGRU, MaskedLSTM, WeightMaskMixin
from dropnet_tf.models.foresight import (
    CIFAR_IMAGE,
    FORESIGHT_INPUTS,
    FORESIGHT_MODELS,
    MNIST_IMAGE,
    MNIST_ROWS,
    _canonical,
    alexnet_s,
    build_foresight_model,
    cifar_resnet,
    gru_s,
    lenet5_caffe,
    lenet_300_100,
    lstm_s,
    resnet56,
    thesis_cnn,
    vgg16,
    vgg_c,
    vgg_d,
    vgg_like,
    wrn,
    wrn_16_8,
)
from dropnet_tf.models.builders import INIT_ALIASES, INIT_OPTIONS, NORMAL_INIT_STDDEV, PyTorchDefaultUniform
from dropnet_tf.models import derive_layer_seed
from graph_helpers import producers

# Every named model (the generic `wrn` / `cifar_resnet` are covered by their named instances).
NAMED = [name for name in FORESIGHT_MODELS if name not in ("wrn", "cifar_resnet")]

_CACHE: dict[str, object] = {}


def model_of(name: str):
    """The masked model ``name`` at its default (paper) shape, built once per test module."""
    if name not in _CACHE:
        _CACHE[name] = build_foresight_model(name, seed=0)
    return _CACHE[name]


@pytest.fixture(scope="module", autouse=True)
def _free_models():
    yield
    _CACHE.clear()
    keras.backend.clear_session()


def n_trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def n_batchnorm(model) -> int:
    return sum(
        int(np.prod(w.shape))
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.trainable_weights
    )


def prunable_layers(model):
    kinds = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.LSTM, keras.layers.GRU)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def forward(model, batch: int = 2, training: bool = False) -> np.ndarray:
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    return np.asarray(model(x, training=training))


def kernel(model, layer: str) -> np.ndarray:
    return np.asarray(model.get_layer(layer).kernel)


# --------------------------------------------------------------------------------------------
# Parameter counts against the papers
# --------------------------------------------------------------------------------------------

# The counts the papers print.  SNIP (Table 2 / Table 1) counts weights and biases of conv,
# fc and recurrent layers but not BatchNorm's gamma/beta (its code sums the kernel and bias
# variables only); the thesis gives no counts, so VGG-16 and ResNet-56 are compared with the
# usual figures of the literature (14.7m for the CIFAR VGG-16 with one fc layer; He et al.'s
# 0.85M for ResNet-56).  WRN-16-8 is compared with 11.0m: SNIP's Table 2 prints 10.0m, but its
# own pruned count (548k at 95% sparsity, i.e. 10.96m) and Zagoruyko & Komodakis (11.0M) show
# that 10.0m is a typo (checked by test_wrn_16_8_count_matches_snips_pruned_count).
PAPER_COUNTS = {
    "lenet_300_100": 267e3,
    "lenet5_caffe": 431e3,
    "thesis_cnn": 431e3,
    "alexnet_s": 5.1e6,
    "alexnet_b": 8.5e6,
    "vgg_c": 10.5e6,
    "vgg_d": 15.2e6,
    "vgg_like": 15.0e6,
    "wrn_16_8": 11.0e6,
    "wrn_16_10": 17.1e6,
    "wrn_22_8": 17.2e6,
    "lstm_s": 137e3,
    "lstm_b": 535e3,
    "gru_s": 104e3,
    "gru_b": 404e3,
    "vgg16": 14.7e6,
    "resnet56": 0.85e6,
}

# Exact counts: (all trainable parameters = weights + biases + BatchNorm gamma/beta,
#                the same without BatchNorm gamma/beta = SNIP's way of counting).
EXACT_COUNTS = {
    "lenet_300_100": (266_610, 266_610),
    "lenet5_caffe": (431_080, 431_080),
    "thesis_cnn": (431_080, 431_080),
    "alexnet_s": (5_077_066, 5_070_218),
    "alexnet_b": (8_501_322, 8_490_378),
    "vgg_c": (10_537_034, 10_526_538),
    "vgg_d": (15_255_626, 15_245_130),
    "vgg_like": (14_991_946, 14_982_474),
    "wrn_16_8": (10_961_370, 10_954_170),
    "wrn_16_10": (17_116_634, 17_107_642),
    "wrn_22_8": (17_158_106, 17_147_322),
    "lstm_s": (136_586, 136_586),
    "lstm_b": (535_306, 535_306),
    "gru_s": (103_690, 103_690),
    "gru_b": (403_978, 403_978),
    "vgg16": (14_728_266, 14_719_818),
    "resnet56": (853_018, 848_954),
}


def test_every_named_model_has_a_paper_count():
    assert sorted(PAPER_COUNTS) == sorted(NAMED) == sorted(EXACT_COUNTS)


@pytest.mark.parametrize("name", NAMED)
def test_parameter_count_within_2_percent_of_the_paper(name):
    model = model_of(name)
    total = n_trainable(model)  # weights + biases + BatchNorm gamma/beta (masks are not trainable)
    without_bn = total - n_batchnorm(model)  # SNIP's way of counting
    assert (total, without_bn) == EXACT_COUNTS[name]
    for count in (total, without_bn):
        assert abs(count - PAPER_COUNTS[name]) <= 0.02 * PAPER_COUNTS[name], (name, count)


def test_wrn_16_8_count_matches_snips_pruned_count():
    # SNIP Table 2: WRN-16-8 at 95% sparsity keeps 548k parameters → 10.96m before pruning.
    assert abs(0.05 * n_trainable(model_of("wrn_16_8")) - 548e3) <= 0.005 * 548e3


@pytest.mark.both_keras
@pytest.mark.parametrize("name", ["lenet_300_100", "lenet5_caffe", "thesis_cnn", "lstm_s", "gru_s"])
def test_small_models_counts_under_both_kerases(name):
    for masked in (True, False):
        assert n_trainable(build_foresight_model(name, masked=masked)) == EXACT_COUNTS[name][0]


def test_gru_counts_need_reset_after_false_and_rnns_need_the_input_projection():
    # reset_after=True (Keras' default) would give 404,746 for GRU-b, i.e. 405k, not SNIP's 404k.
    layer = model_of("gru_b").get_layer("gru")
    assert layer.reset_after is False and tuple(layer.cell.bias.shape) == (3 * 256,)
    # Without the row projection the RNNs are ~40% smaller than SNIP's counts.
    for name, expected in (("lstm_s", 81_674), ("lstm_b", 294_410), ("gru_s", 61_578), ("gru_b", 221_450)):
        count = n_trainable(build_foresight_model(name, input_projection=False))
        assert count == expected and count < 0.65 * PAPER_COUNTS[name]


# --------------------------------------------------------------------------------------------
# Outputs, masks, registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMED)
def test_output_is_a_softmax_over_the_classes_and_prunable_layers_are_masked(name):
    model = model_of(name)
    assert tuple(model.inputs[0].shape[1:]) == FORESIGHT_INPUTS[name][0]
    out = forward(model)
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-4)
    last = model.layers[-1]
    assert last.name == "predictions" and last.units == 10
    assert last.activation is keras.activations.softmax
    layers = prunable_layers(model)
    assert layers and all(isinstance(layer, WeightMaskMixin) for layer in layers)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and isinstance(layer, WeightMaskMixin)
                   for layer in model.layers)


@pytest.mark.parametrize("name", NAMED)
def test_masked_false_gives_plain_layers_with_the_same_weights(name):
    plain = build_foresight_model(name, masked=False, seed=0)
    assert not any(isinstance(layer, WeightMaskMixin) for layer in plain.layers)
    masked = model_of(name)
    assert [layer.name for layer in plain.layers] == [layer.name for layer in masked.layers]
    assert [tuple(w.shape) for w in plain.trainable_weights] == [tuple(w.shape) for w in masked.trainable_weights]
    # Same seed, same initial weights, masked or not.
    for a, b in zip(plain.trainable_weights, masked.trainable_weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.both_keras
@pytest.mark.parametrize("name", ["lenet_300_100", "lenet5_caffe", "thesis_cnn"])
def test_lenets_masked_and_unmasked_under_both_kerases(name):
    masked = build_foresight_model(name, seed=1)
    plain = build_foresight_model(name, masked=False, seed=1)
    assert all(isinstance(layer, WeightMaskMixin) for layer in prunable_layers(masked))
    assert len(prunable_layers(masked)) == len(prunable_layers(plain)) == (3 if name == "lenet_300_100" else 4)
    assert not any(isinstance(layer, WeightMaskMixin) for layer in plain.layers)
    for model in (masked, plain):
        out = forward(model, batch=3)
        assert out.shape == (3, 10)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(forward(masked), forward(plain), rtol=1e-5, atol=1e-6)


@pytest.mark.both_keras
@pytest.mark.parametrize("name", ["lstm_s", "gru_s"])
def test_rnns_masked_and_unmasked_under_both_kerases(name):
    masked = build_foresight_model(name, seed=1)
    plain = build_foresight_model(name, masked=False, seed=1)
    cell = "lstm" if name.startswith("lstm") else "gru"
    assert isinstance(masked.get_layer(cell), MaskedLSTM if cell == "lstm" else MaskedGRU)
    assert not any(isinstance(layer, WeightMaskMixin) for layer in plain.layers)
    np.testing.assert_allclose(forward(masked), forward(plain), rtol=1e-5, atol=1e-6)


def test_other_class_counts_and_shapes():
    model = vgg_like(num_classes=100, seed=0)
    assert forward(model).shape == (2, 100)
    model = lenet_300_100(input_shape=(8, 8), num_classes=3)
    assert forward(model).shape == (2, 3)
    model = thesis_cnn(input_shape=CIFAR_IMAGE, num_classes=100)  # CIFAR-100 with the MNIST CNN
    assert model.get_layer("flatten").output.shape[1:] == (5 * 5 * 50,)


@pytest.mark.both_keras
def test_registry_names_aliases_and_default_inputs():
    assert set(FORESIGHT_INPUTS) == set(FORESIGHT_MODELS)
    for name in ("lenet_300_100", "lenet5_caffe", "thesis_cnn"):
        assert FORESIGHT_INPUTS[name] == (MNIST_IMAGE, 10)
    for name in ("lstm_s", "lstm_b", "gru_s", "gru_b"):
        assert FORESIGHT_INPUTS[name] == (MNIST_ROWS, 10)
    for name in ("alexnet_s", "vgg_c", "wrn_16_8", "vgg16", "resnet56"):
        assert FORESIGHT_INPUTS[name] == (CIFAR_IMAGE, 10)
    assert build_foresight_model("LeNet-300-100").name == "lenet_300_100"
    assert build_foresight_model("lenet5", name="caffe").name == "caffe"
    assert FORESIGHT_MODELS["thesis_cnn"] is thesis_cnn


@pytest.mark.both_keras
def test_registry_aliases_of_big_models():
    # The papers' spellings resolve to the registered builders (checked without building them).
    for spelling, name in (("WRN-16-8", "wrn_16_8"), ("VGG-like", "vgg_like"), ("ResNet-56", "resnet56"),
                           ("VGG-16", "vgg16"), ("AlexNet-s", "alexnet_s"), ("LSTM-b", "lstm_b")):
        assert _canonical(spelling) == name and name in FORESIGHT_MODELS
    assert build_foresight_model("wrn", depth=10, width=1).name == "wrn_10_1"


# --------------------------------------------------------------------------------------------
# Architecture details the papers fix
# --------------------------------------------------------------------------------------------


def test_alexnet_is_five_stride_2_same_convs_down_to_256_features():
    model = model_of("alexnet_s")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.kernel_size for c in convs] == [(11, 11), (5, 5), (3, 3), (3, 3), (3, 3)]
    assert [c.filters for c in convs] == [96, 256, 384, 384, 256]
    assert all(c.strides == (2, 2) and c.padding == "same" and c.use_bias for c in convs)
    assert model.get_layer("flatten").output.shape[1:] == (256,)
    assert [model.get_layer(n).units for n in ("fc1", "fc2")] == [1024, 1024]
    assert [model_of("alexnet_b").get_layer(n).units for n in ("fc1", "fc2")] == [2048, 2048]
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]) == 7
    assert producers(model.get_layer("conv2")) == ["conv1_relu"]
    assert producers(model.get_layer("conv1_relu")) == ["conv1_bn"]
    # Tiny-ImageNet (SNIP Table 5): stride 4 in conv1 on 64x64 keeps 256 features and the count.
    tiny = alexnet_s(input_shape=(64, 64, 3), num_classes=200, first_stride=4)
    assert tiny.get_layer("flatten").output.shape[1:] == (256,)
    assert tiny.get_layer("conv1").strides == (4, 4)


def test_vgg_kernel_sizes_and_fc_layers():
    def sizes(model):
        return [layer.kernel_size[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]

    assert sizes(model_of("vgg_c")) == [3, 3, 3, 3, 3, 3, 1, 3, 3, 1, 3, 3, 1]
    assert sizes(model_of("vgg_d")) == [3] * 13 == sizes(model_of("vgg_like"))
    for name, fcs in (("vgg_c", 2), ("vgg_d", 2), ("vgg_like", 1)):
        model = model_of(name)
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        assert [d.units for d in dense] == [512] * fcs + [10]
        assert model.get_layer("block5_pool").output.shape[1:] == (1, 1, 512)
        assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
        assert producers(model.get_layer("fc1_relu")) == ["fc1_bn"]


def test_vgg_tiny_imagenet_stride():
    tiny = vgg_d(input_shape=(64, 64, 3), num_classes=200, first_stride=2)
    assert tiny.get_layer("block5_pool").output.shape[1:] == (1, 1, 512)
    assert n_trainable(tiny) == EXACT_COUNTS["vgg_d"][0] + 190 * 513


def test_wrn_pre_activation_blocks_and_projection_shortcuts():
    model = model_of("wrn_16_8")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 3 * 2 * 2 + 3  # stem, two convs per block, three 1x1 shortcuts
    assert not any(c.use_bias for c in convs)
    shortcuts = [c for c in convs if c.name.endswith("_shortcut")]
    assert [c.name for c in shortcuts] == ["block1_1_shortcut", "block2_1_shortcut", "block3_1_shortcut"]
    assert [c.filters for c in shortcuts] == [128, 256, 512]
    assert [c.strides for c in shortcuts] == [(1, 1), (2, 2), (2, 2)]
    # The projection and the residual both read the pre-activated block input.
    assert producers(model.get_layer("block2_1_shortcut")) == ["block2_1_relu1"]
    assert producers(model.get_layer("block2_1_conv1")) == ["block2_1_relu1"]
    assert producers(model.get_layer("block2_1_bn1")) == ["block1_2_add"]
    # Identity shortcut in the second block; the add is not followed by a ReLU.
    assert producers(model.get_layer("block2_2_add")) == ["block2_1_add", "block2_2_conv2"]
    assert producers(model.get_layer("final_bn")) == ["block3_2_add"]
    assert model.get_layer("final_relu").output.shape[1:] == (8, 8, 512)


def test_resnet56_option_a_shortcut_is_subsample_and_zero_pad():
    model = model_of("resnet56")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 55 and not any(c.use_bias for c in convs)
    assert [c.filters for c in convs[:1]] == [16] and convs[-1].filters == 64
    assert len(prunable_layers(model)) == 56  # 55 convs + the classifier: ResNet-56
    assert producers(model.get_layer("block2_1_add")) == ["block2_1_shortcut", "block2_1_bn2"]
    probe = keras.Model(model.input, [model.get_layer("block1_9_relu").output,
                                       model.get_layer("block2_1_shortcut").output])
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    block_input, shortcut = (np.asarray(t) for t in probe(x, training=False))
    assert shortcut.shape == (2, 16, 16, 32)
    np.testing.assert_array_equal(shortcut[..., 8:24], block_input[:, ::2, ::2, :])
    assert not shortcut[..., :8].any() and not shortcut[..., 24:].any()


def test_resnet56_option_b_and_depth():
    model = resnet56(shortcut="B")
    assert n_trainable(model) == 855_770
    assert model.get_layer("block3_1_shortcut").kernel_size == (1, 1)
    assert len(prunable_layers(model)) == 58
    small = cifar_resnet(8)
    assert small.name == "resnet8" and len([l for l in small.layers if isinstance(l, keras.layers.Add)]) == 3


@pytest.mark.both_keras
def test_lenet5_caffe_and_thesis_cnn_differ_only_in_conv_relus():
    caffe, thesis = lenet5_caffe(seed=2), thesis_cnn(seed=2, init="glorot_uniform")
    for model in (caffe, thesis):
        assert [model.get_layer(n).kernel_size for n in ("conv1", "conv2")] == [(5, 5), (5, 5)]
        assert [model.get_layer(n).filters for n in ("conv1", "conv2")] == [20, 50]
        assert model.get_layer("conv1").padding == "valid"
        assert model.get_layer("flatten").output.shape[1:] == (800,)
        assert model.get_layer("fc1").units == 500 and model.get_layer("fc1").activation is keras.activations.relu
    assert caffe.get_layer("conv1").activation is keras.activations.linear
    assert thesis.get_layer("conv2").activation is keras.activations.relu
    for a, b in zip(caffe.get_weights(), thesis.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.both_keras
def test_rnn_reads_rows_through_a_linear_projection():
    model = lstm_s(seed=0)
    projection = model.get_layer("input_projection")
    assert projection.units == 128 and projection.activation is keras.activations.linear
    assert producers(model.get_layer("lstm")) == ["input_projection"]
    assert model.get_layer("lstm").units == 128 and not model.get_layer("lstm").return_sequences
    image = gru_s(input_shape=(28, 28, 1))  # an MNIST image shape is read row by row
    assert image.get_layer("rows").output.shape[1:] == (28, 28)
    assert n_trainable(image) == EXACT_COUNTS["gru_s"][0]


def test_vgg16_and_vgg_variants_layouts():
    model = model_of("vgg16")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.use_bias for c in convs)
    assert model.get_layer("conv13_relu").output.shape[1:] == (2, 2, 512)
    assert producers(model.get_layer("predictions")) == ["avg_pool"]
    assert isinstance(model.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)
    bn = model.get_layer("conv1_bn")
    assert bn.momentum == pytest.approx(0.9) and bn.epsilon == pytest.approx(1e-5)  # PyTorch's
    assert model_of("vgg_c").get_layer("block1_conv1_bn").momentum == pytest.approx(0.99)  # TF 1's


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
def test_pytorch_default_kernels_and_biases():
    model = lenet_300_100(init="pytorch_default", seed=3)
    for layer, fan_in in (("fc1", 784), ("fc2", 300), ("predictions", 100)):
        bound = 1 / np.sqrt(fan_in)
        w = kernel(model, layer)
        b = np.asarray(model.get_layer(layer).bias)
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(w).max() > 0.99 * bound  # the whole interval is used
        assert b.std() > 0.3 * bound  # PyTorch biases are not zero
    w = kernel(model, "fc1")
    assert w.var() == pytest.approx((1 / 784) / 3, rel=0.03)
    assert abs(w.mean()) < 0.01 / np.sqrt(784)

    conv = thesis_cnn(seed=3)  # pytorch_default is the thesis' init, and thesis_cnn's default
    w = kernel(conv, "conv2")  # (5, 5, 20, 50): fan_in = 5 * 5 * 20
    bound = 1 / np.sqrt(500)
    assert np.abs(w).max() <= bound and w.var() == pytest.approx(bound**2 / 3, rel=0.05)
    assert np.abs(np.asarray(conv.get_layer("conv2").bias)).max() <= bound
    assert np.abs(kernel(conv, "conv1")).max() > 0.99 / 5  # fan_in 25 → bound 0.2


@pytest.mark.both_keras
def test_pytorch_default_recurrent_layers_follow_torch_rnn():
    model = lstm_s(init="pytorch_default", seed=4, input_projection=False)
    cell = model.get_layer("lstm").cell
    bound = 1 / np.sqrt(128)  # torch.nn.LSTM: every weight and bias U(±1/sqrt(hidden_size))
    for weight in (cell.kernel, cell.recurrent_kernel, cell.bias):
        values = np.asarray(weight)
        assert np.abs(values).max() <= bound and values.var() == pytest.approx(bound**2 / 3, rel=0.1)
    assert tuple(cell.kernel.shape) == (28, 512)
    assert model.get_layer("lstm").unit_forget_bias is False
    # Keras' defaults: orthogonal recurrent kernel, forget-gate bias one.
    default = lstm_s(init="keras_default", seed=4)
    cell = default.get_layer("lstm").cell
    r = np.asarray(cell.recurrent_kernel)  # (128, 512): orthonormal rows
    np.testing.assert_allclose(r @ r.T, np.eye(128), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(cell.bias)[128:256], 1.0)


@pytest.mark.both_keras
@pytest.mark.parametrize("init", ["glorot_uniform", "vs_x"])
def test_glorot(init):
    model = lenet_300_100(init=init, seed=5)
    w = kernel(model, "fc1")
    limit = np.sqrt(6 / (784 + 300))
    assert np.abs(w).max() <= limit
    assert w.var() == pytest.approx(2 / (784 + 300), rel=0.03)
    assert not np.asarray(model.get_layer("fc1").bias).any()  # zero biases


@pytest.mark.both_keras
@pytest.mark.parametrize("init", ["he_normal", "vs_h"])
def test_he_normal(init):
    model = lenet_300_100(init=init, seed=6)
    w = kernel(model, "fc1")
    assert w.var() == pytest.approx(2 / 784, rel=0.03)
    # Keras' He normal is truncated at two (pre-truncation) standard deviations.
    assert np.abs(w).max() <= 2 * np.sqrt(2 / 784) / 0.87962566 + 1e-6
    conv = lenet5_caffe(init=init, seed=6)
    assert kernel(conv, "conv2").var() == pytest.approx(2 / 500, rel=0.05)


@pytest.mark.both_keras
def test_random_and_truncated_normal_have_fixed_unit_scale():
    assert NORMAL_INIT_STDDEV == 1.0
    rn = kernel(lenet_300_100(init="rn", seed=7), "fc1")
    assert rn.std() == pytest.approx(1.0, rel=0.02) and abs(rn.mean()) < 0.01
    assert np.abs(rn).max() > 3.5  # not truncated
    tn = kernel(lenet_300_100(init="truncated_normal", seed=7), "fc1")
    assert np.abs(tn).max() <= 2.0 + 1e-6
    assert tn.std() == pytest.approx(0.8796, rel=0.02)  # std of N(0, 1) truncated at ±2
    # Fixed variance: the same scale whatever the fan-in (unlike VS-X / VS-H).
    assert kernel(lenet_300_100(init="rn", seed=7), "fc2").std() == pytest.approx(1.0, rel=0.03)


@pytest.mark.both_keras
def test_initializer_instance_is_copied_with_derived_seeds():
    init = keras.initializers.RandomNormal(stddev=0.01)
    a = lenet_300_100(init=init, seed=8)
    b = lenet_300_100(init=init, seed=8)
    w = kernel(a, "fc1")
    assert w.std() == pytest.approx(0.01, rel=0.02)
    np.testing.assert_array_equal(w, kernel(b, "fc1"))
    assert not np.array_equal(w[:100, :100], kernel(a, "fc2")[:100, :100])


@pytest.mark.both_keras
def test_every_init_option_builds_and_aliases_are_the_same_init():
    assert set(INIT_ALIASES.values()) <= set(INIT_OPTIONS)
    for init in INIT_OPTIONS:
        assert forward(lenet5_caffe(init=init, seed=9)).shape == (2, 10)
    for alias, full in INIT_ALIASES.items():
        np.testing.assert_array_equal(kernel(lenet_300_100(init=alias, seed=9), "fc2"),
                                      kernel(lenet_300_100(init=full, seed=9), "fc2"))
    assert forward(lenet_300_100(init="VS-H", seed=9)).shape == (2, 10)  # case and '-' tolerated


@pytest.mark.both_keras
def test_pytorch_default_uniform_initializer():
    assert PyTorchDefaultUniform.compute_fan_in((784, 300)) == 784  # Dense
    assert PyTorchDefaultUniform.compute_fan_in((3, 3, 64, 128)) == 576  # Conv2D
    assert PyTorchDefaultUniform.compute_fan_in((128, 512)) == 128  # recurrent kernel
    with pytest.raises(ValueError, match=r"\(10,\)"):
        PyTorchDefaultUniform()((10,))
    values = np.asarray(PyTorchDefaultUniform(fan_in=4, seed=1)((1000,)))
    assert np.abs(values).max() <= 0.5 and values.std() > 0.2
    init = PyTorchDefaultUniform(fan_in=9, seed=3)
    again = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(again, PyTorchDefaultUniform) and again.get_config() == {"fan_in": 9, "seed": 3}
    np.testing.assert_array_equal(np.asarray(init((5, 5))), np.asarray(again((5, 5))))
    for bad in (0, -3, 2.5, "9"):
        with pytest.raises(ValueError, match=repr(bad)):
            PyTorchDefaultUniform(fan_in=bad)


@pytest.mark.both_keras
def test_model_with_pytorch_init_saves_and_loads(tmp_path):
    model = thesis_cnn(seed=1)
    path = str(tmp_path / "thesis_cnn.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(forward(model), forward(loaded), rtol=1e-6)
    assert isinstance(loaded.get_layer("conv1"), WeightMaskMixin)


# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
@pytest.mark.parametrize("init", INIT_OPTIONS)
def test_seeds_are_reproducible_and_distinct(init):
    a, b, c = (lenet5_caffe(init=init, seed=s) for s in (11, 11, 12))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(kernel(a, "fc1"), kernel(c, "fc1"))


@pytest.mark.both_keras
def test_each_weight_gets_its_own_derived_seed():
    model = lenet_300_100(seed=13)
    expected = keras.initializers.GlorotUniform(seed=derive_layer_seed(13, 1))((784, 300))
    np.testing.assert_array_equal(kernel(model, "fc1"), np.asarray(expected))
    lstm = lstm_s(seed=13)  # kernel and recurrent kernel have the same shape, not the same values
    cell = lstm.get_layer("lstm").cell
    assert not np.allclose(np.asarray(cell.kernel), np.asarray(cell.recurrent_kernel))
    unseeded = [kernel(lenet_300_100(), "fc1") for _ in range(2)]
    assert not np.array_equal(*unseeded)


# --------------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------------

# Each fragment names the argument and the rejected value in context: a bare "0" or "3"
# would also match an error about another argument, or Keras' own error from a layer
# built with the bad value (e.g. Dense(0) when num_classes goes unchecked).
BAD_ARGUMENTS = [
    (lenet_300_100, dict(init="xavier"), r"Unknown init 'xavier'"),
    (lenet_300_100, dict(init=3), r"^init must be .*, got 3\.$"),
    (lenet_300_100, dict(seed=-1), r"^seed must be .*, got -1\.$"),
    (lenet_300_100, dict(seed=1.5), r"^seed must be .*, got 1\.5\.$"),
    (lenet_300_100, dict(masked="yes"), r"^masked must be .*, got 'yes'\.$"),
    (lenet_300_100, dict(num_classes=1), r"^num_classes must be .*, got 1\.$"),
    (lenet_300_100, dict(input_shape=(28, 0)), r"^input_shape must be .*, got \(28, 0\)\.$"),
    (lenet5_caffe, dict(input_shape=(12, 12, 1)), r"^input_shape \(12, 12, 1\) is too small .* at least 16"),
    (lenet5_caffe, dict(input_shape=(784,)), r"^input_shape must be \(height, width, channels\), got \(784,\)\.$"),
    (lenet5_caffe, dict(conv_activation="tanh"), r"^conv_activation must be .*, got 'tanh'\.$"),
    (lstm_s, dict(input_shape=(784,)), r"^input_shape must be \(time steps, features\).*; got \(784,\)\.$"),
    (lstm_s, dict(input_projection="no"), r"^input_projection must be .*, got 'no'\.$"),
    (alexnet_s, dict(first_stride=0), r"^first_stride must be .*, got 0\.$"),
    (wrn, dict(depth=15), r"^depth must be an integer 6n \+ 4 .*, got 15\.$"),
    (wrn, dict(width=0), r"^width must be .*, got 0\.$"),
    (cifar_resnet, dict(depth=55), r"^depth must be an integer 6n \+ 2 .*, got 55\.$"),
    (resnet56, dict(shortcut="C"), r"^shortcut must be .*, got 'C'\.$"),
    (vgg_c, dict(input_shape=(16, 16, 3)), r"^input_shape \(16, 16, 3\) is too small .* at least 32"),
    (vgg16, dict(input_shape=(8, 8, 3)), r"^input_shape \(8, 8, 3\) is too small .* at least 16"),
    (wrn_16_8, dict(num_classes=0), r"^num_classes must be .*, got 0\.$"),
]


@pytest.mark.both_keras
@pytest.mark.parametrize("builder,kwargs,fragment", BAD_ARGUMENTS,
                         ids=[f"{b.__name__}-{next(iter(k))}" for b, k, _ in BAD_ARGUMENTS])
def test_bad_arguments_raise_errors_naming_the_value(builder, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        builder(**kwargs)


@pytest.mark.both_keras
def test_unknown_model_name():
    with pytest.raises(ValueError, match="'resnet57'.*lenet_300_100"):
        build_foresight_model("resnet57")


# --------------------------------------------------------------------------------------------
# tensorflow-model-optimization (tf-keras only)
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
@pytest.mark.parametrize("name", ["lenet_300_100", "lenet5_caffe", "lstm_s"])
def test_unmasked_models_are_accepted_by_tfmot(name):
    model = build_foresight_model(name, masked=False, seed=0)
    if KERAS_MAJOR >= 3:
        # TFMOT cannot run under Keras 3 (the tf-keras pass runs it); here check that the
        # unmasked model only holds the plain layer classes TFMOT knows how to wrap.
        plain = {"InputLayer", "Dense", "Conv2D", "LSTM", "GRU", "MaxPooling2D", "Flatten", "Activation",
                 "BatchNormalization", "ReLU", "Reshape", "Permute", "TimeDistributed"}
        assert {type(layer).__name__ for layer in model.layers} <= plain
        return
    import tensorflow_model_optimization as tfmot

    pruned = tfmot.sparsity.keras.prune_low_magnitude(model)
    assert forward(pruned).shape == (2, 10)


@pytest.mark.both_keras
def test_tf1_variance_scaling_is_snip_codes_lecun_truncated_normal():
    """Issue 24: SNIP's public code initialises with TF 1's variance_scaling_initializer() defaults:
    scale 1, fan_in, a normal truncated at 2 sigma with sigma = sqrt(1/fan_in)/0.8796 (so that
    the truncated values keep variance 1/fan_in).  Glorot uniform (std sqrt(2/(784+300)) =
    0.043) and He normal (0.0505) would fail the std; an untruncated normal the bound."""
    model = lenet_300_100(init="tf1_variance_scaling", seed=21)
    for name, fan_in in (("fc1", 784), ("fc2", 300)):
        w = kernel(model, name)
        target = np.sqrt(1.0 / fan_in)
        assert w.std() == pytest.approx(target, rel=0.015)
        assert abs(w.mean()) < 0.01 * target
        sigma = target / 0.87962566103423978
        assert np.abs(w).max() <= 2 * sigma * (1 + 1e-6)
        assert np.abs(w).max() > 1.9 * sigma  # reaches the bound: not a narrower distribution
        assert np.all(model.get_layer(name).bias.numpy() == 0)  # biases start at zero, as in SNIP's code
    conv = lenet5_caffe(init="tf1_vs", seed=21).get_layer("conv1").kernel.numpy()
    assert conv.std() == pytest.approx(np.sqrt(1 / 25), rel=0.1)  # fan-in of a 5x5x1 kernel
