"""dropnet_tf.core.distribute: training, evaluation and statistics under a tf.distribute strategy (issue 16).

The strategy runs need TensorFlow configured before it starts (two logical CPU devices;
``TF_CONFIG``), so they run tests/distribute_worker.py in fresh processes and compare
what it writes.  The argument checks run in this process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from script_helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distribute_worker.py")


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1", **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_two_workers(mode: str, tmp_path) -> None:
    """tests/distribute_worker.py ``mode`` as two MultiWorkerMirroredStrategy workers on localhost
    (TF_CONFIG, free ports); both must exit 0 (their output is shown otherwise)."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    children = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        children.append(subprocess.Popen([sys.executable, WORKER, mode, str(tmp_path)], cwd=ROOT,
                                         env=_env(TF_CONFIG=config), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [child.communicate(timeout=300)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, output in zip(children, outputs):
        assert child.returncode == 0, output[-3000:]


# ----------------------------------------------------------------------------- argument checks


def test_bad_strategy_is_refused_naming_it():
    from dropnet_tf.core.distribute import check_strategy, make_strategy

    with pytest.raises(TypeError, match=r"strategy must be None or a tf.distribute.Strategy .*got 'mirrored' "
                                        r"\(a name such as 'mirrored' goes to .*make_strategy first\)"):
        check_strategy("mirrored")
    with pytest.raises(ValueError, match=r"strategy must be one of \('mirrored', 'multiworker'\) or None, got 'tpu'"):
        make_strategy("tpu")
    os.environ.pop("TF_CONFIG", None)
    with pytest.raises(ValueError, match=r"strategy 'multiworker' reads the cluster from the TF_CONFIG"):
        make_strategy("multiworker")
    assert make_strategy(None) is None


@pytest.mark.slow  # 33 s on 2 cores at load 6: mostly tracing the distributed loop, not training
def test_foresight_training_under_a_strategy_keeps_masks_and_reduces_top5():
    """train_and_evaluate under a (one-device) strategy goes through the distributed trainer:
    the pruned weights stay exactly zero through Nesterov momentum, weight decay and a
    learning-rate drop (the masked layers' constraint inside the replicated update), and
    top-1 / top-5 / loss equal numpy's on the returned model's predictions (ties ranked by
    class index, as foresight's Keras metric does)."""
    from types import SimpleNamespace

    import tensorflow as tf
    from sklearn.datasets import load_digits

    from dropnet_tf.core.backend import keras
    from dropnet_tf.engines.training import Trainer
    from dropnet_tf.foresight.experiment import TrainingProtocol, train_and_evaluate
    from dropnet_tf.foresight.prune import prune_at_init
    from dropnet_tf.foresight.weights import get_weight_masks
    from dropnet_tf.models.foresight import lenet_300_100

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype("float32"), y.astype("int64")
    split = SimpleNamespace(x_train=x[:128], y_train=y[:128], x_test=x[128:256], y_test=y[128:256], num_classes=10)
    keras.utils.set_random_seed(0)
    model = lenet_300_100(input_shape=(64,), seed=0)
    prune_at_init(model, "snip", 10.0, data=(split.x_train[:64], split.y_train[:64]), seed=0)
    before = get_weight_masks(model)
    start = [w.copy() for w in model.get_weights()]
    protocol = TrainingProtocol(epochs=1, learning_rate=0.05, batch_size=32, weight_decay=1e-3,
                                learning_rate_drops=((2, 0.1),))
    outcome = train_and_evaluate(model, split, protocol, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(model.get_weights(), start)) > 1e-2  # copied back
    after = get_weight_masks(model)
    checked = 0
    for layer in model.layers:
        for name, mask in getattr(layer, "weight_masks", {}).items():
            kernel = layer.masked_weight(name).numpy()
            assert np.all(kernel[mask.numpy() == 0] == 0.0)
            checked += int(np.sum(mask.numpy() == 0))
    assert checked > 0.8 * sum(m.size for m in before.values())  # r = 10: most weights pruned, all still zero
    assert all(np.array_equal(before[k], after[k]) for k in before)
    scores = model.predict(split.x_test, verbose=0)
    truth = split.y_test
    ahead = (scores > scores[np.arange(len(truth)), truth][:, None]) | (
        (scores == scores[np.arange(len(truth)), truth][:, None]) & (np.arange(10)[None, :] < truth[:, None]))
    assert outcome["top5"] == pytest.approx(float(np.mean(ahead.sum(axis=1) < 5)), abs=1e-12)
    assert outcome["top1"] == pytest.approx(float(np.mean(scores.argmax(axis=1) == truth)), abs=1e-12)
    reference = -np.log(scores[np.arange(len(truth)), truth]).mean()
    assert outcome["test_loss"] == pytest.approx(reference, rel=1e-4)
    assert outcome["top5"] > outcome["top1"]  # top-5 is its own reduction, not a copy of top-1
    with pytest.raises(ValueError, match=r"sample_metrics are evaluated by the distributed graph engine only"):
        Trainer(model, protocol, (split.x_train, split.y_train), engine="graph", sample_metrics={"top5": len})


@pytest.mark.both_keras
def test_model_built_outside_the_scope_is_refused_before_any_training(tmp_path):
    import dropnet_tf
    from dropnet_tf.core.backend import tf
    from dropnet_tf.core.distribute import clone_in_scope, model_strategy
    from dropnet_tf.models import model_a

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    outside = model_a((4,), input_shape=(3,), num_classes=2, seed=0)
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    y = np.arange(8) % 2
    results = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match=r"The model 'model_a' was built outside the strategy's scope \(\d+ of its "
                                         r"\d+ variables, .*Build it inside `with strategy.scope\(\):`, .*clone_in_scope"):
        dropnet_tf.iterative_prune(outside, ((x, y), (x, y), (x, y)), "minimum", results=str(results),
                                   strategy=strategy, verbose=0)
    assert not results.exists()  # refused before anything was written
    with pytest.raises(TypeError, match=r"strategy must be None or a tf.distribute.Strategy.*got 2"):
        dropnet_tf.iterative_prune(outside, ((x, y), (x, y), (x, y)), "minimum", strategy=2, verbose=0)
    # The way out the message names: the clone lives in the scope and has the same weights.
    assert model_strategy(outside) is None
    clone = clone_in_scope(outside, strategy)
    assert model_strategy(clone) is strategy
    for a, b in zip(outside.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_population_and_compact_training_are_refused_under_a_strategy(tmp_path):
    """A population stacks runs on one device and compacted training builds models outside
    the scope: with a strategy both are refused before anything is written ("auto" trains masked)."""
    import dropnet_tf
    from dropnet_tf.compaction.training import CompactTrainingError
    from dropnet_tf.core.backend import tf
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.models import model_a

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    y = np.arange(8) % 2
    data = ((x, y), (x, y), (x, y))
    results = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match=r"population=2 and strategy=.* cannot be combined: a population stacks"):
        dropnet_tf.run_experiment(lambda seed: model_a((4,), input_shape=(3,), num_classes=2, seed=seed), data,
                                  ["minimum"], [0], str(results), "refused", population=2, strategy=strategy)
    assert not results.exists()
    with strategy.scope():
        inside = model_a((4,), input_shape=(3,), num_classes=2, seed=0)
    with pytest.raises(CompactTrainingError, match=r"compact_training=True cannot be combined with strategy="):
        dropnet_tf.iterative_prune(inside, data, "minimum", results=str(results), strategy=strategy, verbose=0,
                                   training=TrainingConfig(max_epochs=1, compact_training=True))
    assert not results.exists()
    pruner = dropnet_tf.IterativePruner(inside, data, "minimum", strategy=strategy, verbose=0,
                                        training=TrainingConfig(max_epochs=1, compact_training="auto"))
    assert pruner._compact_mode is False and pruner._statistics_pass is None


# ----------------------------------------------------------------------------- --strategy of the scripts



def test_scripts_take_strategy_and_refuse_what_cannot_run(tmp_path, monkeypatch, capsys):
    from argparse import Namespace

    from paper_experiments import kit
    from paper_experiments.dropnet import dropnet_protocol

    script = load_script(os.path.join(ROOT, "paper_experiments", "dropnet", "C_4_1_figC17_figC16_resnet18_tiny_imagenet.py"))
    parser = dropnet_protocol.build_parser(script.EXPERIMENT)
    assert parser.parse_args([]).strategy is None  # default: one device, nothing changes
    assert parser.parse_args(["--strategy", "multiworker"]).strategy == "multiworker"
    with pytest.raises(SystemExit):
        parser.parse_args(["--strategy", "tpu"])
    # Augmentation runs in the single-device graph trainer: refused before data or training.
    with pytest.raises(SystemExit) as stopped:  # the script's UserError: one paragraph, exit 1
        dropnet_protocol.main(script.EXPERIMENT, ["--strategy", "mirrored", "--out", str(tmp_path / "out")])
    assert stopped.value.code == 1
    assert "--strategy mirrored: this experiment trains with Table C1 augmentation" in " ".join(
        capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert kit.strategy_of(Namespace(strategy=None)) is None
    with pytest.raises(kit.UserError, match=r"--strategy multiworker: strategy 'multiworker' reads the cluster from "
                                            r"the TF_CONFIG environment variable, which is not set"):
        kit.strategy_of(Namespace(strategy="multiworker"))
    assert kit.worker_out("runs/x", None) == "runs/x"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}))

    class _Fake:  # worker_index reads TF_CONFIG only for a multi-worker strategy
        pass

    assert kit.worker_out("runs/x", _Fake()) == "runs/x"


# ----------------------------------------------------------------------------- runs in child processes


@pytest.mark.slow
def test_mirrored_run_matches_one_device_and_reduces_statistics(tmp_path):
    """MirroredStrategy over two logical CPUs vs the single-device graph trainer, same θ0 and global batch.

    With equal shares of every batch (256 samples, batch 32, no shuffling) the replicas'
    gradients add up to the whole batch's, up to summation order, so the masks must be
    identical and the accuracies equal up to a rare flip of a near-tied prediction: one
    sample of the 128 (1/128 = 0.0078) is the tolerance, 1e-4 for a loss.  Measured: equal
    accuracies, validation losses within 1.4e-8.
    """
    done = subprocess.run([sys.executable, WORKER, "mirrored", str(tmp_path)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "mirrored.json").read_text())
    assert report["replicas"] == 2 and len(set(report["kernel_devices"])) == 2  # really two replicas
    assert report["theta0_equal"]
    single, mirrored = report["single"], report["mirrored"]
    assert sorted(single["masks"]) == ["0", "1", "2"]
    assert single["masks"] == mirrored["masks"]
    # Not vacuous: units were dropped, and differently per cycle.
    assert single["masks"]["2"] != single["masks"]["1"] != single["masks"]["0"]
    for one, many in zip(single["scores"], mirrored["scores"]):
        assert one["epochs"] == many["epochs"]
        for key in ("val_accuracy", "test_accuracy", "train_accuracy"):
            assert abs(one[key] - many[key]) <= 1 / 128 + 1e-12, (key, one, many)
        assert abs(one["val_loss"] - many["val_loss"]) < 1e-4
    # BatchNormalization's moving statistics (Keras 3: aggregation "none", one copy per replica,
    # each updated from its half of the batch): averaged, every replica holds the mean of the
    # copies they drift to without it (a moving average is linear); training itself is the same.
    bn = report["batchnorm"]
    separate, averaged = np.asarray(bn["separate"]), np.asarray(bn["averaged"])
    assert np.max(np.abs(separate[0] - separate[1])) > 1e-2  # the copies really drift apart
    np.testing.assert_allclose(averaged[0], averaged[1], atol=0)
    np.testing.assert_allclose(averaged[0], separate.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn["kernel_averaged"], bn["kernel_separate"], atol=1e-6)
    # One step on a batch of 5 split 3 + 2: the update of the global mean loss on one device,
    # which a mean of the replicas' means (each replica's mean loss / 2) misses.
    step = report["step"]
    assert step["same_start"]
    for update, reference in zip(step["update"], step["reference"]):
        np.testing.assert_allclose(update, reference, rtol=1e-4, atol=1e-7)
    for wrong in step["means_of_means"]:
        assert max(np.max(np.abs(np.asarray(u) - w)) for u, w in zip(step["update"], wrong)) > 1e-4
    # train_and_evaluate under the strategy (foresight / LayerPrune training: the distributed
    # trainer) of a model built outside its scope: trained in a copy, weights copied back,
    # the same as the one-device graph trainer (same batches) up to summation order.
    fore = report["foresight"]
    assert fore["mirrored"]["moved"] > 1e-2  # trained, and the weights came back into the model
    assert abs(fore["single"]["top1"] - fore["mirrored"]["top1"]) <= 1 / 128 + 1e-12
    for a, b in zip(fore["single"]["weights"], fore["mirrored"]["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # Statistics: sums and counts of both replicas, then divided: the numpy mean over the
    # 5 samples, which a mean of the replicas' means (3 + 2 samples) misses.
    stats = report["statistics"]
    assert stats["num_samples"] == 5
    for name, reference in stats["reference_mean_abs"].items():
        np.testing.assert_allclose(stats["mean_abs"][name], reference, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(stats["apoz"][name], stats["reference_apoz"][name], atol=1e-12)
        for means in stats["means_of_means"][name]:
            assert np.max(np.abs(np.asarray(means) / 2 - reference)) > 1e-3


@pytest.mark.slow
def test_two_process_multiworker_run_ends_with_identical_masks(tmp_path):
    """Two workers on localhost (TF_CONFIG), each drawing its own θ0: a short iterative_prune
    under MultiWorkerMirroredStrategy must leave both with the same θ0 and the same masks."""
    _run_two_workers("multiworker", tmp_path)
    first, second = (json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2))
    assert first["replicas"] == second["replicas"] == 2
    assert first["theta0_kernel"] == second["theta0_kernel"]  # the chief's draw, broadcast
    assert sorted(first["masks"]) == ["0", "1", "2"]
    assert first["masks"] == second["masks"]
    assert first["masks"]["2"] != first["masks"]["1"] != first["masks"]["0"]  # units were dropped
    assert first["val_accuracy"] == second["val_accuracy"]


@pytest.mark.slow
def test_two_process_multiworker_foresight_matches_one_device(tmp_path):
    """SNIP-pruned LeNet-300-100 trained by foresight's train_and_evaluate under a two-process
    MultiWorkerMirroredStrategy (Keras 3's Model.fit cannot run there; the distributed trainer
    does), with Nesterov momentum, weight decay and a learning-rate drop mid-run.

    Both workers must end with the same masks (unchanged by training, pruned weights exactly
    zero) and the same weights and scores; and worker 0's must match the one-device graph
    trainer from the same pruned θ0 (same global batches of 32, 384 samples = equal shares):
    up to summation order, so 1e-4 on a weight and one test sample of 128 (0.0078) on top-1,
    as for the mirrored DropNet run.
    """
    _run_two_workers("foresight_multiworker", tmp_path)
    first, second = (json.loads((tmp_path / f"foresight{i}.json").read_text()) for i in range(2))
    assert first["replicas"] == second["replicas"] == 2
    assert first["masks"] == second["masks"]
    assert first["masks_unchanged"] and second["masks_unchanged"]
    assert 0.05 < first["density"] < 0.15  # r = 10: about a tenth kept, so the masks are not vacuous
    assert first["pruned_max_abs"] == second["pruned_max_abs"] == 0.0
    for a, b in zip(first["weights"], second["weights"]):
        np.testing.assert_array_equal(a, b)  # one all-reduced update applied on both workers
    assert (first["top1"], first["top5"], first["test_loss"]) == (second["top1"], second["top5"], second["test_loss"])
    # BatchNormalization's moving statistics (one copy per worker here): averaged, both workers
    # hold the same values, the mean of the copies they reach without the averaging.
    ones, twos = first["batchnorm"], second["batchnorm"]
    np.testing.assert_array_equal(ones["averaged"], twos["averaged"])
    separate = np.asarray(ones["separate"] + twos["separate"])
    np.testing.assert_allclose(ones["averaged"][0], separate.mean(axis=0), rtol=1e-5, atol=1e-6)
    single = first["single"]
    assert single["moved"] > 1e-2  # the reference trained
    assert abs(single["top1"] - first["top1"]) <= 1 / 128 + 1e-12
    assert abs(single["test_loss"] - first["test_loss"]) < 1e-4
    for a, b in zip(single["weights"], first["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.both_keras
def test_weight_decay_modes_under_mirrored_strategy_match_a_hand_computed_step(tmp_path):
    """Issue 24: under MirroredStrategy over two replicas (each batch split 4 + 4) both engines
    (the distributed graph trainer, Keras' distributed fit) give numpy's update for each
    weight-decay mode, one step and two: the coupled term enters once per step after the
    replicas' gradients are summed, not once per replica (which would double it)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from weight_decay_reference import assert_matches

    done = subprocess.run([sys.executable, WORKER, "weight_decay", str(tmp_path)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "weight_decay.json").read_text())
    assert report["replicas"] == 2
    runs = report["runs"]
    assert sorted((r["engine"], r["mode"], r["steps"]) for r in runs) == sorted(
        (e, m, s) for e in ("graph", "keras") for m in ("coupled", "decoupled") for s in (1, 2))
    for run in runs:
        w0, b0 = (np.asarray(v) for v in run["start"])
        assert_matches([np.asarray(v) for v in run["end"]], w0, b0, run["mode"], run["steps"])
