"""Per-cycle wall time of dropnet_tf's Algorithm 1 vs the naive flow of the original notebook.

Same model (Model A FC40-FC40), data (Fashion-MNIST, 54000/6000/10000), batch size 32,
SGD 0.1 and a fixed number of epochs per cycle (early stopping is kept but cannot fire
before the last epoch), run side by side in one process.

naive, as the authors' notebook does each cycle: clear the session, rebuild the model with
the current mask, load θ0, recompile, ``fit``, ``evaluate`` train/val/test with Keras'
default batch size, then ``predict`` every mask output for the whole training set and
average |a| in numpy.

dropnet_tf: one compiled model; each cycle assigns θ0, the mask and the optimizer state,
trains many steps per call into TensorFlow (dropnet_tf.core.training.GraphTrainer), evaluates,
and reduces statistics in-graph.

Usage: python bench/bench_iterative_cycle.py [--epochs 2] [--cycles 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _report import machine, report

from dropnet_tf import load_dataset
from dropnet_tf.core.backend import keras
from dropnet_tf.dropnet.iterative import IterativePruner, TrainingConfig
from dropnet_tf.core.masking import mask_layers, set_masks
from dropnet_tf.dropnet.metrics import update_masks
from dropnet_tf.models import model_a
from dropnet_tf.core.statistics import UnitStatistics


def naive_cycle(theta0, masks, data, epochs, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes)
    model.set_weights(theta0)
    set_masks(model, masks)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs)
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=epochs, validation_data=(data.x_val, data.y_val),
              callbacks=[stopper], verbose=0)
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        model.evaluate(x, y, verbose=0)
    layers = mask_layers(model)
    activations = keras.Model(model.inputs, [layer.output for layer in layers]).predict(data.x_train, verbose=0)
    mean_abs = {layer.name: np.abs(a).mean(axis=0) for layer, a in zip(layers, activations)}
    statistics = UnitStatistics(mean_abs=mean_abs, apoz=mean_abs, num_samples=len(data.x_train))
    return update_masks(masks, statistics, "minimum", 0.2, rng=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    data = load_dataset("fashion_mnist")
    keras.utils.set_random_seed(0)
    reference = model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    theta0 = [w for w in reference.get_weights()]

    naive_seconds = []
    masks = {layer.name: np.ones(layer.units, np.float32) for layer in mask_layers(reference)}
    for cycle in range(args.cycles):
        started = time.perf_counter()
        masks = naive_cycle(theta0, masks, data, args.epochs, seed=cycle)
        naive_seconds.append(time.perf_counter() - started)
        print(f"naive cycle {cycle}: {naive_seconds[-1]:.1f} s", flush=True)

    keras.backend.clear_session()
    model = model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    setup_started = time.perf_counter()
    pruner = IterativePruner(model, data, "minimum", training=TrainingConfig(max_epochs=args.epochs,
                             patience=args.epochs, batch_size=32), verbose=0)
    setup_seconds = time.perf_counter() - setup_started
    ours_seconds = []
    masks = {layer.name: np.ones(layer.units, np.float32) for layer in mask_layers(model)}
    for cycle in range(args.cycles):
        started = time.perf_counter()
        pruner.reset(cycle, masks)
        pruner.train(cycle)
        pruner.evaluate()
        masks = pruner.next_masks(cycle, masks)
        ours_seconds.append(time.perf_counter() - started)
        print(f"dropnet_tf cycle {cycle}: {ours_seconds[-1]:.1f} s", flush=True)

    result = {
        "benchmark": "iterative_cycle",
        "model": "Model A FC40-FC40",
        "data": f"fashion_mnist {len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)}",
        "batch_size": 32,
        "epochs_per_cycle": args.epochs,
        "cycles": args.cycles,
        "machine": machine(),
        "naive_seconds_per_cycle": float(np.median(naive_seconds)),
        "dropnet_tf_seconds_per_cycle": float(np.median(ours_seconds)),
        "dropnet_tf_setup_seconds_once": setup_seconds,
        "speedup": float(np.median(naive_seconds) / np.median(ours_seconds)),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
