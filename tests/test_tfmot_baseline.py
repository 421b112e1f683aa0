"""TFMOT gradual magnitude pruning baseline: tf-keras only, reachable from Keras 3 through a
child process; target sparsity reached, top-1/top-5 reported, errors surfaced clearly.

Default pass (Keras 3): the direct call raises the tf-keras RuntimeError and
``run_in_tf_keras`` trains in a tf-keras child.  ``TF_USE_LEGACY_KERAS=1 pytest -m
both_keras``: the tests marked ``both_keras`` call ``gradual_magnitude_pruning`` directly.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dropnet_tf.core.backend import USE_LEGACY_KERAS, keras
from dropnet_tf.foresight import tfmot as gmp
from dropnet_tf.foresight.experiment import TrainingProtocol
from dropnet_tf.core.io import save_npz_atomic

INPUT_SHAPE = (8, 8, 1)
NUM_CLASSES = 10


def synthetic(n, seed=0, shape=INPUT_SHAPE):
    """Ten noisy class prototypes: learnable in a couple of epochs, not trivially."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(123).normal(size=(NUM_CLASSES,) + shape).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=n).astype(np.int64)
    x = prototypes[y] + 0.8 * rng.normal(size=(n,) + shape).astype(np.float32)
    return x, y


def tiny_mlp():
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(48, activation="relu", name="fc1"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", name="predictions"),
        ]
    )


def tiny_cnn():
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv1"),
            keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", name="predictions"),
        ]
    )


def check_result(result, sparsity, epochs):
    assert result["method"] == "tfmot_gmp"
    assert result["target_sparsity"] == pytest.approx(sparsity)
    assert result["target_ratio"] == pytest.approx(1.0 / (1.0 - sparsity))
    assert abs(result["empirical_sparsity"] - sparsity) <= 0.02
    assert result["empirical_ratio"] == pytest.approx(result["prunable"] / result["nonzero"])
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert math.isfinite(result["test_loss"])
    assert result["epochs"] == epochs and len(result["train_loss"]) == epochs
    assert result["train_seconds"] > 0
    schedule = result["schedule"]
    assert schedule["type"] == "PolynomialDecay" and schedule["final_sparsity"] == pytest.approx(sparsity)
    assert 0 <= schedule["begin_step"] < schedule["end_step"] <= schedule["total_steps"]
    assert schedule["mask_updates"] >= 2
    json.dumps(result, allow_nan=False)  # JSON-able as returned


# --------------------------------------------------------------------------------------------
# Direct calls: tf-keras trains, Keras 3 refuses with the fix in the message
# --------------------------------------------------------------------------------------------


@pytest.mark.both_keras
def test_direct_mlp_with_optimizer_factory_and_validation_data():
    train, test, val = synthetic(384, seed=0), synthetic(128, seed=1), synthetic(64, seed=2)

    def factory():
        return keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)

    if not USE_LEGACY_KERAS:
        with pytest.raises(RuntimeError, match="TF_USE_LEGACY_KERAS=1") as caught:
            gmp.gradual_magnitude_pruning(tiny_mlp, train, test, 0.8, 2, optimizer=factory)
        assert "run_in_tf_keras" in str(caught.value)
        return
    result = gmp.gradual_magnitude_pruning(
        tiny_mlp, train, test, 0.8, 2, batch_size=64, optimizer=factory, validation=val, seed=3
    )
    check_result(result, 0.8, 2)
    assert set(result["per_weight_density"]) == {"fc1/kernel", "predictions/kernel"}
    for density in result["per_weight_density"].values():  # TFMOT: every kernel to the same sparsity
        assert density == pytest.approx(0.2, abs=0.02)
    assert result["prunable"] == 64 * 48 + 48 * NUM_CLASSES
    assert result["total_params"] == result["prunable"] + 48 + NUM_CLASSES  # biases are not pruned
    assert result["optimizer"]["class"] == "SGD"
    assert len(result["val_top1"]) == 2
    assert result["top1"] > 0.3  # learnt something while being pruned (chance: 0.1)


@pytest.mark.both_keras
def test_direct_cnn_with_protocol_spec_and_validation_split():
    train, test = synthetic(320, seed=4), synthetic(96, seed=5)
    protocol = TrainingProtocol(epochs=3, learning_rate=0.05, batch_size=32)
    if not USE_LEGACY_KERAS:
        with pytest.raises(RuntimeError, match="TF_USE_LEGACY_KERAS=1"):
            gmp.gradual_magnitude_pruning(tiny_cnn, train, test, 0.5, 3, optimizer=protocol)
        return
    result = gmp.gradual_magnitude_pruning(
        tiny_cnn, train, test, 0.5, 3, batch_size=32, optimizer=protocol, validation=0.25, frequency=4
    )
    check_result(result, 0.5, 3)
    assert result["train_examples"] == 240 and result["steps_per_epoch"] == 8
    assert result["schedule"] == {**result["schedule"], "begin_step": 0, "end_step": 16, "frequency": 4}
    assert "conv1/kernel" in result["per_weight_density"]
    assert result["optimizer"] == {**gmp.DEFAULT_OPTIMIZER_SPEC, "learning_rate": 0.05}
    assert len(result["val_top1"]) == 3


# --------------------------------------------------------------------------------------------
# From a Keras-3 program: the tf-keras child process
# --------------------------------------------------------------------------------------------


def test_run_in_tf_keras_reaches_target_sparsity(tmp_path):
    x_train, y_train = synthetic(512, seed=10)
    x_test, y_test = synthetic(256, seed=11)
    data = save_npz_atomic(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    out = tmp_path / "out" / "gmp.json"
    result = gmp.run_in_tf_keras(
        "lenet_300_100", {"input_shape": list(INPUT_SHAPE), "seed": 0}, data, 0.75, 2, out,
        optimizer=TrainingProtocol(epochs=2, learning_rate=0.05), seed=0,
    )
    check_result(result, 0.75, 2)
    assert result["keras"].startswith("tf_keras")
    assert set(result["per_weight_density"]) == {"fc1/kernel", "fc2/kernel", "predictions/kernel"}
    assert result["prunable"] == 64 * 300 + 300 * 100 + 100 * NUM_CLASSES
    assert result["model"] == "lenet_300_100" and result["model_kwargs"]["input_shape"] == [8, 8, 1]
    assert json.loads(out.read_text()) == result  # the file the child wrote atomically
    assert [p.name for p in out.parent.iterdir()] == ["gmp.json"]  # no temporary left behind


def fake_python(tmp_path, body):
    """A stand-in for the child's interpreter (no TensorFlow start-up: the test stays fast)."""
    script = tmp_path / "fake_python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_run_in_tf_keras_surfaces_child_errors(tmp_path):
    x, y = synthetic(32)
    data = save_npz_atomic(tmp_path / "data.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    failing = fake_python(tmp_path, 'echo "ValueError: Unknown model no_such_net ($TF_USE_LEGACY_KERAS)" >&2; exit 3')
    with pytest.raises(RuntimeError, match="exit status 3") as caught:
        gmp.run_in_tf_keras("no_such_net", {}, {"path": data}, 0.5, 2, tmp_path / "r.json", python=failing)
    assert "stderr tail" in str(caught.value)
    assert "Unknown model no_such_net (1)" in str(caught.value)  # the child had TF_USE_LEGACY_KERAS=1
    silent = fake_python(tmp_path, "exit 0")
    with pytest.raises(RuntimeError, match="could not be read"):
        gmp.run_in_tf_keras("lenet_300_100", {}, data, 0.5, 2, tmp_path / "r.json", python=silent)


def test_run_in_tf_keras_refuses_what_cannot_cross_the_process_boundary(tmp_path):
    x, y = synthetic(32)
    data = save_npz_atomic(tmp_path / "data.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(TypeError, match="spec"):
        gmp.run_in_tf_keras("lenet_300_100", {}, data, 0.5, 1, optimizer=lambda: None)
    with pytest.raises(FileNotFoundError):
        gmp.run_in_tf_keras("lenet_300_100", {}, tmp_path / "missing.npz", 0.5, 1)
    with pytest.raises(ValueError, match="data_spec"):
        gmp.run_in_tf_keras("lenet_300_100", {}, {"file": data}, 0.5, 1)
    with pytest.raises(ValueError, match="Unknown optimizer spec keys"):
        gmp.run_in_tf_keras("lenet_300_100", {}, data, 0.5, 1, optimizer={"lr": 0.1})


# --------------------------------------------------------------------------------------------
# Schedule and optimiser specs (no TensorFlow training)
# --------------------------------------------------------------------------------------------


def test_schedule_defaults_reach_target_at_two_thirds_then_fine_tune():
    s = gmp.pruning_schedule_steps(3000)  # e.g. 30 epochs of 100 steps
    assert (s["begin_step"], s["end_step"], s["frequency"]) == (0, 2000, 100)
    assert s["mask_updates"] == 20 and s["fine_tune_steps"] == 1000


def test_schedule_end_step_is_a_mask_update_step():
    s = gmp.pruning_schedule_steps(1000, begin_fraction=0.1, end_fraction=0.75, frequency=100)
    assert s["begin_step"] == 100 and s["end_step"] == 700  # 750 rounded down to 100 + 6 * 100
    assert (s["end_step"] - s["begin_step"]) % s["frequency"] == 0
    assert s["mask_updates"] == 7


def test_schedule_short_runs_lower_the_frequency():
    s = gmp.pruning_schedule_steps(8, frequency=100)  # 2 epochs of 4 steps
    assert (s["begin_step"], s["end_step"], s["frequency"], s["requested_frequency"]) == (0, 5, 1, 100)
    assert s["mask_updates"] == 5 and s["fine_tune_steps"] == 3
    s = gmp.pruning_schedule_steps(60, frequency=100, end_fraction=1.0)
    assert (s["end_step"], s["frequency"], s["mask_updates"]) == (60, 15, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(total_steps=0), "total_steps"),
        (dict(total_steps=10, begin_fraction=0.5, end_fraction=0.5), "larger than"),
        (dict(total_steps=10, end_fraction=1.5), "end_fraction"),
        (dict(total_steps=10, frequency=0), "frequency"),
        (dict(total_steps=1), "no step"),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmp.pruning_schedule_steps(**kwargs)


def test_optimizer_spec_normalisation():
    assert gmp.normalise_optimizer_spec(None) == gmp.DEFAULT_OPTIMIZER_SPEC
    protocol = TrainingProtocol(epochs=5, learning_rate=0.01, optimizer="adam", learning_rate_drops=((10, 0.1),))
    spec = gmp.normalise_optimizer_spec(protocol)
    assert spec["optimizer"] == "adam" and spec["learning_rate"] == 0.01
    assert spec["learning_rate_drops"] == [[10, 0.1]] and "epochs" not in spec
    assert gmp.normalise_optimizer_spec({"name": "SGD", "learning_rate": 1})["optimizer"] == "sgd"
    with pytest.raises(ValueError, match="'sgd' or 'adam'"):
        gmp.normalise_optimizer_spec("rmsprop")
    with pytest.raises(ValueError, match="learning_rate"):
        gmp.normalise_optimizer_spec({"learning_rate": 0})


def test_child_environment_puts_this_checkout_first_on_pythonpath():
    """The child imports the dropnet_tf this process imported (the directory above the package)."""
    import os
    import pathlib

    import dropnet_tf
    from dropnet_tf.foresight.tfmot.child import _child_environment

    env = _child_environment()
    first = env["PYTHONPATH"].split(os.pathsep)[0]
    assert pathlib.Path(first) == pathlib.Path(dropnet_tf.__file__).resolve().parents[1]
    assert env["TF_USE_LEGACY_KERAS"] == "1"
