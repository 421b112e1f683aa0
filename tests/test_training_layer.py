"""The one training layer: TrainingConfig (dropnet_tf.engines.config), make_optimizer
(dropnet_tf.engines.optimizers), fit and evaluate (dropnet_tf.engines.training)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dropnet_tf import TrainingConfig
from dropnet_tf.core.backend import keras
from dropnet_tf.foresight import TrainingProtocol
from dropnet_tf.engines.config import TrainingConfig as EngineTrainingConfig
from dropnet_tf.engines.config import MONITORS, OPTIMIZER_NAMES, check_config
from dropnet_tf.engines.optimizers import make_optimizer
from dropnet_tf.engines.training import ENGINES, Trainer, evaluate, fit

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
                                  "learning_rate_drops": (), "weight_decay_mode": "decoupled"}
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


# ---------------------------------------------------------------- weight decay modes (issue 24, point 1)

from weight_decay_reference import BATCH, DECAY, LEARNING_RATE, MOMENTUM, X as WD_X, Y as WD_Y, assert_matches  # noqa: E402


def _softmax_layer(seed=3):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    # a non-zero bias, so that its decay is seen too
    model.layers[-1].bias.assign(np.array([0.3, -0.2, 0.5], "float32"))
    return model


def _decay_config(mode, epochs=1, **changes):
    return TrainingConfig(max_epochs=epochs, batch_size=BATCH, shuffle=False, early_stopping=False,
                          learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=DECAY,
                          weight_decay_mode=mode, **changes)


@pytest.mark.both_keras
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_weight_decay_modes_match_a_hand_computed_momentum_step(engine, mode):
    """One step, then a second (momentum carries the first), against numpy (weight_decay_reference):
    coupled adds wd*w to the gradient, decoupled shrinks w by lr*wd*w outside the momentum."""
    for steps in (1, 2):
        model = _softmax_layer()
        w0, b0 = (w.copy() for w in model.get_weights())
        x, y = WD_X[:steps * BATCH], WD_Y[:steps * BATCH]
        Trainer(model, _decay_config(mode), (x, y), engine=engine).fit()
        assert_matches(model.get_weights(), w0, b0, mode, steps)


def test_weight_decay_mode_default_is_todays_decoupled_option():
    """The default keeps what a config with weight_decay built before the option existed:
    Keras' SGD(weight_decay=...), not the coupled optimizer."""
    assert TrainingConfig().weight_decay_mode == "decoupled"
    optimizer = make_optimizer(TrainingConfig(learning_rate=0.1, momentum=0.9, weight_decay=5e-4))
    assert type(optimizer).__name__ == "SGD" and optimizer.get_config()["weight_decay"] == pytest.approx(5e-4)
    coupled = make_optimizer(TrainingConfig(learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                                            weight_decay_mode="coupled"))
    assert type(coupled).__name__ == "CoupledSGD" and coupled.get_config()["weight_decay"] is None
    assert coupled.get_config()["coupled_weight_decay"] == pytest.approx(5e-4)
    adam = make_optimizer(TrainingConfig(optimizer="adam", weight_decay=1e-4, weight_decay_mode="coupled"))
    assert type(adam).__name__ == "CoupledAdam"
    # the protocols carry the mode into the optimizer
    protocol = TrainingProtocol(epochs=1, learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                                weight_decay_mode="coupled")
    assert type(protocol.make_optimizer()).__name__ == "CoupledSGD"
    from dropnet_tf.foresight.tfmot.pruning import normalise_optimizer_spec

    spec = normalise_optimizer_spec(protocol)
    assert spec["weight_decay_mode"] == "coupled"
    assert type(make_optimizer(spec)).__name__ == "CoupledSGD"


@pytest.mark.both_keras
def test_coupled_adam_matches_a_hand_computed_step():
    """Adam with coupled decay (PyTorch's Adam(weight_decay)): the moments see g + wd*w."""
    model = _softmax_layer()
    w0, b0 = (w.copy().astype(np.float64) for w in model.get_weights())
    config = TrainingConfig(optimizer="adam", learning_rate=0.01, weight_decay=DECAY, weight_decay_mode="coupled",
                            max_epochs=1, batch_size=BATCH, shuffle=False, early_stopping=False)
    Trainer(model, config, (WD_X, WD_Y), engine="graph").fit()
    from weight_decay_reference import gradient

    params, m, v = [w0, b0], [0.0, 0.0], [0.0, 0.0]
    for t in (1, 2):
        xb, yb = WD_X[(t - 1) * BATCH:t * BATCH], WD_Y[(t - 1) * BATCH:t * BATCH]
        grads = gradient(params[0], params[1], xb, yb)
        for i in range(2):
            g = grads[i] + DECAY * params[i]
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            rate = 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            params[i] = params[i] - rate * m[i] / (np.sqrt(v[i]) + 1e-7)
    for actual, expected in zip(model.get_weights(), params):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", ["L2", "Coupled", None, 1])
def test_weight_decay_mode_error_names_the_value_and_the_modes(bad):
    with pytest.raises(ValueError, match=r"TrainingConfig.weight_decay_mode must be one of \('decoupled', 'coupled'\), "
                                         rf"got {re.escape(repr(bad))}"):
        check_config(TrainingConfig(weight_decay=1e-4, weight_decay_mode=bad))
    with pytest.raises(ValueError, match=r"sets \['weight_decay_mode'\], which build the optimizer only"):
        check_config(TrainingConfig(optimizer=keras.optimizers.SGD(0.1), weight_decay_mode="coupled"))
