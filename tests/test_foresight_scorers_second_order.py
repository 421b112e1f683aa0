"""Tests of the second-order and data-free foresight scorers: OBD, GraSP, SynFlow.

Each derivative is checked against an independent computation: OBD's Hessian diagonal
against the full Hessian from ``tape.jacobian``, GraSP's Hg against a finite difference
of the gradient, SynFlow against the conservation law of its paper.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.foresight import (
    MaskedConv2D,
    MaskedDense,
    compression_report,
    get_weight_masks,
    prunable_weights,
    prune_at_init,
    set_weight_masks,
)
from dropnet_tf.core.objective import cross_entropy
from dropnet_tf.foresight.scorers import WEIGHT_SCORERS
from dropnet_tf.foresight.scorers.grasp import GraSPScorer, balanced_indices
from dropnet_tf.foresight.scorers.obd import OBDScorer, second_order_cross_entropy
from dropnet_tf.foresight.scorers.synflow import SynFlowScorer

L = keras.layers


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def tiny_mlp(dtype="float32", seed=0, classes=2, hidden=4, inputs=3, activation="tanh", output_activation=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((inputs,), dtype=dtype),
            MaskedDense(hidden, activation=activation, dtype=dtype),
            MaskedDense(classes, activation=output_activation, dtype=dtype),
        ]
    )


def batch(n=6, features=3, classes=2, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(dtype), np.arange(n) % classes


def flat(values: dict, weights) -> np.ndarray:
    return np.concatenate([np.asarray(values[w.name]).ravel() for w in weights])


def full_hessian(model, weights, x, y) -> np.ndarray:
    """The n×n Hessian of the objective's cross-entropy w.r.t. the prunable weights."""
    variables = [w.variable for w in weights]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            loss = cross_entropy(model, tf.constant(x), y)
        grad = tf.concat([tf.reshape(g, [-1]) for g in inner.gradient(loss, variables)], axis=0)
    blocks = outer.jacobian(grad, variables)
    n = int(grad.shape[0])
    return np.concatenate([b.numpy().reshape(n, -1) for b in blocks], axis=1).astype(np.float64)


def loss_gradient(model, weights, x, y, temperature):
    with tf.GradientTape() as tape:
        loss = second_order_cross_entropy(model, tf.constant(x), y, temperature)
    return [g.numpy() for g in tape.gradient(loss, [w.variable for w in weights])]


def bias_free_mlp(width=16, depth=3, inputs=8, seed=0, output_activation=None):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((inputs,))]
    layers += [MaskedDense(width, activation="relu", use_bias=False) for _ in range(depth - 1)]
    layers += [MaskedDense(3, activation=output_activation, use_bias=False)]
    return keras.Sequential(layers)


def bias_free_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            MaskedConv2D(4, 3, padding="same", activation="relu", use_bias=False),
            L.MaxPooling2D(),
            MaskedConv2D(6, 3, activation="relu", use_bias=False),
            L.Flatten(),
            MaskedDense(3, use_bias=False),
        ]
    )


def flat_split(scores, masks):
    """(scores of the kept weights, scores of the pruned ones), over every tensor."""
    kept = np.concatenate([np.asarray(scores[n])[masks[n] == 1] for n in masks])
    pruned = np.concatenate([np.asarray(scores[n])[masks[n] == 0] for n in masks])
    return kept, pruned


def layer_sums(scores) -> np.ndarray:
    return np.array([float(np.sum(s)) for s in scores.values()])


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
def test_scorers_are_registered():
    assert WEIGHT_SCORERS["obd"] is OBDScorer
    assert WEIGHT_SCORERS["grasp"] is GraSPScorer
    assert WEIGHT_SCORERS["synflow"] is SynFlowScorer
    assert SynFlowScorer.needs_data is False and SynFlowScorer.default_iterations == 100
    assert OBDScorer.needs_data and GraSPScorer.needs_data


# --------------------------------------------------------------------------------------------
# OBD
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
def test_second_order_loss_equals_the_objective():
    model = tiny_mlp()
    x, y = batch()
    for temperature in (1.0, 7.0):
        ours = second_order_cross_entropy(model, x, y, temperature).numpy()
        reference = cross_entropy(model, x, y, temperature).numpy()
        np.testing.assert_allclose(ours, reference, rtol=1e-6)


@pytest.mark.both_keras
def test_obd_exact_diagonal_equals_diagonal_of_full_hessian():
    model = tiny_mlp()
    x, y = batch()
    weights = prunable_weights(model)
    hessian = full_hessian(model, weights, x, y)
    assert np.abs(np.diag(hessian)).max() > 1e-3  # a non-trivial diagonal
    # chunk_size 7 over 20 weights: three chunks, the last one padded.
    diagonal = OBDScorer(hessian="exact", chunk_size=7).hessian_diagonal(model, weights, (x, y))
    assert {k: v.shape for k, v in diagonal.items()} == {w.name: w.shape for w in weights}
    np.testing.assert_allclose(flat(diagonal, weights), np.diag(hessian), atol=1e-6, rtol=1e-5)


@pytest.mark.both_keras
def test_obd_hutchinson_approaches_the_exact_diagonal():
    model = tiny_mlp()
    x, y = batch()
    weights = prunable_weights(model)
    exact = flat(OBDScorer(hessian="exact").hessian_diagonal(model, weights, (x, y)), weights)
    errors = []
    for probes in (16, 2000):
        estimate = OBDScorer(hessian="hutchinson", probes=probes, chunk_size=500).hessian_diagonal(
            model, weights, (x, y), rng=0
        )
        assert {k: v.shape for k, v in estimate.items()} == {w.name: w.shape for w in weights}
        errors.append(np.linalg.norm(flat(estimate, weights) - exact) / np.linalg.norm(exact))
    # The estimator's standard error falls as 1/sqrt(probes): 2000 probes are within 15%.
    assert errors[1] < 0.15
    assert errors[1] < errors[0]
    again = OBDScorer(hessian="hutchinson", probes=16).hessian_diagonal(model, weights, (x, y), rng=0)
    first = OBDScorer(hessian="hutchinson", probes=16).hessian_diagonal(model, weights, (x, y), rng=0)
    np.testing.assert_array_equal(flat(again, weights), flat(first, weights))


@pytest.mark.both_keras
def test_obd_score_is_half_h_theta_squared_and_zero_for_pruned_weights():
    model = tiny_mlp()
    x, y = batch()
    weights = prunable_weights(model)
    masks = get_weight_masks(model)
    masks[weights[0].name][0, :2] = 0.0
    set_weight_masks(model, masks)
    scorer = OBDScorer(hessian="exact")
    diagonal = scorer.hessian_diagonal(model, weights, (x, y))
    scores = scorer.score(model, weights, (x, y))
    for w in weights:
        theta = w.variable.numpy().astype(np.float64)
        np.testing.assert_allclose(scores[w.name], diagonal[w.name] * theta**2 / 2.0, rtol=1e-12)
        assert scores[w.name].dtype == np.float64
    assert np.all(scores[weights[0].name][0, :2] == 0.0)


@pytest.mark.both_keras
def test_obd_mode_selection_and_errors():
    scorer = OBDScorer(exact_limit=10)
    assert scorer.resolve_mode(10) == "exact"
    assert scorer.resolve_mode(11) == "hutchinson"
    with pytest.raises(ValueError, match="exact_limit"):
        OBDScorer(hessian="exact", exact_limit=10).resolve_mode(11)
    with pytest.raises(ValueError, match="hessian"):
        OBDScorer(hessian="full")
    with pytest.raises(ValueError, match="probes"):
        OBDScorer(probes=0)
    model = tiny_mlp()
    with pytest.raises(ValueError, match="data"):
        OBDScorer().score(model, prunable_weights(model), None)


@pytest.mark.both_keras
def test_obd_keeps_batchnorm_statistics_and_prunes_to_target():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((3,)), MaskedDense(5), L.BatchNormalization(), L.ReLU(), MaskedDense(2)]
    )
    x, y = batch(n=8)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    # OBD's saliency ½ h_ii θ², h_ii from the full Hessian (tape.jacobian), not from the scorer.
    weights = prunable_weights(model)
    theta = flat({w.name: w.variable.numpy() for w in weights}, weights).astype(np.float64)
    saliency = np.diag(full_hessian(model, weights, x, y)) * theta**2 / 2.0
    scores, start = {}, 0
    for w in weights:
        scores[w.name] = saliency[start:start + w.size].reshape(w.shape)
        start += w.size
    for old, variable in zip(before, model.non_trainable_variables):
        variable.assign(old)  # the training-mode pass above moved BatchNorm's statistics
    report = prune_at_init(model, "obd", 4, (x, y))
    for old, variable in zip(before, model.non_trainable_variables):
        if "mask" not in variable.name:
            np.testing.assert_array_equal(old, variable.numpy())
    masks = get_weight_masks(model)
    assert report.nonzero == sum(np.count_nonzero(m) for m in masks.values()) == round(25 / 4)
    # OBD removes the smallest saliencies ½ h θ², globally.
    kept, pruned = flat_split(scores, masks)
    assert kept.min() > pruned.max()


# --------------------------------------------------------------------------------------------
# GraSP
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_hg_matches_finite_difference_of_the_gradient(temperature):
    # float64 model and loss: the central difference then has ~1e-10 relative error.
    model = tiny_mlp(dtype="float64", classes=3, hidden=5)
    x, y = batch(n=12, classes=3, dtype="float64")
    weights = prunable_weights(model)
    g, hg = GraSPScorer(temperature=temperature).gradient_and_hessian_gradient(model, weights, (x, y), sample=False)
    direct = loss_gradient(model, weights, x, y, temperature)
    np.testing.assert_allclose(flat(g, weights), np.concatenate([a.ravel() for a in direct]))

    original = [w.variable.numpy() for w in weights]
    eps = 1e-3 / np.linalg.norm(flat(g, weights))  # a step of length 1e-3 along g

    def gradient_at(sign):
        for w, value in zip(weights, original):
            w.variable.assign(value + sign * eps * g[w.name])
        return np.concatenate([a.ravel() for a in loss_gradient(model, weights, x, y, temperature)])

    difference = (gradient_at(+1) - gradient_at(-1)) / (2 * eps)
    for w, value in zip(weights, original):
        w.variable.assign(value)
    ours = flat(hg, weights)
    assert np.abs(ours).max() > 0
    np.testing.assert_allclose(ours, difference, rtol=0, atol=1e-6 * np.abs(ours).max())


@pytest.mark.both_keras
def test_grasp_score_is_theta_times_hg_and_paper_score_is_its_negative():
    model = tiny_mlp(classes=3)
    x, y = batch(n=30, classes=3)
    weights = prunable_weights(model)
    scorer = GraSPScorer(samples_per_class=4)
    hg = scorer.hessian_gradient(model, weights, (x, y), rng=5)
    scores = scorer.score(model, weights, (x, y), rng=5)
    paper = scorer.grasp_scores(model, weights, (x, y), rng=5)
    for w in weights:
        theta = w.variable.numpy().astype(np.float64)
        np.testing.assert_allclose(scores[w.name], theta * hg[w.name], rtol=1e-12)
        np.testing.assert_allclose(paper[w.name], -scores[w.name], rtol=1e-12)
        assert scores[w.name].shape == w.shape
    # The sampled batch is what Hg was computed on.
    subset = scorer.sample((x, y), rng=5)
    direct = scorer.hessian_gradient(model, weights, subset, sample=False)
    np.testing.assert_allclose(flat(direct, weights), flat(hg, weights), rtol=1e-5, atol=1e-12)


@pytest.mark.both_keras
def test_grasp_draws_a_balanced_subset():
    y = np.array([0] * 30 + [1] * 25 + [2] * 4)
    rng = np.random.default_rng(0).permutation(len(y))
    y = y[rng]
    index = balanced_indices(y, 10, 3)
    assert len(np.unique(index)) == len(index)
    assert np.bincount(y[index]).tolist() == [10, 10, 4]  # all 4 of the small class
    np.testing.assert_array_equal(index, balanced_indices(y, 10, 3))
    assert not np.array_equal(index, balanced_indices(y, 10, 4))
    x = np.arange(len(y), dtype=np.float32)[:, None]
    xs, ys = GraSPScorer(samples_per_class=2).sample((x, np.eye(3)[y]), rng=1)  # one-hot labels too
    assert np.bincount(ys).tolist() == [2, 2, 2]
    np.testing.assert_array_equal(y[xs[:, 0].astype(int)], ys)


@pytest.mark.both_keras
def test_grasp_softmax_model_and_compiled_path_agree_with_logit_model():
    # log-softmax is shift-invariant, so softmax(log p / T) = softmax(z / T): same Hg.
    logit_model = tiny_mlp(classes=3, seed=2)
    softmax_model = tiny_mlp(classes=3, seed=2, output_activation="softmax")
    softmax_model.set_weights(logit_model.get_weights())
    x, y = batch(n=9, classes=3)
    logit_weights = prunable_weights(logit_model)
    reference = flat(GraSPScorer().hessian_gradient(logit_model, logit_weights, (x, y), sample=False), logit_weights)
    assert np.abs(reference).max() > 0
    for model, compiled in ((softmax_model, False), (logit_model, True)):
        weights = prunable_weights(model)
        hg = flat(GraSPScorer(compile=compiled).hessian_gradient(model, weights, (x, y), sample=False), weights)
        # float32 log(softmax) loses a few digits against the logits themselves.
        np.testing.assert_allclose(hg, reference, atol=1e-3 * np.abs(reference).max())


@pytest.mark.both_keras
def test_grasp_prunes_to_target_and_keeps_batchnorm_statistics():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((3,)), MaskedDense(6), L.BatchNormalization(), L.ReLU(), MaskedDense(3)]
    )
    x, y = batch(n=30, classes=3)
    stats = [v.numpy().copy() for v in model.layers[1].non_trainable_variables]
    # The paper's score S = -θ ⊙ Hg on the batch prune_at_init draws (seed 0).
    weights = prunable_weights(model)
    hg = GraSPScorer().hessian_gradient(model, weights, (x, y), rng=np.random.default_rng(0))
    paper = {w.name: -w.variable.numpy().astype(np.float64) * hg[w.name] for w in weights}
    report = prune_at_init(model, "grasp", 5, (x, y))
    masks = get_weight_masks(model)
    assert report.nonzero == sum(np.count_nonzero(m) for m in masks.values()) == round((3 * 6 + 6 * 3) / 5)
    # GraSP removes the weights with the *highest* S: the kept ones all score lower.
    kept, pruned = flat_split(paper, masks)
    assert kept.max() < pruned.min()
    for old, variable in zip(stats, model.layers[1].non_trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())
    with pytest.raises(ValueError, match="temperature"):
        GraSPScorer(temperature=0)


# --------------------------------------------------------------------------------------------
# SynFlow
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
@pytest.mark.parametrize("builder", [bias_free_mlp, bias_free_cnn], ids=["mlp", "cnn"])
def test_synflow_conserves_flow_across_layers(builder):
    model = builder()
    scorer = SynFlowScorer()
    scores = scorer.score(model, prunable_weights(model))
    sums = layer_sums(scores)
    assert all(s.dtype == np.float64 for s in scores.values())
    # Every layer's scores sum to R (the output is 1-homogeneous in each layer's weights).
    np.testing.assert_allclose(sums, scorer.last_flow, rtol=1e-6)
    assert scorer.last_flow > 0


@pytest.mark.both_keras
def test_synflow_float64_survives_a_deep_network_that_overflows_float32():
    keras.utils.set_random_seed(4)
    # stddev 10: each layer multiplies the flow by ~60, 30 layers give R ~ 1e53 > 3.4e38.
    def large(seed):
        return keras.initializers.RandomNormal(stddev=10.0, seed=seed)

    model = keras.Sequential(
        [keras.Input((8,))]
        + [MaskedDense(8, activation="relu", use_bias=False, kernel_initializer=large(i)) for i in range(30)]
    )
    weights = prunable_weights(model)
    scorer = SynFlowScorer()
    scores = scorer.score(model, weights)
    assert all(np.all(np.isfinite(s)) for s in scores.values())
    assert scorer.last_flow > float(np.finfo(np.float32).max)  # R itself is beyond float32
    np.testing.assert_allclose(layer_sums(scores), scorer.last_flow, rtol=1e-6)
    with pytest.raises(ValueError, match="overflowed in float32"):
        SynFlowScorer(dtype="float32").score(model, weights)


@pytest.mark.both_keras
def test_synflow_restores_signed_weights_and_batchnorm_state():
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((4,)), MaskedDense(6), L.BatchNormalization(), L.ReLU(), MaskedDense(3, activation="softmax")]
    )
    model.layers[1].moving_mean.assign(np.linspace(-1, 1, 6).astype(np.float32))
    before = [v.numpy().copy() for v in model.weights]
    assert any((b < 0).any() for b in before)
    scores = SynFlowScorer().score(model, prunable_weights(model))
    for old, variable in zip(before, model.weights):
        np.testing.assert_array_equal(old, variable.numpy())
    # A softmax output would make R constant; its removal gives informative scores.
    assert all(np.count_nonzero(s) == s.size for s in scores.values())


@pytest.mark.both_keras
def test_synflow_removes_the_softmax_of_the_output():
    plain = bias_free_mlp(seed=6)
    softmax = bias_free_mlp(seed=6, output_activation="softmax")
    softmax.set_weights(plain.get_weights())
    reference = SynFlowScorer().score(plain, prunable_weights(plain))
    scores = SynFlowScorer().score(softmax, prunable_weights(softmax))
    for ours, expected in zip(scores.values(), reference.values()):
        assert np.abs(ours).max() > 0
        np.testing.assert_allclose(ours, expected, rtol=1e-12)


@pytest.mark.both_keras
def test_synflow_rescores_after_masks_change():
    model = bias_free_mlp(seed=7)
    weights = prunable_weights(model)
    scorer = SynFlowScorer()
    scorer.score(model, weights)
    masks = get_weight_masks(model)
    masks[weights[1].name][:, :8] = 0.0
    set_weight_masks(model, masks)
    cached = scorer.score(model, weights)  # the twin is reused; it must see the new weights
    fresh = SynFlowScorer().score(model, weights)
    for name in fresh:
        np.testing.assert_allclose(cached[name], fresh[name], rtol=1e-12)
    assert np.all(cached[weights[1].name][:, :8] == 0.0)
    np.testing.assert_allclose(layer_sums(cached), scorer.last_flow, rtol=1e-6)


@pytest.mark.both_keras
@pytest.mark.parametrize("compression", [10, 37.5])
def test_synflow_prune_at_init_reaches_the_target(compression):
    model = bias_free_cnn(seed=8)
    report = prune_at_init(model, "synflow", compression, iterations=12)
    assert report.nonzero == round(report.total / compression)
    assert compression_report(model).nonzero == report.nonzero
    assert not report.collapsed


class SubclassedMLP(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = MaskedDense(5, activation="relu")
        self.out = MaskedDense(2)

    def call(self, inputs, training=False):
        return self.out(self.hidden(inputs))


@pytest.mark.both_keras
def test_synflow_scores_subclassed_models_in_place_and_restores_them():
    keras.utils.set_random_seed(9)
    model = SubclassedMLP()
    model(np.zeros((1, 4), np.float32))
    weights = prunable_weights(model)
    before = [v.numpy().copy() for v in model.weights]
    with pytest.warns(RuntimeWarning, match="float32"):
        scores = SynFlowScorer(input_shape=(4,)).score(model, weights)
    for old, variable in zip(before, model.weights):
        np.testing.assert_array_equal(old, variable.numpy())
    # Same network as a Sequential model, scored through the float64 twin.
    twin = keras.Sequential([keras.Input((4,)), MaskedDense(5, activation="relu"), MaskedDense(2)])
    twin.set_weights(model.get_weights())
    reference = SynFlowScorer().score(twin, prunable_weights(twin))
    for ours, w in zip(scores.values(), prunable_weights(twin)):
        np.testing.assert_allclose(ours, reference[w.name], rtol=1e-5)


def dense_bn_dense(bn_values):
    """3 → Dense(4) → BatchNormalization → ReLU → Dense(2) with fixed signed weights."""
    keras.utils.set_random_seed(10)
    model = keras.Sequential(
        [keras.Input((3,)), MaskedDense(4, name="d0"), L.BatchNormalization(name="bn"), L.ReLU(), MaskedDense(2, name="d1")]
    )
    rng = np.random.default_rng(10)
    model.get_layer("d0").kernel.assign(rng.normal(size=(3, 4)).astype(np.float32))
    model.get_layer("d0").bias.assign(rng.normal(size=4).astype(np.float32))
    model.get_layer("d1").kernel.assign(rng.normal(size=(4, 2)).astype(np.float32))
    model.get_layer("d1").bias.assign(rng.normal(size=2).astype(np.float32))
    bn = model.get_layer("bn")
    for name, value in bn_values.items():
        getattr(bn, name).assign(np.asarray(value, np.float32))
    return model


SIGNED_BN = {
    "gamma": [-1.5, 0.5, -0.25, 2.0],
    "beta": [-0.75, 0.3, -2.0, 0.1],
    "moving_mean": [-3.0, 1.0, -0.5, -4.0],
    "moving_variance": [0.5, 2.0, 1.5, 0.25],
}


def reference_synflow(model, bn_abs=True):
    """SynFlow scores of the Dense-BN-Dense model, written out independently of the scorer.

    Every parameter is |θ| (BatchNorm's γ, β and moving statistics too, unless
    ``bn_abs=False``), BatchNorm in inference mode, an all-ones input; R = Σ outputs,
    score = |∂R/∂θ ⊙ θ| from a float64 tf.GradientTape.  R is also computed in plain numpy.
    """
    def value(layer, name):
        return np.asarray(getattr(model.get_layer(layer), name).numpy(), np.float64)

    w0, b0, w1, b1 = (np.abs(value(l, n)) for l, n in (("d0", "kernel"), ("d0", "bias"), ("d1", "kernel"), ("d1", "bias")))
    bn = {n: value("bn", n) for n in SIGNED_BN}
    if bn_abs:
        bn = {n: np.abs(v) for n, v in bn.items()}
    eps = float(model.get_layer("bn").epsilon)
    ones = np.ones((1, 3))
    h = ones @ w0 + b0
    h = np.maximum(bn["gamma"] * (h - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + eps) + bn["beta"], 0)
    flow_numpy = float(np.sum(h @ w1 + b1))
    k0, k1 = tf.Variable(w0), tf.Variable(w1)
    with tf.GradientTape() as tape:
        h = tf.matmul(tf.constant(ones), k0) + b0
        h = tf.nn.relu(bn["gamma"] * (h - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + eps) + bn["beta"])
        flow = tf.reduce_sum(tf.matmul(h, k1) + b1)
    g0, g1 = tape.gradient(flow, [k0, k1])
    assert float(flow.numpy()) == pytest.approx(flow_numpy, rel=1e-12)
    return flow_numpy, {"d0/kernel": np.abs(g0.numpy() * w0), "d1/kernel": np.abs(g1.numpy() * w1)}


@pytest.mark.both_keras
def test_synflow_uses_absolute_batchnorm_parameters_and_statistics_in_inference_mode():
    model = dense_bn_dense(SIGNED_BN)
    scorer = SynFlowScorer()
    scores = scorer.score(model, prunable_weights(model))
    flow, expected = reference_synflow(model)
    assert scorer.last_flow == pytest.approx(flow, rel=1e-9)
    for name in expected:
        np.testing.assert_allclose(scores[name], expected[name], rtol=1e-9, atol=0)
    # The same model with BatchNorm's values replaced by their absolute values scores the same.
    absolute = dense_bn_dense({n: np.abs(v) for n, v in SIGNED_BN.items()})
    for name, value in SynFlowScorer().score(absolute, prunable_weights(absolute)).items():
        np.testing.assert_allclose(value, scores[name], rtol=1e-12, atol=0)
    # Signed BatchNorm values would give other scores in both layers (they switch other
    # ReLUs on): the check above can tell them apart.
    signed_flow, signed = reference_synflow(model, bn_abs=False)
    assert not np.isclose(signed_flow, flow, rtol=1e-3)
    for name in signed:
        assert not np.allclose(signed[name], scores[name], rtol=1e-3), name


def _reference_grasp_scores(kernels, biases, x, y, temperature):
    """θ ⊙ Hg of the cross-entropy at logits / T with respect to the kernels (GraSP's prunable
    weights; biases held), from a float64 copy of the MLP (tanh, then logits): g by a tape, H by
    ``tape.jacobian`` of g, then the product in numpy. Nothing of the library is called."""
    k1, k2 = (tf.Variable(np.asarray(k, np.float64)) for k in kernels)
    b1, b2 = (tf.constant(np.asarray(b, np.float64)) for b in biases)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            logits = (tf.tanh(tf.constant(x, tf.float64) @ k1 + b1) @ k2 + b2) / temperature
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grad = tf.concat([tf.reshape(g, [-1]) for g in inner.gradient(loss, [k1, k2])], axis=0)
    n = int(grad.shape[0])
    hessian = np.concatenate([b.numpy().reshape(n, -1) for b in outer.jacobian(grad, [k1, k2])], axis=1)
    theta = np.concatenate([np.asarray(k, np.float64).ravel() for k in kernels])
    return theta * (hessian @ grad.numpy())


@pytest.mark.both_keras
def test_grasp_prunes_at_the_papers_temperature_200():
    """prune_at_init(..., "grasp") keeps the weights an independent θ ⊙ Hg at T = 200 keeps (the
    highest n/r; GraSP removes the lowest of θ ⊙ Hg, i.e. the highest S = −θ ⊙ Hg). At T = 1 the
    same reference keeps other weights, so a default temperature of 1 fails here."""
    model = tiny_mlp(classes=3, hidden=6, inputs=4, seed=4)
    x, y = batch(n=24, features=4, classes=3, seed=2)  # 8 per class: GraSP's 10-per-class draw takes all
    weights = prunable_weights(model)
    dense = [layer for layer in model.layers if isinstance(layer, MaskedDense)]
    assert [w.variable.name for w in weights] == [layer.kernel.name for layer in dense]  # the kernels only
    kernels = [layer.kernel.numpy() for layer in dense]
    biases = [layer.bias.numpy() for layer in dense]
    prune_at_init(model, "grasp", 4, (x, y))
    masks = get_weight_masks(model)
    kept = np.concatenate([masks[w.name].ravel() for w in weights]).astype(bool)
    at = {t: _reference_grasp_scores(kernels, biases, x, y, t) for t in (200.0, 1.0)}
    expected = {}
    for t, scores in at.items():
        expected[t] = np.zeros(kept.size, bool)
        expected[t][np.argsort(-scores, kind="stable")[: kept.sum()]] = True
    gap = np.sort(at[200.0])[::-1][kept.sum() - 1: kept.sum() + 1]
    assert gap[0] - gap[1] > 1e-6 * np.abs(at[200.0]).max(), "no near tie at the threshold"
    np.testing.assert_array_equal(kept, expected[200.0])
    assert (expected[1.0] != expected[200.0]).any(), "T = 1 must keep other weights for this test to discriminate"


def test_grasp_as_prune_at_init_resolves_it_scores_at_exactly_t_200():
    """The "grasp" method's scorer gives θ ⊙ Hg equal (float64, 1e-9) to the independent reference
    at T = 200 and not to the one at T = 201: the constant itself is pinned, not only its order of
    magnitude (the masks above would survive T = 201)."""
    from dropnet_tf.foresight.prune import resolve_method

    model = tiny_mlp(dtype="float64", classes=3, hidden=6, inputs=4, seed=4)
    x, y = batch(n=24, features=4, classes=3, seed=2, dtype="float64")
    weights = prunable_weights(model)
    dense = [layer for layer in model.layers if isinstance(layer, MaskedDense)]
    kernels, biases = [layer.kernel.numpy() for layer in dense], [layer.bias.numpy() for layer in dense]
    scorer, scope = resolve_method("grasp")
    ours = flat(scorer.score(model, weights, (x, y), rng=0), weights)
    at_200, at_201 = (_reference_grasp_scores(kernels, biases, x, y, t) for t in (200.0, 201.0))
    tolerance = 1e-9 * np.abs(at_200).max()
    assert np.abs(at_200 - at_201).max() > 1e3 * tolerance
    np.testing.assert_allclose(ours, at_200, rtol=0, atol=tolerance)
    assert scope == "global"
