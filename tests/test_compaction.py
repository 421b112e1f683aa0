"""compact(): a masked model becomes a plain, smaller model computing the same function."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import dropnet_tf as d
from dropnet_tf import models
from dropnet_tf.core.backend import KERAS_MAJOR, keras
from dropnet_tf.compaction.compact import compact, plan_compaction
from dropnet_tf.models.foresight import cifar_resnet
from dropnet_tf.core.layers import MaskLayer

both_keras = pytest.mark.both_keras


def _randomise_batchnorm(model, rng):
    """Non-trivial BN statistics, so that a mis-sliced BN changes the output."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(size=beta.shape),
                rng.normal(size=mean.shape), rng.uniform(0.5, 2.0, var.shape),
            ])


def _random_masks(model, fraction, rng, one_unit=()):
    """Keep ``fraction`` of every mask layer's units (at least one); ``one_unit`` layers keep one."""
    masks = {}
    for name, mask in d.get_masks(model).items():
        keep = 1 if name in one_unit else max(1, int(round(fraction * mask.size)))
        new = np.zeros(mask.size, np.float32)
        new[rng.choice(mask.size, keep, replace=False)] = 1.0
        masks[name] = new
    d.set_masks(model, masks)
    return masks


def _forward(model, x):
    """Inference-mode outputs as numpy; a direct call, much cheaper than ``predict`` on a few examples."""
    outputs = model(x, training=False)
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(out) for out in outputs]
    return np.asarray(outputs)


def _logits(model, x):
    """Pre-softmax outputs, so that a saturated softmax cannot hide an error."""
    predictions = model.get_layer("predictions")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    features = _forward(keras.Model(inputs, predictions.input), x)
    kernel, bias = predictions.get_weights()
    return features @ kernel + bias


def _assert_equivalent(masked, compacted, x, atol=1e-5):
    expected = _forward(masked, x)
    got = _forward(compacted, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    if "predictions" in [layer.name for layer in masked.layers]:
        np.testing.assert_allclose(_logits(compacted, x), _logits(masked, x), atol=atol * 10, rtol=1e-5)


CASES = [
    ("model_a", {}, (28, 28, 1)),
    ("model_b", {}, (28, 28, 1)),
    ("model_c", {"input_shape": (32, 32, 3)}, (32, 32, 3)),
    ("vgg19", {}, (32, 32, 3)),
    ("resnet18", {}, (32, 32, 3)),
]


@both_keras
@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("fraction", [0.8, 0.3])
def test_compacted_outputs_equal_masked_outputs(name, kwargs, shape, fraction):
    rng = np.random.default_rng(7)
    model = models.build_model(name, seed=3, **kwargs)
    _randomise_batchnorm(model, rng)
    masks = _random_masks(model, fraction, rng)
    compacted = compact(model)
    assert not [layer for layer in compacted.layers if isinstance(layer, MaskLayer)]
    x = rng.normal(size=(5,) + shape).astype("float32")
    _assert_equivalent(model, compacted, x)
    # Every plain (non-residual) producer of the compacted model has exactly its mask's units.
    plan = plan_compaction(model)
    for mask_name, mask in masks.items():
        producer, _ = plan.graph.chain_source(mask_name)
        if "_add" not in " ".join(plan.graph[mask_name].consumers) and name != "resnet18":
            config = compacted.get_layer(producer.name).get_config()
            assert config.get("units", config.get("filters")) == int(mask.sum()), producer.name
    assert compacted.count_params() < model.count_params()


@both_keras
@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=[case[0] for case in CASES])
def test_layer_reduced_to_one_unit(name, kwargs, shape):
    rng = np.random.default_rng(11)
    model = models.build_model(name, seed=5, **kwargs)
    _randomise_batchnorm(model, rng)
    names = list(d.get_masks(model))
    one = {names[0], names[len(names) // 2]}
    _random_masks(model, 0.6, rng, one_unit=one)
    compacted = compact(model)
    x = rng.normal(size=(3,) + shape).astype("float32")
    _assert_equivalent(model, compacted, x)
    if name != "resnet18":  # residual unions may keep more
        for mask_name in one:
            producer, _ = plan_compaction(model).graph.chain_source(mask_name)
            layer = compacted.get_layer(producer.name)
            assert (layer.get_config().get("units") or layer.get_config().get("filters")) == 1


@both_keras
def test_dense_sizes_and_flatten_rows_mapped_for_spatial_layout():
    """Conv(4) -> Flatten -> Dense: rows of kept channels at every position survive, in order."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((3, 3, 2))
    x = keras.layers.Conv2D(4, 2, activation="relu", name="conv")(inputs)  # 2x2x4
    x = MaskLayer(name="conv_mask")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # 16 = position * 4 + channel
    x = keras.layers.Dense(5, activation="relu", name="dense")(x)
    x = MaskLayer(name="dense_mask")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    model = keras.Model(inputs, outputs)
    d.set_masks(model, {"conv_mask": [0, 1, 0, 1], "dense_mask": [1, 0, 0, 1, 1]})
    compacted = compact(model)
    kernel = compacted.get_layer("dense").get_weights()[0]
    original = model.get_layer("dense").get_weights()[0]
    rows = [p * 4 + c for p in range(4) for c in (1, 3)]
    np.testing.assert_array_equal(kernel, original[rows][:, [0, 3, 4]])
    np.testing.assert_array_equal(compacted.get_layer("out").get_weights()[0], model.get_layer("out").get_weights()[0][[0, 3, 4]])
    x = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    _assert_equivalent(model, compacted, x)


@both_keras
def test_a_wrong_row_mapping_would_be_caught():
    """Guard for the equivalence tests: permuting the kept Dense rows changes the outputs."""
    rng = np.random.default_rng(1)
    model = models.model_b(widths=(8, 8), seed=2)
    _random_masks(model, 0.5, rng)
    compacted = compact(model)
    x = rng.normal(size=(4, 28, 28, 1)).astype("float32")
    _assert_equivalent(model, compacted, x)
    dense = compacted.get_layer("predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel[::-1], bias])
    with pytest.raises(AssertionError):
        _assert_equivalent(model, compacted, x)


@both_keras
def test_sequential_model_gives_a_sequential_model():
    rng = np.random.default_rng(2)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu", name="d1"),
        MaskLayer(name="d1_mask"),
        keras.layers.Dropout(0.5, name="drop"),
        keras.layers.Dense(7, activation="tanh", name="d2"),
        MaskLayer(name="d2_mask"),
        keras.layers.Dense(2, name="out"),
    ])
    d.set_masks(model, {"d1_mask": [1, 0, 1, 1, 0, 0, 1, 0], "d2_mask": [0, 0, 1, 0, 1, 1, 0]})
    compacted = compact(model)
    assert isinstance(compacted, keras.Sequential)
    assert compacted.get_layer("d1").get_config()["units"] == 4
    assert compacted.get_layer("d2").get_config()["units"] == 3
    x = rng.normal(size=(5, 6)).astype("float32")
    _assert_equivalent(model, compacted, x)


@both_keras
def test_residual_add_keeps_the_union_and_zeroes_the_masked_branch():
    """Add(a, b): channel kept if kept in either branch; where only one branch keeps it, the
    other branch's producer is zeroed there (its mask's job), so the sum stays exact."""
    rng = np.random.default_rng(3)
    inputs = keras.Input((5, 5, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_a")(inputs)
    a = MaskLayer(name="conv_a_mask")(a)
    b = keras.layers.Conv2D(6, 3, padding="same", name="conv_b")(inputs)
    b = keras.layers.BatchNormalization(name="bn_b")(b)
    b = MaskLayer(name="bn_b_mask")(b)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    _randomise_batchnorm(model, rng)
    d.set_masks(model, {"conv_a_mask": [1, 1, 0, 0, 0, 1], "bn_b_mask": [0, 1, 1, 0, 0, 0]})
    plan = plan_compaction(model)
    np.testing.assert_array_equal(plan.kept["add"], [0, 1, 2, 5])  # the union
    assert plan.zeroed == {"conv_a": {2}, "bn_b": {0, 5}}
    compacted = compact(model)
    assert compacted.get_layer("conv_a").get_config()["filters"] == 4
    assert compacted.get_layer("out").get_weights()[0].shape == (4, 2)
    x = rng.normal(size=(4, 5, 5, 3)).astype("float32")
    _assert_equivalent(model, compacted, x)


@both_keras
def test_cifar_resnet_with_projection_shortcuts_and_masks_before_the_add():
    rng = np.random.default_rng(4)
    plain = cifar_resnet(20, input_shape=(8, 8, 3), masked=False, shortcut="B", seed=0)
    model = d.add_masks(plain)
    _randomise_batchnorm(model, rng)
    _random_masks(model, 0.5, rng)
    compacted = compact(model)
    assert not [layer for layer in compacted.layers if isinstance(layer, MaskLayer)]
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    _assert_equivalent(model, compacted, x)


@both_keras
def test_unknown_layers_keep_their_channels_and_stay_exact():
    """A Reshape is not understood: the channels around it are pinned, never wrongly cut."""
    rng = np.random.default_rng(5)
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    x = MaskLayer(name="conv_mask")(x)
    x = keras.layers.Reshape((16, 3), name="reshape")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    d.set_masks(model, {"conv_mask": [1, 0, 1]})
    compacted = compact(model)
    assert compacted.get_layer("conv").get_config()["filters"] == 3
    # The masked filter stays (Reshape reads it) but its mask is folded into zero weights.
    assert not compacted.get_layer("conv").get_weights()[0][..., 1].any()
    assert [layer.name for layer in compacted.layers if isinstance(layer, MaskLayer)] == []
    x = rng.normal(size=(3, 4, 4, 2)).astype("float32")
    _assert_equivalent(model, compacted, x)


@both_keras
def test_mask_kept_when_it_cannot_be_folded():
    """A mask after a sigmoid (which maps 0 to 0.5) read by two branches stays, sliced."""
    rng = np.random.default_rng(6)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(5, activation="sigmoid", name="h")(inputs)
    h = MaskLayer(name="h_mask")(h)
    a = keras.layers.Dense(5, name="a")(inputs)
    a = MaskLayer(name="a_mask")(a)
    x = keras.layers.Add(name="add")([h, a])
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    d.set_masks(model, {"h_mask": [1, 0, 0, 1, 0], "a_mask": [0, 1, 0, 0, 0]})
    with pytest.warns(UserWarning, match="h_mask"):
        compacted = compact(model)
    kept = [layer for layer in compacted.layers if isinstance(layer, MaskLayer)]
    assert [layer.name for layer in kept] == ["h_mask"]
    np.testing.assert_array_equal(kept[0].get_mask(), [1, 0, 1])  # channels 0, 1, 3 kept
    _assert_equivalent(model, compacted, rng.normal(size=(6, 4)).astype("float32"))


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@both_keras
@pytest.mark.parametrize("dead", ["dense_1", "dense_2"])
def test_fully_masked_layer_keeps_one_zero_unit_and_warns(dead):
    """A hidden layer whose mask is all zeros becomes a layer of exactly one unit that
    outputs exactly 0, and the network computes what the masked one does: the layers
    after it see zeros, which a numpy forward pass of the original weights confirms."""
    rng = np.random.default_rng(7)
    model = models.model_a(widths=(6, 5), seed=1)  # flatten -> dense_1 -> dense_2 -> predictions
    for layer in ("dense_1", "dense_2", "predictions"):  # non-zero biases, so a zero input still matters
        kernel, bias = model.get_layer(layer).get_weights()
        model.get_layer(layer).set_weights([kernel, rng.normal(size=bias.shape).astype("float32")])
    masks = {name: np.zeros_like(mask) if name == f"{dead}_mask" else mask for name, mask in d.get_masks(model).items()}
    d.set_masks(model, masks)
    with pytest.warns(UserWarning, match=f"Every unit of the channels written by '{dead}'"):
        compacted = compact(model)
    layer = compacted.get_layer(dead)
    assert layer.get_config()["units"] == 1
    kernel, bias = layer.get_weights()
    assert not kernel.any() and not bias.any()
    x = rng.normal(size=(3, 28, 28, 1)).astype("float32")
    hidden = keras.Model(compacted.inputs[0], layer.output)(x).numpy()
    np.testing.assert_array_equal(hidden, np.zeros((3, 1), np.float32))

    # numpy forward pass of the masked model's weights, the dead layer forced to zero
    h = x.reshape(3, -1)
    for name in ("dense_1", "dense_2"):
        w, b = model.get_layer(name).get_weights()
        h = np.zeros((3, w.shape[1])) if name == dead else np.maximum(h @ w + b, 0) * masks[f"{name}_mask"]
    w, b = model.get_layer("predictions").get_weights()
    want = _softmax(h @ w + b)
    np.testing.assert_allclose(_forward(model, x), want, atol=1e-6)
    np.testing.assert_allclose(_forward(compacted, x), want, atol=1e-6)


@both_keras
def test_all_ones_masks_give_the_same_sizes_without_masks():
    model = models.model_c(input_shape=(32, 32, 3), widths=(4, 4, 8, 8), dense_units=16, seed=0)
    compacted = compact(model)
    plain = models.model_c(input_shape=(32, 32, 3), widths=(4, 4, 8, 8), dense_units=16, seed=0, masked=False)
    assert compacted.count_params() == plain.count_params()


@both_keras
def test_compacted_model_saves_and_loads(tmp_path):
    rng = np.random.default_rng(8)
    model = models.vgg19(blocks=((4, 4), (8, 8), (8, 8), (8, 8), (8, 8)), dense_units=16, seed=0)
    _randomise_batchnorm(model, rng)
    _random_masks(model, 0.5, rng)
    compacted = compact(model)
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    if KERAS_MAJOR >= 3:
        path = tmp_path / "compact.keras"
    else:
        path = tmp_path / "compact.h5"
    compacted.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(_forward(loaded, x), _forward(compacted, x), atol=1e-6)
    assert not [layer for layer in loaded.layers if isinstance(layer, MaskLayer)]


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match=r"^compact supports Sequential and functional models; .*looks subclassed\. Rebuild"):
        compact(net)


@both_keras
@pytest.mark.parametrize("multiple", [8, 16])
def test_channel_multiple_rounds_widths_up_and_stays_exact(multiple):
    rng = np.random.default_rng(9)
    model = models.vgg19(blocks=((20, 20), (24, 24), (24, 24), (40, 40), (40, 40)), dense_units=16, seed=0)
    _randomise_batchnorm(model, rng)
    _random_masks(model, 0.45, rng)
    exact = compact(model)
    rounded = compact(model, channel_multiple=multiple)
    for layer in rounded.layers:
        if type(layer).__name__ == "Conv2D":
            filters = layer.get_config()["filters"]
            original = model.get_layer(layer.name).get_config()["filters"]
            smallest = exact.get_layer(layer.name).get_config()["filters"]
            assert filters == min(original, -(-smallest // multiple) * multiple)
    assert rounded.count_params() > exact.count_params()
    x = rng.normal(size=(3, 32, 32, 3)).astype("float32")
    _assert_equivalent(model, rounded, x)


def test_channel_multiple_is_validated():
    model = models.model_a(widths=(4, 4), seed=0)
    for bad in (0, -8, 2.5, True):
        with pytest.raises(ValueError, match=re.escape(f"channel_multiple must be a positive integer, got {bad!r}.")):
            compact(model, channel_multiple=bad)


@both_keras
def test_multiple_outputs_keep_their_order():
    """Outputs come back in the model's order, not sorted by layer name."""
    rng = np.random.default_rng(10)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(6, activation="relu", name="h")(inputs)
    h = MaskLayer(name="h_mask")(h)
    first = keras.layers.Dense(2, name="zz_out")(h)
    second = keras.layers.Dense(3, name="aa_out")(h)
    model = keras.Model(inputs, [first, second])
    d.set_masks(model, {"h_mask": [1, 0, 1, 0, 1, 1]})
    compacted = compact(model)
    x = rng.normal(size=(3, 4)).astype("float32")
    expected_outputs, got_outputs = _forward(model, x), _forward(compacted, x)
    assert [o.shape for o in got_outputs] == [(3, 2), (3, 3)]
    for expected, got in zip(expected_outputs, got_outputs):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert compacted.get_layer("h").get_config()["units"] == 4
