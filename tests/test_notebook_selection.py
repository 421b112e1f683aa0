"""selection="notebook" (the authors' notebooks' rule) and protocol="notebook" (its preset).

The rule, as issue 11 states it: the threshold is the score at position int(p·R) of the
sorted remaining scores, so k+1 active units qualify; the layers are visited in model order,
each layer's qualifying units in random order, and units are dropped until the quota k is
used up.  Quotas are int(p·R) globally and int(p·R_l) per layer, at least one.

``reference`` below transcribes that text in plain Python, without the library's helpers.
The within-layer visit order is random, so the library is compared with it on what the rule
fixes (qualifiers, quotas, how many units each layer loses) and checked to be one of the
rule's possible outcomes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.dropnet.experiment import run_experiment
from dropnet_tf.dropnet.arguments import PROTOCOLS, resolve_protocol
from dropnet_tf.dropnet.iterative import IterativePruner, iterative_prune
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.dropnet.metrics import update_masks
from dropnet_tf.models import model_a
from dropnet_tf.core.selection import select_units
from dropnet_tf.core.statistics import UnitStatistics
from script_helpers import load_script

pytestmark = pytest.mark.filterwarnings("ignore:Layer collapse:UserWarning")

FRACTIONS = (0.1, 0.2, 0.25, 0.3, 0.5, 0.75)  # int(p·R) has no float surprises for these


# ----------------------------------------------------------------------------- the reference


def reference(scores: dict, masks: dict, p: float, scope: str, descending: bool = False) -> dict:
    """The rule's deterministic part: qualifiers, quota per group, units lost per layer.

    ``descending``: the scores are ranked highest first (the ``maximum`` metrics, whose
    notebook code sorts E(a) in descending order and keeps units with E ≥ threshold).
    """
    names = list(masks)
    groups = [names] if scope == "global" else [[name] for name in names]
    qualifiers, quotas, losses = {}, [], {name: 0 for name in names}
    for group in groups:
        remaining = [(name, i) for name in group for i in range(len(masks[name])) if masks[name][i] > 0]
        if not remaining:
            for name in group:
                qualifiers[name] = set()
            continue
        ranked = sorted((scores[name][i] for name, i in remaining), reverse=descending)
        k = int(p * len(remaining))
        threshold = ranked[k]
        for name in group:
            qualifiers[name] = {
                i
                for other, i in remaining
                if other == name and (scores[name][i] >= threshold if descending else scores[name][i] <= threshold)
            }
        quota = max(1, k)
        quotas.append(quota)
        left = quota
        for name in group:  # model order
            take = min(left, len(qualifiers[name]))
            losses[name] = take
            left -= take
    return {"qualifiers": qualifiers, "quotas": quotas, "losses": losses}


def random_state(rng: np.random.Generator, ties: bool):
    """Three to five layers, some units already off, integer scores (ties) or continuous."""
    names = [f"layer{i}" for i in range(int(rng.integers(3, 6)))]
    masks, scores = {}, {}
    for name in names:
        size = int(rng.integers(1, 13))
        masks[name] = (rng.random(size) < 0.75).astype(np.float32)
        scores[name] = rng.integers(0, 5, size).astype(np.float64) if ties else rng.random(size)
        # pruned units score lowest of all: a rule that looked at them would pick them
        scores[name][masks[name] == 0] = -1.0
    if not any(mask.any() for mask in masks.values()):
        masks[names[0]][0] = 1.0
    return scores, masks


def dropped_sets(drop: dict) -> dict:
    return {name: set(np.flatnonzero(value).tolist()) for name, value in drop.items()}


STATES = [(seed, ties, scope, p) for seed in range(40) for ties in (False, True) for scope in ("global", "layer")
          for p in FRACTIONS[seed % len(FRACTIONS):][:1]]


# ----------------------------------------------------------------------------- select_units


@pytest.mark.parametrize("seed, ties, scope, p", STATES)
def test_notebook_selection_is_an_outcome_of_the_rule(seed, ties, scope, p):
    scores, masks = random_state(np.random.default_rng(seed), ties)
    expected = reference(scores, masks, p, scope)
    drop = dropped_sets(
        select_units(scores, masks, p, scope, np.random.default_rng(1000 + seed), min_units_per_layer=0,
                     selection="notebook")
    )
    for name in masks:
        assert drop[name] <= expected["qualifiers"][name], f"{name}: dropped a unit that does not qualify"
        assert len(drop[name]) == expected["losses"][name], f"{name}: lost {len(drop[name])} units"
    assert sum(len(units) for units in drop.values()) == sum(expected["quotas"])


@pytest.mark.parametrize("seed", range(30))
def test_global_leftover_is_in_the_last_layer_with_a_qualifier(seed):
    scores, masks = random_state(np.random.default_rng(seed), ties=False)
    p = FRACTIONS[seed % len(FRACTIONS)]
    expected = reference(scores, masks, p, "global")
    qualifying = sum(len(q) for q in expected["qualifiers"].values())
    remaining = sum(int(m.sum()) for m in masks.values())
    assert qualifying == int(p * remaining) + 1  # no ties: k + 1 qualify
    drop = dropped_sets(select_units(scores, masks, p, "global", seed, min_units_per_layer=0, selection="notebook"))
    leftover = [(name, i) for name in masks for i in expected["qualifiers"][name] - drop[name]]
    last = [name for name in masks if expected["qualifiers"][name]][-1]
    if int(p * remaining) == 0:  # the quota is one and one unit qualifies: nothing is left over
        assert leftover == []
    else:
        assert len(leftover) == 1 and leftover[0][0] == last


@pytest.mark.parametrize("seed", range(30))
def test_layer_leftover_is_one_of_each_layers_qualifiers(seed):
    scores, masks = random_state(np.random.default_rng(seed), ties=False)
    p = FRACTIONS[seed % len(FRACTIONS)]
    expected = reference(scores, masks, p, "layer")
    drop = dropped_sets(select_units(scores, masks, p, "layer", seed, min_units_per_layer=0, selection="notebook"))
    for name, mask in masks.items():
        active = int(mask.sum())
        if active == 0:
            assert drop[name] == set()
            continue
        qualifiers = expected["qualifiers"][name]
        assert len(qualifiers) == int(p * active) + 1
        left = qualifiers - drop[name]
        assert len(left) == (0 if int(p * active) == 0 else 1)


def test_visit_order_within_a_layer_is_random():
    """The unit left over in the last layer is any of its qualifiers, each now and then."""
    scores = {"a": np.array([0.1, 0.2, 0.9, 0.8]), "b": np.array([0.3, 0.4, 0.5, 0.95])}
    masks = {name: np.ones(4, np.float32) for name in scores}
    # R = 8, p = 0.5: threshold at position 4 (0.5), qualifiers a0 a1 b0 b1 b2, quota 4
    left_over = set()
    for seed in range(60):
        drop = dropped_sets(select_units(scores, masks, 0.5, "global", seed, min_units_per_layer=0, selection="notebook"))
        assert drop["a"] == {0, 1} and len(drop["b"]) == 2 and drop["b"] <= {0, 1, 2}
        left_over |= {0, 1, 2} - drop["b"]
    assert left_over == {0, 1, 2}


def test_ties_qualify_together_and_earlier_layers_lose_theirs_first():
    scores = {"a": np.array([0.0, 0.0, 0.5]), "b": np.array([0.0, 0.0, 0.5]), "c": np.array([0.0, 0.7, 0.5])}
    masks = {name: np.ones(3, np.float32) for name in scores}
    # R = 9, p = 0.25: quota 2, threshold at position 2 = 0.0 -> five tied qualifiers
    assert reference(scores, masks, 0.25, "global")["losses"] == {"a": 2, "b": 0, "c": 0}
    drop = dropped_sets(select_units(scores, masks, 0.25, "global", 0, min_units_per_layer=0, selection="notebook"))
    assert drop == {"a": {0, 1}, "b": set(), "c": set()}


def test_differs_from_exact_where_the_issue_says():
    """`maximum`-like scores: exact may empty the last layer; the notebook rule leaves one unit there."""
    scores = {"first": np.array([0.9, 0.8, 0.7, 0.6, 0.5]), "last": np.array([0.1, 0.2])}  # lower goes first
    masks = {name: np.ones(np.size(value), np.float32) for name, value in scores.items()}
    exact = dropped_sets(select_units(scores, masks, 0.3, "global", 0, min_units_per_layer=0))
    notebook = dropped_sets(select_units(scores, masks, 0.3, "global", 0, min_units_per_layer=0, selection="notebook"))
    # R = 7, k = 2: exact drops both units of "last"; the notebook threshold 0.5 admits first[4] too,
    # "first" is visited first, so one unit of "last" is left over
    assert exact == {"first": set(), "last": {0, 1}}
    assert notebook["first"] == {4} and len(notebook["last"]) == 1


def test_guard_keeps_qualifiers_of_a_layer_at_its_minimum():
    scores = {"a": np.array([0.1, 0.2]), "b": np.array([0.3, 0.4, 0.5, 0.6])}
    masks = {"a": np.array([1, 0], np.float32), "b": np.ones(4, np.float32)}
    # R = 5, p = 0.5: quota 2, qualifiers a0 b0 b1; a is at its minimum of one unit
    drop = dropped_sets(select_units(scores, masks, 0.5, "global", 0, min_units_per_layer=1, selection="notebook"))
    assert drop == {"a": set(), "b": {0, 1}}


def test_fraction_one_drops_everything_and_counts_above_one_are_refused():
    scores = {"a": np.array([0.1, 0.2, 0.3])}
    masks = {"a": np.ones(3, np.float32)}
    with pytest.warns(UserWarning, match="collapse"):
        drop = select_units(scores, masks, 1.0, "layer", 0, min_units_per_layer=0, selection="notebook")
    assert drop["a"].all()
    with pytest.raises(ValueError, match="count=2"):
        select_units(scores, masks, None, "global", 0, count=2, selection="notebook")
    with pytest.raises(ValueError, match=r"\('exact', 'notebook'\), got 'notebooks'"):
        select_units(scores, masks, 0.2, "global", 0, selection="notebooks")


# ----------------------------------------------------------------------------- drop-one (Fig. 13)
# The notebooks' oracle comparison (dropOne=True): threshold at position 0, nothing shuffled,
# one unit in all for the global metrics, one per layer for the layer-wise ones.


def _drop_one(scores, masks, scope, seed=0, uniform=False, guard=0):
    return dropped_sets(select_units(scores, masks, None, scope, seed, count=1, selection="notebook",
                                     min_units_per_layer=guard, uniform=uniform))


def test_drop_one_takes_the_first_lowest_unit_in_model_order():
    masks = {"a": np.array([1, 1, 1, 0], np.float32), "b": np.ones(3, np.float32)}
    scores = {"a": np.array([0.3, 0.1, 0.1, 0.0]), "b": np.array([0.1, 0.05, 0.05])}
    # a[3] scores lowest but is inactive; b's 0.05 ties twice: its first, in every draw
    assert all(_drop_one(scores, masks, "global", seed) == {"a": set(), "b": {1}} for seed in range(5))
    scores["b"] = np.array([0.1, 0.2, 0.1])
    assert _drop_one(scores, masks, "global") == {"a": {1}, "b": set()}  # a tie across layers: the earlier layer
    assert _drop_one(scores, masks, "layer") == {"a": {1}, "b": {0}}  # one per layer, each its first lowest
    # the guard leaves a layer at its minimum out and takes the lowest of the others
    single = {"a": np.array([0, 1, 0, 0], np.float32), "b": np.ones(3, np.float32)}
    assert _drop_one(scores, single, "global", guard=1) == {"a": set(), "b": {0}}


def test_drop_one_random_layer_takes_each_layers_first_active_unit_without_a_draw():
    masks = {"a": np.array([0, 0, 1, 1], np.float32), "b": np.array([1, 0, 1], np.float32)}
    scores = {name: np.zeros(len(mask)) for name, mask in masks.items()}
    for seed in range(5):
        assert _drop_one(scores, masks, "layer", seed, uniform=True) == {"a": {2}, "b": {0}}


def test_drop_one_random_is_one_unit_uniform_over_the_active_ones():
    masks = {"a": np.array([1, 0, 1], np.float32), "b": np.array([1, 1, 0, 1], np.float32)}
    scores = {name: np.zeros(len(mask)) for name, mask in masks.items()}
    active = [("a", 0), ("a", 2), ("b", 0), ("b", 1), ("b", 3)]
    draws = 5000
    rng = np.random.default_rng(3)
    counts = dict.fromkeys(active, 0)
    for _ in range(draws):
        drop = _drop_one(scores, masks, "global", rng, uniform=True)
        units = [(name, unit) for name, chosen in drop.items() for unit in chosen]
        assert len(units) == 1 and units[0] in counts
        counts[units[0]] += 1
    expected = draws / len(active)
    spread = math.sqrt(draws * (1 / len(active)) * (1 - 1 / len(active)))
    assert all(abs(count - expected) < 5 * spread for count in counts.values()), counts


def test_drop_one_cycles_under_the_notebook_protocol():
    """minimum loses one unit a cycle, random_layer one per layer (two for Model A)."""
    for metric, lost in (("minimum", 1), ("random_layer", 2)):
        records = iterative_prune(_model(), DATA, metric, protocol="notebook", count=1, max_cycles=3,
                                  training=FAST, verbose=0)
        totals = [sum(r["units_per_layer"].values()) for r in records]
        assert totals == [12, 12 - lost, 12 - 2 * lost], (metric, totals)
        assert all(r["selection"] == "notebook" for r in records)


# ----------------------------------------------------------------------------- update_masks


def _stats(mean_abs: dict) -> UnitStatistics:
    return UnitStatistics(mean_abs=mean_abs, apoz={k: np.zeros_like(v) for k, v in mean_abs.items()}, num_samples=10)


@pytest.mark.parametrize("metric, scope, descending", [
    ("minimum", "global", False), ("maximum", "global", True),
    ("minimum_layer", "layer", False), ("maximum_layer", "layer", True),
])
@pytest.mark.parametrize("seed", range(8))
def test_metrics_follow_the_rule(metric, scope, descending, seed):
    rng = np.random.default_rng(seed)
    mean_abs, masks = random_state(rng, ties=bool(seed % 2))
    mean_abs = {name: np.where(masks[name] > 0, value, 0.0) for name, value in mean_abs.items()}  # E = 0 when pruned
    p = FRACTIONS[seed % len(FRACTIONS)]
    expected = reference(mean_abs, masks, p, scope, descending=descending)
    new = update_masks(masks, _stats(mean_abs), metric, fraction=p, rng=seed, min_units_per_layer=0, selection="notebook")
    for name in masks:
        lost = set(np.flatnonzero((masks[name] > 0) & (new[name] == 0)).tolist())
        assert lost <= expected["qualifiers"][name]
        assert len(lost) == expected["losses"][name]


def _hypergeometric_pmf(population: int, successes: int, draws: int) -> np.ndarray:
    """P(X = x) for x = 0..successes: x of ``draws`` uniform picks land in a subset of ``successes``."""
    total = math.comb(population, draws)
    return np.array([math.comb(successes, x) * math.comb(population - successes, draws - x) / total
                     for x in range(successes + 1)])


def test_notebook_random_is_uniform_over_all_active_units():
    """The authors' ``random``: k = int(p·R) of all active units, uniformly, wherever they fall.

    Layer ``a`` has 6 active units (4 already pruned), ``b`` 30: R = 36, k = int(0.5·36) = 18.
    Uniform draws make ``a``'s loss hypergeometric(36, 6, 18); the threshold-and-quota rule
    on random scores (the previous notebook ``random``) visits ``a`` first and so takes
    more from it.  The pmf is computed with math.comb, not with the library.
    """
    masks = {"a": np.array([1] * 6 + [0] * 4, np.float32), "b": np.ones(30, np.float32)}
    stats = _stats({"a": np.zeros(10), "b": np.zeros(30)})
    draws = 3000
    lost_a = np.zeros(draws, np.int64)
    per_unit = {"a": np.zeros(10), "b": np.zeros(30)}
    for seed in range(draws):
        new = update_masks(masks, stats, "random", fraction=0.5, rng=seed, min_units_per_layer=0, selection="notebook")
        dropped = {name: (masks[name] > 0) & (new[name] == 0) for name in masks}
        assert np.all(new["a"][6:] == 0)  # pruned units are never candidates again
        assert dropped["a"].sum() + dropped["b"].sum() == 18
        lost_a[seed] = dropped["a"].sum()
        for name in masks:
            per_unit[name] += dropped[name]
    observed = np.bincount(lost_a, minlength=7) / draws
    expected = _hypergeometric_pmf(36, 6, 18)
    assert np.abs(observed - expected).max() < 0.03, (observed.round(3), expected.round(3))
    # The mean tells the rules apart: uniform gives 6·18/36 = 3.0 (standard error 0.021 over
    # 3000 draws); the threshold rule on random scores takes all k+1 = 19 qualifiers of
    # ``a`` first, for a mean of 6·19/36 = 3.17.
    assert abs(lost_a.mean() - 3.0) < 0.07
    # Every active unit is dropped with probability k / R = 0.5, the pruned ones never.
    assert np.abs(per_unit["a"][:6] / draws - 0.5).max() < 0.04
    assert np.abs(per_unit["b"] / draws - 0.5).max() < 0.04
    assert per_unit["a"][6:].sum() == 0


def test_notebook_random_can_empty_a_layer_and_the_guard_stops_it():
    """No layer guard in the notebooks: a 2-unit layer beside a 38-unit one, p = 0.5, loses
    both of its units with probability C(38, 18) / C(40, 20) = 0.2436."""
    masks = {"a": np.ones(2, np.float32), "b": np.ones(38, np.float32)}
    stats = _stats({"a": np.zeros(2), "b": np.zeros(38)})
    draws = 1500
    emptied = 0
    for seed in range(draws):
        new = update_masks(masks, stats, "random", fraction=0.5, rng=seed, min_units_per_layer=0, selection="notebook")
        emptied += int(new["a"].sum() == 0)
        guarded = update_masks(masks, stats, "random", fraction=0.5, rng=seed, min_units_per_layer=1, selection="notebook")
        assert guarded["a"].sum() >= 1 and (40 - guarded["a"].sum() - guarded["b"].sum()) == 20
    expected = math.comb(38, 18) / math.comb(40, 20)
    assert abs(expected - 0.2436) < 1e-4
    assert abs(emptied / draws - expected) < 0.035


def test_notebook_random_layer_draws_int_p_r_of_each_layer_uniformly():
    masks = {"a": np.array([1] * 7 + [0] * 3, np.float32), "b": np.ones(20, np.float32)}
    stats = _stats({"a": np.zeros(10), "b": np.zeros(20)})
    draws = 2000
    per_unit = {"a": np.zeros(10), "b": np.zeros(20)}
    for seed in range(draws):
        new = update_masks(masks, stats, "random_layer", fraction=0.3, rng=seed, min_units_per_layer=0,
                           selection="notebook")
        dropped = {name: (masks[name] > 0) & (new[name] == 0) for name in masks}
        assert dropped["a"].sum() == max(1, int(0.3 * 7)) == 2
        assert dropped["b"].sum() == int(0.3 * 20) == 6
        for name in masks:
            per_unit[name] += dropped[name]
    assert np.abs(per_unit["a"][:7] / draws - 2 / 7).max() < 0.04
    assert np.abs(per_unit["b"] / draws - 6 / 20).max() < 0.04
    assert per_unit["a"][7:].sum() == 0


def test_exact_stays_the_default():
    stats = _stats({"a": np.array([0.5, 0.1, 0.9, 0.3, 0.7]), "b": np.array([0.2, 0.8, 0.05, 0.6, 0.4])})
    masks = {name: np.ones(5, np.float32) for name in ("a", "b")}
    default = update_masks(masks, stats, "minimum", fraction=0.3, rng=0)
    exact = update_masks(masks, stats, "minimum", fraction=0.3, rng=0, selection="exact")
    notebook = update_masks(masks, stats, "minimum", fraction=0.3, rng=0, selection="notebook")
    assert all(np.array_equal(default[n], exact[n]) for n in masks)
    assert not all(np.array_equal(default[n], notebook[n]) for n in masks)
    with pytest.raises(ValueError, match="'best'"):
        update_masks(masks, stats, "minimum", fraction=0.3, selection="best")


# ----------------------------------------------------------------------------- protocol preset


def _data():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 12)) * 2.0

    def draw(n):
        y = rng.integers(0, 3, n)
        return (centres[y] + rng.normal(size=(n, 12))).astype("float32"), y.astype("int64")

    return draw(120), draw(40), draw(40)


DATA = _data()
FAST = TrainingConfig(max_epochs=2, patience=1)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return model_a((6, 6), input_shape=(12,), num_classes=3, seed=seed)


def test_notebook_preset_sets_what_it_says():
    selection, guard, training = resolve_protocol("notebook", training=FAST)
    assert (selection, guard) == ("notebook", 0)
    assert (training.shuffle, training.restore_best_weights, training.jit_compile) == (False, False, False)
    assert (training.max_epochs, training.patience) == (2, 1)  # the rest of the config is kept
    assert resolve_protocol("notebook")[2].shuffle is False
    assert resolve_protocol(None) == ("exact", 1, TrainingConfig())
    assert resolve_protocol("paper")[:2] == ("exact", 1)
    assert set(PROTOCOLS) == {"paper", "notebook"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(protocol="notebooks"), "'notebooks'"),
    (dict(protocol="notebook", selection="exact"), "selection='exact'"),
    (dict(protocol="notebook", min_units_per_layer=1), "min_units_per_layer=1"),
    (dict(protocol="notebook", training=TrainingConfig(jit_compile=True)), "jit_compile=True"),
    (dict(protocol="paper", training=TrainingConfig(shuffle=False)), "shuffle=False"),
    (dict(protocol="paper", selection="notebook"), "selection='notebook'"),
    (dict(selection="random"), "'random'"),
])
def test_contradicting_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError) as error:
        resolve_protocol(**kwargs)
    assert message in str(error.value)


def test_pruner_under_the_notebook_protocol(tmp_path):
    pruner = IterativePruner(_model(), DATA, "maximum", protocol="notebook", training=FAST, verbose=0)
    assert (pruner.selection, pruner.min_units_per_layer) == ("notebook", 0)
    assert (pruner.training.shuffle, pruner.training.restore_best_weights, pruner.training.jit_compile) == (
        False, False, False)
    records = iterative_prune(_model(), DATA, "maximum", protocol="notebook", fraction=0.3, max_cycles=2,
                              training=FAST, verbose=0, results=tmp_path / "r.jsonl")
    assert records[0]["selection"] == "notebook" and records[0]["min_units_per_layer"] == 0
    assert records[0]["training"]["shuffle"] is False and records[0]["training"]["restore_best_weights"] is False
    assert sum(records[1]["units_per_layer"].values()) == 12 - 3  # quota int(0.3 · 12)
    default = IterativePruner(_model(), DATA, "maximum", training=FAST, verbose=0)
    assert (default.selection, default.min_units_per_layer, default.training.shuffle) == ("exact", 1, True)
    oracle = IterativePruner(_model(), DATA, "oracle", selection="notebook", training=FAST, verbose=0)
    assert oracle.selection == "notebook"  # drop-one: the notebooks' oracle comparison
    with pytest.raises(ValueError, match="count=2"):
        IterativePruner(_model(), DATA, "minimum", selection="notebook", count=2, training=FAST, verbose=0)


def test_resuming_with_the_other_selection_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    kwargs = dict(fraction=0.3, training=FAST, verbose=0, results=path, max_cycles=1)
    iterative_prune(_model(), DATA, "minimum", selection="notebook", **kwargs)
    with pytest.raises(ValueError, match="selection: stored 'notebook', now 'exact'"):
        iterative_prune(_model(), DATA, "minimum", **kwargs)
    iterative_prune(_model(), DATA, "minimum", selection="notebook", **kwargs)  # same rule: resumes


def test_records_from_before_selection_was_stored_resume_as_exact(tmp_path):
    path = tmp_path / "r.jsonl"
    kwargs = dict(fraction=0.3, training=FAST, verbose=0, results=path, max_cycles=1)
    iterative_prune(_model(), DATA, "minimum", **kwargs)
    old = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "selection"}) + "\n" for r in old))
    records = iterative_prune(_model(), DATA, "minimum", **kwargs)
    assert [r["cycle"] for r in records] == [0, 1]
    with pytest.raises(ValueError, match="selection: stored 'exact', now 'notebook'"):
        iterative_prune(_model(), DATA, "minimum", selection="notebook", **kwargs)


def test_run_experiment_refuses_a_finished_run_of_the_other_rule(tmp_path):
    kwargs = dict(metrics=["minimum"], seeds=[0], results=tmp_path / "r.jsonl", experiment="e",
                  fraction=0.5, min_fraction=0.6, training=FAST, verbose=0)
    records = run_experiment(lambda seed: _model(seed), DATA, protocol="notebook", **kwargs)
    assert records[-1]["stop_reason"] and records[-1]["selection"] == "notebook"
    assert run_experiment(lambda seed: _model(seed), DATA, protocol="notebook", **kwargs) == records
    with pytest.raises(ValueError, match="finished run"):
        run_experiment(lambda seed: _model(seed), DATA, **kwargs)


# ----------------------------------------------------------------------------- paper scripts

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "paper_experiments" / "dropnet"


def _script(name: str):
    from paper_experiments.dropnet import dropnet_protocol

    return dropnet_protocol, load_script(SCRIPTS_DIR / name).EXPERIMENT


def test_cli_protocol_option_and_separate_names():
    protocol, exp = _script("04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    assert protocol.parse_args(exp, []).protocol == "paper"
    assert protocol.parse_args(exp, ["--protocol", "notebook"]).protocol == "notebook"
    with pytest.raises(SystemExit):
        protocol.parse_args(exp, ["--protocol", "notebooks"])
    assert exp.experiment_name(0.2) == exp.experiment_name(0.2, "paper") == "dropnet_04_1_1_model_a_fc40_fc40"
    assert exp.experiment_name(0.2, "notebook") == "dropnet_04_1_1_model_a_fc40_fc40_notebook"
    _, oracle = _script("05_1_fig13_oracle_model_a_fc20_fc20_mnist.py")
    assert protocol.parse_args(oracle, ["--protocol", "notebook"]).protocol == "notebook"  # drop-one
    assert oracle.experiment_name(None, "notebook").endswith("_notebook")


@pytest.mark.slow
def test_cli_notebook_protocol_end_to_end(tmp_path):
    command = [
        sys.executable, str(SCRIPTS_DIR / "04_1_1_fig03_model_a_fc40_fc40_mnist.py"), "--scale", "quick",
        "--dataset", "digits", "--protocol", "notebook", "--seeds", "0", "--metrics", "maximum",
        "--max-epochs", "1", "--max-train", "200", "--quiet",
        "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in open(tmp_path / "runs" / "results.jsonl")]
    assert {r["experiment"] for r in records} == {"dropnet_04_1_1_model_a_fc40_fc40_notebook"}
    assert all(r["selection"] == "notebook" and r["min_units_per_layer"] == 0 for r in records)
    assert all(r["training"]["shuffle"] is False and r["training"]["restore_best_weights"] is False for r in records)
    summary = json.loads((tmp_path / "figures" / "04_1_1_model_a_fc40_fc40_digits_quick_notebook.json").read_text())
    assert summary["protocol"] == "notebook"
    assert (tmp_path / "figures" / "04_1_1_fig03_model_a_fc40_fc40_digits_quick_notebook_test_accuracy.png").exists()


def _protocol_runs(path, experiment, accuracy_by_seed):
    """A results file of finished runs: two metrics, the given seeds, three cycles each."""
    from dropnet_tf.harness.results import ResultsFile

    results = ResultsFile(path)
    for seed, top in accuracy_by_seed.items():
        for metric in ("minimum", "maximum"):
            for cycle, fraction in enumerate((1.0, 0.8, 0.65)):
                results.append({"experiment": experiment, "metric": metric, "seed": seed, "cycle": cycle,
                                "fraction_remaining": fraction, "test_accuracy": top - 0.1 * cycle,
                                "stop_reason": "fraction" if cycle == 2 else None})


def test_selection_rules_comparison_draws_the_seeds_both_protocols_finished(tmp_path, capsys):
    compare = load_script(SCRIPTS_DIR / "compare_selection_rules.py")
    name = "dropnet_04_1_1_model_a_fc40_fc40"
    _protocol_runs(tmp_path / "exact.jsonl", name, {0: 0.9, 1: 0.8, 2: 0.7})
    _protocol_runs(tmp_path / "notebook.jsonl", f"{name}_notebook", {0: 0.6, 1: 0.5})
    compare.main(["--exact", str(tmp_path / "exact.jsonl"), "--notebook", str(tmp_path / "notebook.jsonl"),
                  "--figures", str(tmp_path)])
    assert "(2 seeds)" in capsys.readouterr().out  # seed 2 has no notebook run: left out of both
    stem = tmp_path / "04_1_1_fig03_selection_rules_model_a_fc40_fc40_mnist_paper"
    assert stem.with_suffix(".png").stat().st_size > 10_000
    drawn = {(row["metric"], row["rule"].split(" ")[0], row["cycle"]): float(row["test_accuracy_mean"])
             for row in csv.DictReader(open(stem.with_suffix(".csv")))}
    assert len(drawn) == 2 * 2 * 3
    assert drawn[("minimum", "exact-k", "2")] == pytest.approx(0.65)  # (0.7 + 0.6) / 2: seeds 0 and 1 only
    assert drawn[("maximum", "notebook", "0")] == pytest.approx(0.55)
    with pytest.raises(SystemExit) as exited:
        compare.main(["--exact", str(tmp_path / "missing.jsonl"), "--figures", str(tmp_path)])
    assert exited.value.code == 1 and "missing.jsonl" in capsys.readouterr().err
