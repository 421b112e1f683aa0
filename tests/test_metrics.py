"""Tests of dropnet_tf.dropnet.metrics and dropnet_tf.core.selection on hand-made statistics and masks."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from dropnet_tf.core.scoring import StatisticScorer
from dropnet_tf.dropnet.metrics import METRICS, PAPER_METRICS, get_metric, update_masks
from dropnet_tf.core.selection import collapsed_layers
from dropnet_tf.core.selection import NothingToPruneError, apply_drop, prune_count, select_units
from dropnet_tf.core.statistics import UnitStatistics

# Not marked both_keras: selection runs on numpy statistics and masks, with no Keras involved.


def stats(mean_abs: dict, apoz: dict | None = None, num_samples: int = 100) -> UnitStatistics:
    mean_abs = {name: np.asarray(value, np.float64) for name, value in mean_abs.items()}
    if apoz is None:
        apoz = {name: np.zeros_like(value) for name, value in mean_abs.items()}
    apoz = {name: np.asarray(value, np.float64) for name, value in apoz.items()}
    return UnitStatistics(mean_abs=mean_abs, apoz=apoz, num_samples=num_samples)


def ones(**sizes) -> dict:
    return {name: np.ones(size, np.float32) for name, size in sizes.items()}


def dropped(old: dict, new: dict) -> dict:
    """{layer: sorted indices that went 1 -> 0}."""
    return {name: sorted(np.flatnonzero((np.asarray(old[name]) > 0) & (new[name] == 0)).tolist()) for name in old}


def assert_monotone(old: dict, new: dict):
    """Masks only ever go 1 -> 0, stay binary float32 and keep their shapes."""
    assert set(new) == set(old)
    for name in old:
        assert new[name].dtype == np.float32
        assert new[name].shape == np.shape(old[name])
        assert np.all((new[name] == 0) | (new[name] == 1))
        assert np.all(new[name] <= np.asarray(old[name]))


# Scores shared by the exact-selection tests.
A = [0.5, 0.1, 0.9, 0.3, 0.7]
B = [0.2, 0.8, 0.05, 0.6, 0.4]
APOZ_A = [0.1, 0.9, 0.2, 0.5, 0.0]
APOZ_B = [0.95, 0.3, 0.4, 0.85, 0.1]


@pytest.mark.parametrize(
    "metric, fraction, expected",
    [
        # global: floor(0.3 * 10) = 3 lowest E overall: B2 (.05), A1 (.1), B0 (.2)
        ("minimum", 0.3, {"A": [1], "B": [0, 2]}),
        # global: 3 highest E: A2 (.9), B1 (.8), A4 (.7)
        ("maximum", 0.3, {"A": [2, 4], "B": [1]}),
        # layer-wise: floor(0.4 * 5) = 2 per layer
        ("minimum_layer", 0.4, {"A": [1, 3], "B": [0, 2]}),
        ("maximum_layer", 0.4, {"A": [2, 4], "B": [1, 3]}),
        # APoZ: highest fraction of zeros first: B0 (.95), A1 (.9), B3 (.85)
        ("apoz", 0.3, {"A": [1], "B": [0, 3]}),
        ("apoz_layer", 0.4, {"A": [1, 3], "B": [0, 3]}),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_selection(metric, fraction, expected, seed):
    masks = ones(A=5, B=5)
    statistics = stats({"A": A, "B": B}, {"A": APOZ_A, "B": APOZ_B})
    new = update_masks(masks, statistics, metric, fraction=fraction, rng=seed)
    assert_monotone(masks, new)
    assert dropped(masks, new) == expected


def test_metric_table():
    assert PAPER_METRICS == ("minimum", "maximum", "random", "minimum_layer", "maximum_layer", "random_layer")
    scopes = {name: metric.scope for name, metric in METRICS.items()}
    assert scopes == {
        "minimum": "global",
        "maximum": "global",
        "random": "global",
        "minimum_layer": "layer",
        "maximum_layer": "layer",
        "random_layer": "layer",
        "apoz": "global",
        "apoz_layer": "layer",
    }
    for name, metric in METRICS.items():
        assert metric.name == name
        assert get_metric(name) is metric
        assert get_metric(metric) is metric
    statistics = stats({"A": A}, {"A": APOZ_A})
    np.testing.assert_array_equal(get_metric("minimum").score(statistics)["A"], A)
    np.testing.assert_array_equal(get_metric("maximum").score(statistics)["A"], -np.asarray(A))
    np.testing.assert_array_equal(get_metric("apoz").score(statistics)["A"], -np.asarray(APOZ_A))
    np.testing.assert_array_equal(get_metric("random").score(statistics)["A"], np.zeros(5))


def test_custom_metric_instance():
    class Reverse(StatisticScorer):
        def score(self, statistics):
            return {name: -np.arange(np.size(v), dtype=float) for name, v in statistics.mean_abs.items()}

    masks = ones(A=5)
    new = update_masks(masks, stats({"A": A}), Reverse("reverse", "global"), fraction=0.4, rng=0)
    assert dropped(masks, new) == {"A": [3, 4]}


# --------------------------------------------------------------------------------------------
# How many units
# --------------------------------------------------------------------------------------------


def test_prune_count():
    assert prune_count(0.2, 60) == 12
    assert prune_count(0.2, 40) == 8
    assert prune_count(0.2, 20) == 4
    assert prune_count(0.2, 4) == 1  # floor(0.8) = 0 -> at least one
    assert prune_count(0.01, 60) == 1
    assert prune_count(0.3, 10) == 3
    # Products that fall just short of an integer in floating point still count in full.
    assert 0.29 * 100 < 29 and prune_count(0.29, 100) == 29
    assert 0.58 * 50 < 29 and prune_count(0.58, 50) == 29
    assert 0.7 * 90 < 63 and prune_count(0.7, 90) == 63
    assert prune_count(0.7, 10) == 7
    assert prune_count(1.0, 13) == 13
    assert prune_count(0.5, 7) == 3


def counts_setup(seed=0):
    """Layer l1: 50 units with 40 active; l2: 25 units with 20 active; l2 scores all lower."""
    rng = np.random.default_rng(seed)
    masks = {"l1": np.ones(50, np.float32), "l2": np.ones(25, np.float32)}
    masks["l1"][rng.choice(50, 10, replace=False)] = 0
    masks["l2"][rng.choice(25, 5, replace=False)] = 0
    scores = {"l1": 1.0 + rng.random(50), "l2": rng.random(25)}
    return masks, stats(scores, {"l1": -scores["l1"] + 3, "l2": -scores["l2"] + 3})


@pytest.mark.parametrize("metric", ["minimum", "maximum", "random", "apoz"])
def test_global_count_is_floor_p_times_all_remaining(metric):
    masks, statistics = counts_setup()
    new = update_masks(masks, statistics, metric, fraction=0.2, rng=0)
    assert_monotone(masks, new)
    removed = dropped(masks, new)
    assert len(removed["l1"]) + len(removed["l2"]) == 12  # floor(0.2 * (40 + 20))
    if metric in ("minimum", "apoz"):
        # All l2 scores are below all l1 ones (APoZ is reversed), so global takes only from l2.
        assert removed == {"l1": [], "l2": removed["l2"]}
    if metric == "maximum":
        assert len(removed["l1"]) == 12


@pytest.mark.parametrize("metric", ["minimum_layer", "maximum_layer", "random_layer", "apoz_layer"])
def test_layer_count_is_floor_p_times_layer_remaining(metric):
    masks, statistics = counts_setup()
    new = update_masks(masks, statistics, metric, fraction=0.2, rng=0)
    assert_monotone(masks, new)
    removed = dropped(masks, new)
    assert len(removed["l1"]) == 8  # floor(0.2 * 40)
    assert len(removed["l2"]) == 4  # floor(0.2 * 20)


def test_minimum_one_unit():
    masks = ones(A=4, B=3)
    statistics = stats({"A": [0.4, 0.3, 0.2, 0.1], "B": [0.9, 0.8, 0.7]})
    new = update_masks(masks, statistics, "minimum", fraction=0.1, rng=0)  # floor(0.7) -> 1
    assert dropped(masks, new) == {"A": [3], "B": []}
    new = update_masks(masks, statistics, "minimum_layer", fraction=0.2, rng=0)  # floor(.8), floor(.6) -> 1 each
    assert dropped(masks, new) == {"A": [3], "B": [2]}


def test_fraction_one_allowed():
    masks = ones(A=5, B=5)
    statistics = stats({"A": A, "B": B})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no collapse with the default guard
        new = update_masks(masks, statistics, "minimum", fraction=1.0, rng=0)
        new_layer = update_masks(masks, statistics, "minimum_layer", fraction=1.0, rng=0)
    # Everything but the best unit of each layer.
    for result in (new, new_layer):
        assert_monotone(masks, result)
        np.testing.assert_array_equal(result["A"], [0, 0, 1, 0, 0])
        np.testing.assert_array_equal(result["B"], [0, 1, 0, 0, 0])


# --------------------------------------------------------------------------------------------
# Candidates are the active units only
# --------------------------------------------------------------------------------------------


def test_inactive_units_are_never_chosen_again():
    masks = {"A": np.array([0, 1, 1, 0, 1], np.float32), "B": np.array([1, 1, 0, 1, 1], np.float32)}
    # The inactive units have the lowest scores of all.
    statistics = stats({"A": [0.0, 0.5, 0.6, 0.0, 0.7], "B": [0.4, 0.8, 0.0, 0.3, 0.9]})
    new = update_masks(masks, statistics, "minimum", fraction=0.3, rng=0)  # 7 active -> 2
    assert_monotone(masks, new)
    assert dropped(masks, new) == {"A": [], "B": [0, 3]}
    new = update_masks(masks, statistics, "minimum_layer", count=1, rng=0)
    assert dropped(masks, new) == {"A": [], "B": [3]}  # B has 4/5 active, A 3/5


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_iterating_until_nothing_to_prune(metric):
    """Repeated steps: masks only shift 1 -> 0 by the expected count, down to one unit per layer."""
    rng = np.random.default_rng(0)
    masks = ones(A=12, B=7, C=3)
    statistics = stats(
        {name: rng.random(m.size) for name, m in masks.items()},
        {name: rng.random(m.size) for name, m in masks.items()},
    )
    generator = np.random.default_rng(1)
    scope = METRICS[metric].scope
    for _ in range(100):
        active = {name: int(m.sum()) for name, m in masks.items()}
        spare = {name: a - 1 for name, a in active.items()}
        if sum(spare.values()) == 0:
            break
        before = copy.deepcopy(masks)
        masks = update_masks(masks, statistics, metric, fraction=0.25, rng=generator)
        assert_monotone(before, masks)
        removed = {name: len(idx) for name, idx in dropped(before, masks).items()}
        if scope == "global":
            assert sum(removed.values()) == min(prune_count(0.25, sum(active.values())), sum(spare.values()))
        else:
            for name in masks:
                assert removed[name] == min(prune_count(0.25, active[name]), spare[name])
        assert all(m.sum() >= 1 for m in masks.values())
    else:
        pytest.fail("pruning did not terminate")
    assert {name: int(m.sum()) for name, m in masks.items()} == {"A": 1, "B": 1, "C": 1}
    with pytest.raises(NothingToPruneError):
        update_masks(masks, statistics, metric, fraction=0.25, rng=generator)


# --------------------------------------------------------------------------------------------
# Randomness
# --------------------------------------------------------------------------------------------


def chosen(masks, new) -> tuple:
    return tuple((name, i) for name, idx in sorted(dropped(masks, new).items()) for i in idx)


@pytest.mark.parametrize("metric", ["minimum", "maximum", "minimum_layer", "apoz", "apoz_layer"])
def test_ties_broken_randomly(metric):
    masks = ones(A=5, B=5)
    statistics = stats({"A": np.full(5, 0.5), "B": np.full(5, 0.5)}, {"A": np.full(5, 0.5), "B": np.full(5, 0.5)})
    results = [chosen(masks, update_masks(masks, statistics, metric, fraction=0.2, rng=seed)) for seed in range(200)]
    assert len(set(results)) > 5
    assert all(len(r) == 2 for r in results)
    counts = {(name, i): 0 for name in "AB" for i in range(5)}
    for result in results:
        for unit in result:
            counts[unit] += 1
    assert min(counts.values()) > 0, counts
    # Same seed, same choice; the same Generator state, same choice.
    for seed in (0, 7, 123):
        first = update_masks(masks, statistics, metric, fraction=0.2, rng=seed)
        again = update_masks(masks, statistics, metric, fraction=0.2, rng=np.random.default_rng(seed))
        assert chosen(masks, first) == chosen(masks, again)


def test_partial_ties():
    masks = ones(A=5)
    statistics = stats({"A": [0.1, 0.5, 0.5, 0.5, 0.9]})
    seen = set()
    for seed in range(60):
        removed = dropped(masks, update_masks(masks, statistics, "minimum", fraction=0.4, rng=seed))["A"]
        assert removed[0] == 0 and len(removed) == 2 and removed[1] in (1, 2, 3)
        seen.add(removed[1])
    assert seen == {1, 2, 3}


@pytest.mark.parametrize("metric", ["random", "random_layer"])
def test_random_metrics_use_the_rng(metric):
    masks = ones(A=10, B=10)
    s1 = stats({"A": np.arange(10), "B": np.arange(10)})
    s2 = stats({"A": -np.arange(10), "B": np.arange(10) * 3.0})
    by_seed = [chosen(masks, update_masks(masks, s1, metric, fraction=0.2, rng=seed)) for seed in range(100)]
    assert all(len(r) == 4 for r in by_seed)
    if metric == "random_layer":
        assert all(sum(1 for name, _ in r if name == "A") == 2 for r in by_seed)
    assert len(set(by_seed)) > 20
    every = {unit for r in by_seed for unit in r}
    assert every == {(name, i) for name in "AB" for i in range(10)}
    # The statistics play no part: the same seed gives the same units whatever the scores.
    for seed in range(5):
        assert chosen(masks, update_masks(masks, s2, metric, fraction=0.2, rng=seed)) == by_seed[seed]
    # A Generator is used (and advanced), not re-seeded.
    generator = np.random.default_rng(3)
    draws = {chosen(masks, update_masks(masks, s1, metric, fraction=0.2, rng=generator)) for _ in range(10)}
    assert len(draws) > 1
    generator = np.random.default_rng(3)
    assert chosen(masks, update_masks(masks, s1, metric, fraction=0.2, rng=generator)) == chosen(
        masks, update_masks(masks, s1, metric, fraction=0.2, rng=np.random.default_rng(3))
    )


# --------------------------------------------------------------------------------------------
# Drop-one mode (count=1)
# --------------------------------------------------------------------------------------------


def drop_one_setup():
    """Layer a: 10 units, 5 active, holding the lowest score; layer b: 4 units, all active."""
    masks = {"a": np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], np.float32), "b": np.ones(4, np.float32)}
    statistics = stats({"a": [0.3, 0.01, 0.4, 0.5, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0], "b": [0.9, 0.2, 0.8, 0.7]})
    return masks, statistics


@pytest.mark.parametrize("seed", range(5))
def test_drop_one_global(seed):
    masks, statistics = drop_one_setup()
    new = update_masks(masks, statistics, "minimum", count=1, rng=seed)
    assert dropped(masks, new) == {"a": [1], "b": []}
    new = update_masks(masks, statistics, "maximum", count=1, rng=seed)
    assert dropped(masks, new) == {"a": [], "b": [0]}
    # count overrides fraction.
    new = update_masks(masks, statistics, "minimum", fraction=0.9, count=1, rng=seed)
    assert dropped(masks, new) == {"a": [1], "b": []}


@pytest.mark.parametrize("seed", range(5))
def test_drop_one_layer_wise_takes_from_largest_remaining_fraction(seed):
    masks, statistics = drop_one_setup()
    # b has 4/4 remaining, a 5/10: b's lowest unit goes although a holds the lowest score.
    new = update_masks(masks, statistics, "minimum_layer", count=1, rng=seed)
    assert dropped(masks, new) == {"a": [], "b": [1]}
    # Two units: b (4/4) then b again (3/4 > 5/10).
    new = update_masks(masks, statistics, "minimum_layer", count=2, rng=seed)
    assert dropped(masks, new) == {"a": [], "b": [1, 3]}
    # Once b is at 2/4 = a's 5/10, the fractions stay level.
    new = update_masks(masks, statistics, "minimum_layer", count=4, rng=seed)
    removed = dropped(masks, new)
    assert len(removed["a"]) == 1 and len(removed["b"]) == 3
    assert removed["a"] == [1] and removed["b"] == [1, 2, 3]


def test_drop_one_layer_wise_ties_between_layers_are_random():
    masks = ones(a=4, b=4)
    statistics = stats({"a": [0.1, 0.2, 0.3, 0.4], "b": [0.5, 0.6, 0.7, 0.8]})
    picks = {chosen(masks, update_masks(masks, statistics, "minimum_layer", count=1, rng=s)) for s in range(40)}
    assert picks == {(("a", 0),), (("b", 0),)}


# --------------------------------------------------------------------------------------------
# Layer-collapse guard
# --------------------------------------------------------------------------------------------


def test_global_guard_skips_to_next_layer():
    masks = ones(A=5, B=2)
    statistics = stats({"A": [0.5, 0.6, 0.7, 0.8, 0.9], "B": [0.01, 0.02]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = update_masks(masks, statistics, "minimum", fraction=0.3, rng=0)  # floor(2.1) = 2
    assert dropped(masks, new) == {"A": [0], "B": [0]}
    assert collapsed_layers(new) == []


def test_layer_guard_keeps_last_unit():
    masks = {"A": np.array([0, 0, 1, 0], np.float32), "B": ones(B=5)["B"]}
    statistics = stats({"A": [0.1, 0.2, 0.3, 0.4], "B": B})
    new = update_masks(masks, statistics, "minimum_layer", fraction=0.5, rng=0)
    assert dropped(masks, new) == {"A": [], "B": [0, 2]}


def test_min_units_per_layer_two():
    masks = ones(A=3, B=5)
    statistics = stats({"A": [0.01, 0.02, 0.03], "B": B})
    new = update_masks(masks, statistics, "minimum", fraction=0.5, rng=0, min_units_per_layer=2)  # 4 units
    assert dropped(masks, new) == {"A": [0], "B": [0, 2, 4]}
    new = update_masks(masks, statistics, "minimum_layer", fraction=0.7, rng=0, min_units_per_layer=2)
    assert dropped(masks, new) == {"A": [0], "B": [0, 2, 4]}  # floor(2.1)=2 -> 1 spare; floor(3.5)=3


def test_min_units_zero_allows_collapse_with_warning():
    masks = ones(A=5, B=2)
    statistics = stats({"A": [0.5, 0.6, 0.7, 0.8, 0.9], "B": [0.01, 0.02]})
    with pytest.warns(UserWarning, match="(?i)collapse"):
        new = update_masks(masks, statistics, "minimum", fraction=0.3, rng=0, min_units_per_layer=0)
    assert dropped(masks, new) == {"A": [], "B": [0, 1]}
    assert collapsed_layers(new) == ["B"]
    with pytest.warns(UserWarning, match="(?i)collapse"):
        new = update_masks(masks, statistics, "random_layer", fraction=1.0, rng=0, min_units_per_layer=0)
    assert collapsed_layers(new) == ["A", "B"]


@pytest.mark.parametrize("metric", ["minimum", "minimum_layer", "random"])
def test_nothing_to_prune(metric):
    masks = {"A": np.array([0, 1, 0], np.float32), "B": np.array([0, 0, 0, 1], np.float32)}
    statistics = stats({"A": [0.1, 0.2, 0.3], "B": [0.1, 0.2, 0.3, 0.4]})
    with pytest.raises(NothingToPruneError):
        update_masks(masks, statistics, metric, fraction=0.2, rng=0)
    with pytest.raises(NothingToPruneError):
        update_masks(masks, statistics, metric, count=1, rng=0)
    assert issubclass(NothingToPruneError, ValueError)
    masks2 = {"A": np.array([1, 1, 0], np.float32), "B": np.array([1, 0, 1, 0], np.float32)}
    with pytest.raises(NothingToPruneError):
        update_masks(masks2, statistics, metric, fraction=0.2, rng=0, min_units_per_layer=2)


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimal", "Minimum", "", "l1"])
def test_unknown_metric(name):
    with pytest.raises(ValueError) as info:
        update_masks(ones(A=5), stats({"A": A}), name, fraction=0.2, rng=0)
    message = str(info.value)
    assert repr(name) in message
    for allowed in METRICS:
        assert allowed in message


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, 1.0000001])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError) as info:
        update_masks(ones(A=5), stats({"A": A}), "minimum", fraction=fraction, rng=0)
    message = str(info.value)
    assert "(0, 1]" in message
    assert str(float(fraction)) in message


@pytest.mark.parametrize("count", [0, -1, 1.5])
def test_bad_count(count):
    with pytest.raises(ValueError, match="count"):
        update_masks(ones(A=5), stats({"A": A}), "minimum", count=count, rng=0)


def test_bad_rng_and_scope():
    with pytest.raises(TypeError, match="rng"):
        update_masks(ones(A=5), stats({"A": A}), "minimum", fraction=0.2, rng="seed")
    with pytest.raises(ValueError, match="scope"):
        select_units({"A": np.asarray(A)}, ones(A=5), fraction=0.2, scope="local", rng=0)
    with pytest.raises(ValueError, match="min_units_per_layer"):
        update_masks(ones(A=5), stats({"A": A}), "minimum", fraction=0.2, rng=0, min_units_per_layer=-1)


def test_mismatched_layer_names():
    with pytest.raises(ValueError, match=r"No statistics for mask layer\(s\) \['C'\]"):
        update_masks(ones(A=5, C=5), stats({"A": A, "B": B}), "minimum", fraction=0.2, rng=0)
    with pytest.raises(ValueError, match=r"No statistics for mask layer\(s\) \['C'\]"):
        update_masks(ones(C=5), stats({"A": A, "B": B}), "minimum_layer", fraction=0.2, rng=0)
    with pytest.raises(ValueError):
        select_units({"A": np.asarray(A), "B": np.asarray(B)}, ones(A=5, C=5), fraction=0.2, scope="global", rng=0)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        update_masks(ones(A=6, B=5), stats({"A": A, "B": B}), "minimum", fraction=0.2, rng=0)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_input_masks_not_modified(metric):
    masks = {"A": np.array([1, 0, 1, 1, 1], np.float32), "B": np.array([1, 1, 1, 0, 1], np.int64)}
    original = copy.deepcopy(masks)
    ids = {name: id(value) for name, value in masks.items()}
    new = update_masks(masks, stats({"A": A, "B": B}, {"A": APOZ_A, "B": APOZ_B}), metric, fraction=0.5, rng=0)
    assert {name: id(value) for name, value in masks.items()} == ids
    for name in masks:
        np.testing.assert_array_equal(masks[name], original[name])
        assert masks[name].dtype == original[name].dtype
        assert new[name] is not masks[name]
    assert_monotone(original, new)
    assert sum(len(v) for v in dropped(original, new).values()) >= 2


def test_apply_drop_does_not_modify_inputs():
    masks = {"A": np.ones(3, np.float32)}
    drop = {"A": np.array([False, True, False])}
    new = apply_drop(masks, drop)
    np.testing.assert_array_equal(new["A"], [1, 0, 1])
    np.testing.assert_array_equal(masks["A"], [1, 1, 1])
    assert new["A"].dtype == np.float32
