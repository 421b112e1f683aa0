"""Algorithm 1 (dropnet_tf.iterative): resets, stop rules, re-initialisation, resume, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf._keras import keras
from dropnet_tf.iterative import IterativePruner, TrainingConfig, iterative_prune
from dropnet_tf.masking import get_masks
from dropnet_tf.models import model_a

RNG = np.random.default_rng(0)


def _toy_data(n_train=240, n_val=60, n_test=60, features=12, classes=3):
    """Linearly separable-ish toy data; small so each cycle takes well under a second."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(classes, features)) * 2.0

    def draw(n):
        y = rng.integers(0, classes, n)
        x = centres[y] + rng.normal(size=(n, features))
        return x.astype("float32"), y.astype("int64")

    return draw(n_train), draw(n_val), draw(n_test)


DATA = _toy_data()
FAST = TrainingConfig(max_epochs=3, patience=2, batch_size=32)


def _model(seed=0, widths=(8, 8)):
    keras.utils.set_random_seed(seed)
    return model_a(widths, input_shape=(12,), num_classes=3, seed=seed)


def _non_mask_weights(pruner):
    return [w.numpy().copy() for w in pruner._weights]


class _WeightsAtTrainBegin(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.snapshots = []

    def on_train_begin(self, logs=None):
        self.snapshots.append([w.numpy().copy() for w in self.model.weights])


def _comparable(records):
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in records]


@pytest.mark.both_keras
def test_every_cycle_starts_from_theta0_with_the_cycle_mask():
    model = _model()
    recorder = _WeightsAtTrainBegin()
    pruner = IterativePruner(
        model, DATA, "minimum", fraction=0.25, max_cycles=3, verbose=0,
        training=TrainingConfig(max_epochs=3, patience=2, callbacks=[recorder]),
    )
    theta0 = [w.copy() for w in pruner.theta0]
    records = pruner.run()
    assert len(records) == 3 and len(recorder.snapshots) == 3
    mask_ids = {id(layer.mask) for layer in pruner.mask_layers}
    for snapshot in recorder.snapshots:
        weights = [value for value, var in zip(snapshot, model.weights) if id(var) not in mask_ids]
        for value, reference in zip(weights, theta0):
            np.testing.assert_array_equal(value, reference)
    # the weights did move during training, so the equality above is not trivial
    assert any(not np.array_equal(a, b) for a, b in zip(_non_mask_weights(pruner), theta0))
    # units pruned: 16 → 12 → 9 (floor(0.25·16) = 4, floor(0.25·12) = 3), global metric
    assert [r["fraction_remaining"] for r in records] == [1.0, 12 / 16, 9 / 16]
    assert [sum(r["units_per_layer"].values()) for r in records] == [16, 12, 9]


@pytest.mark.both_keras
def test_reset_also_restores_optimizer_state():
    model = _model()
    pruner = IterativePruner(
        model, DATA, "minimum",
        training=TrainingConfig(max_epochs=2, patience=2, optimizer=lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
        verbose=0,
    )
    masks = get_masks(model)
    from dropnet_tf.training import optimizer_variables as _optimizer_variables

    initial = [v.numpy().copy() for v in _optimizer_variables(model.optimizer)]
    pruner.reset(0, masks)
    pruner.train(0)
    assert any(not np.array_equal(v.numpy(), i) for v, i in zip(_optimizer_variables(model.optimizer), initial))
    pruner.reset(1, masks)
    for variable, value in zip(_optimizer_variables(model.optimizer), initial):
        np.testing.assert_array_equal(variable.numpy(), value)


@pytest.mark.both_keras
def test_random_reinitialisation_differs_from_theta0_and_is_reproducible():
    model = _model()
    pruner = IterativePruner(model, DATA, "minimum", init="random", training=FAST, verbose=0)
    masks = get_masks(model)
    pruner.reset(0, masks)
    draw0 = _non_mask_weights(pruner)
    kernels = [i for i, w in enumerate(draw0) if w.ndim == 2]
    assert all(not np.allclose(draw0[i], pruner.theta0[i]) for i in kernels)
    pruner.reset(1, masks)
    draw1 = _non_mask_weights(pruner)
    assert all(not np.allclose(draw1[i], draw0[i]) for i in kernels)
    pruner.reset(0, masks)
    for a, b in zip(_non_mask_weights(pruner), draw0):
        np.testing.assert_array_equal(a, b)
    # same distribution family: the fresh draw's kernels have the Glorot scale of θ0's
    for i in kernels:
        assert 0.5 < draw0[i].std() / pruner.theta0[i].std() < 2.0


class _ScriptedPruner(IterativePruner):
    """Training and evaluation replaced by a script, to test the stop rules exactly."""

    def __init__(self, *args, val_accuracies, **kwargs):
        super().__init__(*args, **kwargs)
        self._accuracies = iter(val_accuracies)

    def train(self, cycle):
        return 1

    def evaluate(self):
        accuracy = next(self._accuracies)
        return {f"{split}_{kind}": (accuracy if kind == "accuracy" else 1.0)
                for split in ("train", "val", "test") for kind in ("loss", "accuracy")}


def test_kappa_stop_rule():
    pruner = _ScriptedPruner(_model(), DATA, "minimum", kappa=0.9, verbose=0, training=FAST,
                             val_accuracies=[0.80, 0.79, 0.75, 0.72, 0.70, 0.5])
    records = pruner.run()
    # a = 0.80, κ·a = 0.72: cycle 3 (0.72 ≤ 0.72) is the last one trained
    assert [r["cycle"] for r in records] == [0, 1, 2, 3]
    assert "kappa" in records[-1]["stop_reason"]
    assert all(r["stop_reason"] is None for r in records[:-1])


def test_min_fraction_stop_rule():
    pruner = _ScriptedPruner(_model(), DATA, "minimum_layer", fraction=0.5, min_fraction=0.3, verbose=0,
                             training=FAST, val_accuracies=[0.9] * 10)
    records = pruner.run()
    fractions = [r["fraction_remaining"] for r in records]
    # 8+8 → 4+4 → 2+2: the first fraction ≤ 0.3 is the last cycle
    assert fractions == [1.0, 0.5, 0.25]
    assert "min_fraction" in records[-1]["stop_reason"]


def test_stops_when_every_layer_is_at_its_minimum():
    pruner = _ScriptedPruner(_model(widths=(2, 2)), DATA, "minimum_layer", fraction=0.5, min_fraction=0.0,
                             verbose=0, training=FAST, val_accuracies=[0.9] * 10)
    records = pruner.run()
    assert [sum(r["units_per_layer"].values()) for r in records] == [4, 2]
    assert "nothing left to prune" in records[-1]["stop_reason"]


def test_resume_after_interruption_gives_the_identical_table(tmp_path):
    kwargs = dict(fraction=0.3, min_fraction=0.4, training=FAST, verbose=0, experiment="resume")
    uninterrupted = iterative_prune(_model(), DATA, "minimum", results=tmp_path / "a.jsonl", **kwargs)
    assert len(uninterrupted) >= 3

    class Crash(Exception):
        pass

    class CrashInThirdCycle(keras.callbacks.Callback):
        calls = 0

        def on_train_begin(self, logs=None):
            CrashInThirdCycle.calls += 1
            if CrashInThirdCycle.calls == 3:
                raise Crash()

    crashing = dict(kwargs, training=TrainingConfig(max_epochs=3, patience=2, callbacks=[CrashInThirdCycle()]))
    with pytest.raises(Crash):
        iterative_prune(_model(), DATA, "minimum", results=tmp_path / "b.jsonl", **crashing)
    from dropnet_tf.results import ResultsFile

    assert len(ResultsFile(tmp_path / "b.jsonl").records()) == 2
    # a fresh process would rebuild the model with another initialisation: θ0 comes from the state file
    resumed = iterative_prune(_model(seed=5), DATA, "minimum", results=tmp_path / "b.jsonl", **kwargs)
    assert _comparable(resumed) == _comparable(uninterrupted)
    # rerunning a finished run does nothing and returns the same table
    again = iterative_prune(_model(), DATA, "minimum", results=tmp_path / "b.jsonl", **kwargs)
    assert _comparable(again) == _comparable(uninterrupted)


def test_max_cycles_pauses_and_a_later_call_continues(tmp_path):
    kwargs = dict(fraction=0.3, min_fraction=0.4, training=FAST, verbose=0, results=tmp_path / "r.jsonl")
    first = iterative_prune(_model(), DATA, "minimum_layer", max_cycles=1, **kwargs)
    assert len(first) == 1 and first[0]["stop_reason"] is None
    rest = iterative_prune(_model(), DATA, "minimum_layer", **kwargs)
    assert [r["cycle"] for r in rest] == list(range(len(rest))) and rest[-1]["stop_reason"]


def test_same_seed_same_records_and_different_seed_differs():
    kwargs = dict(fraction=0.3, max_cycles=3, training=FAST, verbose=0)
    a = iterative_prune(_model(), DATA, "random", seed=3, **kwargs)
    b = iterative_prune(_model(), DATA, "random", seed=3, **kwargs)
    c = iterative_prune(_model(), DATA, "random", seed=4, **kwargs)
    assert _comparable(a) == _comparable(b)
    assert [r["units_per_layer"] for r in a] != [r["units_per_layer"] for r in c]


@pytest.mark.both_keras
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(metric="smallest"), "smallest"),
        (dict(fraction=0.0), "(0, 1]"),
        (dict(fraction=1.5), "1.5"),
        (dict(kappa=0.0), "kappa"),
        (dict(kappa=1.2), "1.2"),
        (dict(init="zeros"), "zeros"),
        (dict(min_fraction=1.0), "min_fraction"),
        (dict(training=TrainingConfig(batch_size=0)), "batch_size"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    metric = kwargs.pop("metric", "minimum")
    with pytest.raises(ValueError) as error:
        IterativePruner(_model(), DATA, metric, verbose=0, **kwargs)
    assert message in str(error.value)


@pytest.mark.both_keras
def test_model_without_masks_is_rejected():
    keras.utils.set_random_seed(0)
    plain = model_a((4,), input_shape=(12,), num_classes=3, masked=False)
    with pytest.raises(ValueError, match="no MaskLayer"):
        iterative_prune(plain, DATA, "minimum", verbose=0)


def test_oracle_drops_one_unit_per_cycle():
    records = iterative_prune(_model(widths=(4, 4)), DATA, "oracle", max_cycles=3, training=FAST, verbose=0)
    assert [sum(r["units_per_layer"].values()) for r in records] == [8, 7, 6]
    assert records[0]["drop_count"] == 1


def test_resuming_with_other_settings_is_refused(tmp_path):
    kwargs = dict(training=FAST, verbose=0, results=tmp_path / "r.jsonl", max_cycles=1)
    iterative_prune(_model(), DATA, "minimum", fraction=0.3, **kwargs)
    with pytest.raises(ValueError, match="pruning_fraction"):
        iterative_prune(_model(), DATA, "minimum", fraction=0.5, **kwargs)
    with pytest.raises(ValueError, match="max_epochs"):
        iterative_prune(_model(), DATA, "minimum", fraction=0.3, training=TrainingConfig(max_epochs=4, patience=2),
                        verbose=0, results=tmp_path / "r.jsonl")
