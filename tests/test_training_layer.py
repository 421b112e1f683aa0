"""The one training layer (dropnet_tf.engines.training): TrainingConfig, make_optimizer, fit, evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf import TrainingConfig
from dropnet_tf.core.backend import keras
from dropnet_tf.foresight import TrainingProtocol
from dropnet_tf.engines.training import TrainingConfig as EngineTrainingConfig
from dropnet_tf.engines.training import ENGINES, MONITORS, OPTIMIZER_NAMES, Trainer, check_config, evaluate, fit, make_optimizer

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 6)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")
TRAIN, VAL = (X[:64], Y[:64]), (X[64:], Y[64:])

#: Every key of a Keras 3 SGD/Adam config but name, learning_rate and the optimizer's own.
BASE = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
        "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
        "gradient_accumulation_steps": None}


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")])


def _same(expected, actual, path="config"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(expected) == sorted(actual), f"{path}: {actual}"
        for key in expected:
            _same(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(expected) == len(actual), path
        for i, (e, a) in enumerate(zip(expected, actual)):
            _same(e, a, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-6), f"{path}: {actual} != {expected}"
    else:
        assert expected == actual, f"{path}: {actual!r} != {expected!r}"


def _config(optimizer):
    config = optimizer.get_config()
    config.pop("name")
    return config


def test_public_names_are_one_type():
    assert TrainingConfig is EngineTrainingConfig  # the top level exports the engines' class
    defaults = TrainingConfig()
    assert (defaults.batch_size, defaults.max_epochs, defaults.patience, defaults.restore_best_weights,
            defaults.shuffle, defaults.optimizer) == (32, 100, 5, True, True, None)
    protocol = TrainingProtocol(epochs=3, learning_rate=0.1)
    assert protocol.as_dict() == {"epochs": 3, "learning_rate": 0.1, "batch_size": 128, "momentum": 0.9,
                                  "nesterov": True, "weight_decay": 0.0, "optimizer": "sgd",
                                  "learning_rate_drops": ()}
    assert isinstance(protocol.to_training_config(), TrainingConfig)


def test_dropnet_default_optimizer():
    optimizer = make_optimizer(TrainingConfig())
    assert type(optimizer).__name__ == "SGD"
    _same({**BASE, "learning_rate": 0.1, "momentum": 0.0, "nesterov": False}, _config(optimizer))
    assert _config(optimizer) == _config(keras.optimizers.SGD(learning_rate=0.1))  # the old _make_optimizer(None)


def test_thesis_protocol_optimizer():
    # thesis 4.1.3: SGD, Nesterov momentum 0.9, learning rate 1e-4, batch 128
    protocol = TrainingProtocol(epochs=30, learning_rate=1e-4, batch_size=128, momentum=0.9, nesterov=True)
    expected = {**BASE, "learning_rate": 1e-4, "momentum": 0.9, "nesterov": True}
    _same(expected, _config(protocol.make_optimizer()))
    _same(expected, _config(make_optimizer(protocol)))
    _same(expected, _config(make_optimizer(protocol.to_training_config())))


def test_snip_protocol_optimizer():
    # SNIP Section 5: SGD momentum 0.9, weight decay 5e-4, lr 0.1 x0.1 every 30k iterations
    drops = ((30_000, 0.1), (60_000, 0.1), (90_000, 0.1))
    protocol = TrainingProtocol(epochs=3, learning_rate=0.1, batch_size=128, momentum=0.9, nesterov=False,
                                weight_decay=5e-4, learning_rate_drops=drops)
    expected = {**BASE, "weight_decay": 5e-4, "momentum": 0.9, "nesterov": False, "learning_rate": {
        "module": "keras.optimizers.schedules", "class_name": "PiecewiseConstantDecay", "registered_name": None,
        "config": {"boundaries": [30_000, 60_000, 90_000], "values": [0.1, 0.01, 0.001, 0.0001],
                   "name": "PiecewiseConstant"}}}
    _same(expected, _config(make_optimizer(protocol)))
    # the TFMOT baseline's JSON spec goes through the same factory
    from dropnet_tf.foresight.tfmot.pruning import normalise_optimizer_spec

    _same(expected, _config(make_optimizer(normalise_optimizer_spec(protocol))))


def test_factory_takes_names_instances_and_factories():
    assert type(make_optimizer("adam")).__name__ == "Adam"
    instance = keras.optimizers.SGD(0.3)
    assert make_optimizer(instance) is instance
    assert make_optimizer(lambda: instance) is instance
    adam = make_optimizer(TrainingConfig(optimizer="adam", learning_rate=0.01, weight_decay=1e-4))
    _same({**BASE, "weight_decay": 1e-4, "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
           "amsgrad": False}, _config(adam))


@pytest.mark.parametrize("changes, field, allowed", [
    ({"monitor": "val_top5"}, "monitor", str(MONITORS)),
    ({"optimizer": "rmsprop", "learning_rate": 0.1}, "optimizer='rmsprop'", str(OPTIMIZER_NAMES)),
    ({"learning_rate": -1.0}, "learning_rate", "> 0"),
    ({"momentum": -0.5}, "momentum", ">= 0"),
    ({"jit_compile": "yes"}, "jit_compile", "'auto'"),
    ({"learning_rate_drops": ((10, 0),)}, "factor", "> 0"),
])
def test_config_errors_name_the_value_and_the_allowed_ones(changes, field, allowed):
    with pytest.raises((ValueError, TypeError)) as error:
        check_config(TrainingConfig(**changes))
    message = str(error.value)
    assert field in message and allowed in message
    assert any(repr(value) in message or str(value) in message for value in changes.values())


def test_engine_error_names_allowed_engines():
    with pytest.raises(ValueError, match=r"engine must be one of \('graph', 'keras'\), got 'torch'"):
        fit(_model(), TRAIN, VAL, TrainingConfig(max_epochs=1), engine="torch")
    assert ENGINES == ("graph", "keras")


@pytest.mark.parametrize("engine", ENGINES)
def test_both_engines_take_the_same_config(engine):
    config = TrainingConfig(max_epochs=3, patience=1, batch_size=16, learning_rate=0.05, momentum=0.9,
                            learning_rate_drops=((4, 0.1),), jit_compile=False)
    model = _model()
    history = fit(model, TRAIN, VAL, config, engine=engine, seed=1)
    assert 1 <= len(history["loss"]) <= 3 and "val_loss" in history
    assert all(np.isfinite(history["loss"]))
    scores = evaluate(model, VAL, config, engine=engine)
    assert 0.0 <= scores["accuracy"] <= 1.0 and np.isfinite(scores["loss"])


@pytest.mark.parametrize("engine", ENGINES)
def test_iterations_stop_both_engines(engine):
    config = TrainingConfig(iterations=5, batch_size=16, early_stopping=False, jit_compile=False, steps_per_call=2)
    model = _model()
    trainer = Trainer(model, config, TRAIN, engine=engine)
    trainer.fit(seed=0)
    assert int(trainer.optimizer.iterations.numpy()) == 5


def test_early_stopping_needs_validation():
    with pytest.raises(ValueError, match="val_loss"):
        fit(_model(), TRAIN, None, TrainingConfig(max_epochs=1), engine="keras")


def test_same_seed_same_weights():
    config = TrainingConfig(max_epochs=2, batch_size=16, jit_compile=False)
    runs = []
    for _ in range(2):
        model = _model()
        fit(model, TRAIN, VAL, config, engine="graph", seed=3)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
