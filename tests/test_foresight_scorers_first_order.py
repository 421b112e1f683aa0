"""Tests of the first-order / data-free foresight scorers: gradient, activation, LAP, LAMP, SNIP.

Each expected value is computed independently of the scorer under test: by hand, by a
hand-written TensorFlow forward pass, or by a naive Python loop.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.foresight import MaskedConv2D, MaskedDense, MaskedLSTM, prune_at_init, prunable_weights
from dropnet_tf.foresight.scorers import WEIGHT_SCORERS
from dropnet_tf.foresight.scorers.activation import ActivationScorer
from dropnet_tf.foresight.scorers.gradient import GradientScorer
from dropnet_tf.foresight.scorers.lamp import LAMPScorer, lamp_scores
from dropnet_tf.foresight.scorers.lap import LAPScorer
from dropnet_tf.foresight.scorers.snip import SNIPScorer
from dropnet_tf.foresight.weights import get_weight_masks, set_weight_masks

pytestmark = pytest.mark.both_keras


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def mlp(sizes=(4, 5, 3), hidden_activation="tanh", seed=0):
    """MaskedDense MLP ending in logits (no softmax), biases randomised so they matter."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))]
    for i, units in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        layers.append(MaskedDense(units, activation=None if last else hidden_activation, name=f"d{i}"))
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
        layer.kernel.assign(rng.normal(size=kernel.shape).astype(np.float32))
        layer.bias.assign(rng.normal(scale=0.5, size=bias.shape).astype(np.float32))
    return model


def batch(n=6, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, size=n)


def explicit_mlp_gradients(model, x, y):
    """∂L/∂c and ∂L/∂W of the same MLP written by hand, with kernel_l ⊙ c_l (c = 1).

    L is the mean softmax cross-entropy, the loss of SNIP eq. 3 — nothing from dropnet_tf.
    """
    kernels = [tf.constant(layer.kernel.numpy()) for layer in model.layers]
    biases = [tf.constant(layer.bias.numpy()) for layer in model.layers]
    cs = [tf.Variable(tf.ones_like(k)) for k in kernels]
    ws = [tf.Variable(k) for k in kernels]
    with tf.GradientTape(persistent=True) as tape:
        h = tf.constant(x)
        for i, (w, c, b) in enumerate(zip(ws, cs, biases)):
            h = tf.matmul(h, c * w) + b
            if i < len(ws) - 1:
                h = tf.tanh(h)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(y, tf.int32), logits=h))
    dc = [g.numpy().astype(np.float64) for g in tape.gradient(loss, cs)]
    dw = [g.numpy().astype(np.float64) for g in tape.gradient(loss, ws)]
    return dc, dw


def kept_counts(model):
    return {name: int(mask.sum()) for name, mask in get_weight_masks(model).items()}


def keep(n, r):
    return int(np.floor(n / r + 0.5))


# --------------------------------------------------------------------------------------------
# SNIP
# --------------------------------------------------------------------------------------------


def test_snip_connection_gradient_is_dL_dc_not_dL_dw():
    model = mlp()
    x, y = batch()
    weights = prunable_weights(model)
    dc, dw = explicit_mlp_gradients(model, x, y)
    g = SNIPScorer.connection_gradients(model, weights, (x, y))
    for weight, expected_dc, expected_dw in zip(weights, dc, dw):
        # SNIP eq. 5, signed: the derivative with respect to the indicator c.
        np.testing.assert_allclose(g[weight.name], expected_dc, rtol=1e-5, atol=1e-6)
        # The thesis' reading |∂L/∂w| (its eq. 3.5) is a different quantity.
        assert not np.allclose(np.abs(g[weight.name]), np.abs(expected_dw), rtol=1e-3, atol=1e-4)
    # ... and it ranks the connections differently (what matters for pruning).
    flat_c = np.concatenate([np.abs(d).ravel() for d in dc])
    flat_w = np.concatenate([np.abs(d).ravel() for d in dw])
    assert not np.array_equal(np.argsort(flat_c), np.argsort(flat_w))


def test_snip_scores_are_normalised_globally():
    model = mlp()
    x, y = batch()
    weights = prunable_weights(model)
    dc, _ = explicit_mlp_gradients(model, x, y)
    scores = SNIPScorer().score(model, weights, (x, y), np.random.default_rng(0))
    total = sum(np.abs(d).sum() for d in dc)
    assert sum(float(s.sum()) for s in scores.values()) == pytest.approx(1.0, abs=1e-9)
    for weight, expected in zip(weights, dc):
        # One normaliser over all layers (eq. 6), not one per tensor.
        np.testing.assert_allclose(scores[weight.name], np.abs(expected) / total, rtol=1e-5, atol=1e-9)
        assert scores[weight.name].shape == weight.shape


def test_snip_pruned_connections_score_zero():
    model = mlp()
    x, y = batch()
    masks = get_weight_masks(model)
    masks["d0/kernel"][0, :] = 0
    set_weight_masks(model, masks)
    scores = SNIPScorer().score(model, prunable_weights(model), (x, y))
    assert np.all(scores["d0/kernel"][0, :] == 0)
    assert np.all(scores["d0/kernel"][1:, :] > 0)


def test_snip_batch_size_scores_one_subset_of_the_batch():
    model = mlp()
    x, y = batch(n=6)
    weights = prunable_weights(model)
    scores = SNIPScorer(batch_size=3).score(model, weights, (x, y), np.random.default_rng(5))
    full = SNIPScorer().score(model, weights, (x, y))
    assert not np.allclose(scores["d0/kernel"], full["d0/kernel"])
    matches = []
    for rows in itertools.combinations(range(6), 3):
        rows = list(rows)
        candidate = SNIPScorer().score(model, weights, (x[rows], y[rows]))
        matches.append(all(np.allclose(candidate[w.name], scores[w.name], rtol=1e-6, atol=1e-12) for w in weights))
    assert sum(matches) == 1
    # batch_size at least the batch: the whole batch.
    whole = SNIPScorer(batch_size=100).score(model, weights, (x, y))
    np.testing.assert_allclose(whole["d1/kernel"], full["d1/kernel"])


def test_snip_variance_scaling_init_reinitialises_before_scoring():
    model = mlp(sizes=(20, 30, 10))
    x, y = batch(n=8, features=20, classes=10)
    masks = get_weight_masks(model)
    masks["d0/kernel"][:5] = 0
    set_weight_masks(model, masks)
    weights = prunable_weights(model)
    before = {w.name: w.variable.numpy().copy() for w in weights}
    scorer = SNIPScorer(variance_scaling_init="glorot_uniform")
    scores = scorer.score(model, weights, (x, y), np.random.default_rng(3))
    after = {w.name: w.variable.numpy().copy() for w in weights}
    for w in weights:
        fan_in, fan_out = w.shape
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert not np.allclose(after[w.name], before[w.name])
        assert np.abs(after[w.name]).max() <= limit + 1e-6
        assert np.abs(after[w.name]).max() > 0.5 * limit
    assert np.all(after["d0/kernel"][:5] == 0)
    # The scores are those of the re-initialised weights.
    rescored = SNIPScorer().score(model, weights, (x, y))
    np.testing.assert_allclose(scores["d1/kernel"], rescored["d1/kernel"], rtol=1e-6)
    # Same seed, same draw.
    model2 = mlp(sizes=(20, 30, 10))
    set_weight_masks(model2, masks)
    scorer.score(model2, prunable_weights(model2), (x, y), np.random.default_rng(3))
    np.testing.assert_array_equal(prunable_weights(model2)[1].variable.numpy(), after["d1/kernel"])


def test_snip_rejects_bad_options():
    with pytest.raises(ValueError, match="variance_scaling_init"):
        SNIPScorer(variance_scaling_init="orthogonal")
    with pytest.raises(ValueError, match="batch_size"):
        SNIPScorer(batch_size=0)


# --------------------------------------------------------------------------------------------
# Gradient
# --------------------------------------------------------------------------------------------


def test_gradient_scorer_is_abs_theta_times_gradient():
    model = mlp()
    x, y = batch()
    weights = prunable_weights(model)
    _, dw = explicit_mlp_gradients(model, x, y)
    scores = GradientScorer().score(model, weights, (x, y))
    for weight, grad in zip(weights, dw):
        expected = np.abs(weight.variable.numpy().astype(np.float64) * grad)
        np.testing.assert_allclose(scores[weight.name], expected, rtol=1e-5, atol=1e-9)


def test_gradient_scorer_uses_batch_statistics_and_restores_them():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), MaskedDense(6, name="d0"), keras.layers.BatchNormalization(), MaskedDense(3, name="d1")]
    )
    bn = model.layers[1]
    bn.moving_mean.assign(np.full(6, 5.0, np.float32))
    x, y = batch()
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    weights = prunable_weights(model)
    scores = GradientScorer().score(model, weights, (x, y))
    for old, new in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(old, new.numpy())
    # Training mode: with batch statistics the moving mean of 5 plays no part.
    with tf.GradientTape() as tape:
        z = model(x, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(y, tf.int32), logits=z))
    grad = tape.gradient(loss, weights[0].variable)
    np.testing.assert_allclose(scores["d0/kernel"], np.abs(weights[0].variable.numpy() * grad.numpy()), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", ["gradient", "snip", "activation"])
def test_data_scorers_need_data(name):
    model = mlp()
    with pytest.raises(ValueError, match="data=\\(x, y\\)"):
        WEIGHT_SCORERS[name]().score(model, prunable_weights(model), None)
    with pytest.raises(ValueError, match="pass data"):
        prune_at_init(model, WEIGHT_SCORERS[name](), 2.0, data=None)


# --------------------------------------------------------------------------------------------
# LAMP
# --------------------------------------------------------------------------------------------


def test_lamp_hand_computed():
    # |W| sorted: 1, 2, 3; squares 1, 4, 9.
    #   score(1) = 1 / (1 + 4 + 9) = 1/14
    #   score(2) = 4 / (4 + 9)     = 4/13
    #   score(3) = 9 / 9           = 1
    np.testing.assert_allclose(lamp_scores(np.array([[3.0, -1.0, 2.0]])), [[1.0, 1 / 14, 4 / 13]])


def test_lamp_ties_are_ordered_by_flat_index():
    # Squares 4, 4, 1: sorted (stable) as index 2, 0, 1.
    #   index 2: 1 / 9; index 0: 4 / (4 + 4) = 1/2; index 1: 4 / 4 = 1
    np.testing.assert_allclose(lamp_scores(np.array([2.0, -2.0, 1.0])), [0.5, 1.0, 1 / 9])
    # Exactly one weight scores 1 even when every magnitude is equal.
    # All 200 equal: the weight at flat index u has the 200 - u tied weights after it in
    # the order, so its score is 1 / (200 - u) (large enough that an unstable sort would
    # scramble the order).
    tied = lamp_scores(np.full((10, 20), 0.7))
    assert np.sum(tied == 1.0) == 1
    np.testing.assert_allclose(tied.ravel(), 1.0 / np.arange(200, 0, -1))
    # Fully pruned tensor: zeros, not NaN.
    np.testing.assert_array_equal(lamp_scores(np.zeros(4)), np.zeros(4))


def test_lamp_scorer_per_tensor_and_global_selection():
    model = mlp(sizes=(7, 9, 5))
    # Make the second layer's weights tiny: magnitude pruning would empty it, LAMP must not.
    model.layers[1].kernel.assign(model.layers[1].kernel.numpy() * 1e-3)
    weights = prunable_weights(model)
    scores = LAMPScorer().score(model, weights)
    for weight in weights:
        np.testing.assert_allclose(scores[weight.name], lamp_scores(weight.variable.numpy()))
        assert np.sum(scores[weight.name] == 1.0) == 1
    n = 7 * 9 + 9 * 5
    report = prune_at_init(model, "lamp", 7.0)
    assert report.nonzero == keep(n, 7.0)
    # Keeping only two weights: LAMP keeps the largest of each tensor.
    model = mlp(sizes=(7, 9, 5))
    model.layers[1].kernel.assign(model.layers[1].kernel.numpy() * 1e-3)
    largest = {w.name: np.argmax(np.abs(w.variable.numpy())) for w in prunable_weights(model)}
    prune_at_init(model, "lamp", n / 2)
    for name, mask in get_weight_masks(model).items():
        assert mask.sum() == 1 and mask.ravel()[largest[name]] == 1


# --------------------------------------------------------------------------------------------
# LAP
# --------------------------------------------------------------------------------------------


def dense_chain(kernels):
    layers = [keras.Input((kernels[0].shape[0],))]
    layers += [MaskedDense(k.shape[1], activation="relu", name=f"d{i}") for i, k in enumerate(kernels)]
    model = keras.Sequential(layers)
    for layer, kernel in zip(model.layers, kernels):
        layer.kernel.assign(np.asarray(kernel, np.float32))
    return model


def test_lap_hand_computed_three_dense_layers():
    w1 = np.array([[3, 0, 1], [-4, 1, 0]], float)  # into hidden units j (columns): norms 5, 1, 1
    w2 = np.array([[3, 4], [0, -2], [1, 0]], float)  # rows (out of j): 5, 2, 1; columns (into k): √10, √20
    w3 = np.array([[1, 0], [3, 4]], float)  # rows (out of k): 1, 5
    model = dense_chain([w1, w2, w3])
    scores = LAPScorer().score(model, prunable_weights(model))
    # Layer 1 (first): previous factor 1, next = row norms of w2 per output unit.
    #   |w1| * [5, 2, 1] = [[15, 0, 1], [20, 2, 0]]
    np.testing.assert_allclose(scores["d0/kernel"], [[15, 0, 1], [20, 2, 0]])
    # Layer 2: |w2[j, k]| * colnorm(w1)[j] * rownorm(w3)[k]
    #   row 0: 3·5·1 = 15, 4·5·5 = 100; row 1: 0, 2·1·5 = 10; row 2: 1·1·1 = 1, 0
    np.testing.assert_allclose(scores["d1/kernel"], [[15, 100], [0, 10], [1, 0]])
    # Layer 3 (last): |w3[j, k]| * colnorm(w2)[j], next factor 1.
    #   [[1·√10, 0], [3·√20, 4·√20]]
    np.testing.assert_allclose(scores["d2/kernel"], [[np.sqrt(10), 0], [3 * np.sqrt(20), 4 * np.sqrt(20)]])


def test_lap_factor_is_one_without_a_compatible_neighbour():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            MaskedDense(6, name="a"),
            keras.layers.Reshape((2, 3)),
            MaskedDense(5, name="b"),  # reads 3 units of a's 6: not adjacent in the LAP sense
        ]
    )
    scores = LAPScorer().score(model, prunable_weights(model))
    np.testing.assert_allclose(scores["a/kernel"], np.abs(model.layers[0].kernel.numpy()))
    np.testing.assert_allclose(scores["b/kernel"], np.abs(model.layers[2].kernel.numpy()))


def naive_conv_flatten_dense_lap(c1, c2, d1, d2):
    """Thesis eq. 3.3 by loops, for conv1 → conv2 → Flatten → dense1 → dense2 (channels_last)."""
    channels = c2.shape[3]
    out = {k: np.zeros(v.shape) for k, v in {"c1": c1, "c2": c2, "d1": d1, "d2": d2}.items()}
    for a, b, ci, co in itertools.product(*map(range, c1.shape)):
        following = np.sqrt(sum(c2[p, q, co, o] ** 2 for p in range(3) for q in range(3) for o in range(channels)))
        out["c1"][a, b, ci, co] = abs(c1[a, b, ci, co]) * 1.0 * following
    for a, b, ci, co in itertools.product(*map(range, c2.shape)):
        before = np.sqrt(sum(c1[p, q, i, ci] ** 2 for p in range(3) for q in range(3) for i in range(c1.shape[2])))
        rows = [j for j in range(d1.shape[0]) if j % channels == co]
        following = np.sqrt(sum(d1[j, k] ** 2 for j in rows for k in range(d1.shape[1])))
        out["c2"][a, b, ci, co] = abs(c2[a, b, ci, co]) * before * following
    for j, k in itertools.product(*map(range, d1.shape)):
        channel = j % channels
        before = np.sqrt(sum(c2[p, q, i, channel] ** 2 for p in range(3) for q in range(3) for i in range(c2.shape[2])))
        following = np.sqrt(sum(d2[k, o] ** 2 for o in range(d2.shape[1])))
        out["d1"][j, k] = abs(d1[j, k]) * before * following
    for j, k in itertools.product(*map(range, d2.shape)):
        before = np.sqrt(sum(d1[i, j] ** 2 for i in range(d1.shape[0])))
        out["d2"][j, k] = abs(d2[j, k]) * before * 1.0
    return out


def conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            MaskedConv2D(2, 3, activation="relu", name="c1"),
            MaskedConv2D(4, 3, activation="relu", name="c2"),
            keras.layers.Flatten(),
            MaskedDense(5, activation="relu", name="d1"),
            MaskedDense(3, name="d2"),
        ]
    )


def test_lap_conv_flatten_dense_matches_naive_loops():
    model = conv_model()
    # Prune some weights first: LAP reads the current, masked values.
    rng = np.random.default_rng(0)
    masks = {name: (rng.random(m.shape) > 0.3).astype(np.float32) for name, m in get_weight_masks(model).items()}
    set_weight_masks(model, masks)
    values = {w.name.split("/")[0]: w.variable.numpy().astype(np.float64) for w in prunable_weights(model)}
    expected = naive_conv_flatten_dense_lap(values["c1"], values["c2"], values["d1"], values["d2"])
    scores = LAPScorer().score(model, prunable_weights(model))
    for name in ("c1", "c2", "d1", "d2"):
        np.testing.assert_allclose(scores[f"{name}/kernel"], expected[name], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Activation
# --------------------------------------------------------------------------------------------


def test_activation_scorer_dense_values():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), MaskedDense(4, activation="relu", name="h"), MaskedDense(2, name="o")])
    kernel = np.array([[1, -1, 2, 0.5], [0, 1, -1, 1], [2, 0, 1, -1]], np.float32)
    model.layers[0].kernel.assign(kernel)
    model.layers[0].bias.assign(np.zeros(4, np.float32))
    x = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]], np.float32)
    y = np.zeros(3, int)
    # relu(x @ kernel): rows [1, 0, 2, 0.5], [2, 1, 0, 0], [1, 0, 1, 1.5]
    # batch mean a = [4/3, 1/3, 1, 2/3]; divided by its max 4/3: [1, 1/4, 3/4, 1/2]
    scores = ActivationScorer().score(model, prunable_weights(model), (x, y))
    np.testing.assert_allclose(scores["h/kernel"], np.abs(kernel) * np.array([1, 0.25, 0.75, 0.5]), rtol=1e-6)
    # L2 normalisation: a / ‖a‖, ‖a‖ = √(16/9 + 1/9 + 1 + 4/9) = √30 / 3
    l2 = ActivationScorer(normalization="l2").score(model, prunable_weights(model), (x, y))
    a = np.array([4 / 3, 1 / 3, 1, 2 / 3]) / (np.sqrt(30) / 3)
    np.testing.assert_allclose(l2["h/kernel"], np.abs(kernel) * a, rtol=1e-6)


def test_activation_scorer_reads_the_following_activation_layer():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    hidden = MaskedDense(4, name="h")(inputs)
    hidden = keras.layers.ReLU(name="relu")(hidden)
    outputs = MaskedDense(2, name="o")(hidden)
    model = keras.Model(inputs, outputs)
    x, y = batch(n=5, features=3, classes=2)
    h = model.get_layer("h")
    relu = np.maximum(x @ h.kernel.numpy() + h.bias.numpy(), 0).mean(axis=0)
    linear = (x @ h.kernel.numpy() + h.bias.numpy()).mean(axis=0)
    scores = ActivationScorer(normalization=None).score(model, prunable_weights(model), (x, y))
    np.testing.assert_allclose(scores["h/kernel"], np.abs(h.kernel.numpy() * relu), rtol=1e-5, atol=1e-7)
    assert not np.allclose(scores["h/kernel"], np.abs(h.kernel.numpy() * linear))


def assert_output_axis_broadcast(score, kernel, a):
    """score == |kernel · a| with a constant over every axis but the last."""
    np.testing.assert_allclose(score, np.abs(kernel * a.reshape((1,) * (kernel.ndim - 1) + (-1,))), rtol=1e-5, atol=1e-9)


def test_activation_scorer_broadcasts_conv_per_channel():
    model = conv_model()
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype(np.float32)
    y = np.zeros(4, int)
    weights = prunable_weights(model)
    scores = ActivationScorer(normalization=None).score(model, weights, (x, y))
    c1 = model.get_layer("c1")
    # Conv activations averaged over batch and all spatial positions, one per output channel.
    feature = tf.nn.relu(tf.nn.conv2d(x, c1.kernel.numpy(), 1, "VALID") + c1.bias.numpy()).numpy()
    assert_output_axis_broadcast(scores["c1/kernel"], c1.kernel.numpy(), feature.mean(axis=(0, 1, 2)))
    for weight in weights:
        assert scores[weight.name].shape == weight.shape


def test_activation_scorer_recurrent_tiles_units_over_gates():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 2)), MaskedLSTM(3, name="lstm"), MaskedDense(2, name="o")])
    x = np.random.default_rng(0).normal(size=(4, 5, 2)).astype(np.float32)
    y = np.zeros(4, int)
    weights = prunable_weights(model)
    scores = ActivationScorer().score(model, weights, (x, y))
    h = keras.Model(model.inputs[0], model.layers[0].output)(x).numpy().mean(axis=0)
    a = h / np.abs(h).max()
    for weight in weights[:2]:
        assert weight.shape[-1] == 12
        assert_output_axis_broadcast(scores[weight.name], weight.variable.numpy(), np.tile(a, 4))


def test_activation_scorer_rejects_models_without_symbolic_outputs():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = MaskedDense(3)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    x, y = batch(n=2, features=4)
    model(x)
    with pytest.raises(ValueError, match="symbolic"):
        ActivationScorer().score(model, prunable_weights(model), (x, y))


# --------------------------------------------------------------------------------------------
# Selection through prune_at_init
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["random", "magnitude", "gradient", "activation", "lap", "snip"])
def test_prune_at_init_keeps_exact_counts_of_the_highest_scores(name):
    x, y = batch(n=8, features=7, classes=5)
    # The scores of the unpruned model, drawn as prune_at_init draws them (random: same seed).
    model = mlp(sizes=(7, 9, 5))
    scores = WEIGHT_SCORERS[name]().score(model, prunable_weights(model), (x, y), np.random.default_rng(1))
    report = prune_at_init(model, WEIGHT_SCORERS[name](), 4.0, (x, y), scope="global", seed=1)
    masks = get_weight_masks(model)
    assert report.nonzero == sum(np.count_nonzero(m) for m in masks.values()) == keep(63 + 45, 4.0) == 27
    # The 27 kept weights are the 27 highest scores of all (lower scores are pruned first).
    kept = np.concatenate([scores[n][masks[n] == 1] for n in masks])
    pruned = np.concatenate([scores[n][masks[n] == 0] for n in masks])
    assert kept.min() > pruned.max(), f"{name}: a pruned weight outscored a kept one"
    model = mlp(sizes=(7, 9, 5))
    prune_at_init(model, WEIGHT_SCORERS[name](), 4.0, (x, y), scope="layer", seed=1)
    # round(63 / 4) = 16, round(45 / 4) = 11
    assert kept_counts(model) == {"d0/kernel": 16, "d1/kernel": 11}
    for n, mask in get_weight_masks(model).items():
        assert scores[n][mask == 1].min() > scores[n][mask == 0].max(), f"{name}: {n}"
    # The kept weights are exactly zero elsewhere.
    for weight in prunable_weights(model):
        assert np.all(weight.variable.numpy()[weight.mask.numpy() == 0] == 0)
