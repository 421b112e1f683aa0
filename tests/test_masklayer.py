"""Tests of dropnet_tf.core.layers.MaskLayer: maths, gradients, validation, weights, serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.layers import MaskLayer

pytestmark = pytest.mark.both_keras


def built_mask_layer(shape, name="m") -> MaskLayer:
    layer = MaskLayer(name=name)
    layer.build((None,) + tuple(shape[1:]))
    return layer


# --------------------------------------------------------------------------------------------
# Maths
# --------------------------------------------------------------------------------------------


def test_new_mask_is_all_ones_and_identity():
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    layer = built_mask_layer(x.shape)
    assert layer.units == 5
    np.testing.assert_array_equal(layer.get_mask(), np.ones(5, np.float32))
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


@pytest.mark.parametrize(
    "shape",
    [(4, 6), (2, 3, 5, 6)],
    ids=["2d-dense", "4d-conv"],
)
def test_output_is_input_times_mask_over_last_axis(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32) + 0.5  # no accidental zeros
    mask = np.array([1, 0, 1, 1, 0, 1], np.float32)
    layer = built_mask_layer(shape)
    layer.set_mask(mask)
    out = np.asarray(layer(x))
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, x * mask.reshape((1,) * (len(shape) - 1) + (6,)))
    # Masked channels are exactly zero at every position, unmasked ones untouched.
    for channel in (1, 4):
        assert np.all(out[..., channel] == 0.0)
    for channel in (0, 2, 3, 5):
        np.testing.assert_array_equal(out[..., channel], x[..., channel])


def test_mask_works_inside_a_model_on_conv_output():
    inputs = keras.Input((5, 5, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same", bias_initializer="ones", name="conv")(inputs)
    masked = MaskLayer(name="conv_mask")(conv)
    model = keras.Model(inputs, [conv, masked])
    model.get_layer("conv_mask").set_mask([1.0, 0.0, 1.0])
    x = np.random.default_rng(2).normal(size=(2, 5, 5, 2)).astype(np.float32)
    raw, out = (np.asarray(t) for t in model(x))
    assert np.all(raw[..., 1] != 0.0)
    assert np.all(out[..., 1] == 0.0)
    np.testing.assert_array_equal(out[..., [0, 2]], raw[..., [0, 2]])


def test_gradient_to_masked_unit_is_zero():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    masked = MaskLayer(name="hidden_mask")(hidden)
    outputs = keras.layers.Dense(2, name="out")(masked)
    model = keras.Model(inputs, outputs)
    model.get_layer("hidden_mask").set_mask([1.0, 1.0, 0.0, 1.0, 1.0])
    hidden_layer = model.get_layer("hidden")
    x = tf.constant(np.random.default_rng(3).normal(size=(8, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x, training=True)))
    kernel_grad, bias_grad = (np.asarray(g) for g in tape.gradient(loss, [hidden_layer.kernel, hidden_layer.bias]))
    assert kernel_grad.shape == (4, 5)
    np.testing.assert_array_equal(kernel_grad[:, 2], np.zeros(4, np.float32))
    assert bias_grad[2] == 0.0
    # The other units do learn.
    for unit in (0, 1, 3, 4):
        assert np.any(kernel_grad[:, unit] != 0.0)
    # The mask itself is not something gradients flow into.
    assert not any(w is model.get_layer("hidden_mask").mask for w in model.trainable_weights)


# --------------------------------------------------------------------------------------------
# set_mask validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.ones(3), np.ones(5), np.ones((1, 4)), np.ones((4, 1))], ids=str)
def test_set_mask_wrong_shape(bad):
    layer = built_mask_layer((2, 4))
    layer.set_mask([1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError) as info:
        layer.set_mask(bad)
    message = str(info.value)
    assert str(np.asarray(bad).shape) in message
    assert "(4,)" in message
    np.testing.assert_array_equal(layer.get_mask(), [1.0, 0.0, 1.0, 1.0])  # unchanged


@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, np.nan])
def test_set_mask_non_binary(value):
    layer = built_mask_layer((2, 4))
    with pytest.raises(ValueError) as info:
        layer.set_mask([1.0, value, 0.0, 1.0])
    message = str(info.value)
    assert "0 and 1" in message
    assert str(float(value)) in message
    np.testing.assert_array_equal(layer.get_mask(), np.ones(4, np.float32))  # unchanged


def test_set_mask_accepts_bool_int_and_list():
    layer = built_mask_layer((2, 3))
    layer.set_mask(np.array([True, False, True]))
    np.testing.assert_array_equal(layer.get_mask(), [1.0, 0.0, 1.0])
    layer.set_mask([0, 1, 1])
    np.testing.assert_array_equal(layer.get_mask(), [0.0, 1.0, 1.0])
    assert layer.get_mask().dtype == np.float32


def test_build_needs_known_last_axis():
    with pytest.raises(ValueError, match="last axis"):
        MaskLayer(name="m").build((None, None))


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def test_mask_is_a_non_trainable_weight():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    masked = MaskLayer(name="hidden_mask")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(masked))
    layer = model.get_layer("hidden_mask")
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 1
    assert len(layer.weights) == 1
    mask_var = layer.non_trainable_weights[0]
    assert "mask" in mask_var.name
    assert not mask_var.trainable
    assert all(w is not mask_var for w in model.trainable_weights)
    assert any(w is mask_var for w in model.non_trainable_weights)
    # 2 kernels + 2 biases trainable; the mask is the only non-trainable weight.
    assert len(model.trainable_weights) == 4
    assert len(model.non_trainable_weights) == 1


def test_training_does_not_change_mask():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    masked = MaskLayer(name="hidden_mask")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(masked))
    model.get_layer("hidden_mask").set_mask([0.0, 1.0, 1.0, 0.0])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(4)
    model.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 1)), epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.get_layer("hidden_mask").get_mask(), [0.0, 1.0, 1.0, 0.0])


# --------------------------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------------------------


def test_get_config_from_config_round_trip():
    layer = MaskLayer(name="my_mask", dtype="float32")
    config = layer.get_config()
    assert config["name"] == "my_mask"
    clone = MaskLayer.from_config(config)
    assert isinstance(clone, MaskLayer)
    assert clone.name == "my_mask"
    assert clone.get_config() == config
    # The mask values are weights, not config.
    assert "mask" not in config
    # Serialisation through Keras' registry finds the class.
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, MaskLayer)
    assert restored.name == "my_mask"


def sequential_masked():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, activation="relu", name="d1"),
            MaskLayer(name="d1_mask"),
            keras.layers.Dense(4, activation="relu", name="d2"),
            MaskLayer(name="d2_mask"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    return model, {"d1_mask": [1, 0, 1, 0, 1], "d2_mask": [0, 1, 1, 1]}


def functional_masked():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = MaskLayer(name="conv_mask")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, activation="relu", name="dense")(x)
    x = MaskLayer(name="dense_mask")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs), {"conv_mask": [0, 1, 1, 0], "dense_mask": [1, 1, 0, 1, 0]}


@pytest.mark.parametrize("make", [sequential_masked, functional_masked], ids=["sequential", "functional"])
def test_keras_save_load_round_trip(make, tmp_path):
    model, masks = make()
    for name, mask in masks.items():
        model.get_layer(name).set_mask(mask)
    shape = (4,) + tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    expected = np.asarray(model(x, training=False))

    path = tmp_path / "masked.keras"
    model.save(str(path))
    loaded = keras.models.load_model(str(path))

    loaded_masks = {layer.name: layer for layer in loaded.layers if isinstance(layer, MaskLayer)}
    assert set(loaded_masks) == set(masks)
    for name, mask in masks.items():
        np.testing.assert_array_equal(loaded_masks[name].get_mask(), np.asarray(mask, np.float32))
        assert loaded_masks[name].trainable_weights == []
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), expected)
