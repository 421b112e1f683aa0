"""GraphTrainer: many steps per call, the same results as Keras' fit/evaluate, Keras callbacks."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.models import model_a
from dropnet_tf.engines.graph_trainer import GraphTrainer


def _data(n=100, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype("float32"), rng.integers(0, classes, n).astype("int64")


def _model():
    keras.utils.set_random_seed(0)
    return model_a((5,), input_shape=(6,), num_classes=3, seed=0)


def _trainer(model, x, y, **kwargs):
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    return GraphTrainer(model, optimizer, "sparse_categorical_crossentropy", x, y, **kwargs)


@pytest.mark.both_keras
@pytest.mark.parametrize("jit_compile", [False, "auto"])
def test_one_epoch_without_shuffling_equals_plain_sgd_steps(jit_compile):
    """100 samples, batch 32: steps of 32, 32, 32 and the last 4, as fit would run them."""
    x, y = _data()
    model = _model()
    reference = _model()
    trainer = _trainer(model, x, y, batch_size=32, steps_per_call=2, jit_compile=jit_compile)
    trainer.fit(1, validation_data=(x, y), shuffle=False)

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = reference.trainable_variables
    for start in range(0, 100, 32):
        with tf.GradientTape() as tape:
            loss = loss_fn(y[start : start + 32], reference(x[start : start + 32], training=True))
        for variable, gradient in zip(variables, tape.gradient(loss, variables)):
            variable.assign_sub(0.1 * gradient)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.both_keras
def test_evaluate_matches_keras_evaluate():
    x, y = _data(n=77)
    model = _model()
    trainer = _trainer(model, x, y)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    expected = model.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    result = trainer.evaluate(x, y, batch_size=10)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert result["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-7)


@pytest.mark.both_keras
def test_early_stopping_callback_stops_training_and_logs_are_complete():
    x, y = _data()
    model = _model()
    trainer = _trainer(model, x, y, batch_size=16)

    class RecordLogs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.logs = []

        def on_epoch_end(self, epoch, logs=None):
            self.logs.append(dict(logs))

    recorder = RecordLogs()
    # random labels: validation loss on other random labels stops improving quickly
    x_val, y_val = _data(seed=1)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1)
    history = trainer.fit(200, validation_data=(x_val, y_val), callbacks=[stopper, recorder])
    epochs = len(history["loss"])
    assert 2 <= epochs < 200
    assert len(recorder.logs) == epochs
    assert set(recorder.logs[0]) == {"loss", "val_loss", "val_accuracy"}
    best = int(np.argmin(history["val_loss"]))
    assert epochs == best + 2  # patience 1: one epoch without improvement, then stop


@pytest.mark.both_keras
def test_shuffled_order_depends_only_on_the_seed():
    x, y = _data()
    weights = []
    for seed in (3, 3, 4):
        model = _model()
        _trainer(model, x, y, batch_size=16).fit(2, validation_data=(x, y), seed=seed)
        weights.append(model.get_weights()[0])
    np.testing.assert_array_equal(weights[0], weights[1])
    assert not np.allclose(weights[0], weights[2])


def test_bad_jit_compile_value():
    x, y = _data()
    with pytest.raises(ValueError, match="jit_compile"):
        _trainer(_model(), x, y, jit_compile="yes")


@pytest.mark.both_keras
def test_batch_hooks_run_once_per_block_and_can_stop_training():
    x, y = _data()
    model = _model()
    trainer = _trainer(model, x, y, batch_size=10, steps_per_call=4)  # 10 steps: blocks of 4, 4, 2

    class CountAndStop(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = []

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append((batch, logs["loss"]))
            if len(self.batches) == 5:
                self.model.stop_training = True

    counter = CountAndStop()
    history = trainer.fit(10, validation_data=(x, y), callbacks=[counter])
    assert [b for b, _ in counter.batches] == [0, 1, 2, 0, 1]
    assert all(np.isfinite(loss) for _, loss in counter.batches)
    assert len(history["loss"]) == 2  # stopped inside the second epoch


@pytest.mark.both_keras
def test_auto_jit_skips_xla_for_convolutions_on_cpu():
    """XLA's CPU convolutions are an order of magnitude slower than oneDNN's: "auto" avoids them."""
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("on a GPU 'auto' always compiles with XLA")
    from dropnet_tf.models import model_b

    x = np.zeros((8, 28, 28, 1), np.float32)
    y = np.zeros(8, np.int64)
    conv = _trainer(model_b((2, 2), seed=0), x, y, jit_compile="auto")
    dense = _trainer(_model(), *_data(), jit_compile="auto")
    assert conv._jit_compile is False
    assert dense._jit_compile == "auto"


def test_auto_jit_falls_back_to_plain_graphs_when_xla_cannot_compile():
    """A step XLA cannot compile (here a tf.numpy_function in the training transform) warns and
    trains without XLA, with exactly the result of jit_compile=False; jit_compile=True raises."""
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("the CPU path is what is tested here")
    x, y = _data()

    def through_numpy(images, labels):
        images = tf.numpy_function(lambda a: a * 0.5, [images], tf.float32)
        return tf.ensure_shape(images, (None, 6)), labels

    def trained(jit_compile):
        model = _model()
        trainer = _trainer(model, x, y, batch_size=10, jit_compile=jit_compile, train_transform=through_numpy)
        assert trainer._jit_compile == jit_compile  # dense model on the CPU: "auto" tries XLA
        history = trainer.fit(2, validation_data=(x, y), shuffle=False)
        return history, [w.numpy() for w in model.weights], trainer

    with pytest.warns(UserWarning, match="XLA could not compile"):
        history, weights, trainer = trained("auto")
    assert trainer._jit_compile is False
    reference_history, reference, _ = trained(False)
    assert history == reference_history
    for a, b in zip(weights, reference):
        np.testing.assert_array_equal(a, b)
    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)):
        trained(True)
