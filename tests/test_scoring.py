"""dropnet_tf.core.scoring: one scorer shape, one registry, one score → select → apply loop.

The DropNet metrics, the oracle and the LayerPrune criteria are all UnitScorers in one
registry; the ``*_layer`` names and ``mean_activation`` are aliases; prune_step gives the
masks the old per-shape code paths gave.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf import add_masks, collect_statistics, get_masks, set_masks
from dropnet_tf.core.backend import keras
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.dropnet.iterative import iterative_prune
from dropnet_tf.layerprune import FILTER_CRITERIA, get_filter_criterion, prune_filters
from dropnet_tf.dropnet.metrics import METRICS, get_metric, update_masks
from dropnet_tf.dropnet.oracle import oracle_scores
from dropnet_tf.core.scoring import (
    UNIT_SCORERS,
    StatisticScorer,
    UnitScorer,
    get_scorer,
    prune_step,
    register_scorer,
    select_and_drop,
)
from dropnet_tf.core.selection import apply_drop, select_units

BUILT_IN = {
    "minimum", "minimum_layer", "maximum", "maximum_layer", "random", "random_layer", "apoz", "apoz_layer",
    "oracle", "l1_norm", "l2_norm", "taylor", "feature_maps", "mean_activation", "bn_scale", "geometric_median",
}


def make_model(seed=0):
    """Input 6 → a Dense(6) → b Dense(3) → softmax(3), with masks after a and b."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(6, activation="relu", name="a")(inputs)
    h = keras.layers.Dense(3, activation="relu", name="b")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    model = add_masks(keras.Model(inputs, outputs))
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def make_data(n=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n).astype(np.int64)


def dropped(before, after):
    return {name: np.flatnonzero((before[name] > 0) & (after[name] == 0)).tolist() for name in before}


class LastUnitsFirst(UnitScorer):
    """A user's scorer: unit c of every layer scores -c, so the last units go first."""

    name = "test_last_units_first"

    def score(self, model, data=None, *, batch_size=128):
        return {name: -np.arange(mask.size, dtype=np.float64) for name, mask in get_masks(model).items()}


@pytest.fixture
def user_scorer():
    register_scorer(LastUnitsFirst)
    yield UNIT_SCORERS[LastUnitsFirst.name]
    del UNIT_SCORERS[LastUnitsFirst.name]


def test_every_name_resolves():
    assert BUILT_IN <= set(UNIT_SCORERS)
    for name in BUILT_IN:
        scorer = get_scorer(name)
        assert isinstance(scorer, UnitScorer) and scorer.name == name
        assert scorer.default_scope == ("layer" if name.endswith("_layer") else "global")
        assert get_scorer(scorer) is scorer
    # the old registries are views of the one registry
    for name, metric in METRICS.items():
        assert get_metric(name) is metric is UNIT_SCORERS[name]
    for name, criterion in FILTER_CRITERIA.items():
        assert get_filter_criterion(name) is criterion is UNIT_SCORERS[name]
    assert get_scorer("oracle").default_count == 1


@pytest.mark.parametrize("lookup", [get_scorer, get_metric, get_filter_criterion])
def test_unknown_name_raises_naming_it_and_the_allowed(lookup):
    with pytest.raises(ValueError) as info:
        lookup("smallest")
    message = str(info.value)
    assert "'smallest'" in message and "'minimum'" in message or "'l1_norm'" in message


def test_registering_a_name_twice_needs_replace(user_scorer):
    with pytest.raises(ValueError, match="already registered"):
        register_scorer(LastUnitsFirst)
    with pytest.raises(TypeError):
        register_scorer(object())


@pytest.mark.parametrize("base", ["minimum", "maximum", "random", "apoz"])
def test_layer_alias_is_the_base_scorer_with_scope_layer(base):
    plain, layer = get_scorer(base), get_scorer(f"{base}_layer")
    assert type(plain) is type(layer) and (plain.default_scope, layer.default_scope) == ("global", "layer")
    model, (x, _) = make_model(), make_data()
    scores, layer_scores = plain.score(model, x), layer.score(model, x)
    for name in scores:
        np.testing.assert_array_equal(scores[name], layer_scores[name])
    # same scores, different selection: prune_step with the alias == the base with scope="layer"
    via_alias = prune_step(make_model(), layer, x, fraction=0.5, rng=2, apply=False)
    via_scope = prune_step(make_model(), plain, x, fraction=0.5, scope="layer", rng=2, apply=False)
    for name in via_alias:
        np.testing.assert_array_equal(via_alias[name], via_scope[name])
    # scope "layer" drops floor(p·R_l) = 3 of a and 1 of b; global floor(p·9) = 4 anywhere
    assert [int(np.sum(m == 0)) for m in via_alias.values()] == [3, 1]


def test_mean_activation_is_minimum():
    assert type(get_scorer("mean_activation")) is type(get_scorer("minimum"))
    model, (x, y) = make_model(), make_data()
    a = get_scorer("mean_activation").score(model, (x, y), batch_size=16)
    b = get_scorer("minimum").score(model, x, batch_size=16)
    expected = collect_statistics(model, x, batch_size=16).mean_abs
    for name in expected:
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(a[name], expected[name])


@pytest.mark.parametrize("metric", ["minimum", "maximum_layer", "random", "apoz_layer"])
@pytest.mark.parametrize("selection", ["exact", "notebook"])
def test_prune_step_gives_the_masks_of_update_masks(metric, selection):
    model, (x, _) = make_model(), make_data()
    masks = get_masks(model)
    masks["a_mask"][1] = 0.0
    set_masks(model, masks)
    old = update_masks(masks, collect_statistics(model, x, batch_size=16), metric, fraction=0.4, rng=5,
                       min_units_per_layer=0, selection=selection)
    new = prune_step(model, metric, x, fraction=0.4, rng=5, min_units_per_layer=0, selection=selection,
                     batch_size=16)
    for name in masks:
        np.testing.assert_array_equal(new[name], old[name])
        np.testing.assert_array_equal(get_masks(model)[name], old[name])  # applied with set_masks


def test_oracle_scorer_is_the_loss_increase_and_drops_what_the_old_path_dropped():
    model, (x, y) = make_model(), make_data()
    losses = oracle_scores(model, x, y)
    increase = get_scorer("oracle").score(model, (x, y))
    base = model.evaluate(x, y, verbose=0, batch_size=256)
    for name in losses:
        np.testing.assert_allclose(increase[name], losses[name] - base, rtol=1e-5, atol=1e-6)
    for seed in range(3):
        masks = get_masks(model)
        old = apply_drop(masks, select_units(losses, masks, None, "global", np.random.default_rng(seed), count=1))
        new = prune_step(model, "oracle", (x, y), rng=np.random.default_rng(seed), apply=False)  # count 1 by default
        assert dropped(masks, new) == dropped(masks, old)


@pytest.mark.parametrize("criterion", ["l1_norm", "geometric_median", "taylor"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_prune_filters_gives_the_masks_of_the_old_loop(criterion, scope):
    data = make_data()
    rng = np.random.default_rng(4)
    model = make_model()
    masks = get_masks(model)
    for part in (2, 2):  # the old iterative loop: score, select_units(count=part), apply_drop
        scores = get_scorer(criterion).score(model, data)
        masks = apply_drop(masks, select_units(scores, masks, None, scope, rng, count=part))
        set_masks(model, masks)
    result = prune_filters(make_model(), criterion, data=data, count=4, scope=scope, schedule="iterative", steps=2, rng=4)
    for name in masks:
        np.testing.assert_array_equal(result.masks[name], masks[name])


def test_prune_filters_takes_the_scope_of_a_layer_alias():
    data = make_data()
    by_alias = prune_filters(make_model(), "minimum_layer", data=data, count=2, rng=0)
    by_scope = prune_filters(make_model(), "minimum", data=data, count=2, scope="layer", rng=0)
    for name in by_alias.masks:
        np.testing.assert_array_equal(by_alias.masks[name], by_scope.masks[name])


def test_a_user_scorer_works_in_prune_filters_and_iterative_prune(user_scorer):
    ones = get_masks(make_model())
    result = prune_filters(make_model(), "test_last_units_first", count=3, scope="layer", rng=0)
    # count 3 spread to keep the layers' fractions level: a loses 2 of 6, b 1 of 3
    assert dropped(ones, result.masks) == {"a_mask": [4, 5], "b_mask": [2]}

    (x, y), split = make_data(90), make_data(30, seed=2)
    records = iterative_prune(
        make_model(), ((x, y), split, split), "test_last_units_first", fraction=0.5, max_cycles=2,
        training=TrainingConfig(max_epochs=1, patience=1, batch_size=32), verbose=0,
    )
    assert records[0]["metric"] == "test_last_units_first"
    # cycle 1 trains the masks cycle 0 chose: global floor(0.5·9) = 4 of the highest indices,
    # a 5, 4, 3 (scores -5, -4, -3) and one of a 2 / b 2 (tied at -2)
    units = records[1]["units_per_layer"]
    assert sum(units.values()) == 5 and units["a_mask"] in (2, 3)


def test_statistic_scorer_subclass_overriding_score_still_works():
    class Reverse(StatisticScorer):
        def score(self, statistics):
            return {name: -np.arange(np.size(v), dtype=float) for name, v in statistics.mean_abs.items()}

    reverse = Reverse("reverse", "global")
    assert isinstance(reverse, StatisticScorer) and reverse.scope == "global"
    model, (x, _) = make_model(), make_data()
    masks = get_masks(model)
    old = update_masks(masks, collect_statistics(model, x), reverse, fraction=0.34, rng=0)
    new = prune_step(model, reverse, x, fraction=0.34, rng=0)
    assert dropped(masks, new) == dropped(masks, old) == {"a_mask": [3, 4, 5], "b_mask": []}


def test_select_and_drop_draws_random_scores_only_for_random_scorers_under_notebook():
    masks = {"a": np.ones(6, np.float32), "b": np.ones(6, np.float32)}
    zeros = {"a": np.zeros(6), "b": np.zeros(6)}
    random_rule, _ = select_and_drop(zeros, masks, fraction=0.5, selection="notebook", rng=0, random_scores=True,
                                     min_units_per_layer=0)
    tied_rule, _ = select_and_drop(zeros, masks, fraction=0.5, selection="notebook", rng=0, min_units_per_layer=0)
    # with all scores tied every unit qualifies and the first layer loses its units first
    assert tied_rule["a"].sum() == 0 and tied_rule["b"].sum() == 6
    assert random_rule["b"].sum() < 6
