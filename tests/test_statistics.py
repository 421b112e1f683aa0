"""Tests of dropnet_tf.core.statistics: E(a_i), E(f_i) and APoZ against numpy, inputs, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import mask_layers, set_masks
from dropnet_tf.core.statistics import StatisticsCollector, UnitStatistics, collect_statistics

MASKS = ("conv_mask", "dense_mask")


def small_model(seed: int = 0):
    """Conv2D(relu) -> mask -> pool -> Dense(relu) -> mask -> Dense, with biases that spread APoZ."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(
        4,
        3,
        padding="same",
        activation="relu",
        bias_initializer=keras.initializers.Constant([-0.3, 0.0, 0.4, -3.0]),
        name="conv",
    )(inputs)
    x = MaskLayer(name="conv_mask")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(
        5,
        activation="relu",
        bias_initializer=keras.initializers.Constant([0.5, -0.2, 0.0, 0.2, -0.5]),
        name="dense",
    )(x)
    x = MaskLayer(name="dense_mask")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    return keras.Model(inputs, outputs)


def data(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 6, 6, 2)).astype(np.float32)


def reference(model, x) -> tuple[dict, dict]:
    """E(|a|) and APoZ in numpy from the materialised mask-layer outputs."""
    layers = mask_layers(model)
    probe = keras.Model(model.inputs[0], [layer.output for layer in layers])
    outputs = probe(x, training=False)
    mean_abs, apoz = {}, {}
    for layer, value in zip(layers, outputs):
        value = np.asarray(value, np.float64)
        axes = tuple(range(value.ndim - 1))  # samples, and for Conv2D every position
        mean_abs[layer.name] = np.abs(value).mean(axis=axes)
        apoz[layer.name] = (value == 0.0).mean(axis=axes)
    return mean_abs, apoz


def assert_matches(stats: UnitStatistics, mean_abs: dict, apoz: dict, num_samples: int):
    assert isinstance(stats, UnitStatistics)
    assert stats.num_samples == num_samples
    assert stats.layer_names == list(MASKS)
    assert set(stats.apoz) == set(MASKS)
    for name in MASKS:
        assert stats.mean_abs[name].shape == mean_abs[name].shape
        assert stats.apoz[name].shape == apoz[name].shape
        np.testing.assert_allclose(stats.mean_abs[name], mean_abs[name], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(stats.apoz[name], apoz[name], rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
def test_matches_numpy_reference():
    model = small_model()
    x = data(40)
    mean_abs, apoz = reference(model, x)
    # The reference is not degenerate: some units are sometimes but not always zero.
    assert np.any((apoz["conv_mask"] > 0) & (apoz["conv_mask"] < 1))
    assert np.any((apoz["dense_mask"] > 0) & (apoz["dense_mask"] < 1))
    assert mean_abs["conv_mask"].shape == (4,)
    assert mean_abs["dense_mask"].shape == (5,)
    stats = collect_statistics(model, x, batch_size=40)
    assert_matches(stats, mean_abs, apoz, 40)


def signed_model():
    """Activations of both signs (linear conv, tanh dense) and a BatchNormalization before a
    mask, whose inference-mode output differs from its training-mode output."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)  # linear
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = MaskLayer(name="conv_mask")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Dense(4, activation="tanh", name="dense")(x)
    x = MaskLayer(name="dense_mask")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")
    bn.set_weights([np.full(3, 2.0), np.array([0.5, -0.5, 0.0]), np.array([1.0, -1.0, 0.3]), np.full(3, 4.0)])
    return model


@pytest.mark.both_keras
def test_signed_activations_use_absolute_values_in_inference_mode():
    model = signed_model()
    x = np.random.default_rng(4).normal(size=(24, 5, 5, 2)).astype(np.float32)
    mean_abs, apoz = reference(model, x)  # inference mode
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in MASKS])
    signed = [np.asarray(v, np.float64) for v in probe(x, training=False)]
    for value in signed:
        # Both signs occur in every unit, so |mean| is well below mean |.|.
        assert np.all((value < 0).any(axis=tuple(range(value.ndim - 1))))
        assert np.all((value > 0).any(axis=tuple(range(value.ndim - 1))))
    stats = collect_statistics(model, x, batch_size=10)
    assert_matches(stats, mean_abs, apoz, 24)
    for name, value in zip(MASKS, signed):
        signed_mean = np.abs(value.mean(axis=tuple(range(value.ndim - 1))))
        assert np.all(stats.mean_abs[name] > signed_mean + 1e-3)
    # Training mode (batch statistics, dropout) would have given other numbers.  (Last, as a
    # training-mode call also moves the BatchNormalization statistics.)
    trained = [np.asarray(v, np.float64) for v in probe(x, training=True)]
    assert not np.allclose(np.abs(trained[0]).mean(axis=(0, 1, 2)), mean_abs["conv_mask"], rtol=1e-3)


@pytest.mark.both_keras
def test_conv_statistic_averages_over_positions_not_just_samples():
    """E(f_i) = (1/(t·r)) Σ_j Σ_k |a_k(x_j)|: dividing by t alone would be r = 36 times too large."""
    model = small_model()
    x = data(12)
    stats = collect_statistics(model, x)
    conv_out = np.asarray(keras.Model(model.inputs[0], model.get_layer("conv_mask").output)(x), np.float64)
    assert conv_out.shape == (12, 6, 6, 4)
    per_sample_sum = np.abs(conv_out).sum(axis=(1, 2)).mean(axis=0)  # mean over samples only
    np.testing.assert_allclose(stats.mean_abs["conv_mask"] * 36, per_sample_sum, rtol=1e-5)
    # APoZ is a fraction of all 12 * 36 outputs of each filter.
    zeros = (conv_out == 0.0).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(stats.apoz["conv_mask"] * 12 * 36, zeros, atol=1e-6)
    assert np.all(stats.apoz["conv_mask"] <= 1.0)
    assert stats.apoz["conv_mask"][3] == 1.0  # bias -3 kills filter 3 (almost surely)


@pytest.mark.both_keras
def test_with_non_trivial_mask():
    model = small_model()
    set_masks(model, {"conv_mask": [1, 0, 1, 1], "dense_mask": [0, 1, 1, 0, 1]})
    x = data(30)
    stats = collect_statistics(model, x, batch_size=16)
    mean_abs, apoz = reference(model, x)
    assert_matches(stats, mean_abs, apoz, 30)
    for name, dead in (("conv_mask", [1]), ("dense_mask", [0, 3])):
        for unit in dead:
            assert stats.mean_abs[name][unit] == 0.0
            assert stats.apoz[name][unit] == 1.0
    # Unmasked units keep non-zero statistics (filter 3 is dead by its bias, not the mask).
    assert np.all(stats.mean_abs["conv_mask"][[0, 2]] > 0)
    assert np.all(stats.mean_abs["dense_mask"][[1, 2, 4]] > 0) or np.any(stats.apoz["dense_mask"][[1, 2, 4]] < 1)


@pytest.mark.both_keras
@pytest.mark.parametrize("batch_size", [7, 16, 37, 100])
def test_batch_size_not_dividing_sample_count(batch_size):
    model = small_model()
    x = data(37)
    mean_abs, apoz = reference(model, x)
    stats = collect_statistics(model, x, batch_size=batch_size)
    assert_matches(stats, mean_abs, apoz, 37)


@pytest.mark.both_keras
def test_dataset_of_pairs_matches_array():
    model = small_model()
    x = data(33)
    y = np.random.default_rng(2).integers(0, 3, size=33)
    from_array = collect_statistics(model, x, batch_size=8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)  # 10, 10, 10, 3
    from_dataset = collect_statistics(model, dataset)
    assert from_dataset.num_samples == 33
    mean_abs, apoz = reference(model, x)
    assert_matches(from_dataset, mean_abs, apoz, 33)
    for name in MASKS:
        np.testing.assert_allclose(from_dataset.mean_abs[name], from_array.mean_abs[name], rtol=1e-6)
        np.testing.assert_array_equal(from_dataset.apoz[name], from_array.apoz[name])
    # A dataset of x alone works too.
    x_only = collect_statistics(model, tf.data.Dataset.from_tensor_slices(x).batch(16))
    assert_matches(x_only, mean_abs, apoz, 33)


@pytest.mark.both_keras
def test_collector_is_reusable_and_resets():
    model = small_model()
    collector = StatisticsCollector(model)
    assert collector.layer_names == list(MASKS)
    x = data(25)
    first = collector.collect(x, batch_size=10)
    second = collector.collect(x[:9], batch_size=10)  # accumulators must be reset
    assert second.num_samples == 9
    assert_matches(second, *reference(model, x[:9]), 9)
    third = collector.collect(x, batch_size=10)
    assert_matches(third, first.mean_abs, first.apoz, 25)
    # A mask changed between calls is seen by the same collector.
    set_masks(model, {"dense_mask": [1, 1, 1, 1, 0]})
    fourth = collector.collect(x, batch_size=10)
    assert fourth.mean_abs["dense_mask"][4] == 0.0
    assert fourth.apoz["dense_mask"][4] == 1.0
    assert_matches(fourth, *reference(model, x), 25)


@pytest.mark.both_keras
def test_model_without_mask_layer_raises():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(3, activation="relu")(inputs)))
    with pytest.raises(ValueError, match="MaskLayer"):
        collect_statistics(model, np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="MaskLayer"):
        StatisticsCollector(model)


# Argument validation, before any Keras call: not both_keras.
@pytest.mark.parametrize("batch_size", [0, -3, 2.5, "8"])
def test_bad_batch_size_raises(batch_size):
    model = small_model()
    with pytest.raises(ValueError, match="batch_size"):
        collect_statistics(model, data(4), batch_size=batch_size)


# --------------------------------------------------------------------------------------------
# Memory: activations are reduced batch by batch, never materialised
# --------------------------------------------------------------------------------------------

WIDE_SHAPE = (28, 28, 1)
WIDE_FILTERS = 64
BYTES_PER_SAMPLE = 28 * 28 * WIDE_FILTERS * 4  # float32 conv activations per sample


def wide_conv_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input(WIDE_SHAPE)
    x = keras.layers.Conv2D(WIDE_FILTERS, 3, padding="same", activation="relu", name="wide")(inputs)
    x = MaskLayer(name="wide_mask")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)
    return keras.Model(inputs, outputs)


def traced_peak(function) -> int:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.both_keras
def test_collect_does_not_materialise_activations():
    n, batch_size = 40, 20
    big = 8 * n
    activation_bytes = big * BYTES_PER_SAMPLE
    assert activation_bytes >= 50 * 2**20  # the comparison below is meaningful

    model = wide_conv_model()
    rng = np.random.default_rng(0)
    x_small = rng.normal(size=(n,) + WIDE_SHAPE).astype(np.float32)  # created before tracing
    x_big = rng.normal(size=(big,) + WIDE_SHAPE).astype(np.float32)
    collector = StatisticsCollector(model)
    # Warm up: tracing the predict function allocates a lot of Python objects once.
    collector.collect(x_small, batch_size=batch_size)
    collector.collect(x_big, batch_size=batch_size)

    peak_small = traced_peak(lambda: collector.collect(x_small, batch_size=batch_size))
    peak_big = traced_peak(lambda: collector.collect(x_big, batch_size=batch_size))
    margin = 2 * 2**20
    assert peak_big < peak_small + margin, (peak_small, peak_big)
    assert peak_big < activation_bytes / 10, (peak_big, activation_bytes)

    # Calibration: tracemalloc does see activations when they are materialised in numpy, so
    # the bound above would catch a collector that gathers them with Model.predict.
    probe = keras.Model(model.inputs[0], model.get_layer("wide_mask").output)
    probe.predict(x_small, batch_size=batch_size, verbose=0)  # warm up
    naive_peak = traced_peak(lambda: probe.predict(x_big, batch_size=batch_size, verbose=0))
    assert naive_peak >= activation_bytes, (naive_peak, activation_bytes)


@pytest.mark.both_keras
def test_conv_with_unknown_spatial_size():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    x = MaskLayer(name="conv_mask")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    x = data(10)  # 6x6 inputs -> 4x4 positions
    stats = collect_statistics(model, x, batch_size=4)
    conv_out = np.asarray(keras.Model(model.inputs[0], model.get_layer("conv_mask").output)(x), np.float64)
    np.testing.assert_allclose(stats.mean_abs["conv_mask"], np.abs(conv_out).mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(stats.apoz["conv_mask"], (conv_out == 0).mean(axis=(0, 1, 2)), atol=1e-9)
