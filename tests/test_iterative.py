"""Algorithm 1 (dropnet_tf.dropnet.iterative): resets, stop rules, re-initialisation, resume, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.dropnet.iterative import IterativePruner, iterative_prune
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.core.masking import get_masks
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
    from dropnet_tf.engines.optimizers import optimizer_variables as _optimizer_variables

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
    from dropnet_tf.harness.results import ResultsFile

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
    # Per-layer unit counts can coincide across seeds; training order and masks cannot (below).
    assert [r["val_loss"] for r in a] != [r["val_loss"] for r in c]


def test_different_seeds_drop_different_units(tmp_path):
    from dropnet_tf.dropnet.state import run_masks

    kwargs = dict(fraction=0.3, max_cycles=2, training=FAST, verbose=0, results=tmp_path / "r.jsonl", experiment="e")
    for seed in (3, 4):
        iterative_prune(_model(), DATA, "random", seed=seed, **kwargs)
    masks = {seed: run_masks(tmp_path / "r.jsonl", "e", "random", seed) for seed in (3, 4)}
    assert sum(int(m.sum()) for m in masks[3][1].values()) == sum(int(m.sum()) for m in masks[4][1].values())
    assert any(not np.array_equal(masks[3][1][n], masks[4][1][n]) for n in masks[3][1])


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


# ------------------------------------------------------------------ which units are dropped
# These tests recompute the pruning decision outside the library (numpy forward passes,
# plain Keras evaluate) from the weights the loop actually trained, so that a loop that
# scores the wrong network, the wrong data or with the wrong statistic fails.


class _TrainedWeights(keras.callbacks.Callback):
    """Weights at the start (θ0 + mask) and end (after EarlyStopping restored the best) of each cycle."""

    def __init__(self):
        super().__init__()
        self.at_start, self.per_cycle = [], []

    def on_train_begin(self, logs=None):
        self.at_start.append([w.numpy().copy() for w in self.model.weights])

    def on_train_end(self, logs=None):
        self.per_cycle.append([w.numpy().copy() for w in self.model.weights])


def _numpy_hidden_activations(model, weights, masks, x):
    """Post-mask hidden activations of Model A, computed with numpy from a weight snapshot."""
    index = {id(w): i for i, w in enumerate(model.weights)}
    h = x.reshape(len(x), -1).astype(np.float64)
    activations = {}
    for i in (1, 2):
        dense = model.get_layer(f"dense_{i}")
        kernel, bias = weights[index[id(dense.kernel)]], weights[index[id(dense.bias)]]
        h = np.maximum(h @ kernel + bias, 0.0) * masks[f"dense_{i}_mask"]
        activations[f"dense_{i}_mask"] = h
    return activations


def _lowest_mean_abs(activations, masks, count, scope):
    """Units to drop: the ``count`` active units with the lowest E|a| (global or per layer)."""
    means = {name: np.abs(a).mean(axis=0) for name, a in activations.items()}
    if scope == "layer":
        dropped = {}
        for name, c in count.items():
            active = np.flatnonzero(masks[name] > 0)
            dropped[name] = set(active[np.argsort(means[name][active])[:c]].tolist())
        return dropped
    pool = sorted((means[name][u], name, int(u)) for name in means for u in np.flatnonzero(masks[name] > 0))
    dropped = {name: set() for name in means}
    for _, name, unit in pool[:count]:
        dropped[name].add(unit)
    return dropped


def _dropped_between(before, after):
    return {name: set(np.flatnonzero((before[name] > 0) & (after[name] == 0)).tolist()) for name in before}


# Validation data from another distribution than the training data: statistics taken on the
# validation set select other units, so the test below can tell the two apart.
_SHIFTED = (DATA[0], (DATA[1][0] * 3.0 + 2.0, DATA[1][1]), DATA[2])


@pytest.mark.parametrize("metric, scope, counts", [
    ("minimum", "global", [4, 3, 2]),  # floor(0.25·16) = 4, floor(0.25·12) = 3, floor(0.25·9) = 2
    ("minimum_layer", "layer", [{"dense_1_mask": 2, "dense_2_mask": 2}, {"dense_1_mask": 1, "dense_2_mask": 1},
                                 {"dense_1_mask": 1, "dense_2_mask": 1}]),
])
def test_each_cycle_drops_the_lowest_mean_activation_of_the_trained_network_on_training_data(
        tmp_path, metric, scope, counts):
    from dropnet_tf.dropnet.state import run_masks

    model = _model()
    weights = _TrainedWeights()
    training = TrainingConfig(max_epochs=3, patience=2, callbacks=[weights])
    iterative_prune(model, _SHIFTED, metric, fraction=0.25, max_cycles=3, training=training, verbose=0,
                    results=tmp_path / "r.jsonl", experiment="e")
    masks = run_masks(tmp_path / "r.jsonl", "e", metric, 0)
    assert len(weights.per_cycle) == 3 and set(masks) == {0, 1, 2, 3}
    x_train, x_val = _SHIFTED[0][0], _SHIFTED[1][0]

    def reference(snapshot, cycle, x):
        activations = _numpy_hidden_activations(model, snapshot, masks[cycle], x)
        return _lowest_mean_abs(activations, masks[cycle], counts[cycle], scope)

    for cycle in (0, 1, 2):
        assert _dropped_between(masks[cycle], masks[cycle + 1]) == reference(weights.per_cycle[cycle], cycle, x_train)
    # The reference discriminates: the statistics of the validation data, or of the untrained
    # θ0, would have dropped other units in some cycle.
    actual = [_dropped_between(masks[c], masks[c + 1]) for c in (0, 1, 2)]
    assert actual != [reference(weights.per_cycle[c], c, x_val) for c in (0, 1, 2)]
    assert actual != [reference(weights.at_start[c], c, x_train) for c in (0, 1, 2)]


def test_the_oracle_drops_the_unit_whose_removal_least_raises_the_training_loss(tmp_path):
    """Section 5: each cycle drops the argmin over active units of the training loss of the
    trained network without that unit, here measured with one plain Keras evaluate per candidate."""
    from dropnet_tf.dropnet.state import run_masks
    from dropnet_tf.core.masking import set_masks

    model = _model(widths=(4, 4))
    weights = _TrainedWeights()
    training = TrainingConfig(max_epochs=3, patience=2, callbacks=[weights])
    iterative_prune(model, DATA, "oracle", max_cycles=3, training=training, verbose=0,
                    results=tmp_path / "r.jsonl", experiment="e")
    masks = run_masks(tmp_path / "r.jsonl", "e", "oracle", 0)
    probe = keras.models.clone_model(model)
    probe.compile(loss="sparse_categorical_crossentropy")
    x_train, y_train = DATA[0]
    for cycle in (0, 1, 2):
        probe.set_weights(weights.per_cycle[cycle])
        losses = {}
        for name, mask in masks[cycle].items():
            for unit in np.flatnonzero(mask > 0):
                candidate = {n: m.copy() for n, m in masks[cycle].items()}
                candidate[name][unit] = 0.0
                set_masks(probe, candidate)
                losses[(name, int(unit))] = probe.evaluate(x_train, y_train, batch_size=len(x_train), verbose=0,
                                                             return_dict=True)["loss"]
        ranked = sorted(losses, key=losses.get)
        assert losses[ranked[1]] - losses[ranked[0]] > 1e-5, "no clear winner: the comparison would be fragile"
        dropped = _dropped_between(masks[cycle], masks[cycle + 1])
        assert dropped == {n: ({ranked[0][1]} if n == ranked[0][0] else set()) for n in masks[cycle]}


class _EpochEndWeights(keras.callbacks.Callback):
    """(val_loss, weights) at the end of every epoch, taken after the epoch's last step."""

    def __init__(self):
        super().__init__()
        self.epochs, self._latest = [], None

    def on_train_batch_end(self, batch, logs=None):
        self._latest = [w.numpy().copy() for w in self.model.weights]

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((logs["val_loss"], self._latest))


@pytest.mark.parametrize("restore", [True, False])
def test_training_ends_on_the_best_epoch_or_the_last_one(restore):
    """restore_best_weights=True (the default) leaves the weights of the epoch with the lowest
    validation loss, False those of the last epoch."""
    rng = np.random.default_rng(7)
    (x, _), val, test = DATA
    noisy = (x[:48], rng.integers(0, 3, 48))  # random labels: validation loss turns up while training goes on
    recorder = _EpochEndWeights()
    config = TrainingConfig(max_epochs=12, patience=3, batch_size=16, restore_best_weights=restore,
                            optimizer=lambda: keras.optimizers.SGD(0.5), callbacks=[recorder])
    model = _model()
    pruner = IterativePruner(model, (noisy, val, test), "minimum", training=config, verbose=0)
    pruner.reset(0, get_masks(model))
    epochs = pruner.train(0)
    losses = [loss for loss, _ in recorder.epochs]
    best = int(np.argmin(losses))
    assert epochs == len(losses) and best != len(losses) - 1, "the best epoch must not be the last for this test"
    expected = recorder.epochs[best if restore else -1][1]
    for variable, value in zip(model.weights, expected):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_training_is_traced_once_and_reused_by_every_cycle(monkeypatch):
    """No cycle retraces the training or evaluation graph: Python in a tf.function body runs only
    while tracing, so counting its runs over all GraphTrainer instances counts traces."""
    from dropnet_tf.engines.graph_trainer import GraphTrainer

    traces = {"train": 0, "evaluate": 0}
    original_train, original_evaluate = GraphTrainer._train_block_python, GraphTrainer._evaluate_all_python

    def counting_train(self, *args):
        traces["train"] += 1
        return original_train(self, *args)

    def counting_evaluate(self, *args):
        traces["evaluate"] += 1
        return original_evaluate(self, *args)

    monkeypatch.setattr(GraphTrainer, "_train_block_python", counting_train)
    monkeypatch.setattr(GraphTrainer, "_evaluate_all_python", counting_evaluate)
    after_cycle = []

    class Count(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            after_cycle.append(dict(traces))

    training = TrainingConfig(max_epochs=2, patience=2, callbacks=[Count()])
    records = iterative_prune(_model(), DATA, "minimum", fraction=0.3, max_cycles=4, training=training, verbose=0)
    assert len(records) == 4 and after_cycle[0]["train"] >= 1
    # Cycle 0 traces the block of steps (and the ragged last batch) and evaluation (the
    # validation split during fit, then train/test); no later cycle traces anything.
    final = dict(traces)
    assert after_cycle[0]["train"] == final["train"]
    assert after_cycle[1] == after_cycle[2] == after_cycle[3] == final


def test_every_metric_of_a_seed_starts_from_the_same_theta0(tmp_path):
    """run_experiment sets Keras' seed before building, so a builder that relies on the global
    seed gives each metric of a seed the same θ0, and another seed another θ0."""
    from dropnet_tf.dropnet.experiment import run_experiment
    from dropnet_tf.core.io import load_npz

    def build(seed):
        return model_a((6, 6), input_shape=(12,), num_classes=3)  # no seed: the global one decides

    run_experiment(build, DATA, metrics=["minimum", "random"], seeds=[0, 1], results=tmp_path / "r.jsonl",
                   experiment="e", max_cycles=1, training=TrainingConfig(max_epochs=1, patience=1, batch_size=32),
                   verbose=0)  # θ0 is saved before training: one epoch is enough
    theta0 = {}
    for path in sorted((tmp_path / "r.jsonl.state").iterdir()):
        state = load_npz(path)
        key = path.name
        theta0[key] = [state[k] for k in sorted(state) if k.startswith("theta0_")]
    by_seed = {}
    for key, weights in theta0.items():
        seed = int(key.split("seed=")[1].split("__")[0])
        by_seed.setdefault(seed, []).append(weights)
    assert sorted(by_seed) == [0, 1] and all(len(v) == 2 for v in by_seed.values())  # two metrics suffice to compare
    for runs in by_seed.values():
        for other in runs[1:]:
            for a, b in zip(runs[0], other):
                np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(by_seed[0][0], by_seed[1][0]))
