"""The rest of a DropNet cycle (engines.statistics_pass, IterativePruner.evaluate / next_masks, GraphTrainer.evaluate):
one pass over the training set per cycle, nothing traced twice per run (issue 15, section 3)."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.core.masking import add_masks, get_masks, set_masks
from dropnet_tf.core.statistics import StatisticsCollector
from dropnet_tf.engines.statistics_pass import StatisticsPass
from dropnet_tf.engines.graph_trainer import GraphTrainer
from dropnet_tf.dropnet.iterative import IterativePruner, iterative_prune
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.core.statistic_scorers import MinimumActivation
from dropnet_tf.models import model_a, model_b


def _toy_data(n_train=240, n_val=60, n_test=60, features=12, classes=3):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(classes, features)) * 2.0

    def draw(n):
        y = rng.integers(0, classes, n)
        x = centres[y] + rng.normal(size=(n, features))
        return x.astype("float32"), y.astype("int64")

    return draw(n_train), draw(n_val), draw(n_test)


DATA = _toy_data()


def _model_a(seed=0):
    keras.utils.set_random_seed(seed)
    return model_a((8, 8), input_shape=(12,), num_classes=3, seed=seed)


def _numpy_model_a(model, weights, masks, x):
    """Model A's hidden post-mask activations and class probabilities, in numpy (float64)."""
    index = {id(w): i for i, w in enumerate(model.weights)}

    def dense(name, h):
        layer = model.get_layer(name)
        return h @ weights[index[id(layer.kernel)]] + weights[index[id(layer.bias)]]

    h = x.reshape(len(x), -1).astype(np.float64)
    hidden = {}
    for i in (1, 2):
        h = np.maximum(dense(f"dense_{i}", h), 0.0) * masks[f"dense_{i}_mask"]
        hidden[f"dense_{i}_mask"] = h
    logits = dense("predictions", h)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    return hidden, probabilities / probabilities.sum(axis=1, keepdims=True)


def _loss_accuracy(probabilities, y):
    return (float(np.mean(-np.log(probabilities[np.arange(len(y)), y]))),
            float(np.mean(np.argmax(probabilities, axis=1) == y)))


# ------------------------------------------------------------------ the pass itself


@pytest.mark.both_keras
@pytest.mark.parametrize("traced", [True, False])
def test_the_pass_gives_loss_accuracy_and_statistics_of_an_inference_forward_pass(traced):
    """Against numpy on a snapshot of the weights: the loss and accuracy of the masked network,
    E|a| and APoZ per unit, over all 50 samples in batches of 16 (the last one ragged), with
    the Dropout layer off (inference mode); traced, and run eagerly (``traced=False``)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(6, activation="relu", name="dense_1")(inputs)
    hidden = keras.layers.Dropout(0.5)(hidden)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(hidden)
    model = add_masks(keras.Model(inputs, outputs))
    set_masks(model, {"dense_1_mask": np.array([1, 0, 1, 1, 1, 1], np.float32)})
    (x, y), _, _ = DATA
    x, y = x[:50], y[:50]

    scores, statistics = StatisticsPass(model, "sparse_categorical_crossentropy", traced=traced)(x, y, batch_size=16)

    layer, out = model.get_layer("dense_1"), model.get_layer("predictions")
    a = np.maximum(x @ layer.kernel.numpy() + layer.bias.numpy(), 0.0) * [1, 0, 1, 1, 1, 1]
    logits = a @ out.kernel.numpy() + out.bias.numpy()
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss, accuracy = _loss_accuracy(probabilities, y)
    assert scores["loss"] == pytest.approx(loss, rel=1e-5)
    assert scores["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    np.testing.assert_allclose(statistics.mean_abs["dense_1_mask"], np.abs(a).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(statistics.apoz["dense_1_mask"], (a == 0).mean(axis=0), rtol=0, atol=1e-12)
    assert statistics.num_samples == 50
    # The reference discriminates: the masked unit is always zero, some others only sometimes,
    # and without the ragged last batch (48 samples) the means would differ.
    apoz = statistics.apoz["dense_1_mask"]
    assert apoz[1] == 1.0 and np.any((apoz > 0) & (apoz < 1))
    assert not np.allclose(np.abs(a[:48]).mean(axis=0), np.abs(a).mean(axis=0), rtol=1e-5)


@pytest.mark.both_keras
def test_a_filter_is_scored_over_its_positions_like_the_predict_collector():
    """E(f_i) and APoZ of Conv2D filters average over samples and positions: the reference is a
    plain Keras forward pass of the mask outputs, reduced in numpy."""
    model = model_b((3, 4), input_shape=(6, 6, 1), num_classes=3, seed=0)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(21, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, 21)
    set_masks(model, {"conv_1_mask": np.array([1, 1, 0], np.float32), "conv_2_mask": np.ones(4, np.float32)})

    scores, statistics = StatisticsPass(model, "sparse_categorical_crossentropy")(x, y, batch_size=8)

    names = ["conv_1_mask", "conv_2_mask"]
    outputs = keras.Model(model.inputs, [model.get_layer(n).output for n in names])(x, training=False)
    for name, a in zip(names, outputs):
        a = np.asarray(a)
        np.testing.assert_allclose(statistics.mean_abs[name], np.abs(a).mean(axis=(0, 1, 2)), rtol=1e-5)
        np.testing.assert_allclose(statistics.apoz[name], (a == 0).mean(axis=(0, 1, 2)), atol=1e-12)
    probabilities = np.asarray(model(x, training=False), np.float64)
    loss, accuracy = _loss_accuracy(probabilities, y)
    assert scores["loss"] == pytest.approx(loss, rel=1e-5) and scores["accuracy"] == pytest.approx(accuracy)
    # Means over samples only (not positions) would be another shape altogether; APoZ is a
    # fraction strictly between 0 and 1 for some active filter, so the positions count.
    assert np.any((statistics.apoz["conv_2_mask"] > 0) & (statistics.apoz["conv_2_mask"] < 1))


def test_bad_batch_size_and_mismatched_labels_are_named():
    model = _model_a()
    run = StatisticsPass(model, "sparse_categorical_crossentropy")
    (x, y), _, _ = DATA
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        run(x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"as many labels as inputs, got 239 and 240"):
        run(x, y[:-1])
    with pytest.raises(ValueError, match=r"StatisticsPass got units=\{\}: name at least one tensor"):
        StatisticsPass(model, "sparse_categorical_crossentropy", units={})


# ------------------------------------------------------------------ the cycle


class _TrainedWeights(keras.callbacks.Callback):
    """Weights at the end of each cycle's training (after early stopping restored the best)."""

    def __init__(self):
        super().__init__()
        self.per_cycle = []

    def on_train_end(self, logs=None):
        self.per_cycle.append([w.numpy().copy() for w in self.model.weights])


class _Separately(MinimumActivation):
    """DropNet's minimum metric with statistics of its own: the pruner must not fuse them."""

    name = "minimum_separately"

    def statistics(self, model, data, *, batch_size=128):
        return super().statistics(model, data, batch_size=batch_size)


def test_a_cycle_reads_the_training_set_once_and_keeps_the_records(monkeypatch, tmp_path):
    """Per cycle: one StatisticsPass over the training split, no other evaluation of it and
    no Model.predict collector; the masks equal those of the separate passes exactly and the
    records to float round-off, and the training loss/accuracy are numpy's on the trained
    weights.  (That the dropped units are the lowest E|a| of the trained network on the
    training data is test_iterative's check, which now runs through this pass.)"""
    from dropnet_tf.dropnet.state import run_masks

    calls = {"pass": [], "evaluate": [], "collect": 0}
    original_pass, original_evaluate, original_collect = (
        StatisticsPass.__call__, GraphTrainer.evaluate, StatisticsCollector.collect)

    def counting_pass(self, x, y, batch_size=1024):
        calls["pass"].append(len(x))
        return original_pass(self, x, y, batch_size=batch_size)

    def counting_evaluate(self, x, y, batch_size=1024):
        calls["evaluate"].append(len(x))
        return original_evaluate(self, x, y, batch_size=batch_size)

    def counting_collect(self, x, batch_size=256):
        calls["collect"] += 1
        return original_collect(self, x, batch_size=batch_size)

    monkeypatch.setattr(StatisticsPass, "__call__", counting_pass)
    monkeypatch.setattr(GraphTrainer, "evaluate", counting_evaluate)
    monkeypatch.setattr(StatisticsCollector, "collect", counting_collect)

    weights = _TrainedWeights()
    model = _model_a()
    results = tmp_path / "r.jsonl"
    fused = iterative_prune(model, DATA, "minimum", fraction=0.25, max_cycles=3, verbose=0, results=results,
                            experiment="e", training=TrainingConfig(max_epochs=2, patience=2, callbacks=[weights]))
    n_train, n_val, n_test = (len(split[0]) for split in DATA)
    assert calls["pass"] == [n_train] * 3 and calls["collect"] == 0
    # Validation after each of the 2 epochs, then validation and test: never the training split.
    assert calls["evaluate"] == [n_val, n_val, n_val, n_test] * 3

    calls.update({"pass": [], "evaluate": [], "collect": 0})
    separate = iterative_prune(_model_a(), DATA, _Separately(), fraction=0.25, max_cycles=3, verbose=0,
                               results=results, experiment="e", training=TrainingConfig(max_epochs=2, patience=2))
    assert calls["pass"] == [] and calls["collect"] == 3  # the comparison is with the old path
    assert calls["evaluate"] == [n_val, n_val, n_train, n_val, n_test] * 3
    fused_masks, separate_masks = run_masks(results, "e", "minimum", 0), run_masks(results, "e", "minimum_separately", 0)
    assert sorted(fused_masks) == sorted(separate_masks) == [0, 1, 2, 3]
    for cycle in fused_masks:
        for name in fused_masks[cycle]:
            np.testing.assert_array_equal(fused_masks[cycle][name], separate_masks[cycle][name])
    assert any(np.sum(m == 0) for m in fused_masks[3].values())  # units were dropped at all
    for a, b in zip(fused, separate):
        assert a["epochs"] == b["epochs"]
        for key in ("train", "val", "test"):
            assert a[f"{key}_loss"] == pytest.approx(b[f"{key}_loss"], rel=1e-6)
            assert a[f"{key}_accuracy"] == pytest.approx(b[f"{key}_accuracy"], abs=1e-12)

    x_train, y_train = DATA[0]
    for cycle, record in enumerate(fused):
        _, probabilities = _numpy_model_a(model, weights.per_cycle[cycle], fused_masks[cycle], x_train)
        loss, accuracy = _loss_accuracy(probabilities, y_train)
        assert record["train_loss"] == pytest.approx(loss, rel=1e-5)
        assert record["train_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    # The reference discriminates: the cycles' networks differ in their training loss.
    assert len({round(r["train_loss"], 6) for r in fused}) == 3


def test_nothing_is_traced_twice_in_a_run(monkeypatch):
    """Python in a tf.function body runs only while it is traced, so counting its runs counts
    traces.  Over 3 cycles each is traced once: the training block, whose shapes differ (a
    block of 7 batches of 32 and the ragged last batch of 16), the evaluation, which sees
    validation (60 samples, every epoch and at the end) and test (50), and the training pass."""
    traces = {"train": 0, "evaluate": 0, "pass": 0}
    originals = (GraphTrainer._train_block_python, GraphTrainer._evaluate_all_python, StatisticsPass._pass_python)

    def counting(key, original):
        def wrapper(self, *args):
            traces[key] += 1
            return original(self, *args)
        return wrapper

    monkeypatch.setattr(GraphTrainer, "_train_block_python", counting("train", originals[0]))
    monkeypatch.setattr(GraphTrainer, "_evaluate_all_python", counting("evaluate", originals[1]))
    monkeypatch.setattr(StatisticsPass, "_pass_python", counting("pass", originals[2]))
    (x, y), val, (x_test, y_test) = DATA
    data = ((x, y), val, (x_test[:50], y_test[:50]))
    after_cycle = []

    class Count(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            after_cycle.append(dict(traces))

    training = TrainingConfig(max_epochs=2, patience=2, callbacks=[Count()])
    records = iterative_prune(_model_a(), data, "apoz", fraction=0.25, max_cycles=3, training=training, verbose=0)
    assert len(records) == 3 and len(after_cycle) == 3
    assert traces == {"train": 1, "evaluate": 1, "pass": 1}
    assert after_cycle[0]["train"] == 1  # the precondition: counting works at all


@pytest.mark.parametrize("between", ["reset", "train"])
def test_statistics_of_an_earlier_state_are_not_reused(between):
    """After the training pass, the network changes without another evaluate(): reset to θ0
    (same masks), or trained further (no reset).  next_masks scores the network as it is
    now, checked with numpy; the kept statistics would have dropped other units."""
    model = _model_a()
    pruner = IterativePruner(model, DATA, "minimum", fraction=0.25, verbose=0,
                             training=TrainingConfig(max_epochs=3, patience=3))
    masks = get_masks(model)
    pruner.reset(0, masks)
    pruner.train(0)
    evaluated = [w.numpy().copy() for w in model.weights]
    pruner.evaluate()
    if between == "reset":
        pruner.reset(1, masks)
    else:
        pruner.train(1)
    now = [w.numpy().copy() for w in model.weights]
    new = pruner.next_masks(1, masks)

    def lowest(snapshot):
        hidden, _ = _numpy_model_a(model, snapshot, masks, DATA[0][0])
        pool = sorted((np.abs(a).mean(axis=0)[u], name, int(u)) for name, a in hidden.items() for u in range(8))
        return sorted((name, unit) for _, name, unit in pool[:4])

    dropped = sorted((name, int(u)) for name in new for u in np.flatnonzero(new[name] == 0))
    assert dropped == lowest(now)
    assert dropped != lowest(evaluated), "the kept statistics must point at other units for this test"
