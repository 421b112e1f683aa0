"""dropnet_tf.engines.training's early stopping on every engine (graph, keras, distributed) and the stacked population's own (issue 27).

Each engine trains a real model while the validation loss it sees is scripted (its
validation evaluation replaced), so the number of epochs trained and the weights left at
the end are compared with a reference worked out by hand from the script:

    epoch      0    1    2    3    4    5 ...
    val_loss  1.0  0.8  0.8  0.9  0.7  0.6 ...
    best           ^ epoch 1 (a tie at epoch 2 is no improvement: min_delta = 0, strictly lower)
    patience 2: epochs 2 and 3 without improvement → stop after epoch 3: 4 epochs, best epoch 1
    patience 1 would stop after epoch 2 (3 epochs); patience 3 would see 0.7 at epoch 4 and go on

So a patience off by one either way, or a tie counted as an improvement, changes the count.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.engines.training import Trainer

SCRIPT = [1.0, 0.8, 0.8, 0.9, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
PATIENCE = 2


def reference(losses, patience):
    """(epochs trained, best epoch) by the rule in words: stop at the first epoch that is
    ``patience`` epochs after the last strict improvement (worked by hand in the docstring)."""
    best, best_epoch = float("inf"), 0
    for epoch, loss in enumerate(losses):
        if loss < best:
            best, best_epoch = loss, epoch
        elif epoch - best_epoch >= patience:
            return epoch + 1, best_epoch
    return len(losses), best_epoch


def test_the_reference_discriminates_a_patience_off_by_one():
    assert reference(SCRIPT, PATIENCE) == (4, 1)
    assert reference(SCRIPT, PATIENCE - 1)[0] == 3 and reference(SCRIPT, PATIENCE + 1)[0] == len(SCRIPT)


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n).astype("int64")


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


class _WeightsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])


def _scripted(calls):
    """An evaluation returning the script's next validation loss (counted in ``calls``)."""
    def evaluate(*args, **kwargs):
        calls.append(len(calls))
        return {"loss": SCRIPT[len(calls) - 1], "accuracy": 0.5}
    return evaluate


def _check(model, history, recorder, restore):
    epochs, best = reference(SCRIPT, PATIENCE)
    assert len(history["loss"]) == epochs == len(recorder.weights)
    assert history["val_loss"] == SCRIPT[:epochs]
    chosen = recorder.weights[best if restore else -1]
    other = recorder.weights[-1 if restore else best]
    assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(chosen, other)), "best and last epochs must differ"
    for variable, value in zip(model.get_weights(), chosen):
        np.testing.assert_array_equal(variable, value)


def _config(restore, recorder):
    return TrainingConfig(max_epochs=len(SCRIPT), patience=PATIENCE, batch_size=32, learning_rate=0.5,
                          restore_best_weights=restore, jit_compile=False, callbacks=[recorder])


@pytest.mark.both_keras
@pytest.mark.parametrize("restore", [True, False])
@pytest.mark.parametrize("engine", ["graph", "keras"])
def test_early_stopping_trains_the_reference_epochs_and_keeps_the_reference_weights(engine, restore):
    recorder, calls = _WeightsPerEpoch(), []
    model = _model()
    trainer = Trainer(model, _config(restore, recorder), _data(), engine=engine)
    if engine == "graph":
        trainer._graph.evaluate = _scripted(calls)  # the graph trainers' validation, once per epoch
    else:
        model.evaluate = _scripted(calls)  # Model.fit's validation calls self.evaluate
    history = trainer.fit(validation=_data(32, seed=1), seed=0)
    _check(model, history, recorder, restore)


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_under_a_strategy_trains_the_reference_epochs(restore):
    """The distributed graph engine (DistributedTrainer) under a one-device strategy."""
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    recorder, calls = _WeightsPerEpoch(), []
    with strategy.scope():
        model = _model()
    trainer = Trainer(model, _config(restore, recorder), _data(), engine="graph", strategy=strategy)
    assert type(trainer._graph).__name__ == "DistributedTrainer"
    trainer._graph.evaluate = _scripted(calls)
    history = trainer.fit(validation=_data(32, seed=1), seed=0)
    _check(model, history, recorder, restore)


@pytest.mark.parametrize("restore", [True, False])
def test_the_stacked_population_stops_on_the_reference_epoch_and_keeps_the_reference_weights(monkeypatch, restore):
    """The population's own early stopping (dropnet_tf.dropnet.population) on one run: its
    cycle 0 record has the reference epoch count, and its test loss is that of the best (or
    last) epoch's weights, evaluated by a plain Keras model."""
    from dropnet_tf.engines.stacked import StackedTrainer
    from dropnet_tf.dropnet.population import population_prune
    from dropnet_tf.models import model_a

    x, y = _data(120)
    val, test = _data(48, seed=1), _data(40, seed=2)
    weights, real = [], StackedTrainer.evaluate

    def evaluate(self, rows, x_eval, y_eval, batch_size=1024):
        found = real(self, rows, x_eval, y_eval, batch_size)
        if len(x_eval) != len(val[0]):
            return found
        weights.append(self.row_weights(rows[0]))  # the epoch's weights, before early stopping acts
        return [dict(found[0], loss=SCRIPT[len(weights) - 1])]

    monkeypatch.setattr(StackedTrainer, "evaluate", evaluate)

    def build(seed):
        return model_a((5,), input_shape=(6,), num_classes=3, seed=seed)

    config = TrainingConfig(max_epochs=len(SCRIPT), patience=PATIENCE, batch_size=32, learning_rate=0.5,
                            restore_best_weights=restore)
    found = population_prune(build, ((x, y), val, test), [("minimum", 0, "original")], population=1,
                             fraction=0.2, max_cycles=1, training=config)
    record = next(iter(found.values()))[0]
    epochs, best = reference(SCRIPT, PATIENCE)
    assert record["epochs"] == epochs
    model = _model()  # the same layers without masks (all ones in cycle 0)
    model.compile(loss="sparse_categorical_crossentropy")
    losses = []
    for epoch in (best, epochs - 1):
        model.set_weights(weights[epoch])
        losses.append(float(model.evaluate(*test, verbose=0)))
    assert abs(losses[0] - losses[1]) > 1e-4, "best and last epochs must give other test losses"
    assert record["test_loss"] == pytest.approx(losses[0] if restore else losses[1], abs=1e-5)
