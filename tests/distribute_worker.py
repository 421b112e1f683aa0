"""Child process of tests/test_distribute.py: runs that need TensorFlow configured before it starts.

Logical devices must be set before TensorFlow initialises, and ``TF_CONFIG`` before a
``MultiWorkerMirroredStrategy`` is made, so these runs happen in fresh processes:

``python tests/distribute_worker.py mirrored OUT``
    splits the CPU into two logical devices and writes OUT/mirrored.json: a short
    ``iterative_prune`` of Model A on digits, once on one device (the graph trainer) and
    once under ``MirroredStrategy`` over both, from the same θ0 and global batch; and the
    statistics collector under the strategy on an uneven split of 5 samples.
``python tests/distribute_worker.py multiworker OUT``
    one worker of a two-process ``MultiWorkerMirroredStrategy`` (``TF_CONFIG`` set by the
    test); writes OUT/worker<index>.json with θ0 and the masks of every cycle.
``python tests/distribute_worker.py foresight_multiworker OUT``
    one worker of a two-process run: SNIP on LeNet-300-100, then foresight training under
    ``MultiWorkerMirroredStrategy``; writes OUT/foresight<index>.json (worker 0 adds the
    one-device reference).
``python tests/distribute_worker.py weight_decay OUT``
    coupled and decoupled weight decay, one and two momentum steps under ``MirroredStrategy``
    over two logical CPUs; writes OUT/weight_decay.json.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

TRAIN, VAL, TEST = 256, 128, 128  # 256 = 8 global batches of 32: equal shares on every replica


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    y = y.astype("int64")
    a, b, c = TRAIN, TRAIN + VAL, TRAIN + VAL + TEST
    return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:c], y[b:c])


def build(seed):
    from dropnet_tf.models import model_a

    return model_a((20, 20), input_shape=(8, 8, 1), num_classes=10, seed=seed)


def masks_json(masks_by_cycle) -> dict:
    return {str(c): {name: np.asarray(m).astype(int).tolist() for name, m in masks.items()}
            for c, masks in masks_by_cycle.items()}


def prune(model, data, results, strategy, epochs, cycles):
    import dropnet_tf
    from dropnet_tf.dropnet.state import run_masks

    training = dropnet_tf.TrainingConfig(max_epochs=epochs, patience=10, shuffle=False, batch_size=32)
    records = dropnet_tf.iterative_prune(model, data, "minimum", fraction=0.25, max_cycles=cycles, training=training,
                                         results=results, verbose=0, strategy=strategy)
    return records, run_masks(results, "", "minimum", 0)


def mirrored(out: str) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from dropnet_tf import collect_statistics
    from dropnet_tf.core.backend import keras

    data = digits()
    report = {}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report["replicas"] = strategy.num_replicas_in_sync
    single = build(7)
    with strategy.scope():
        distributed = build(7)
    report["theta0_equal"] = all(np.array_equal(a, b) for a, b in zip(single.get_weights(), distributed.get_weights()))
    kernel = distributed.trainable_variables[0]
    kernel = kernel.value if not isinstance(kernel, tf.Variable) else kernel
    report["kernel_devices"] = sorted(v.device for v in strategy.experimental_local_results(kernel))

    for name, model, strat in (("single", single, None), ("mirrored", distributed, strategy)):
        started = time.perf_counter()
        records, masks = prune(model, data, os.path.join(out, f"{name}.jsonl"), strat, epochs=2, cycles=2)
        report[name] = {
            "seconds": time.perf_counter() - started,
            "masks": masks_json(masks),
            "scores": [{k: r[k] for k in ("val_accuracy", "test_accuracy", "train_accuracy", "val_loss", "epochs")}
                       for r in records],
        }

    # Statistics on 5 samples in one batch: the replicas get 3 and 2 (or 2 and 3), so a mean
    # of the replicas' means differs from the mean over the 5 samples.
    x5 = data[0][0][:5]
    with strategy.scope():
        probe = build(3)
    stats = collect_statistics(probe, x5, batch_size=5)
    features = keras.Model(probe.inputs, [probe.get_layer(n).output for n in stats.layer_names])
    reference = [np.abs(np.asarray(a)) for a in features(x5)]
    report["statistics"] = {
        "num_samples": stats.num_samples,
        "mean_abs": {n: stats.mean_abs[n].tolist() for n in stats.layer_names},
        "apoz": {n: stats.apoz[n].tolist() for n in stats.layer_names},
        "reference_mean_abs": {n: r.mean(axis=0).tolist() for n, r in zip(stats.layer_names, reference)},
        "reference_apoz": {n: (r == 0).mean(axis=0).tolist() for n, r in zip(stats.layer_names, reference)},
        "means_of_means": {n: [(r[:k].mean(axis=0) + r[k:].mean(axis=0)).tolist() for k in (2, 3)]
                           for n, r in zip(stats.layer_names, reference)},
    }
    report["batchnorm"] = batchnorm_state(strategy, data)
    report["step"] = one_step(strategy, data[0][0][:5], data[0][1][:5])
    report["foresight"] = foresight_training(strategy, data)
    with open(os.path.join(out, "mirrored.json"), "w") as handle:
        json.dump(report, handle)


def batchnorm_state(strategy, data) -> dict:
    """A conv + BatchNormalization model trained under the strategy twice from the same start,
    the replicas' moving statistics averaged and not: each replica's copy, as lists."""
    import tensorflow as tf

    from dropnet_tf.core.backend import keras
    from dropnet_tf.engines.distributed_training import DistributedTrainer

    (x, y), _, _ = data
    x = x.copy()
    x[(np.arange(len(x)) % 32) >= 16] += 5.0  # a batch of 32 splits 16 + 16: the replicas' statistics differ
    copies = {}
    for average in (False, True):
        with strategy.scope():
            keras.utils.set_random_seed(5)
            inputs = keras.Input((8, 8, 1))
            hidden = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
            outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(keras.layers.ReLU()(hidden)))
            model = keras.Model(inputs, outputs)
            optimizer = keras.optimizers.SGD(0.05)
        trainer = DistributedTrainer(model, optimizer, "sparse_categorical_crossentropy", x, y, strategy, batch_size=32)
        trainer.average_local_state = average
        trainer.fit(epochs=1, shuffle=False)
        moving = model.get_layer("bn").moving_mean
        moving = moving.value if not isinstance(moving, tf.Variable) else moving
        copies["averaged" if average else "separate"] = [np.asarray(v).tolist()
                                                          for v in strategy.experimental_local_results(moving)]
        copies["kernel_" + ("averaged" if average else "separate")] = np.asarray(model.get_layer("conv").kernel).tolist()
    return copies


def one_step(strategy, x5, y5) -> dict:
    """One SGD step (learning rate 0.1) on a global batch of 5 split 3 + 2 over the replicas,
    with the reference update of one device (tape gradient of the mean loss over the 5) and
    the update a mean of the replicas' mean losses would make."""
    import tensorflow as tf

    from dropnet_tf.core.backend import keras
    from dropnet_tf.engines.distributed_training import DistributedTrainer

    with strategy.scope():
        model = build(11)
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
    reference = build(11)
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    loss = keras.losses.SparseCategoricalCrossentropy()

    def gradients(x, y):
        with tf.GradientTape() as tape:
            value = loss(y, reference(x, training=True))
        return [g.numpy() for g in tape.gradient(value, reference.trainable_variables)]

    whole = gradients(x5, y5)
    halves = {k: [(a + b) / 2 for a, b in zip(gradients(x5[:k], y5[:k]), gradients(x5[k:], y5[k:]))] for k in (2, 3)}
    DistributedTrainer(model, optimizer, "sparse_categorical_crossentropy", x5, y5, strategy, batch_size=5).fit(
        1, shuffle=False)
    after = [np.array(v.numpy()) for v in model.trainable_variables]
    return {
        "same_start": all(np.array_equal(a, b) for a, b in zip(before, [v.numpy() for v in reference.trainable_variables])),
        "update": [(a - b).tolist() for a, b in zip(after, before)],
        "reference": [(-0.1 * g).tolist() for g in whole],
        "means_of_means": [[(-0.1 * g).tolist() for g in halves[k]] for k in (2, 3)],
    }


def one_device_reference(model, split, protocol, seed: int = 0) -> dict:
    """The one-device run a strategy's foresight training must match: the graph trainer (the
    distributed trainer's loop and sample order, on one device), then its top-1 and loss."""
    from dropnet_tf.engines.training import Trainer

    trainer = Trainer(model, protocol, (split.x_train, split.y_train), engine="graph")
    trainer.fit(seed=seed)
    scores = trainer.evaluate((split.x_test, split.y_test))
    return {"top1": scores["accuracy"], "test_loss": scores["loss"]}


def foresight_training(strategy, data) -> dict:
    """train_and_evaluate (the foresight and LayerPrune training) of a model built outside
    the scope, on one device (the graph trainer) and under the strategy, from the same weights."""
    from types import SimpleNamespace

    from dropnet_tf.foresight.experiment import TrainingProtocol, train_and_evaluate

    (x, y), _, (x_test, y_test) = data
    split = SimpleNamespace(x_train=x, y_train=y, x_test=x_test, y_test=y_test, num_classes=10)
    protocol = TrainingProtocol(epochs=2, learning_rate=0.05, batch_size=32)
    found = {}
    for name, strat in (("single", None), ("mirrored", strategy)):
        model = build(5)
        start = [w.copy() for w in model.get_weights()]
        if strat is None:
            outcome = one_device_reference(model, split, protocol, seed=0)
        else:
            outcome = train_and_evaluate(model, split, protocol, seed=0, strategy=strat)
        found[name] = {"top1": outcome["top1"], "test_loss": outcome["test_loss"],
                       "weights": [w.tolist() for w in model.get_weights()],
                       "moved": float(max(np.max(np.abs(a - b)) for a, b in zip(model.get_weights(), start)))}
    return found


def multiworker(out: str) -> None:
    import tensorflow as tf

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    started = time.perf_counter()
    with strategy.scope():
        # Each worker draws other weights: equal masks at the end need the strategy to
        # broadcast θ0 and to reduce gradients and statistics across the workers.
        model = build(100 + index)
    theta0 = [w.tolist() for w in model.get_weights()[:1]]
    records, masks = prune(model, digits(), os.path.join(out, f"worker{index}.jsonl"), strategy, epochs=1, cycles=2)
    report = {"index": index, "replicas": strategy.num_replicas_in_sync, "theta0_kernel": theta0,
              "masks": masks_json(masks), "val_accuracy": [r["val_accuracy"] for r in records],
              "seconds": time.perf_counter() - started}
    with open(os.path.join(out, f"worker{index}.json"), "w") as handle:
        json.dump(report, handle)


FORESIGHT_PROTOCOL = dict(epochs=2, learning_rate=0.05, batch_size=32, momentum=0.9, nesterov=True,
                          weight_decay=5e-4, learning_rate_drops=((16, 0.1),))


def foresight_split():
    """384 training and 128 test digits (384 = 12 global batches of 32: equal shares)."""
    from types import SimpleNamespace

    (x, y), (x_val, y_val), (x_test, y_test) = digits()
    return SimpleNamespace(x_train=np.concatenate([x, x_val]), y_train=np.concatenate([y, y_val]),
                           x_test=x_test, y_test=y_test, num_classes=10)


def foresight_pruned(split, seed: int = 0):
    """LeNet-300-100 on 8x8 digits, SNIP-pruned at r = 10 on one device from 100 training samples."""
    from dropnet_tf.core.backend import keras
    from dropnet_tf.foresight.prune import prune_at_init
    from dropnet_tf.models.foresight import lenet_300_100

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = lenet_300_100(input_shape=(8, 8, 1), num_classes=10, seed=seed)
    prune_at_init(model, "snip", 10.0, data=(split.x_train[:100], split.y_train[:100]), seed=seed)
    return model


def foresight_multiworker(out: str) -> None:
    """One worker of a two-process run of SNIP + foresight training; worker 0 also trains the
    same pruned network on one device (the graph trainer) as the reference."""
    import tensorflow as tf

    from dropnet_tf.foresight.experiment import TrainingProtocol, train_and_evaluate
    from dropnet_tf.foresight.weights import get_weight_masks

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    started = time.perf_counter()
    split = foresight_split()
    protocol = TrainingProtocol(**FORESIGHT_PROTOCOL)
    model = foresight_pruned(split)
    masks_before = get_weight_masks(model)
    outcome = train_and_evaluate(model, split, protocol, seed=0, strategy=strategy)
    masks = get_weight_masks(model)
    kernels = [(np.asarray(layer.masked_weight(name).numpy()), np.asarray(mask.numpy()))
               for layer in model.layers if hasattr(layer, "weight_masks")
               for name, mask in layer.weight_masks.items()]
    report = {
        "index": index, "replicas": strategy.num_replicas_in_sync, "seconds": time.perf_counter() - started,
        "top1": outcome["top1"], "top5": outcome["top5"], "test_loss": outcome["test_loss"],
        "masks": {n: m.astype(int).tolist() for n, m in masks.items()},
        "batchnorm": batchnorm_state(strategy, digits()),
        "masks_unchanged": all(np.array_equal(masks_before[n], masks[n]) for n in masks),
        "density": float(sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values())),
        "pruned_max_abs": max(float(np.max(np.abs(w * (1 - m)))) for w, m in kernels),
        "weights": [w.tolist() for w in model.get_weights()],
    }
    if index == 0:
        reference = foresight_pruned(split)
        start = [w.copy() for w in reference.get_weights()]
        report["single"] = one_device_reference(reference, split, protocol, seed=0)
        report["single"]["weights"] = [w.tolist() for w in reference.get_weights()]
        report["single"]["moved"] = float(max(np.max(np.abs(a - b)) for a, b in zip(reference.get_weights(), start)))
    with open(os.path.join(out, f"foresight{index}.json"), "w") as handle:
        json.dump(report, handle)


def weight_decay(out: str) -> None:
    """Issue 24: SGD with momentum and weight decay in each mode, one and two steps of a softmax
    layer under MirroredStrategy over two logical CPUs (each batch of 8 split 4 + 4), on the
    distributed graph trainer and Keras' distributed fit; OUT/weight_decay.json holds the
    start and end weights for tests/weight_decay_reference.py."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from weight_decay_reference import BATCH, DECAY, LEARNING_RATE, MOMENTUM, X, Y

    from dropnet_tf import TrainingConfig
    from dropnet_tf.core.backend import keras
    from dropnet_tf.engines.training import Trainer

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"replicas": strategy.num_replicas_in_sync, "runs": []}
    for engine in ("graph", "keras"):
        for mode in ("coupled", "decoupled"):
            for steps in (1, 2):
                keras.utils.set_random_seed(3)
                with strategy.scope():
                    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
                    model.layers[-1].bias.assign(np.array([0.3, -0.2, 0.5], "float32"))
                start = [w.tolist() for w in model.get_weights()]
                config = TrainingConfig(max_epochs=1, batch_size=BATCH, shuffle=False, early_stopping=False,
                                        learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=DECAY,
                                        weight_decay_mode=mode)
                Trainer(model, config, (X[:steps * BATCH], Y[:steps * BATCH]), engine=engine, strategy=strategy).fit()
                report["runs"].append({"engine": engine, "mode": mode, "steps": steps, "start": start,
                                       "end": [w.tolist() for w in model.get_weights()]})
    with open(os.path.join(out, "weight_decay.json"), "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    {"mirrored": mirrored, "multiworker": multiworker, "weight_decay": weight_decay,
     "foresight_multiworker": foresight_multiworker}[sys.argv[1]](sys.argv[2])
