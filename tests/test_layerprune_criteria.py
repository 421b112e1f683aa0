"""Tests of dropnet_tf.layerprune.criteria and .filter_pruning on small hand-set models.

Every criterion is compared with the same quantity computed independently (plain numpy on
the weights, or a separate GradientTape on the feature maps); prune_filters is checked for
exact counts, scopes, schedules, re-scoring and the between-steps callback.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dropnet_tf import MaskLayer, add_masks, collect_statistics, get_masks, set_masks
from dropnet_tf.core.backend import keras, tf
from dropnet_tf.layerprune.criteria import (
    FILTER_CRITERIA,
    FilterCriterion,
    get_filter_criterion,
)
from dropnet_tf.layerprune.filter_pruning import FilterPruningResult, prune_filters, split_evenly
from dropnet_tf.core.selection import NothingToPruneError

pytestmark = pytest.mark.both_keras

MASKS = ("c1_mask", "c2_mask", "d1_mask")
SIZES = {"c1_mask": 4, "c2_mask": 3, "d1_mask": 5}


def make_model(bn_layers=("c1", "c2", "d1"), seed: int = 0):
    """Input 5×5×2 → c1 Conv2D(4) → c2 Conv2D(3) → GAP → d1 Dense(5) → softmax(3).

    Each of c1, c2, d1 is followed by a BatchNormalization when named in ``bn_layers``
    and then a ReLU; ``add_masks`` puts c1_mask, c2_mask, d1_mask after them.  Every
    weight (BatchNorm statistics included) is drawn from a seeded numpy generator.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5, 5, 2))
    h = inputs
    for name, layer in (
        ("c1", keras.layers.Conv2D(4, 3, padding="same", name="c1")),
        ("c2", keras.layers.Conv2D(3, 3, padding="same", name="c2")),
        ("d1", keras.layers.Dense(5, name="d1")),
    ):
        if name == "d1":
            h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
        h = layer(h)
        if name in bn_layers:
            h = keras.layers.BatchNormalization(name=f"bn_{name}")(h)
        h = keras.layers.ReLU(name=f"relu_{name}")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    model = add_masks(keras.Model(inputs, outputs))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or isinstance(layer, MaskLayer):
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = weights
            weights = [
                rng.uniform(0.5, 1.5, gamma.shape) * rng.choice([-1, 1], gamma.shape),
                rng.normal(0.2, 0.3, beta.shape),
                rng.normal(0.0, 0.3, mean.shape),
                rng.uniform(0.5, 1.5, variance.shape),
            ]
        else:
            weights = [rng.normal(0.0, 0.6, w.shape) for w in weights]
        layer.set_weights([np.asarray(w, np.float32) for w in weights])
    assert [layer.name for layer in model.layers if "mask" in layer.name] == list(MASKS)
    return model


def make_data(n: int = 10, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5, 5, 2)).astype(np.float32), rng.integers(0, 3, n).astype(np.int64)


def set_kernel_columns(model, layer_name: str, columns) -> np.ndarray:
    """Set kernel[..., c] of a producer to the flattened values ``columns[c]``; returns the kernel."""
    layer = model.get_layer(layer_name)
    weights = layer.get_weights()
    kernel = np.stack([np.asarray(column, np.float32).reshape(weights[0].shape[:-1]) for column in columns], axis=-1)
    layer.set_weights([kernel] + weights[1:])
    return kernel


def set_l1(model, values: dict) -> None:
    """Give every filter of each named producer the L1 norm ``values[layer][c]`` (equal positive entries)."""
    for name, norms in values.items():
        fan_in = int(np.prod(model.get_layer(name).get_weights()[0].shape[:-1]))
        set_kernel_columns(model, name, [np.full(fan_in, v / fan_in) for v in norms])


def dropped(before: dict, after: dict) -> dict:
    return {name: np.flatnonzero((before[name] > 0) & (after[name] == 0)).tolist() for name in before}


def trainable_state(model):
    return [v.numpy().copy() for v in model.weights]


# ----------------------------------------------------------------------------- registry


def test_registry_and_lookup():
    assert set(FILTER_CRITERIA) == {
        "l1_norm",
        "l2_norm",
        "taylor",
        "feature_maps",
        "mean_activation",
        "bn_scale",
        "geometric_median",
    }
    needs_data = {name for name, criterion in FILTER_CRITERIA.items() if criterion.needs_data}
    assert needs_data == {"taylor", "feature_maps", "mean_activation"}
    for name, criterion in FILTER_CRITERIA.items():
        assert criterion.name == name
        assert get_filter_criterion(name) is criterion
        assert get_filter_criterion(criterion) is criterion
        assert "et al" in type(criterion).__doc__ or "DropNet" in type(criterion).__doc__
    with pytest.raises(ValueError, match=r"Unknown filter criterion 'nope'; allowed: \[.*'taylor'"):
        get_filter_criterion("nope")
    with pytest.raises(ValueError, match="Unknown filter criterion"):
        get_filter_criterion(3)


# ----------------------------------------------------------------------------- weight criteria


def test_weight_norms_by_hand():
    model = make_model()
    signs = np.where(np.arange(18) % 2 == 0, 1.0, -1.0)  # c1 filters: 3·3·2 = 18 weights
    set_kernel_columns(model, "c1", [(c + 1) * signs for c in range(4)])
    dense = set_kernel_columns(model, "d1", [[c, -2.0, 0.5] for c in range(5)])  # d1 kernel (3, 5)
    l1 = FILTER_CRITERIA["l1_norm"].score(model)
    l2 = FILTER_CRITERIA["l2_norm"].score(model)
    assert set(l1) == set(l2) == set(MASKS)
    # |±(c+1)| summed over 18 weights; sqrt of 18·(c+1)².
    np.testing.assert_allclose(l1["c1_mask"], [18, 36, 54, 72])
    np.testing.assert_allclose(l2["c1_mask"], np.sqrt(18) * np.array([1, 2, 3, 4]))
    np.testing.assert_allclose(l1["d1_mask"], [c + 2.5 for c in range(5)])
    np.testing.assert_allclose(l2["d1_mask"], [np.sqrt(c * c + 4.25) for c in range(5)], rtol=1e-6)
    # c2 with its random kernel, against numpy on the 4-d kernel.
    kernel = model.get_layer("c2").get_weights()[0]
    np.testing.assert_allclose(l1["c2_mask"], [np.abs(kernel[:, :, :, c]).sum() for c in range(3)], rtol=1e-6)
    np.testing.assert_allclose(l2["c2_mask"], [np.linalg.norm(kernel[:, :, :, c]) for c in range(3)], rtol=1e-6)
    assert dense.shape == (3, 5)
    for scores in (l1, l2):
        for name, value in scores.items():
            assert value.dtype == np.float64 and value.shape == (SIZES[name],)


def test_bn_scale_reads_abs_gamma():
    model = make_model()
    gammas = {"bn_c1": [-0.5, 2.0, 0.1, -3.0], "bn_c2": [1.0, -0.25, 0.0], "bn_d1": [0.3, -0.3, 4.0, -1.5, 0.7]}
    for name, gamma in gammas.items():
        weights = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([np.asarray(gamma, np.float32)] + weights[1:])
    scores = FILTER_CRITERIA["bn_scale"].score(model)
    for mask, bn in zip(MASKS, gammas):
        np.testing.assert_allclose(scores[mask], np.abs(gammas[bn]), rtol=1e-6)
        assert scores[mask].dtype == np.float64


def test_bn_scale_without_batchnorm_names_the_mask():
    model = make_model(bn_layers=("c1", "d1"))
    with pytest.raises(ValueError, match="c2_mask") as info:
        FILTER_CRITERIA["bn_scale"].score(model)
    assert "c2_mask" in str(info.value)
    assert "BatchNormalization between" in str(info.value)
    assert "c1_mask" not in str(info.value)


def fpgm_numpy(kernel: np.ndarray, mask: np.ndarray) -> np.ndarray:
    filters = kernel.reshape(-1, kernel.shape[-1]).T.astype(np.float64)
    return np.array(
        [sum(np.linalg.norm(filters[i] - filters[j]) for j in range(len(filters)) if mask[j] > 0) for i in range(len(filters))]
    )


def test_geometric_median_filter_nearest_the_median_goes_first():
    model = make_model()
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=36), rng.normal(size=36)  # c2 filters: 3·3·4 = 36 weights
    kernel = set_kernel_columns(model, "c2", [a, b, (a + b) / 2])
    scores = FILTER_CRITERIA["geometric_median"].score(model)
    distance = np.linalg.norm(a - b)
    # d(0,1) = |a−b|, d(0,2) = d(1,2) = |a−b|/2.
    np.testing.assert_allclose(scores["c2_mask"], [1.5 * distance, 1.5 * distance, distance], rtol=1e-6)
    assert int(np.argmin(scores["c2_mask"])) == 2
    np.testing.assert_allclose(scores["c2_mask"], fpgm_numpy(kernel, np.ones(3)), rtol=1e-6)
    for name, producer in (("c1_mask", "c1"), ("d1_mask", "d1")):
        expected = fpgm_numpy(model.get_layer(producer).get_weights()[0], np.ones(SIZES[name]))
        np.testing.assert_allclose(scores[name], expected, rtol=1e-6)


def test_geometric_median_sums_over_active_filters_only():
    model = make_model()
    set_masks(model, {"c2_mask": [0, 1, 1], "d1_mask": [1, 0, 1, 0, 1]})
    scores = FILTER_CRITERIA["geometric_median"].score(model)
    for name, producer in (("c2_mask", "c2"), ("d1_mask", "d1"), ("c1_mask", "c1")):
        mask = get_masks(model)[name]
        expected = fpgm_numpy(model.get_layer(producer).get_weights()[0], mask)
        np.testing.assert_allclose(scores[name], expected, rtol=1e-6)
        assert np.all(np.isfinite(scores[name]))
    # Two active filters are at the same distance from each other.
    assert scores["c2_mask"][1] == pytest.approx(scores["c2_mask"][2])


# ----------------------------------------------------------------------------- data criteria


def feature_model(model):
    return keras.Model(model.inputs, [model.get_layer(name).output for name in MASKS] + list(model.outputs))


def nll(probabilities, y):
    p = tf.gather(probabilities, tf.constant(y.reshape(-1, 1)), axis=1, batch_dims=1)
    return -tf.math.log(tf.reshape(p, [-1]))


def test_taylor_equals_squared_gate_gradient_from_feature_maps():
    """(∂L/∂m_c)² at m_c = 1 is (Σ_{n, spatial} a·∂L/∂a)², L the mean loss of a mini-batch."""
    model = make_model()
    masks = {"c1_mask": np.array([1, 0, 1, 1], np.float32), "c2_mask": np.ones(3, np.float32), "d1_mask": np.array([1, 1, 1, 0, 1], np.float32)}
    set_masks(model, masks)
    x, y = make_data(10)
    before = trainable_state(model)
    scores = FILTER_CRITERIA["taylor"].score(model, (x, y), batch_size=5)
    features = feature_model(model)
    expected = {name: np.zeros(SIZES[name]) for name in MASKS}
    for start in (0, 5):
        xb, yb = x[start : start + 5], y[start : start + 5]
        with tf.GradientTape() as tape:
            values = features(tf.constant(xb), training=False)
            maps, probabilities = values[:3], values[3]
            loss = tf.reduce_mean(nll(probabilities, yb))
        gradients = tape.gradient(loss, maps)
        for name, a, g in zip(MASKS, maps, gradients):
            product = (a * g).numpy().astype(np.float64)
            expected[name] += product.reshape(-1, product.shape[-1]).sum(axis=0) ** 2 / 2  # mean of 2 batches
    for name in MASKS:
        active = masks[name] > 0
        assert scores[name].shape == (SIZES[name],) and scores[name].dtype == np.float64
        assert np.all(np.isfinite(scores[name]))
        assert np.max(expected[name][active]) > 0
        np.testing.assert_allclose(scores[name][active], expected[name][active], rtol=2e-3, atol=1e-9)
    # Scoring changes nothing in the model (inference mode; BatchNorm statistics untouched).
    for old, new in zip(before, trainable_state(model)):
        np.testing.assert_array_equal(old, new)


def test_taylor_averages_over_minibatches_not_samples():
    """One batch of 10 squares the summed gradient; two batches of 5 average two squares."""
    model = make_model()
    x, y = make_data(10)
    whole = FILTER_CRITERIA["taylor"].score(model, (x, y), batch_size=10)
    halves = FILTER_CRITERIA["taylor"].score(model, (x, y), batch_size=5)
    first = FILTER_CRITERIA["taylor"].score(model, (x[:5], y[:5]), batch_size=5)
    second = FILTER_CRITERIA["taylor"].score(model, (x[5:], y[5:]), batch_size=5)
    for name in MASKS:
        np.testing.assert_allclose(halves[name], (first[name] + second[name]) / 2, rtol=1e-6)
        assert not np.allclose(whole[name], halves[name])


def test_feature_maps_against_per_sample_tapes():
    model = make_model()
    set_masks(model, {"c2_mask": np.array([1, 1, 0], np.float32)})
    x, y = make_data(6)
    scores = FILTER_CRITERIA["feature_maps"].score(model, (x, y), batch_size=4)  # batches of 4 and 2
    features = feature_model(model)
    per_sample = {name: [] for name in MASKS}
    for n in range(len(x)):  # one tape per sample: its own ∂L_n/∂a_n
        with tf.GradientTape() as tape:
            values = features(tf.constant(x[n : n + 1]), training=False)
            maps, probabilities = values[:3], values[3]
            loss = tf.reduce_sum(nll(probabilities, y[n : n + 1]))
        gradients = tape.gradient(loss, maps)
        for name, a, g in zip(MASKS, maps, gradients):
            product = (a * g).numpy()[0].astype(np.float64)  # (H, W, C) or (C,)
            per_sample[name].append(np.abs(product.reshape(-1, product.shape[-1]).mean(axis=0)))
    for name in MASKS:
        theta = np.mean(per_sample[name], axis=0)
        expected = theta / np.linalg.norm(theta)
        np.testing.assert_allclose(scores[name], expected, rtol=2e-3, atol=1e-7)
        assert np.linalg.norm(scores[name]) == pytest.approx(1.0)
    assert scores["c2_mask"][2] == 0.0  # a masked map is zero


def test_mean_activation_is_collect_statistics_mean_abs():
    model = make_model()
    set_masks(model, {"c1_mask": np.array([1, 1, 0, 1], np.float32)})
    x, y = make_data(10)
    scores = FILTER_CRITERIA["mean_activation"].score(model, (x, y), batch_size=4)
    expected = collect_statistics(model, x).mean_abs
    assert set(scores) == set(MASKS)
    for name in MASKS:
        np.testing.assert_allclose(scores[name], expected[name], rtol=1e-6)
        assert scores[name].dtype == np.float64
    assert scores["c1_mask"][2] == 0.0
    # The inputs alone will do.
    again = FILTER_CRITERIA["mean_activation"].score(model, x)
    for name in MASKS:
        np.testing.assert_allclose(again[name], expected[name], rtol=1e-6)


@pytest.mark.parametrize("name", ["taylor", "feature_maps", "mean_activation"])
def test_data_criteria_need_data(name):
    with pytest.raises(ValueError, match=f"'{name}' needs data"):
        FILTER_CRITERIA[name].score(make_model(), None)


def test_every_criterion_is_finite_on_masked_units():
    model = make_model()
    set_masks(model, {"c1_mask": [0, 1, 0, 1], "c2_mask": [1, 0, 1], "d1_mask": [0, 0, 1, 1, 1]})
    x, y = make_data(8)
    for name, criterion in FILTER_CRITERIA.items():
        scores = criterion.score(model, (x, y), batch_size=3)
        assert set(scores) == set(MASKS), name
        for mask, value in scores.items():
            assert value.shape == (SIZES[mask],) and value.dtype == np.float64, name
            assert np.all(np.isfinite(value)), (name, mask, value)


# ----------------------------------------------------------------------------- prune_filters

L1_VALUES = {"c1": [0.1, 0.2, 0.3, 0.4], "c2": [10.0, 20.0, 30.0], "d1": [5.0, 6.0, 7.0, 8.0, 9.0]}


def l1_model():
    model = make_model()
    set_l1(model, L1_VALUES)
    return model


def test_exact_counts_one_shot():
    model = l1_model()
    result = prune_filters(model, "l1_norm", count=5, rng=0)
    assert isinstance(result, FilterPruningResult)
    assert result.history == [{"step": 1, "pruned": 5, "remaining": 7}]
    assert result.pruned == 5 and result.requested == 5
    # The 5 lowest L1 norms with one filter kept per layer: c1 0-2, then d1 0-1.
    assert dropped({n: np.ones(s) for n, s in SIZES.items()}, result.masks) == {
        "c1_mask": [0, 1, 2],
        "c2_mask": [],
        "d1_mask": [0, 1],
    }
    # The masks are on the model.
    for name, mask in get_masks(model).items():
        np.testing.assert_array_equal(mask, result.masks[name])
    # fraction: floor(0.25 · 12) = 3 of the active units.
    result = prune_filters(l1_model(), "l1_norm", fraction=0.25, rng=0)
    assert result.pruned == 3 and result.history[-1]["remaining"] == 9


def test_global_and_layer_scope_differ():
    ones = {n: np.ones(s) for n, s in SIZES.items()}
    global_masks = prune_filters(l1_model(), "l1_norm", count=3, scope="global", rng=0).masks
    layer_masks = prune_filters(l1_model(), "l1_norm", count=3, scope="layer", rng=0).masks
    assert dropped(ones, global_masks) == {"c1_mask": [0, 1, 2], "c2_mask": [], "d1_mask": []}
    # Layer scope keeps the remaining fractions level: the lowest filter of each layer.
    assert dropped(ones, layer_masks) == {"c1_mask": [0], "c2_mask": [0], "d1_mask": [0]}


@pytest.mark.parametrize("criterion", ["geometric_median", "taylor"])
def test_iterative_with_one_step_equals_one_shot(criterion):
    data = make_data(8)
    one_shot = prune_filters(make_model(), criterion, data=data, fraction=0.3, rng=3)
    iterative = prune_filters(make_model(), criterion, data=data, fraction=0.3, schedule="iterative", steps=1, rng=3)
    assert one_shot.history == iterative.history
    for name in MASKS:
        np.testing.assert_array_equal(one_shot.masks[name], iterative.masks[name])


class MaskDependentCriterion(FilterCriterion):
    """Fixed base scores plus 10 for every unit already pruned in the layer; counts calls."""

    name = "mask_dependent"
    base = {"c1_mask": [0.1, 0.2, 0.3, 0.4], "c2_mask": [1.0, 2.0, 3.0], "d1_mask": [100.0, 101.0, 102.0, 103.0, 104.0]}

    def __init__(self):
        self.calls = 0

    def score(self, model, data=None, *, batch_size=128):
        self.calls += 1
        masks = get_masks(model)
        return {name: np.asarray(self.base[name]) + 10.0 * np.sum(masks[name] == 0) for name in masks}


def test_iterative_rescores_on_the_current_masks():
    ones = {n: np.ones(s) for n, s in SIZES.items()}
    criterion = MaskDependentCriterion()
    one_shot = prune_filters(make_model(), criterion, count=4, rng=0)
    assert criterion.calls == 1
    assert dropped(ones, one_shot.masks) == {"c1_mask": [0, 1, 2], "c2_mask": [0], "d1_mask": []}
    criterion = MaskDependentCriterion()
    iterative = prune_filters(make_model(), criterion, count=4, schedule="iterative", steps=4, rng=0)
    assert criterion.calls == 4
    # c1 0 (0.1); c1 now +10 so c2 0 (1); c1 1 (10.2 < 12); c1 +20, c2 1 (12 < 20.3).
    assert dropped(ones, iterative.masks) == {"c1_mask": [0, 1], "c2_mask": [0, 1], "d1_mask": []}
    assert [h["pruned"] for h in iterative.history] == [1, 1, 1, 1]
    assert [h["remaining"] for h in iterative.history] == [11, 10, 9, 8]


def test_between_steps_runs_between_steps_and_rescoring_sees_it():
    calls = []

    def fine_tune(model, step):
        calls.append((step, int(sum(m.sum() for m in get_masks(model).values()))))
        # "Fine-tuning" shrinks c1 filter 3, so the next L1 score puts it last.
        set_l1(model, {"c1": [0.1, 0.2, 0.3, 0.01]})

    model = l1_model()
    result = prune_filters(model, "l1_norm", count=2, schedule="iterative", steps=2, between_steps=fine_tune, rng=0)
    assert calls == [(1, 11)]  # steps − 1 calls, after the step's masks are on the model
    assert np.flatnonzero(result.masks["c1_mask"] == 0).tolist() == [0, 3]

    calls.clear()
    prune_filters(l1_model(), "l1_norm", count=6, schedule="iterative", steps=3, between_steps=fine_tune, rng=0)
    assert [step for step, _ in calls] == [1, 2]
    assert [active for _, active in calls] == [10, 8]
    calls.clear()
    prune_filters(l1_model(), "l1_norm", count=6, between_steps=fine_tune, rng=0)
    assert calls == []  # never under the one-shot schedule


def test_near_equal_parts():
    assert split_evenly(7, 3) == [3, 2, 2]
    assert split_evenly(10, 10) == [1] * 10
    assert split_evenly(2, 5) == [1, 1]
    result = prune_filters(l1_model(), "l1_norm", count=7, schedule="iterative", steps=3, rng=0)
    assert [h["pruned"] for h in result.history] == [3, 2, 2]
    assert [h["step"] for h in result.history] == [1, 2, 3]
    assert [h["remaining"] for h in result.history] == [9, 7, 5]


def test_masks_only_go_from_one_to_zero_and_fraction_is_of_active_units():
    model = make_model()
    start = {
        "c1_mask": np.array([0, 1, 1, 1], np.float32),
        "c2_mask": np.ones(3, np.float32),
        "d1_mask": np.array([1, 1, 0, 1, 1], np.float32),
    }
    set_masks(model, start)
    result = prune_filters(model, "taylor", data=make_data(8), fraction=0.5, schedule="iterative", steps=2, rng=0)
    assert result.requested == 5  # floor(0.5 · 10 active)
    assert [h["pruned"] for h in result.history] == [3, 2]
    for name in MASKS:
        assert np.all(result.masks[name] <= start[name])
        assert np.all((result.masks[name] == 0) | (result.masks[name] == 1))
        assert result.masks[name].sum() >= 1
    assert sum(m.sum() for m in result.masks.values()) == 5


def test_fewer_prunable_than_requested_warns_and_nothing_raises():
    with pytest.warns(UserWarning, match="Pruned 9 of the 100 requested"):
        result = prune_filters(l1_model(), "l1_norm", count=100, schedule="iterative", steps=4, rng=0)
    assert all(m.sum() == 1 for m in result.masks.values())
    model = make_model()
    set_masks(model, {"c1_mask": [0, 0, 0, 1], "c2_mask": [0, 1, 0], "d1_mask": [0, 0, 0, 0, 1]})
    with pytest.raises(NothingToPruneError):
        prune_filters(model, "l1_norm", count=1)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"count": 1, "schedule": "gradual"}, ValueError, r"schedule must be one of \('one_shot', 'iterative'\), got 'gradual'"),
        ({"count": 1, "scope": "block"}, ValueError, r"scope must be one of \('global', 'layer'\), got 'block'"),
        ({"count": 1, "steps": 0}, ValueError, "steps must be an integer >= 1, got 0"),
        ({"fraction": 1.5}, ValueError, r"fraction must be in \(0, 1\], got 1.5"),
        ({"fraction": 0.0}, ValueError, r"fraction must be in \(0, 1\], got 0.0"),
        ({}, ValueError, "Give exactly one of fraction and count"),
        ({"fraction": 0.1, "count": 2}, ValueError, "Give exactly one of fraction and count"),
        ({"count": 0}, ValueError, "count must be a positive integer, got 0"),
        ({"count": 1, "between_steps": 3}, TypeError, "between_steps must be a callable"),
    ],
)
def test_argument_validation(kwargs, error, message):
    model = make_model()
    with pytest.raises(error, match=message):
        prune_filters(model, "l1_norm", **kwargs)
    assert all(np.all(m == 1) for m in get_masks(model).values())


def test_prune_filters_refuses_missing_data_and_unknown_criterion():
    model = make_model()
    with pytest.raises(ValueError, match="'taylor' needs data"):
        prune_filters(model, "taylor", count=1)
    with pytest.raises(ValueError, match="Unknown filter criterion 'weight_norm'"):
        prune_filters(model, "weight_norm", count=1)
    assert all(np.all(m == 1) for m in get_masks(model).values())


def test_bn_scale_prunes_smallest_gamma_globally():
    model = make_model()
    for name, gamma in {"bn_c1": [0.9, -0.05, 0.5, 0.6], "bn_c2": [0.7, 0.8, -0.01], "bn_d1": [1, 1, 1, 0.02, 1]}.items():
        weights = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([np.asarray(gamma, np.float32)] + weights[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = prune_filters(model, "bn_scale", count=3, rng=0)
    assert {n: np.flatnonzero(m == 0).tolist() for n, m in result.masks.items()} == {
        "c1_mask": [1],
        "c2_mask": [2],
        "d1_mask": [3],
    }
