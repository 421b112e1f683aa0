"""Tests of dropnet_tf.models: architectures, mask placement, seeding and validation."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from graph_helpers import consumers, producers
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.models import (
    MODELS,
    VGG19_BLOCKS,
    build_model,
    derive_layer_seed,
    model_a,
    model_b,
    model_c,
    resnet18,
    vgg19,
)

# Small configurations of every builder, for tests that do not depend on the paper's sizes.
SMALL = {
    "model_a": dict(widths=(6, 5), input_shape=(4, 4, 1), num_classes=3),
    "model_b": dict(widths=(4, 5), input_shape=(8, 8, 1), num_classes=3),
    "model_c": dict(widths=(3, 4, 5), dense_units=7, input_shape=(8, 8, 3), num_classes=3),
    "resnet18": dict(widths=(4, 5, 6, 7), input_shape=(16, 16, 3), num_classes=3),
    "vgg19": dict(blocks=((3, 3), (4, 4), (5, 5, 5, 5), (6, 6, 6, 6), (6, 6, 6, 6)), dense_units=7,
                  input_shape=(32, 32, 3), num_classes=3),
}


def masks_of(model) -> list[MaskLayer]:
    return [layer for layer in model.layers if isinstance(layer, MaskLayer)]


def forward(model, batch: int = 2, seed: int = 0) -> np.ndarray:
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return np.asarray(model(x, training=False))


# --------------------------------------------------------------------------------------------
# Output and mask layout of the paper's configurations
# --------------------------------------------------------------------------------------------

PAPER = [
    ("model_a", dict(), 10),
    ("model_b", dict(), 10),
    ("model_c", dict(), 10),
    ("resnet18", dict(), 10),
    ("vgg19", dict(), 10),
    ("model_a", dict(widths=(20, 40), input_shape=(64,), num_classes=10), 10),
]


@pytest.mark.both_keras
@pytest.mark.parametrize("name,kwargs,classes", PAPER, ids=[p[0] + str(i) for i, p in enumerate(PAPER)])
def test_output_is_a_softmax_over_num_classes(name, kwargs, classes):
    model = build_model(name, seed=3, **kwargs)
    out = forward(model)
    assert out.shape == (2, classes)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(out >= 0)
    last = model.get_layer("predictions")
    assert model.layers[-1] is last
    assert isinstance(last, keras.layers.Dense) and last.units == classes
    assert last.activation is keras.activations.softmax


@pytest.mark.both_keras
def test_model_a_layers_and_masks():
    model = model_a()
    assert [layer.name for layer in model.layers] == [
        "input", "flatten", "dense_1", "dense_1_mask", "dense_2", "dense_2_mask", "predictions",
    ]
    assert [m.units for m in masks_of(model)] == [40, 40]
    assert [m.name for m in masks_of(model_a((20, 40, 30)))] == ["dense_1_mask", "dense_2_mask", "dense_3_mask"]
    assert [m.units for m in masks_of(model_a((20, 40, 30)))] == [20, 40, 30]
    assert model.get_layer("dense_1").activation is keras.activations.relu
    assert producers(model.get_layer("dense_2")) == ["dense_1_mask"]
    assert producers(model.get_layer("predictions")) == ["dense_2_mask"]


@pytest.mark.both_keras
def test_model_b_mask_sits_between_conv_and_pool():
    model = model_b()
    assert [layer.name for layer in model.layers] == [
        "input", "conv_1", "conv_1_mask", "pool_1", "conv_2", "conv_2_mask", "pool_2", "flatten", "predictions",
    ]
    assert [m.units for m in masks_of(model)] == [64, 64]
    assert model.get_layer("pool_2").output.shape[1:] == (7, 7, 64)
    assert producers(model.get_layer("pool_1")) == ["conv_1_mask"]
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers[:-1])
    conv = model.get_layer("conv_1")
    assert conv.kernel_size == (3, 3) and conv.padding == "same" and conv.activation is keras.activations.relu


@pytest.mark.both_keras
def test_model_c_pools_after_every_conv_and_leaves_dense_unmasked():
    model = model_c()
    assert [m.name for m in masks_of(model)] == ["conv_1_mask", "conv_2_mask", "conv_3_mask", "conv_4_mask"]
    assert [m.units for m in masks_of(model)] == [64, 64, 128, 128]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [tuple(p.output.shape[1:3]) for p in pools] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert [producers(p) for p in pools] == [[f"conv_{i}_mask"] for i in range(1, 5)]
    dense = model.get_layer("dense_1")
    assert dense.units == 256 and dense.activation is keras.activations.relu
    assert consumers(model, "dense_1") == ["predictions"]

    masked_dense = model_c(widths=(4, 4), dense_units=9, input_shape=(8, 8, 3), mask_dense=True)
    assert [m.name for m in masks_of(masked_dense)] == ["conv_1_mask", "conv_2_mask", "dense_1_mask"]
    assert masks_of(masked_dense)[-1].units == 9


RESNET_MASKS = ["stem_conv_mask"] + [
    f"block{s}_{b}_{part}_mask"
    for s in range(1, 5)
    for b in (1, 2)
    for part in ((["shortcut"] if s > 1 and b == 1 else []) + ["conv_a", "conv_b"])
]


@pytest.mark.both_keras
def test_resnet18_has_20_masked_convs_with_4800_filters():
    model = resnet18()
    masks = masks_of(model)
    assert len(masks) == 20 and len(RESNET_MASKS) == 20
    assert sorted(m.name for m in masks) == sorted(RESNET_MASKS)
    assert sum(m.units for m in masks) == 4800
    for mask in masks:  # every mask sits directly on a 3x3 relu conv of the same width
        (conv_name,) = producers(mask)
        assert mask.name == f"{conv_name}_mask"
        conv = model.get_layer(conv_name)
        assert isinstance(conv, keras.layers.Conv2D) and conv.kernel_size == (3, 3)
        assert conv.activation is keras.activations.relu and conv.filters == mask.units
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 20
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    pools = [layer.name for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == ["stem_pool", "stage1_pool", "stage2_pool", "stage3_pool"]
    assert producers(model.get_layer("avg_pool")) == ["block4_2_add"]
    assert model.get_layer("block4_2_add").output.shape[1:] == (2, 2, 512)  # 32/2^4


@pytest.mark.both_keras
def test_resnet18_residual_wiring():
    model = resnet18(widths=(4, 5, 6, 7), input_shape=(16, 16, 3))
    shortcut_of = {
        "block1_1": "stem_pool",
        "block1_2": "block1_1_add",
        **{f"block{s}_1": f"block{s}_1_shortcut_mask" for s in (2, 3, 4)},
        **{f"block{s}_2": f"block{s}_1_add" for s in (2, 3, 4)},
    }
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 8
    for add in adds:
        prefix = add.name[: -len("_add")]
        assert producers(add) == [shortcut_of[prefix], f"{prefix}_conv_b_mask"]
        # No ReLU or mask after the addition: it feeds the next block (or pool) directly.
        assert not any(isinstance(model.get_layer(c), (MaskLayer, keras.layers.Activation))
                       for c in consumers(model, add.name))
    # The projection shortcut of stage 2 is a masked 3x3 conv on the (pooled) block input.
    shortcut = model.get_layer("block2_1_shortcut")
    assert isinstance(shortcut, keras.layers.Conv2D) and shortcut.filters == 5
    assert shortcut.kernel_size == (3, 3) and shortcut.activation is keras.activations.relu
    assert producers(shortcut) == ["stage1_pool"] == producers(model.get_layer("block2_1_conv_a"))
    assert consumers(model, "block2_1_shortcut") == ["block2_1_shortcut_mask"]
    assert producers(model.get_layer("block2_1_conv_b")) == ["block2_1_conv_a_mask"]
    assert producers(model.get_layer("stage1_pool")) == ["block1_2_add"]

    unmasked = resnet18(widths=(4, 5, 6, 7), input_shape=(16, 16, 3), masked=False)
    assert producers(unmasked.get_layer("block2_1_add")) == ["block2_1_shortcut", "block2_1_conv_b"]


@pytest.mark.both_keras
def test_vgg19_has_16_masked_convs_with_5504_filters_and_mask_after_batchnorm():
    model = vgg19()
    masks = masks_of(model)
    assert len(masks) == 16
    assert sum(m.units for m in masks) == 5504
    assert [m.units for m in masks] == [w for block in VGG19_BLOCKS for w in block]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 5
    for k, bn in enumerate(bns, start=1):
        last = len(VGG19_BLOCKS[k - 1])
        assert producers(bn) == [f"block{k}_conv{last}"]
        assert consumers(model, bn.name) == [f"block{k}_conv{last}_mask"]
        index = model.layers.index(bn)
        assert isinstance(model.layers[index + 1], MaskLayer)
        assert producers(model.get_layer(f"block{k}_pool")) == [f"block{k}_conv{last}_mask"]
    for mask in masks:
        (source,) = producers(mask)
        assert source == mask.name[: -len("_mask")] or source.endswith("_bn")
    assert model.get_layer("dense_1").units == 256
    assert consumers(model, "dense_1") == ["predictions"]
    assert model.get_layer("block5_pool").output.shape[1:] == (1, 1, 512)

    tiny = vgg19(input_shape=(64, 64, 3), num_classes=200, dense_units=1024)
    assert tiny.output_shape == (None, 200)
    assert tiny.get_layer("dense_1").units == 1024
    assert [m.name for m in masks_of(vgg19(**SMALL["vgg19"], mask_dense=True))][-1] == "dense_1_mask"


# --------------------------------------------------------------------------------------------
# masked=False, seeds, masks at work
# --------------------------------------------------------------------------------------------


def trainable_count(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.both_keras
@pytest.mark.parametrize("name", sorted(SMALL))
def test_unmasked_model_is_the_same_model_without_masks(name):
    masked = build_model(name, seed=5, **SMALL[name])
    plain = build_model(name, seed=5, masked=False, **SMALL[name])
    assert masks_of(masked) and not masks_of(plain)
    assert trainable_count(plain) == trainable_count(masked) > 0
    assert [layer.name for layer in plain.layers] == [
        layer.name for layer in masked.layers if not isinstance(layer, MaskLayer)
    ]
    # Mask layers take no seed index, so the same seed gives the same weights and outputs.
    np.testing.assert_allclose(forward(plain), forward(masked), rtol=1e-5, atol=1e-6)


def kernels(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.both_keras
@pytest.mark.parametrize("name", sorted(SMALL))
def test_seed_makes_initial_weights_reproducible(name):
    first = kernels(build_model(name, seed=11, **SMALL[name]))
    again = kernels(build_model(name, seed=11, **SMALL[name]))
    other = kernels(build_model(name, seed=12, **SMALL[name]))
    assert len(first) == len(again) == len(other)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # Every randomly initialised kernel differs with another seed.
    differing = [not np.array_equal(a, c) for a, c in zip(first, other) if a.ndim >= 2]
    assert differing and all(differing)


@pytest.mark.both_keras
def test_seeded_layers_get_distinct_streams_and_unseeded_builds_differ():
    model = model_a((8, 8, 8), input_shape=(8,), seed=0)
    k2, k3 = model.get_layer("dense_2").kernel, model.get_layer("dense_3").kernel
    assert not np.array_equal(np.asarray(k2), np.asarray(k3))
    seeds = {derive_layer_seed(s, i) for s in range(5) for i in range(1, 40)}
    assert len(seeds) == 5 * 39 and all(0 <= v < 2**31 and isinstance(v, int) for v in seeds)
    assert derive_layer_seed(10**12, 3) == derive_layer_seed(10**12, 3)  # large seeds are fine

    unseeded = [np.asarray(model_a((8,), input_shape=(8,)).get_layer("dense_1").kernel) for _ in range(2)]
    assert not np.array_equal(*unseeded)
    default = model_a((8,), input_shape=(8,))
    dense = default.get_layer("dense_1")
    assert type(dense.kernel_initializer).__name__ == "GlorotUniform"
    assert not np.any(np.asarray(dense.bias))


def zero_channel_check(model, mask_name: str, channel: int):
    mask = model.get_layer(mask_name)
    source = model.get_layer(producers(mask)[0])
    probe = keras.Model(model.inputs[0], [source.output, mask.output])
    shape = (2,) + tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(1).random(shape, dtype=np.float32)

    before_in, before_out = (np.asarray(t) for t in probe(x, training=False))
    assert np.any(before_out[..., channel] != 0)  # the test can fail: the channel was live
    new_mask = np.ones(mask.units, dtype=np.float32)
    new_mask[channel] = 0.0
    mask.set_mask(new_mask)
    after_in, after_out = (np.asarray(t) for t in probe(x, training=False))

    assert np.all(after_out[..., channel] == 0.0)
    keep = np.arange(mask.units) != channel
    np.testing.assert_array_equal(after_out[..., keep], before_out[..., keep])
    np.testing.assert_array_equal(after_in, before_in)  # the mask only acts on its output
    return before_out, after_out


@pytest.mark.both_keras
@pytest.mark.parametrize(
    "name,mask_name",
    [
        ("model_a", "dense_2_mask"),
        ("model_b", "conv_1_mask"),
        ("model_c", "conv_3_mask"),
        ("resnet18", "block2_1_shortcut_mask"),
        ("resnet18", "block3_2_conv_b_mask"),
    ],
)
def test_zero_mask_entry_zeroes_that_channel(name, mask_name):
    model = build_model(name, seed=2, **SMALL[name])
    # Make every relu pre-activation positive so the checked channel is live before masking.
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            layer.bias.assign(np.ones(layer.bias.shape, dtype=np.float32))
    zero_channel_check(model, mask_name, channel=1)


@pytest.mark.both_keras
def test_vgg_mask_after_batchnorm_zeroes_channel_despite_bn_shift():
    model = vgg19(seed=4, **SMALL["vgg19"])
    bn = model.get_layer("block2_bn")
    # A non-zero BN shift would leak through a mask placed before BN.
    bn.beta.assign(np.full(bn.beta.shape, 0.5, dtype=np.float32))
    zero_channel_check(model, "block2_conv2_mask", channel=2)


# --------------------------------------------------------------------------------------------
# Registry and argument validation
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
def test_registry_and_build_model():
    assert MODELS == {
        "model_a": model_a, "model_b": model_b, "model_c": model_c, "resnet18": resnet18, "vgg19": vgg19,
    }
    model = build_model("model_a", widths=(5,), input_shape=(64,), num_classes=4, name="tiny")
    assert model.name == "tiny" and [m.units for m in masks_of(model)] == [5]
    with pytest.raises(ValueError, match=r"'resnet50'.*model_a.*resnet18.*vgg19"):
        build_model("resnet50")


@pytest.mark.both_keras
@pytest.mark.parametrize(
    "builder,kwargs,fragment",
    [
        (model_a, dict(widths=()), "()"),
        (model_a, dict(widths=(40, 0)), "0"),
        (model_b, dict(widths=(64, -3)), "-3"),
        (model_c, dict(widths=(64, 2.5, 8, 8)), "2.5"),
        (model_a, dict(widths=40), "40"),
        (model_b, dict(widths=(8, 8, 8), input_shape=(4, 4, 1)), "(4, 4, 1)"),
        (model_b, dict(input_shape=(28, 28)), "(28, 28)"),
        (model_c, dict(input_shape=(8, 32, 3)), "(8, 32, 3)"),
        (resnet18, dict(input_shape=(8, 8, 3)), "(8, 8, 3)"),
        (resnet18, dict(widths=()), "()"),
        (resnet18, dict(blocks_per_stage=0), "0"),
        (vgg19, dict(input_shape=(16, 16, 3)), "(16, 16, 3)"),
        (vgg19, dict(blocks=((64,), ())), "()"),
        (vgg19, dict(dense_units=0), "dense_units"),
        (model_c, dict(dense_units=-1), "-1"),
        (model_a, dict(num_classes=1), "1"),
        (model_a, dict(input_shape=(0, 3)), "(0, 3)"),
        (model_a, dict(seed=-1), "-1"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_value(builder, kwargs, fragment):
    with pytest.raises(ValueError) as info:
        builder(**kwargs)
    assert fragment in str(info.value)


@pytest.mark.both_keras
def test_smallest_valid_inputs_build():
    assert model_b((2, 2), input_shape=(4, 4, 1)).output_shape == (None, 10)
    assert resnet18(widths=(2, 2, 2, 2), input_shape=(16, 16, 1)).output_shape == (None, 10)
    assert vgg19(blocks=((2,),) * 5, input_shape=(32, 32, 1), dense_units=2).output_shape == (None, 10)
