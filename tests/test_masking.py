"""Tests of dropnet_tf.core.masking: add_masks placement and equivalence, errors, get/set_masks."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras, tf
from graph_helpers import consumers, producers
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import add_masks, get_masks, mask_layers, require_mask_layers, set_masks

pytestmark = pytest.mark.both_keras


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def random_input(model, batch: int = 3, seed: int = 0) -> np.ndarray:
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def randomise_batchnorm(model, seed: int = 0) -> None:
    """Non-trivial BN statistics, so a BN after a mask would visibly revive masked units."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                    rng.uniform(0.2, 1.0, beta.shape).astype(np.float32),  # positive shift
                    rng.normal(size=mean.shape).astype(np.float32),
                    rng.uniform(0.5, 2.0, var.shape).astype(np.float32),
                ]
            )


# --------------------------------------------------------------------------------------------
# Models, each with the expected {mask name: layer it reads}
# --------------------------------------------------------------------------------------------


def sequential_mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, name="d1"),
            keras.layers.ReLU(name="relu1"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    return model, {"d1_mask": "relu1"}


def functional_mlp():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation="relu", name="h1")(inputs)
    x = keras.layers.Dense(7, activation="tanh", name="h2")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs), {"h1_mask": "h1", "h2_mask": "h2"}


def functional_cnn():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Activation("relu", name="act1")(x)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    model = keras.Model(inputs, outputs)
    randomise_batchnorm(model)
    return model, {"conv1_mask": "act1", "conv2_mask": "bn2"}


def sequential_cnn():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(4, 3, padding="same", name="conv1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.Activation("relu", name="act1"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(6, name="fc"),
            keras.layers.BatchNormalization(name="bn_fc"),
            keras.layers.ReLU(name="relu_fc"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    randomise_batchnorm(model)
    return model, {"conv1_mask": "act1", "fc_mask": "relu_fc"}


def branching():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6,))
    trunk = keras.layers.Dense(8, name="trunk")(inputs)
    trunk = keras.layers.ReLU(name="trunk_relu")(trunk)
    a = keras.layers.Dense(5, activation="relu", name="a")(trunk)
    b = keras.layers.Dense(4, activation="relu", name="b")(trunk)
    b = keras.layers.Dense(3, activation="relu", name="b2")(b)
    merged = keras.layers.Concatenate(name="cat")([a, b])
    outputs = keras.layers.Dense(2, name="out")(merged)
    return keras.Model(inputs, outputs), {
        "trunk_mask": "trunk_relu",
        "a_mask": "a",
        "b_mask": "b",
        "b2_mask": "b2",
    }


def residual():
    """A ResNet basic block with a projection shortcut."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    stem = keras.layers.Activation("relu", name="stem_relu")(x)
    y = keras.layers.Conv2D(6, 3, padding="same", name="c1")(stem)
    y = keras.layers.BatchNormalization(name="c1_bn")(y)
    y = keras.layers.ReLU(name="c1_relu")(y)
    y = keras.layers.Conv2D(6, 3, padding="same", name="c2")(y)
    y = keras.layers.BatchNormalization(name="c2_bn")(y)
    s = keras.layers.Conv2D(6, 1, name="proj")(stem)
    s = keras.layers.BatchNormalization(name="proj_bn")(s)
    z = keras.layers.Add(name="add")([y, s])
    z = keras.layers.ReLU(name="add_relu")(z)
    z = keras.layers.GlobalAveragePooling2D(name="gap")(z)
    outputs = keras.layers.Dense(3, name="out")(z)
    model = keras.Model(inputs, outputs)
    randomise_batchnorm(model)
    return model, {
        "stem_mask": "stem_relu",
        "c1_mask": "c1_relu",
        "c2_mask": "c2_bn",
        "proj_mask": "proj_bn",
    }


def identity_residual():
    """A ResNet block with an identity shortcut: the stem's mask feeds both the conv and the Add."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", name="c1")(x)
    y = keras.layers.BatchNormalization(name="c1_bn")(y)
    z = keras.layers.Add(name="add")([x, y])
    z = keras.layers.Activation("relu", name="add_relu")(z)
    z = keras.layers.Flatten(name="flat")(z)
    outputs = keras.layers.Dense(2, name="out")(z)
    model = keras.Model(inputs, outputs)
    randomise_batchnorm(model)
    return model, {"stem_mask": "stem", "c1_mask": "c1_bn"}


def self_concat():
    """One layer reads the same masked tensor twice: both references must go through the mask."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5, activation="relu", name="h")(inputs)
    both = keras.layers.Concatenate(name="cat")([h, h])
    outputs = keras.layers.Dense(2, name="out")(both)
    return keras.Model(inputs, outputs), {"h_mask": "h"}


MODELS = [
    sequential_mlp,
    functional_mlp,
    functional_cnn,
    sequential_cnn,
    branching,
    residual,
    identity_residual,
    self_concat,
]
IDS = [make.__name__ for make in MODELS]


# --------------------------------------------------------------------------------------------
# Placement and equivalence
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_add_masks_placement(make):
    model, expected = make()
    masked = add_masks(model)
    masks = mask_layers(masked)
    assert {layer.name for layer in masks} == set(expected)
    assert isinstance(masked, type(model))
    for layer in masks:
        assert isinstance(layer, MaskLayer)
        source = expected[layer.name]
        assert producers(layer) == [source], f"{layer.name} reads {producers(layer)}, expected {source}"
        # The mask is the only reader of the post-activation value it masks.
        assert consumers(masked, source) == [layer.name]
        assert consumers(masked, layer.name), f"{layer.name} has no consumer"
        np.testing.assert_array_equal(layer.get_mask(), np.ones(layer.units, np.float32))
        assert layer.units == masked.get_layer(source).output.shape[-1]
    # The output layer, and anything not Dense/Conv2D, is never masked.
    output_layer = masked.layers[-1]
    assert not isinstance(output_layer, MaskLayer)
    assert output_layer.name == "out"
    for layer in masks:
        assert "out" not in producers(layer)
    # The original model is untouched.
    assert mask_layers(model) == []


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_add_masks_all_ones_is_same_function(make):
    model, _ = make()
    masked = add_masks(model)
    x = random_input(model, batch=4, seed=7)
    np.testing.assert_allclose(
        np.asarray(masked(x, training=False)), np.asarray(model(x, training=False)), atol=1e-6, rtol=0
    )
    # Weights were copied, not just re-initialised identically.
    for layer in model.layers:
        for original, copied in zip(layer.get_weights(), masked.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(original, copied)


@pytest.mark.parametrize("make", MODELS, ids=IDS)
def test_masked_unit_is_zero_at_every_consumer(make):
    model, expected = make()
    masked = add_masks(model)
    names = sorted(expected)
    # Mask unit 1 of every mask layer.
    set_masks(masked, {name: np.eye(masked.get_layer(name).units, dtype=np.float32)[1] == 0 for name in names})
    # Every input of every consumer of every mask layer, in one sub-model.
    taps, where = [], []
    for name in names:
        for user in consumers(masked, name):
            inputs = masked.get_layer(user).input
            inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            for tensor in inputs:
                if tensor._keras_history[0].name == name:
                    taps.append(tensor)
                    where.append((name, user))
    assert {name for name, _ in where} == set(names)
    probe = keras.Model(masked.inputs[0], taps)
    values = probe(random_input(model, batch=3, seed=8), training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    for (name, user), value in zip(where, values):
        value = np.asarray(value)
        assert np.all(value[..., 1] == 0.0), f"unit 1 of {name} is not zero at {user}"
        assert np.any(value[..., 0] != 0.0) or np.any(value[..., 2:] != 0.0)
    # And in the unmasked model the corresponding post-activation value is not zero, so the
    # mask did the zeroing (for BN-ending chains a pre-BN mask would leave the shift).
    sources = keras.Model(model.inputs[0], [model.get_layer(expected[name]).output for name in names])
    raw = sources(random_input(model, batch=3, seed=8), training=False)
    raw = raw if isinstance(raw, (list, tuple)) else [raw]
    assert any(np.any(np.asarray(r)[..., 1] != 0.0) for r in raw)


def test_cnn_mask_after_activation_not_before_batchnorm():
    model, _ = functional_cnn()
    masked = add_masks(model)
    assert producers(masked.get_layer("bn1")) == ["conv1"]
    assert producers(masked.get_layer("act1")) == ["bn1"]
    assert producers(masked.get_layer("conv1_mask")) == ["act1"]
    assert producers(masked.get_layer("conv2")) == ["conv1_mask"]
    # With filter 0 masked, the activation fed to conv2 is zero there even though BN's beta > 0.
    masked.get_layer("conv1_mask").set_mask([0.0, 1.0, 1.0, 1.0])
    probe = keras.Model(masked.inputs[0], [masked.get_layer("act1").output, masked.get_layer("conv1_mask").output])
    act, out = (np.asarray(v) for v in probe(random_input(model), training=False))
    assert np.any(act[..., 0] != 0.0)
    assert np.all(out[..., 0] == 0.0)


def test_residual_add_is_not_masked():
    model, _ = residual()
    masked = add_masks(model)
    assert sorted(producers(masked.get_layer("add"))) == ["c2_mask", "proj_mask"]
    assert producers(masked.get_layer("add_relu")) == ["add"]
    assert producers(masked.get_layer("gap")) == ["add_relu"]
    assert producers(masked.get_layer("c1")) == ["stem_mask"]
    assert producers(masked.get_layer("proj")) == ["stem_mask"]
    for layer in mask_layers(masked):
        assert producers(layer)[0] not in {"add", "add_relu", "gap"}


def test_identity_shortcut_reads_the_mask():
    model, _ = identity_residual()
    masked = add_masks(model)
    assert sorted(consumers(masked, "stem_mask")) == ["add", "c1"]
    assert sorted(producers(masked.get_layer("add"))) == ["c1_mask", "stem_mask"]


# --------------------------------------------------------------------------------------------
# exclude= and layer_types=
# --------------------------------------------------------------------------------------------


def test_exclude():
    model, _ = functional_mlp()
    masked = add_masks(model, exclude=["h1"])
    assert [layer.name for layer in mask_layers(masked)] == ["h2_mask"]
    assert producers(masked.get_layer("h2")) == ["h1"]
    x = random_input(model)
    np.testing.assert_allclose(np.asarray(masked(x)), np.asarray(model(x)), atol=1e-6, rtol=0)


def test_exclude_unknown_name_raises():
    model, _ = functional_mlp()
    with pytest.raises(ValueError, match="nope"):
        add_masks(model, exclude=["nope"])


def test_layer_types_conv_only():
    model, _ = sequential_cnn()
    masked = add_masks(model, layer_types=(keras.layers.Conv2D,))
    assert [layer.name for layer in mask_layers(masked)] == ["conv1_mask"]
    x = random_input(model)
    np.testing.assert_allclose(np.asarray(masked(x)), np.asarray(model(x)), atol=1e-6, rtol=0)


def test_layer_types_dense_only():
    model, _ = residual()
    masked = add_masks(model, layer_types=[keras.layers.Dense])
    assert mask_layers(masked) == []  # the only Dense is the output layer
    model, _ = functional_cnn()
    masked = add_masks(model, layer_types=(keras.layers.Dense,))
    assert mask_layers(masked) == []
    model, _ = sequential_cnn()
    masked = add_masks(model, layer_types=(keras.layers.Dense,))
    assert [layer.name for layer in mask_layers(masked)] == ["fc_mask"]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(4, activation="relu")
        self.out = keras.layers.Dense(2)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_subclassed_model_raises_type_error():
    model = _Subclassed()
    model(np.zeros((1, 3), np.float32))
    assert model.built
    with pytest.raises(TypeError, match="subclassed"):
        add_masks(model)


def test_already_masked_model_raises():
    model, _ = functional_mlp()
    masked = add_masks(model)
    with pytest.raises(ValueError, match="already"):
        add_masks(masked)


def test_unbuilt_sequential_raises():
    model = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    assert not model.built
    with pytest.raises(ValueError, match="not built"):
        add_masks(model)


def test_require_mask_layers():
    model, _ = functional_mlp()
    with pytest.raises(ValueError, match="no MaskLayer"):
        require_mask_layers(model)
    assert [layer.name for layer in require_mask_layers(add_masks(model))] == ["h1_mask", "h2_mask"]


# --------------------------------------------------------------------------------------------
# get_masks / set_masks
# --------------------------------------------------------------------------------------------


@pytest.fixture
def masked_branching():
    model, _ = branching()
    return add_masks(model)


def test_get_set_masks_round_trip(masked_branching):
    model = masked_branching
    masks = get_masks(model)
    assert set(masks) == {"trunk_mask", "a_mask", "b_mask", "b2_mask"}
    for name, mask in masks.items():
        assert mask.dtype == np.float32
        np.testing.assert_array_equal(mask, np.ones(model.get_layer(name).units))
    rng = np.random.default_rng(0)
    new = {name: (rng.random(mask.shape) < 0.5).astype(np.float32) for name, mask in masks.items()}
    set_masks(model, new)
    got = get_masks(model)
    assert set(got) == set(new)
    for name in new:
        np.testing.assert_array_equal(got[name], new[name])
    # A subset only changes the named layers.
    set_masks(model, {"a_mask": np.ones(5)})
    got = get_masks(model)
    np.testing.assert_array_equal(got["a_mask"], np.ones(5))
    np.testing.assert_array_equal(got["trunk_mask"], new["trunk_mask"])
    # get_masks returns copies: editing them does not touch the model.
    got["a_mask"][:] = 0.0
    np.testing.assert_array_equal(get_masks(model)["a_mask"], np.ones(5))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"nope_mask": np.ones(3)}, "nope_mask"),
        ({"a_mask": np.ones(4)}, r"\(4,\)"),
        ({"a_mask": np.ones((5, 1))}, r"\(5, 1\)"),
        ({"a_mask": np.array([1, 0.5, 1, 1, 1])}, "0 and 1"),
        ({"a_mask": np.array([1, 2, 1, 1, 1])}, "0 and 1"),
    ],
    ids=["unknown-name", "short", "2d", "half", "two"],
)
def test_set_masks_invalid_is_atomic(masked_branching, bad, match):
    model = masked_branching
    before = get_masks(model)
    # A valid change listed first, then the bad entry: nothing may be assigned.
    request = {"trunk_mask": np.zeros(8), "b_mask": np.array([0, 1, 0, 1])}
    request.update(bad)
    with pytest.raises(ValueError, match=match):
        set_masks(model, request)
    after = get_masks(model)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_set_masks_on_plain_model_rejects_names():
    model, _ = functional_mlp()
    assert get_masks(model) == {}
    with pytest.raises(ValueError, match="h1_mask"):
        set_masks(model, {"h1_mask": np.ones(8)})


# --------------------------------------------------------------------------------------------
# Multi-output models
# --------------------------------------------------------------------------------------------


def two_head_model(as_dict: bool):
    keras.utils.set_random_seed(9)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="relu", name="h")(inputs)
    o1 = keras.layers.Dense(2, name="o1")(hidden)
    o2 = keras.layers.Dense(3, name="o2")(hidden)
    return keras.Model(inputs, {"o1": o1, "o2": o2} if as_dict else [o1, o2])


def _check_two_heads(model):
    masked = add_masks(model)
    assert [layer.name for layer in mask_layers(masked)] == ["h_mask"]
    assert sorted(consumers(masked, "h_mask")) == ["o1", "o2"]
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    for a, b in zip(tf.nest.flatten(model(x)), tf.nest.flatten(masked(x))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=0)


def test_add_masks_multi_output_list():
    _check_two_heads(two_head_model(as_dict=False))


def test_add_masks_multi_output_dict():
    _check_two_heads(two_head_model(as_dict=True))


@pytest.mark.both_keras
def test_add_masks_on_a_keras_applications_graph():
    """A real-world graph: MobileNetV2 (Conv→BN→ReLU6 chains, depthwise convs, residual Adds)."""
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=4)
    masked = add_masks(model)
    names = [layer.name for layer in masked.layers]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # DepthwiseConv2D is not a Conv2D: only the regular convolutions get masks
    assert len(mask_layers(masked)) == len([c for c in convs if not isinstance(c, keras.layers.DepthwiseConv2D)])
    # the mask comes after the conv's BN and ReLU6 ("Conv1" -> "bn_Conv1" -> "Conv1_relu")
    assert names.index("Conv1_mask") == names.index("Conv1_relu") + 1
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    # one batch: call the models (inference mode) rather than trace a predict function for each
    np.testing.assert_allclose(masked(x, training=False), model(x, training=False), atol=1e-6)
