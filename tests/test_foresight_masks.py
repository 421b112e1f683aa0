"""Weight masks: pruned weights exactly zero in the forward pass, through training with any
optimizer, and across .keras save/load; add_weight_masks; weight selection; compression."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import KERAS_MAJOR, keras, tf
from dropnet_tf import foresight as fs
from dropnet_tf.foresight.weights import compression_report
from dropnet_tf.core.selection import keep_count, select_weights

pytestmark = pytest.mark.both_keras

LAYER_CASES = [
    ("dense", fs.MaskedDense, (6,), dict(units=5)),
    ("conv2d", fs.MaskedConv2D, (7, 7, 2), dict(filters=4, kernel_size=3)),
    ("conv1d", fs.MaskedConv1D, (9, 3), dict(filters=4, kernel_size=3)),
    ("depthwise", fs.MaskedDepthwiseConv2D, (7, 7, 2), dict(kernel_size=3)),
    ("lstm", fs.MaskedLSTM, (5, 4), dict(units=4)),
    ("gru", fs.MaskedGRU, (5, 4), dict(units=4)),
]


def small_model(cls, input_shape, kwargs, **extra):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            cls(**kwargs, **extra, name="target"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ]
    )


def random_half_masks(layer, seed=0):
    rng = np.random.default_rng(seed)
    masks = {}
    for name, mask in layer.weight_masks.items():
        m = (rng.random(tuple(mask.shape)) < 0.5).astype(np.float32)
        m.reshape(-1)[0] = 1.0  # keep at least one weight alive
        masks[f"{layer.name}/{name}"] = m
    return masks


def fit_briefly(model, input_shape, optimizer, epochs=2):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(48,) + tuple(input_shape)).astype(np.float32)
    y = rng.integers(0, 3, size=48)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return x


def optimizers():
    sgd = keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
    adamw = keras.optimizers.AdamW(1e-2, weight_decay=0.1)
    return [("sgd_nesterov", sgd), ("adamw", adamw)]


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
@pytest.mark.parametrize("which", ["sgd_nesterov", "adamw"])
def test_pruned_weights_stay_exactly_zero_through_training(case, which):
    _, cls, input_shape, kwargs = case
    model = small_model(cls, input_shape, kwargs)
    layer = model.get_layer("target")
    assert layer.weight_masks, "a masked layer must mask at least its kernel"
    masks = random_half_masks(layer)
    fs.set_weight_masks(model, masks, strict=False)
    before = {name: layer.masked_weight(name).numpy().copy() for name in layer.weight_masks}
    optimizer = dict(optimizers())[which]
    fit_briefly(model, input_shape, optimizer)
    for name, mask in layer.weight_masks.items():
        value = layer.masked_weight(name).numpy()
        pruned = mask.numpy() == 0
        assert pruned.any()
        assert np.all(value[pruned] == 0.0), f"{name}: pruned weights moved"
        # The kept weights did train (so the test would notice a frozen layer).
        assert not np.allclose(value[~pruned], before[name][~pruned])


def test_l2_regulariser_and_user_constraint_still_work():
    model = small_model(
        fs.MaskedDense, (6,), dict(units=5), kernel_regularizer=keras.regularizers.L2(0.1),
        kernel_constraint=keras.constraints.MaxNorm(0.5),
    )
    layer = model.get_layer("target")
    fs.set_weight_masks(model, random_half_masks(layer), strict=False)
    fit_briefly(model, (6,), keras.optimizers.SGD(0.5, momentum=0.9))
    kernel = layer.masked_weight("kernel").numpy()
    assert np.all(kernel[layer.weight_masks["kernel"].numpy() == 0] == 0)
    # MaxNorm(0.5) on every column is still enforced after the mask.
    assert np.all(np.linalg.norm(kernel, axis=0) <= 0.5 + 1e-5)
    assert layer.get_config()["kernel_constraint"]["class_name"] == "MaxNorm"


def test_forward_pass_matches_a_plain_model_with_zeroed_weights():
    rng = np.random.default_rng(3)
    model = small_model(fs.MaskedConv2D, (6, 6, 2), dict(filters=3, kernel_size=3, activation="relu"))
    layer = model.get_layer("target")
    masks = random_half_masks(layer)
    fs.set_weight_masks(model, masks, strict=False)
    plain = small_model(keras.layers.Conv2D, (6, 6, 2), dict(filters=3, kernel_size=3, activation="relu"))
    kernel, bias = model.get_layer("target").get_weights()[:2]
    plain.get_layer("target").set_weights([kernel, bias])
    plain.get_layer("head").set_weights(model.get_layer("head").get_weights())
    np.testing.assert_array_equal(kernel[masks["target/kernel"] == 0], 0.0)
    x = rng.normal(size=(4, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(model(x).numpy(), plain(x).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_masks_survive_keras_save_and_load(case, tmp_path):
    _, cls, input_shape, kwargs = case
    model = small_model(cls, input_shape, kwargs)
    layer = model.get_layer("target")
    fs.set_weight_masks(model, random_half_masks(layer, seed=5), strict=False)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    again = loaded.get_layer("target")
    assert type(again) is cls
    for name, mask in layer.weight_masks.items():
        np.testing.assert_array_equal(again.weight_masks[name].numpy(), mask.numpy())
        np.testing.assert_array_equal(again.masked_weight(name).numpy(), layer.masked_weight(name).numpy())
    # The reloaded layer keeps enforcing its masks while training.
    fit_briefly(loaded, input_shape, keras.optimizers.SGD(0.1, momentum=0.9), epochs=1)
    for name, mask in again.weight_masks.items():
        assert np.all(again.masked_weight(name).numpy()[mask.numpy() == 0] == 0)


def test_bias_is_not_pruned_by_default_but_can_be():
    plain = small_model(fs.MaskedDense, (6,), dict(units=5))
    assert set(plain.get_layer("target").weight_masks) == {"kernel"}
    with_bias = small_model(fs.MaskedDense, (6,), dict(units=5), prune_bias=True)
    assert set(with_bias.get_layer("target").weight_masks) == {"kernel", "bias"}
    names = [w.name for w in fs.prunable_weights(with_bias)]
    assert names == ["target/kernel", "target/bias"]
    with pytest.raises(TypeError, match="prune_bias"):
        fs.MaskedDense(3, prune_bias="yes")


def functional_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    skip = keras.layers.Conv2D(4, 3, name="conv_skip")(inputs)
    x = keras.layers.Add()([x, skip])
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_add_weight_masks_keeps_outputs_and_weights(kind):
    if kind == "sequential":
        model = keras.Sequential(
            [keras.Input((5,)), keras.layers.Dense(4, activation="relu", name="d1"), keras.layers.Dense(3, name="d2")]
        )
        x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    else:
        model = functional_model()
        x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype(np.float32)
    masked = fs.add_weight_masks(model)
    np.testing.assert_allclose(masked(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-7)
    kinds = {type(layer).__name__ for layer in masked.layers}
    assert not kinds & {"Dense", "Conv2D"}
    assert all(mask.min() == 1 for mask in fs.get_weight_masks(masked).values())
    # BatchNormalization stays unpruned unless asked for.
    if kind == "functional":
        assert type(masked.get_layer("bn")).__name__ == "BatchNormalization"
        with_bn = fs.add_weight_masks(model, prune_batchnorm=True, exclude=["head"])
        assert type(with_bn.get_layer("bn")).__name__ == "MaskedBatchNormalization"
        assert type(with_bn.get_layer("head")).__name__ == "Dense"
        assert "bn/gamma" in fs.get_weight_masks(with_bn)


def test_add_weight_masks_rejects_what_it_cannot_rewrite():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(TypeError, match="subclassed"):
        fs.add_weight_masks(Sub())
    with pytest.raises(ValueError, match="nope"):
        fs.add_weight_masks(functional_model(), exclude=["nope"])
    with pytest.raises(ValueError, match="no weight masks"):
        fs.prunable_weights(functional_model())


def test_subclassed_model_with_masked_layers_is_prunable():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = fs.MaskedDense(6, activation="relu")
            self.out = fs.MaskedDense(2)

        def call(self, x):
            return self.out(self.hidden(x))

    model = Sub()
    model(np.zeros((1, 4), np.float32))
    hidden, out = model.hidden.kernel.numpy(), model.out.kernel.numpy()
    report = fs.prune_at_init(model, "global_magnitude", 4)
    assert report.nonzero == keep_count(4 * 6 + 6 * 2, 0.25) == 9
    # The nine largest |θ| of both layers together, found by numpy.
    both = np.abs(np.concatenate([hidden.ravel(), out.ravel()]))
    expected = (both >= np.sort(both)[-9]).astype(np.float32)
    masks = fs.get_weight_masks(model)
    assert len(masks) == 2
    kept = np.concatenate([masks[f"{layer.name}/kernel"].ravel() for layer in (model.hidden, model.out)])
    np.testing.assert_array_equal(kept, expected)


def test_set_weight_masks_validates_names_shapes_and_values():
    model = fs.add_weight_masks(functional_model())
    masks = fs.get_weight_masks(model)
    with pytest.raises(KeyError, match="bogus"):
        fs.set_weight_masks(model, {**masks, "bogus/kernel": np.ones(3)})
    with pytest.raises(KeyError, match="missing"):
        fs.set_weight_masks(model, {"conv/kernel": masks["conv/kernel"]})
    with pytest.raises(ValueError, match="shape"):
        fs.set_weight_masks(model, {**masks, "conv/kernel": np.ones(3)})
    bad = dict(masks)
    bad["conv/kernel"] = np.full(masks["conv/kernel"].shape, 0.5)
    with pytest.raises(ValueError, match="0 and 1"):
        fs.set_weight_masks(model, bad)


# --------------------------------------------------------------------------------------------
# Selection and compression
# --------------------------------------------------------------------------------------------


def test_select_weights_global_keeps_exactly_the_top_scores():
    rng = np.random.default_rng(0)
    scores = {"a": rng.random((10, 7)), "b": rng.random((5,))}
    masks = {"a": np.ones((10, 7)), "b": np.ones(5)}
    new = select_weights(scores, masks, 0.25, "global", rng)
    kept = np.concatenate([new["a"].ravel(), new["b"].ravel()])
    assert kept.sum() == keep_count(75, 0.25) == 19
    all_scores = np.concatenate([scores["a"].ravel(), scores["b"].ravel()])
    assert all_scores[kept > 0].min() > all_scores[kept == 0].max()


def test_select_weights_layerwise_and_inactive_never_revived():
    rng = np.random.default_rng(1)
    scores = {"a": rng.random(100), "b": rng.random(40)}
    masks = {"a": np.ones(100), "b": np.ones(40)}
    masks["a"][:50] = 0  # already pruned, with the highest scores
    scores["a"][:50] += 10
    new = select_weights(scores, masks, 0.25, "layer", rng)
    assert new["a"][:50].sum() == 0
    assert new["a"].sum() == 25 and new["b"].sum() == 10


def test_select_weights_breaks_ties_at_random_but_exactly():
    scores = {"a": np.zeros(20)}
    masks = {"a": np.ones(20)}
    first = select_weights(scores, masks, 0.5, "global", 0)["a"]
    second = select_weights(scores, masks, 0.5, "global", 1)["a"]
    assert first.sum() == second.sum() == 10
    assert not np.array_equal(first, second)


def test_select_weights_rejects_bad_input():
    masks = {"a": np.ones(4)}
    with pytest.raises(ValueError, match="density"):
        select_weights({"a": np.ones(4)}, masks, 0.0, "global", 0)
    with pytest.raises(ValueError, match="scope"):
        select_weights({"a": np.ones(4)}, masks, 0.5, "everywhere", 0)
    with pytest.raises(ValueError, match="not finite"):
        select_weights({"a": np.array([1.0, np.nan, 2.0, 3.0])}, masks, 0.5, "global", 0)
    with pytest.raises(ValueError, match="shape"):
        select_weights({"a": np.ones(3)}, masks, 0.5, "global", 0)


def test_density_schedule_ends_exactly_at_one_over_r():
    schedule = fs.density_schedule(64, 100)
    assert len(schedule) == 100
    assert schedule[-1] == pytest.approx(1 / 64)
    assert schedule[0] == pytest.approx(64 ** (-1 / 100))
    assert all(a > b for a, b in zip(schedule, schedule[1:]))
    with pytest.raises(ValueError, match="schedule"):
        fs.density_schedule(4, 3, "cosine")


def test_prune_at_init_validates_arguments():
    model = fs.add_weight_masks(functional_model())
    with pytest.raises(ValueError, match="compression"):
        fs.prune_at_init(model, "random", 0.5)
    with pytest.raises(ValueError, match="Unknown pruning method"):
        fs.prune_at_init(model, "magnitude_of_love", 2)
    with pytest.raises(ValueError, match="iterations"):
        fs.prune_at_init(model, "random", 2, iterations=0)


def test_compression_report_counts_and_detects_collapse():
    model = fs.add_weight_masks(functional_model())
    masks = fs.get_weight_masks(model)
    masks["conv_skip/kernel"][:] = 0
    masks["conv/kernel"].reshape(-1)[: masks["conv/kernel"].size // 2] = 0
    fs.set_weight_masks(model, masks)
    report = compression_report(model, target_ratio=4.0)
    total = sum(m.size for m in masks.values())
    nonzero = int(sum(m.sum() for m in masks.values()))
    assert report.total == total and report.nonzero == nonzero
    assert report.empirical_ratio == pytest.approx(total / nonzero)
    assert report.compression_error == pytest.approx((4.0 - total / nonzero) / 4.0)
    assert report.collapsed == ("conv_skip/kernel",)
    # conv/kernel has 3·3·1·4 = 36 entries, 18 of them zeroed: exactly one half.
    assert report.as_dict()["per_weight_density"] == {"conv/kernel": 0.5, "conv_skip/kernel": 0.0, "head/kernel": 1.0}


def test_add_weight_masks_reaches_into_nested_models():
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu", name="inner_dense")], name="inner")
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(2, name="outer_dense")(inner(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    masked = fs.add_weight_masks(model)
    np.testing.assert_allclose(masked(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-7)
    assert sorted(fs.get_weight_masks(masked)) == ["inner_dense/kernel", "outer_dense/kernel"]


# --------------------------------------------------------------------------------------------
# Masks under steps_per_execution > 1, in custom loops, and on biases (prune_bias)
# --------------------------------------------------------------------------------------------


def masked_mlp_with_half_masks(seed=0):
    keras.utils.set_random_seed(seed)
    model = small_model(fs.MaskedDense, (6,), dict(units=5))
    layer = model.get_layer("target")
    masks = random_half_masks(layer, seed=seed)
    fs.set_weight_masks(model, masks)
    return model, layer, masks["target/kernel"]


def training_batches(steps=8, batch_size=6, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps * batch_size, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=steps * batch_size)
    return x, y


def test_masks_hold_with_steps_per_execution():
    # Four optimizer steps run inside one tf.function call; the mask must be enforced after
    # each of them, not once per call.  The result must equal a one-step-per-call run.
    x, y = training_batches()
    finals = {}
    for steps in (4, 1):
        model, layer, mask = masked_mlp_with_half_masks()
        before = layer.kernel.numpy().copy()
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                      steps_per_execution=steps)
        model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
        kernel = layer.kernel.numpy()
        assert np.all(kernel[mask == 0] == 0.0), f"steps_per_execution={steps}: pruned weights moved"
        assert np.all(kernel[mask == 1] != before[mask == 1]), f"steps_per_execution={steps}: kept weights frozen"
        finals[steps] = kernel
    np.testing.assert_allclose(finals[4], finals[1], rtol=1e-5, atol=1e-7)


def test_masks_hold_in_a_custom_training_loop():
    # The same loop on a plain Dense model, masked by hand after every step, is the reference.
    x, y = training_batches()
    model, layer, mask = masked_mlp_with_half_masks()
    plain = small_model(keras.layers.Dense, (6,), dict(units=5))
    plain.get_layer("target").set_weights([layer.kernel.numpy(), layer.bias.numpy()])
    plain.get_layer("head").set_weights(model.get_layer("head").get_weights())
    before = layer.kernel.numpy().copy()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    for m, by_hand in ((model, False), (plain, True)):
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        for step in range(8):
            xb, yb = x[step * 6:(step + 1) * 6], y[step * 6:(step + 1) * 6]
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, m(xb, training=True))
            grads = tape.gradient(loss, m.trainable_variables)
            optimizer.apply_gradients(zip(grads, m.trainable_variables))
            if by_hand:
                kernel = m.get_layer("target").kernel
                kernel.assign(kernel * mask)
    kernel = layer.kernel.numpy()
    assert np.all(kernel[mask == 0] == 0.0), "pruned weights moved in a custom loop"
    assert np.all(kernel[mask == 1] != before[mask == 1])
    np.testing.assert_allclose(kernel, plain.get_layer("target").kernel.numpy(), rtol=1e-5, atol=1e-7)


def bias_model(prune_bias):
    keras.utils.set_random_seed(2)
    model = small_model(fs.MaskedDense, (6,), dict(units=5, activation="tanh"), prune_bias=prune_bias)
    layer = model.get_layer("target")
    rng = np.random.default_rng(2)
    layer.kernel.assign(rng.normal(size=(6, 5)).astype(np.float32))
    # Two tiny biases: the two smallest magnitudes of all 35 kernel and bias entries.
    layer.bias.assign(np.array([0.8, -1e-3, 2.0, 1e-4, -0.9], np.float32))
    return model, layer


def top_magnitudes(values, k):
    """0/1 mask keeping the k largest |values| (numpy; no ties in these draws)."""
    flat = np.abs(values).ravel()
    keep = np.zeros(flat.size, np.float32)
    keep[np.argsort(flat)[::-1][:k]] = 1.0
    return keep.reshape(values.shape)


def test_pruned_biases_stay_exactly_zero_through_training():
    model, layer = bias_model(prune_bias=True)
    kernel, bias = layer.kernel.numpy().copy(), layer.bias.numpy().copy()
    assert [w.name for w in fs.prunable_weights(model)] == ["target/kernel", "target/bias"]
    fs.prune_at_init(model, "global_magnitude", 2)
    # Global magnitude over kernel and bias together: round(35 / 2) = 18 largest |θ|.
    expected = top_magnitudes(np.concatenate([kernel.ravel(), bias]), 18)
    masks = fs.get_weight_masks(model)
    np.testing.assert_array_equal(masks["target/kernel"].ravel(), expected[:30])
    np.testing.assert_array_equal(masks["target/bias"], expected[30:])
    pruned_bias = expected[30:] == 0
    assert pruned_bias[[1, 3]].all()  # the two tiny biases went
    np.testing.assert_array_equal(layer.bias.numpy(), bias * expected[30:])
    fit_briefly(model, (6,), keras.optimizers.SGD(0.1, momentum=0.9))
    trained = layer.bias.numpy()
    assert np.all(trained[pruned_bias] == 0.0), f"pruned biases moved: {trained[pruned_bias]}"
    assert np.all(trained[~pruned_bias] != bias[~pruned_bias])


def test_biases_are_never_masked_without_prune_bias():
    model, layer = bias_model(prune_bias=False)
    kernel, bias = layer.kernel.numpy().copy(), layer.bias.numpy().copy()
    assert [w.name for w in fs.prunable_weights(model)] == ["target/kernel"]
    fs.prune_at_init(model, "global_magnitude", 2)
    # Only the kernel is scored: round(30 / 2) = 15 of its entries, the biases untouched.
    np.testing.assert_array_equal(fs.get_weight_masks(model)["target/kernel"], top_magnitudes(kernel, 15))
    np.testing.assert_array_equal(layer.bias.numpy(), bias)
    fit_briefly(model, (6,), keras.optimizers.SGD(0.1, momentum=0.9))
    # The tiny biases a bias mask would have zeroed train freely.
    assert np.all(layer.bias.numpy() != bias)
    assert np.all(layer.bias.numpy() != 0.0)


# --------------------------------------------------------------------------------------------
# The scope behind every method name, by behaviour
# --------------------------------------------------------------------------------------------

#: What each name of foresight.METHODS must be: (scorer class name, selection scope).
EXPECTED_METHODS = {
    "random": ("RandomScorer", "global"),
    "global_magnitude": ("MagnitudeScorer", "global"),
    "layer_magnitude": ("MagnitudeScorer", "layer"),
    "global_gradient": ("GradientScorer", "global"),
    "layer_gradient": ("GradientScorer", "layer"),
    "global_activation": ("ActivationScorer", "global"),
    "layer_activation": ("ActivationScorer", "layer"),
    "global_lap": ("LAPScorer", "global"),
    "layer_lap": ("LAPScorer", "layer"),
    "lamp": ("LAMPScorer", "global"),
    "snip": ("SNIPScorer", "global"),
    "grasp": ("GraSPScorer", "global"),
    "synflow": ("SynFlowScorer", "global"),
    "obd": ("OBDScorer", "global"),
}


def two_scale_model():
    """6 → 8 (tanh) → 4 logits; the first kernel ~N(0, 10²), the second ~N(0, 0.1²)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), fs.MaskedDense(8, activation="tanh", name="a"), fs.MaskedDense(4, name="b")]
    )
    rng = np.random.default_rng(0)
    model.get_layer("a").kernel.assign(rng.normal(scale=10.0, size=(6, 8)).astype(np.float32))
    model.get_layer("b").kernel.assign(rng.normal(scale=0.1, size=(8, 4)).astype(np.float32))
    return model


def test_method_registry_matches_the_expected_table():
    assert set(fs.METHODS) == set(EXPECTED_METHODS) == set(fs.THESIS_LABELS)
    for name, (scorer, scope) in EXPECTED_METHODS.items():
        resolved, resolved_scope = fs.resolve_method(name)
        assert (type(resolved).__name__, resolved_scope) == (scorer, scope), name


@pytest.mark.parametrize("name", sorted(EXPECTED_METHODS))
def test_each_method_selects_with_its_scope(name):
    # r = 4 of 48 + 32 weights: 20 kept in all; layer-wise exactly 12 and 8.  A global
    # selection on layers of such different scales keeps another split (every method
    # here does; how far off depends on the scorer), a layer-wise one keeps exactly 12 and 8.
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 6)).astype(np.float32), np.arange(16) % 4
    model = two_scale_model()
    fs.prune_at_init(model, name, 4, (x, y), seed=0)
    kept = {k: int(np.count_nonzero(m)) for k, m in fs.get_weight_masks(model).items()}
    assert sum(kept.values()) == 20
    if EXPECTED_METHODS[name][1] == "layer":
        assert kept == {"a/kernel": 12, "b/kernel": 8}, f"{name} should select per layer, kept {kept}"
    else:
        assert kept != {"a/kernel": 12, "b/kernel": 8}, f"{name} should select globally, kept {kept}"


def test_magnitude_methods_keep_numpys_top_magnitudes_in_their_scope():
    model = two_scale_model()
    a, b = (model.get_layer(n).kernel.numpy() for n in ("a", "b"))
    fs.prune_at_init(model, "global_magnitude", 4)
    both = top_magnitudes(np.concatenate([a.ravel(), b.ravel()]), 20)
    masks = fs.get_weight_masks(model)
    np.testing.assert_array_equal(masks["a/kernel"].ravel(), both[:48])
    np.testing.assert_array_equal(masks["b/kernel"].ravel(), both[48:])
    model = two_scale_model()
    fs.prune_at_init(model, "layer_magnitude", 4)
    masks = fs.get_weight_masks(model)
    np.testing.assert_array_equal(masks["a/kernel"], top_magnitudes(a, 12))
    np.testing.assert_array_equal(masks["b/kernel"], top_magnitudes(b, 8))


def test_prune_at_init_follows_the_exponential_schedule_round_by_round():
    """SynFlow's Algorithm 1 keeps (1/r)^(k/n) after round k of n. A scorer that counts the weights
    still kept whenever it is asked sees the schedule prune_at_init followed. By hand: 16·32 + 32·10
    = 832 weights, r = 32, n = 5 rounds: 832 · 2^-k before round k + 1, i.e. 832, 416, 208, 104, 52,
    and 26 at the end (a linear schedule would keep 671 after the first round)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), fs.MaskedDense(32), fs.MaskedDense(10)])
    kept = []

    class Counting(fs.WeightScorer):
        name, needs_data, default_iterations = "counting", False, 5

        def score(self, model, weights, data=None, rng=None):
            kept.append(sum(int(np.count_nonzero(m)) for m in fs.get_weight_masks(model).values()))
            return {w.name: rng.random(w.shape) for w in weights}

    fs.prune_at_init(model, Counting(), 32)
    kept.append(sum(int(np.count_nonzero(m)) for m in fs.get_weight_masks(model).values()))
    assert kept == [832, 416, 208, 104, 52, 26]
