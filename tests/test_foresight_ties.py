"""The thesis' tie rule of the weight selection (dropnet_tf.core.selection.select_weights,
selection="thesis"), through prune_at_init, the grid runner and the thesis script's options.

The references are hand-worked: which weights a rule keeps is written out in the comments,
not recomputed with the library's helpers.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.core.selection import select_weights
from dropnet_tf.foresight import MaskedDense, get_weight_masks
from dropnet_tf.foresight.prune import prune_at_init, resolve_method
from dropnet_tf.foresight.scorers.base import WeightScorer
from dropnet_tf.foresight.weights import prunable_weights


def _flat(masks):
    return np.concatenate([np.asarray(masks[name]).ravel() for name in sorted(masks)])


# --------------------------------------------------------------------------------------------
# select_weights on hand-made scores
# --------------------------------------------------------------------------------------------

# Ten weights in two tensors.  density 0.4 keeps K = 4.  Sorted from the top:
#   0.9 (a4), 0.7 (b1), 0.5 (a3), 0.5 (a5), 0.5 (b2), 0.2 (b3), 0, 0, 0, 0
# The 4th largest score is 0.5, shared by a3, a5 and b2.
#   exact : 0.9, 0.7 and two of the three 0.5s  -> 4 kept, which two depends on the seed
#   thesis: everything >= 0.5                    -> a3, a4, a5, b1, b2: 5 kept
TIED = {"a": np.array([0.0, 0.0, 0.0, 0.5, 0.9, 0.5]), "b": np.array([0.0, 0.7, 0.5, 0.2])}
THESIS_KEEPS = {"a": np.array([0, 0, 0, 1, 1, 1]), "b": np.array([0, 1, 1, 0])}


def test_thesis_rule_keeps_every_weight_tied_at_the_threshold():
    masks = {name: np.ones_like(score) for name, score in TIED.items()}
    for seed in range(5):
        kept = select_weights(TIED, masks, 0.4, "global", seed, selection="thesis")
        for name in TIED:
            np.testing.assert_array_equal(kept[name], THESIS_KEEPS[name])
    # The exact rule on the same scores keeps 4: a4 and b1 always, two of the three tied 0.5s.
    exact = [select_weights(TIED, masks, 0.4, "global", seed) for seed in range(8)]
    for kept in exact:
        assert _flat(kept).sum() == 4
        assert kept["a"][4] == kept["b"][1] == 1
        assert kept["a"][3] + kept["a"][5] + kept["b"][2] == 2
    assert len({_flat(kept).tobytes() for kept in exact}) > 1  # the exact rule's ties do fall at random


def test_thesis_rule_is_the_exact_rule_when_nothing_ties():
    # Distinct scores: both rules keep the same K = round(0.3 * 50) = 15 weights, the 15 highest.
    # This rules out reading "strictly below the k-th smallest" with k = the number pruned,
    # which would prune 34 and keep 16 even without a tie.
    rng = np.random.default_rng(3)
    scores = {"a": rng.permutation(30).astype(float), "b": 30 + rng.permutation(20).astype(float)}
    masks = {name: np.ones(score.size) for name, score in scores.items()}
    for scope, expected in (("global", 15), ("layer", 9 + 6)):
        exact = select_weights(scores, masks, 0.3, scope, 0)
        thesis = select_weights(scores, masks, 0.3, scope, 0, selection="thesis")
        assert _flat(thesis).sum() == expected
        for name in scores:
            np.testing.assert_array_equal(thesis[name], exact[name])
    # Global: the 15 highest are b's scores 35..49, none of a's.
    top = select_weights(scores, masks, 0.3, "global", 0, selection="thesis")
    assert top["a"].sum() == 0 and set(scores["b"][top["b"] > 0]) == set(range(35, 50))


def test_thesis_rule_layerwise_ties_each_tensor_on_its_own():
    # density 0.5.  a: 6 weights, K_a = 3, sorted 0.9, 0.4, 0.4, 0.4, 0.1, 0.0 -> the 3rd is 0.4,
    # shared by three weights, so the thesis rule keeps 0.9 and all three 0.4s = 4.
    # b: 4 weights, K_b = 2, sorted 0.8, 0.6, 0.3, 0.3 -> the 2nd is 0.6, no tie: keeps 2.
    scores = {"a": np.array([0.4, 0.0, 0.9, 0.4, 0.1, 0.4]), "b": np.array([0.3, 0.8, 0.3, 0.6])}
    masks = {name: np.ones(score.size) for name, score in scores.items()}
    kept = select_weights(scores, masks, 0.5, "layer", 0, selection="thesis")
    np.testing.assert_array_equal(kept["a"], [1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(kept["b"], [0, 1, 0, 1])
    # Globally the same scores give K = 5, the 5th largest is 0.4 (0.9, 0.8, 0.6, 0.4, 0.4, 0.4):
    # every 0.4 stays, 6 kept.
    both = select_weights(scores, masks, 0.5, "global", 0, selection="thesis")
    np.testing.assert_array_equal(both["a"], [1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(both["b"], [0, 1, 0, 1])


def test_thesis_rule_never_revives_pruned_weights_and_rejects_unknown_rules():
    # a0..a2 are already pruned, with the highest scores.  density 0.5: K = round(6 * 0.5) = 3,
    # the 3 active weights (0.2, 0.2, 0.1): all kept, the pruned ones stay pruned.
    scores = {"a": np.array([5.0, 5.0, 5.0, 0.2, 0.2, 0.1])}
    masks = {"a": np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])}
    np.testing.assert_array_equal(select_weights(scores, masks, 0.5, "global", 0, selection="thesis")["a"],
                                  [0, 0, 0, 1, 1, 1])
    # density 1/3: K = 2 of the active, the 2nd largest is 0.2 (tied with the 1st): both 0.2s stay.
    np.testing.assert_array_equal(select_weights(scores, masks, 1 / 3, "global", 0, selection="thesis")["a"],
                                  [0, 0, 0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"selection must be one of \('exact', 'thesis'\), got 'notebook'"):
        select_weights(scores, masks, 0.5, "global", 0, selection="notebook")


# --------------------------------------------------------------------------------------------
# prune_at_init: the compression error, and the exact zeros of second-order scores
# --------------------------------------------------------------------------------------------


class FixedScores(WeightScorer):
    """Scores given by hand, per prunable weight (in prunable_weights order)."""

    name = "fixed"
    needs_data = False

    def __init__(self, values):
        self.values = values

    def score(self, model, weights, data=None, rng=None):
        return {w.name: np.asarray(v, np.float64).reshape(w.mask.shape) for w, v in zip(weights, self.values)}


def _two_layer(inputs=4, hidden=3, outputs=2, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((inputs,)),
        MaskedDense(hidden, activation="relu", name="hidden"),
        MaskedDense(outputs, name="out"),
    ])


def test_compression_error_is_nonzero_exactly_when_ties_are_kept():
    # 4x3 + 3x2 = 18 prunable weights.  Scores: 11 exact zeros, 5 positive, 2 negative.
    # r = 2 keeps K = 9.  The 9th largest is 0 (only 5 are positive), so:
    #   thesis: prunes only the 2 negatives, keeps 16 -> r_e = 18/16 = 1.125,
    #           compression error (2 - 1.125) / 2 = 0.4375
    #   exact : keeps 9 -> r_e = 2, error 0
    hidden = np.array([[0.0, 0.0, 0.3], [0.0, -0.2, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.7]])
    out = np.array([[0.0, 0.1], [-0.4, 0.0], [0.9, 0.0]])
    scorer = FixedScores([hidden, out])
    model = _two_layer()
    report = prune_at_init(model, scorer, 2, selection="thesis")
    assert (report.nonzero, report.total) == (16, 18)
    assert report.compression_error == pytest.approx(0.4375, abs=1e-12)
    masks = get_weight_masks(model)
    names = [w.name for w in prunable_weights(model)]
    np.testing.assert_array_equal(masks[names[0]], (hidden >= 0).astype(np.float32))
    np.testing.assert_array_equal(masks[names[1]], (out >= 0).astype(np.float32))
    exact = prune_at_init(_two_layer(), scorer, 2)
    assert exact.nonzero == 9 and exact.compression_error == 0.0
    # r = 4 keeps K = round(18 / 4 = 4.5) = 5 (half up), the 5th largest is 0.1: no tie, both
    # rules keep the 5 positives, r_e = 18 / 5 = 3.6 (the rounding, not a tie).
    for selection in ("exact", "thesis"):
        report = prune_at_init(_two_layer(), scorer, 4, selection=selection)
        assert report.nonzero == 5 and report.empirical_ratio == pytest.approx(3.6)
    with pytest.raises(ValueError, match=r"selection must be one of \('exact', 'thesis'\), got 'ties'"):
        prune_at_init(_two_layer(), scorer, 2, selection="ties")


@pytest.mark.parametrize("method", ["obd", "grasp"])
def test_exact_zeros_of_second_order_scores_stay_under_the_thesis_rule(method):
    # Inputs 1..5 of 6 are always 0: dL/dw is identically 0 for every first-layer weight they
    # feed (dL/dw_ij = delta_j * x_i), so is every derivative of it, and OBD's h_kk w^2 / 2 and
    # GraSP's -w (Hg) are exactly 0 for those 5 x 8 = 40 weights.  Only 6 x 8 + 8 x 3 = 72
    # weights are prunable, 32 of them fed by input 0 or in the output layer; r = 1.5 keeps
    # K = 48 > 32, so the threshold lies in the zero block (or below it).
    rng = np.random.default_rng(0)
    x = np.zeros((24, 6), np.float32)
    x[:, 0] = rng.normal(size=24)
    y = np.arange(24) % 3
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), MaskedDense(8, activation="tanh", name="hidden"),
                              MaskedDense(3, activation="softmax", name="out")])
    weights = prunable_weights(model)
    scorer, _ = resolve_method(method)
    scores = scorer.score(model, weights, (x, y), np.random.default_rng(0))
    first = [w.name for w in weights][0]
    assert np.all(scores[first][1:] == 0.0)  # the precondition: 40 exact zeros
    flat = np.concatenate([np.asarray(scores[w.name]).ravel() for w in weights])
    assert np.sum(flat > 0) < 48 <= np.sum(flat >= 0)  # the 48th largest score is 0, tied 40 ways or more
    expected_kept = int(np.sum(flat >= 0))  # thesis: everything not strictly below 0

    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    report = prune_at_init(pruned, method, 1.5, data=(x, y), selection="thesis")
    masks = get_weight_masks(pruned)
    assert np.all(masks[first][1:] == 1.0)  # every zero-score weight stays
    assert report.nonzero == expected_kept > 48
    assert report.compression_error == pytest.approx((1.5 - 72 / expected_kept) / 1.5)
    assert report.compression_error > 0.1

    exact = keras.models.clone_model(model)
    exact.set_weights(model.get_weights())
    report = prune_at_init(exact, method, 1.5, data=(x, y))
    assert report.nonzero == 48 and report.compression_error == 0.0
    assert get_weight_masks(exact)[first][1:].sum() < 40  # the exact rule prunes some of the zeros


# --------------------------------------------------------------------------------------------
# The grid runner's records and the thesis script's option
# --------------------------------------------------------------------------------------------


def test_grid_records_the_rule_and_refuses_to_mix_rules_in_one_file(tmp_path):
    from dropnet_tf.data import Dataset
    from dropnet_tf.foresight.experiment import TrainingProtocol, run_foresight_grid

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.normal(size=(60, 4)).astype(np.float32)
    data = Dataset("tiny", "synthetic", x, y, x[:6], y[:6], x[:30], y[:30], 3)
    protocol = TrainingProtocol(epochs=1, learning_rate=0.05, batch_size=32)

    def build(seed, init):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((4,)), MaskedDense(5, activation="relu", name="hidden"),
                                 MaskedDense(3, activation="softmax", name="out")])

    results = tmp_path / "r.jsonl"
    records = run_foresight_grid(results, "exp", build, data, ["global_magnitude"], [2], [0], protocol,
                                 log=None, selection="thesis")
    assert [record["selection"] for record in records] == ["thesis"]
    with pytest.raises(ValueError, match=r"holds 1 'exp' run\(s\) pruned with selection='thesis'; "
                                         r"this call asks for selection='exact'"):
        run_foresight_grid(results, "exp", build, data, ["global_magnitude"], [4], [0], protocol, log=None)


def test_thesis_script_names_the_tie_rule_in_its_outputs():
    import importlib

    from paper_experiments.foresight import foresight_protocol as fp

    thesis = importlib.import_module("paper_experiments.foresight.01_thesis_4_2_3_figs_4_11_4_13_cnn_mnist").EXPERIMENT
    exact = fp.stem(thesis, fp.parse_args(thesis, ["--scale", "paper"]))
    ties = fp.stem(thesis, fp.parse_args(thesis, ["--scale", "paper", "--selection", "thesis"]))
    assert exact == "01_thesis_4_2_3_figs_4_11_4_13_cnn_mnist_thesis_cnn_mnist_paper"  # the committed files' name
    assert ties == exact + "_thesisties"
    assert fp.stem(thesis, fp.parse_args(thesis, ["--scale", "quick", "--selection", "thesis"])).endswith("_quick_thesisties")
    snip = importlib.import_module("paper_experiments.foresight.04_snip_table1_fig1_lenet300_mnist").EXPERIMENT
    with pytest.raises(SystemExit):  # the option belongs to the thesis' scripts
        fp.parse_args(snip, ["--selection", "thesis"])
