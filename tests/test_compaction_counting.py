"""Parameter / FLOP counters, latency measurement and TFLite export of dropnet_tf.compaction.

Every expected count below is worked out by hand in the test (MACs = multiply-accumulates).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.compaction.counting import count_flops, count_parameters, layer_flops
from dropnet_tf.compaction.latency import (
    LatencyResult,
    compare_latency,
    export_tflite,
    measure_latency,
    tflite_available,
    tflite_latency,
    tflite_predict,
)
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import get_masks, set_masks
from dropnet_tf.models import model_c

L = keras.layers
needs_tflite = pytest.mark.skipif(not tflite_available(), reason="no TFLite converter/interpreter in this TensorFlow")


def _reference_functional(masked: bool = False):
    """Input 8x8x3 -> Conv2D(4, 3x3, same) -> Conv2D(5, 3x3, valid) -> Flatten -> Dense(7)."""
    inputs = keras.Input((8, 8, 3), name="input")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    if masked:
        x = MaskLayer(name="conv1_mask")(x)
    x = L.Conv2D(5, 3, padding="valid", activation="relu", name="conv2")(x)
    if masked:
        x = MaskLayer(name="conv2_mask")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(7, name="dense")(x)
    return keras.Model(inputs, outputs, name="reference")


def _reference_sequential(masked: bool = False):
    layers = [keras.Input((8, 8, 3)), L.Conv2D(4, 3, padding="same", activation="relu", name="conv1")]
    if masked:
        layers.append(MaskLayer(name="conv1_mask"))
    layers.append(L.Conv2D(5, 3, padding="valid", activation="relu", name="conv2"))
    if masked:
        layers.append(MaskLayer(name="conv2_mask"))
    layers += [L.Flatten(name="flatten"), L.Dense(7, name="dense")]
    return keras.Sequential(layers, name="reference_seq")


# conv1: 8*8 positions * (3*3*3) * 4 filters                = 64 * 108   = 6912 MACs
#        3*3*3*4 kernel + 4 bias                             = 112 parameters
# conv2: 'valid' -> 6*6 positions * (3*3*4) * 5 filters      = 36 * 180   = 6480 MACs
#        3*3*4*5 + 5                                         = 185 parameters
# dense: flatten 6*6*5 = 180 inputs * 7 units                = 1260 MACs
#        180*7 + 7                                           = 1267 parameters
REFERENCE_LAYER_MACS = {"conv1": 6912, "conv2": 6480, "dense": 1260}
REFERENCE_MACS = 6912 + 6480 + 1260  # 14652
REFERENCE_PARAMETERS = 112 + 185 + 1267  # 1564


# ------------------------------------------------------------------------------ counting


@pytest.mark.both_keras
@pytest.mark.parametrize("builder", [_reference_functional, _reference_sequential])
def test_hand_computed_reference_model(builder):
    model = builder()
    assert layer_flops(model) == REFERENCE_LAYER_MACS
    assert count_flops(model) == REFERENCE_MACS == 14652
    assert count_flops(model, batch_size=64) == 64 * 14652
    assert layer_flops(model, batch_size=3)["conv2"] == 3 * 6480
    assert count_parameters(model) == REFERENCE_PARAMETERS == 1564
    assert count_parameters(model, trainable_only=True) == 1564
    assert count_parameters(model) == model.count_params()


@pytest.mark.both_keras
def test_sequential_built_with_build_call():
    model = keras.Sequential([L.Conv2D(4, 3, padding="same"), L.Conv2D(5, 3), L.Flatten(), L.Dense(7)])
    model.build((None, 8, 8, 3))
    assert count_flops(model) == 14652
    assert count_parameters(model) == 1564


@pytest.mark.both_keras
def test_strides_padding_groups_and_dense_on_sequences():
    inputs = keras.Input((9, 9, 2))
    # valid, stride 2: floor((9 - 3) / 2) + 1 = 4 -> 4*4 positions * 3*3*2 * 3 filters = 16 * 54 = 864
    valid = L.Conv2D(3, 3, strides=2, padding="valid", name="valid_s2")(inputs)
    # same, stride 2: ceil(9 / 2) = 5 -> 5*5 * 54 = 1350
    same = L.Conv2D(3, 3, strides=2, padding="same", name="same_s2")(inputs)
    # 1x1 conv 3 -> 4 channels on the 5x5 output: 25 * 3 * 4 = 300 MACs
    widened = L.Conv2D(4, 1, name="widen")(same)
    # groups=2: kernel 1x1x(4/2)x6 -> 5*5 * 2 * 6 = 300
    grouped = L.Conv2D(6, 1, groups=2, name="grouped")(widened)
    model = keras.Model(inputs, [valid, grouped])
    assert layer_flops(model) == {"valid_s2": 864, "same_s2": 1350, "widen": 300, "grouped": 300}
    # parameters: 3*3*2*3+3 = 57 twice, widen 3*4+4 = 16, grouped 1*1*2*6+6 = 18
    assert count_parameters(model) == 57 + 57 + 16 + 18

    # Dense on (batch, 5, 4): the 4 -> 3 product at each of 5 positions = 5 * 4 * 3 = 60 MACs.
    sequence = keras.Input((5, 4))
    dense = keras.Model(sequence, L.Dense(3, name="d")(sequence))
    assert count_flops(dense) == 60
    assert count_parameters(dense) == 4 * 3 + 3


@pytest.mark.both_keras
def test_conv1d_depthwise_separable_transpose():
    # Conv1D: (10, 4) -> valid k=3 -> 8 positions * 3*4 * 6 = 576 MACs; 3*4*6 + 6 = 78 parameters.
    signal = keras.Input((10, 4))
    conv1d = keras.Model(signal, L.Conv1D(6, 3, name="c1d")(signal))
    assert layer_flops(conv1d) == {"c1d": 576}
    assert count_parameters(conv1d) == 78

    image = keras.Input((6, 6, 3))
    # DepthwiseConv2D, multiplier 2, same: 6*6 positions * 3*3 * 3 channels * 2 = 36 * 54 = 1944 MACs;
    # 3*3*3*2 + 6 bias = 60 parameters.
    depthwise = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(image)
    # SeparableConv2D(5), same: depthwise 36 * 3*3*3 = 972 + pointwise 36 * 3 * 5 = 540 -> 1512 MACs;
    # 27 + 15 + 5 = 47 parameters.
    separable = L.SeparableConv2D(5, 3, padding="same", name="sep")(image)
    # Conv2DTranspose(2, 3x3, stride 2) on 6x6x3: every input position meets the whole
    # 3*3*2*3 kernel -> 36 * 54 = 1944 MACs; 54 + 2 = 56 parameters.
    transposed = L.Conv2DTranspose(2, 3, strides=2, name="tconv")(image)
    model = keras.Model(image, [depthwise, separable, transposed])
    assert layer_flops(model) == {"dw": 1944, "sep": 1512, "tconv": 1944}
    assert count_parameters(model) == 60 + 47 + 56


@pytest.mark.both_keras
def test_nested_model_layers_are_counted_with_prefix():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="inner_dense")], name="inner")
    inputs = keras.Input((6,))
    outputs = L.Dense(2, name="head")(inner(inputs))
    model = keras.Model(inputs, outputs)
    # 6*4 = 24 and 4*2 = 8 MACs; (24 + 4) + (8 + 2) = 38 parameters
    assert layer_flops(model) == {"inner/inner_dense": 24, "head": 8}
    assert count_parameters(model) == 38


@pytest.mark.both_keras
def test_batchnorm_state_counts_but_mask_does_not():
    inputs = keras.Input((4, 4, 2))
    x = L.Conv2D(3, 1, name="conv")(inputs)  # 2*3 + 3 = 9 parameters
    x = L.BatchNormalization(name="bn")(x)  # gamma, beta (trainable) + mean, variance: 4 * 3 = 12
    x = MaskLayer(name="mask")(x)  # 3 mask entries: not parameters
    model = keras.Model(inputs, x)
    assert count_parameters(model) == 9 + 12
    assert count_parameters(model, trainable_only=True) == 9 + 6
    assert model.count_params() == 9 + 12 + 3  # what Keras itself reports
    # A MaskLayer does no counted arithmetic: 16 positions * 2 * 3 = 96 MACs.
    assert count_flops(model) == 96


@pytest.mark.both_keras
def test_masked_model_counts_as_dense_unless_effective():
    masked, plain = _reference_functional(masked=True), _reference_functional()
    assert count_parameters(masked) == count_parameters(plain) == 1564
    assert count_flops(masked) == count_flops(plain) == 14652
    assert count_flops(masked, effective=False) == 14652
    # Without MaskLayers there is nothing to remove.
    assert count_flops(plain, effective=True) == 14652
    assert count_parameters(plain, effective=True) == 1564


@pytest.mark.both_keras
def test_unbuilt_subclassed_and_unknown_shapes_raise_clearly():
    unbuilt = keras.Sequential([L.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        count_flops(unbuilt)
    with pytest.raises(ValueError, match="not built"):
        count_parameters(unbuilt)
    with pytest.raises(ValueError, match="not built"):
        layer_flops(unbuilt)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(3)

        def call(self, x):
            return self.dense(x)

    subclassed = Subclassed()
    subclassed(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="subclassed"):
        count_flops(subclassed)
    assert count_parameters(subclassed) == 5 * 3 + 3  # weights need no shapes

    free = keras.Input((None, None, 3))
    fully_convolutional = keras.Model(free, L.Conv2D(2, 3, name="conv")(free))
    with pytest.raises(ValueError, match="unknown non-batch size"):
        count_flops(fully_convolutional)

    with pytest.raises(TypeError, match="keras.Model"):
        count_flops(L.Dense(3))
    with pytest.raises(ValueError, match="batch_size"):
        count_flops(_reference_functional(), batch_size=0)


# ------------------------------------------------------------------------------ effective FLOPs (needs compact)


def _half_first_conv(model):
    set_masks(model, {"conv1_mask": np.array([1, 0, 1, 0], np.float32)})
    return model


@pytest.mark.both_keras
@pytest.mark.parametrize("builder", [_reference_functional, _reference_sequential])
def test_effective_flops_remove_masked_filters_downstream(builder):
    from dropnet_tf.compaction.compact import compact

    model = _half_first_conv(builder(masked=True))
    # 2 of conv1's 4 filters masked: conv1 keeps 64 * 3*3*3 * 2 = 3456 MACs (half), and conv2
    # reads 2 channels instead of 4: 36 * 3*3*2 * 5 = 3240 (half).  The Dense is unchanged: 1260.
    assert layer_flops(compact(model)) == {"conv1": 3456, "conv2": 3240, "dense": 1260}
    assert count_flops(model, effective=True) == 3456 + 3240 + 1260
    assert count_flops(model, batch_size=8, effective=True) == 8 * (3456 + 3240 + 1260)
    assert count_flops(model) == 14652  # the masked model itself still runs dense

    # Also mask 2 of conv2's 5 filters: conv2 = 36 * 3*3*2 * 3 = 1944; in front of the
    # Flatten each filter is 6*6 = 36 Dense input rows: 36 * 3 = 108 rows * 7 = 756 MACs.
    set_masks(model, {"conv2_mask": np.array([0, 1, 1, 0, 1], np.float32)})
    assert layer_flops(compact(model)) == {"conv1": 3456, "conv2": 1944, "dense": 756}
    assert count_flops(model, effective=True) == 3456 + 1944 + 756
    # parameters: conv1 3*3*3*2 + 2 = 56; conv2 3*3*2*3 + 3 = 57; dense 108*7 + 7 = 763
    assert count_parameters(model, effective=True) == 56 + 57 + 763
    assert count_parameters(model) == 1564


@pytest.mark.both_keras
def test_effective_flops_of_model_c_match_the_closed_form():
    model = model_c(seed=0)
    dense = model_c(seed=0, masked=False)
    assert count_flops(model, effective=True) == count_flops(dense)  # all-ones masks
    rng = np.random.default_rng(0)
    kept = {}
    masks = {}
    for name, mask in get_masks(model).items():
        keep = rng.permutation(mask.size)[: int(rng.integers(1, mask.size))]
        masks[name] = np.isin(np.arange(mask.size), keep).astype(np.float32)
        kept[name.removesuffix("_mask")] = keep.size
    set_masks(model, masks)
    k1, k2, k3, k4 = (kept[f"conv_{i}"] for i in range(1, 5))
    # 32x32x3 input; each 3x3 'same' conv is followed by a 2x2 pool: 32 -> 16 -> 8 -> 4 -> 2.
    expected = (
        32 * 32 * 9 * 3 * k1
        + 16 * 16 * 9 * k1 * k2
        + 8 * 8 * 9 * k2 * k3
        + 4 * 4 * 9 * k3 * k4
        + 2 * 2 * k4 * 256  # Flatten of 2x2xk4 into Dense(256)
        + 256 * 10
    )
    assert count_flops(model, effective=True) == expected
    assert count_flops(dense) == 32 * 32 * 27 * 64 + 16 * 16 * 9 * 64 * 64 + 8 * 8 * 9 * 64 * 128 + 4 * 4 * 9 * 128 * 128 + 4 * 128 * 256 + 2560


# ------------------------------------------------------------------------------ latency


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(5)(x))


class _ScriptedClock:
    """Stands in for ``time.perf_counter`` in the latency module: calls come in start/stop
    pairs, and each pair is ``durations[k]`` seconds apart, so every timing is known."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now = 1000.0
        self.started = False
        self.calls = 0

    def perf_counter(self):
        self.calls += 1
        if self.started:
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


def _scripted(monkeypatch, durations):
    from dropnet_tf.compaction import latency

    clock = _ScriptedClock(durations)
    monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    return clock


# 11 timed calls with one outlier: sorted 1, 2, ..., 10, 250 ms.  With 11 values the 10th,
# 50th and 90th percentiles fall exactly on the 2nd, 6th and 10th smallest (no interpolation):
# p10 = 2 ms, median = 6 ms, p90 = 10 ms, while the mean would be 305 / 11 = 27.7 ms.
TIMED_MS = [3, 1, 2, 250, 4, 5, 6, 7, 8, 9, 10]


@pytest.mark.both_keras
def test_measure_latency_statistics_of_known_timings(monkeypatch):
    clock = _scripted(monkeypatch, [0.5] + [t / 1000 for t in TIMED_MS])
    result = measure_latency(_tiny_model(), 4, warmup=3, repeats=11)
    assert clock.durations == [] and clock.calls == 2 * 12  # warm-up calls are not timed
    assert isinstance(result, LatencyResult)
    assert result.as_dict() == pytest.approx(
        {"median_s": 0.006, "p10_s": 0.002, "p90_s": 0.010, "batch_size": 4, "repeats": 11, "first_call_s": 0.5},
        abs=1e-9,
    )


@pytest.mark.both_keras
def test_measure_latency_runs_the_model_with_the_real_clock():
    result = measure_latency(_tiny_model(), 4, warmup=1, repeats=7)
    assert result.batch_size == 4 and result.repeats == 7
    assert 0 < result.p10_s <= result.median_s <= result.p90_s
    assert result.first_call_s > 0


@pytest.mark.both_keras
def test_compare_latency_interleaves_and_keeps_each_models_timings(monkeypatch):
    # first calls of b then a, then per repeat b, a: b's timed calls 1, 2, 30 ms; a's 400, 500, 600 ms
    _scripted(monkeypatch, [0.7, 0.9, 0.001, 0.4, 0.002, 0.5, 0.030, 0.6])
    results = compare_latency({"b": _tiny_model(), "a": _tiny_model()}, 2, warmup=0, repeats=3)
    assert list(results) == ["b", "a"]
    # 3 values: p10 = v1 + 0.2 (v2 - v1), p90 = v2 + 0.8 (v3 - v2), by linear interpolation
    assert results["b"].as_dict() == pytest.approx(
        {"median_s": 0.002, "p10_s": 0.0012, "p90_s": 0.0244, "batch_size": 2, "repeats": 3, "first_call_s": 0.7},
        abs=1e-9,
    )
    assert results["a"].as_dict() == pytest.approx(
        {"median_s": 0.5, "p10_s": 0.42, "p90_s": 0.58, "batch_size": 2, "repeats": 3, "first_call_s": 0.9}, abs=1e-9
    )


def test_compare_latency_validates():
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        measure_latency(_tiny_model(), 1, repeats=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        measure_latency(_tiny_model(), 0)
    with pytest.raises(ValueError, match="warmup must be an integer >= 0, got -1"):
        measure_latency(_tiny_model(), 1, warmup=-1)
    with pytest.raises(ValueError, match="at least one model"):
        compare_latency({}, 1)


@needs_tflite
def test_tflite_latency_statistics_of_known_timings(monkeypatch):
    clock = _scripted(monkeypatch, [0.25] + [t / 1000 for t in TIMED_MS])
    result = tflite_latency(_tiny_model(), 3, warmup=2, repeats=11)
    assert clock.durations == [] and clock.calls == 2 * 12
    assert result.as_dict() == pytest.approx(
        {"median_s": 0.006, "p10_s": 0.002, "p90_s": 0.010, "batch_size": 3, "repeats": 11, "first_call_s": 0.25},
        abs=1e-9,
    )


# ------------------------------------------------------------------------------ TFLite


@needs_tflite
@pytest.mark.both_keras
@pytest.mark.parametrize("sequential", [False, True])
def test_export_tflite_matches_keras(tmp_path, sequential):
    model = _reference_sequential() if sequential else _reference_functional()
    path = tmp_path / "sub" / "model.tflite"
    size = export_tflite(model, path)
    assert path.exists() and size == os.path.getsize(path) > 0
    # float32 weights: 1564 parameters * 4 bytes at least.
    assert size >= 1564 * 4
    assert os.listdir(path.parent) == ["model.tflite"]  # no temporary file left behind
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(tflite_predict(path, x), model(x, training=False).numpy(), atol=1e-5)
    np.testing.assert_allclose(tflite_predict(path.read_bytes(), x[:1]), model(x[:1]).numpy(), atol=1e-5)

    # Overwriting an existing file replaces it.
    assert export_tflite(_tiny_model(), path) == os.path.getsize(path) < size


@needs_tflite
@pytest.mark.both_keras
def test_compacted_model_exports_smaller_and_equal(tmp_path):
    from dropnet_tf.compaction.compact import compact

    model = _half_first_conv(_reference_functional(masked=True))
    compacted = compact(model)
    dense_size = export_tflite(_reference_functional(), tmp_path / "dense.tflite")
    compact_size = export_tflite(compacted, tmp_path / "compact.tflite")
    assert compact_size < dense_size
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(tflite_predict(tmp_path / "compact.tflite", x), model(x).numpy(), atol=1e-5)
