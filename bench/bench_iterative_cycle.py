"""Per-cycle wall time of dropnet_tf's Algorithm 1 vs the naive flow of the original notebook.

Same model (Model A FC40-FC40), data (Fashion-MNIST, 54000/6000/10000), batch size 32,
SGD 0.1 and a fixed number of epochs per cycle (early stopping is kept but cannot fire
before the last epoch), run side by side in one process, at 3 and at 10 epochs per cycle
(issue 15: at least 10x at both).

naive, as the authors' notebook does each cycle: clear the session, rebuild the model with
the current mask, load θ0, recompile, ``fit``, ``evaluate`` train/val/test with Keras'
default batch size, then ``predict`` every mask output for the whole training set and
average |a| in numpy.

dropnet_tf: one compiled model; each cycle assigns θ0, the mask and the optimizer state,
trains many steps per call into TensorFlow (dropnet_tf.engines.graph_trainer.GraphTrainer), then
reads the training set once for its loss, accuracy and unit statistics
(dropnet_tf.engines.statistics_pass) and validation and test through the evaluation traced
for the validation of every epoch.

The headline "speedup" is the ratio of the median cycles; "speedup_all_cycles" the ratio of
the mean cycles, the first one (which traces, and for dropnet_tf compiles with XLA) included;
"speedup_cpu_time" the ratio of the median CPU seconds of the process (less sensitive to
other jobs on shared cores than wall time).

Usage: python bench/bench_iterative_cycle.py [--epochs 3 10] [--cycles 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _report import machine, report

from dropnet_tf import load_dataset
from dropnet_tf.core.backend import keras
from dropnet_tf.dropnet.iterative import IterativePruner
from dropnet_tf.engines.config import TrainingConfig
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


def ours_cycle(pruner, cycle, masks):
    """One cycle of IterativePruner: (new masks, {phase: seconds})."""
    marks = [time.perf_counter()]
    pruner.reset(cycle, masks)
    pruner.train(cycle)
    marks.append(time.perf_counter())
    pruner.evaluate()
    marks.append(time.perf_counter())
    masks = pruner.next_masks(cycle, masks)
    marks.append(time.perf_counter())
    return masks, dict(zip(("reset_and_train", "evaluate", "next_masks"), np.diff(marks).tolist()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 10], help="epochs per cycle, one setting each")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.cycles < 1 or any(e < 1 for e in args.epochs):
        parser.error(f"--cycles and every --epochs must be >= 1, got cycles={args.cycles}, epochs={args.epochs}.")

    load_before = os.getloadavg()
    data = load_dataset("fashion_mnist")
    keras.utils.set_random_seed(0)
    reference = model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    theta0 = [w for w in reference.get_weights()]

    settings = []
    for epochs in args.epochs:
        keras.backend.clear_session()
        model = model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
        setup_started = time.perf_counter()
        pruner = IterativePruner(model, data, "minimum", training=TrainingConfig(max_epochs=epochs,
                                 patience=epochs, batch_size=32), verbose=0)
        setup_seconds = time.perf_counter() - setup_started
        # The arms alternate cycle by cycle, so that the load of a shared machine, which
        # drifts over minutes, falls on both alike.  (The naive cycle's clear_session leaves
        # the pruner's model and traced functions alone; it empties the eager kernel cache,
        # which if anything slows the dropnet_tf cycle after it.)
        naive_seconds, ours_seconds, phases, naive_cpu, ours_cpu = [], [], [], [], []
        naive_masks = {layer.name: np.ones(layer.units, np.float32) for layer in mask_layers(reference)}
        ours_masks = {layer.name: np.ones(layer.units, np.float32) for layer in mask_layers(model)}
        for cycle in range(args.cycles):
            started, cpu_started = time.perf_counter(), time.process_time()
            naive_masks = naive_cycle(theta0, naive_masks, data, epochs, seed=cycle)
            naive_seconds.append(time.perf_counter() - started)
            naive_cpu.append(time.process_time() - cpu_started)
            cpu_started = time.process_time()
            ours_masks, phase = ours_cycle(pruner, cycle, ours_masks)
            ours_cpu.append(time.process_time() - cpu_started)
            ours_seconds.append(sum(phase.values()))
            phases.append(phase)
            print(f"{epochs} epochs, cycle {cycle}: naive {naive_seconds[-1]:.1f} s, dropnet_tf {ours_seconds[-1]:.2f} s "
                  f"({', '.join(f'{k} {v:.2f}' for k, v in phase.items())})", flush=True)
        settings.append({
            "epochs_per_cycle": epochs,
            "naive_seconds": naive_seconds,
            "dropnet_tf_seconds": ours_seconds,
            "naive_seconds_per_cycle": float(np.median(naive_seconds)),
            "dropnet_tf_seconds_per_cycle": float(np.median(ours_seconds)),
            "dropnet_tf_phase_seconds_per_cycle": {
                name: float(np.median([p[name] for p in phases])) for name in phases[0]
            },
            "dropnet_tf_setup_seconds_once": setup_seconds,
            "speedup": float(np.median(naive_seconds) / np.median(ours_seconds)),
            "speedup_all_cycles": float(np.mean(naive_seconds) / np.mean(ours_seconds)),
            # CPU seconds of the process (all its threads): what the cycle cost in work, which
            # other jobs on the cores change less than the wall time.
            "naive_cpu_seconds": naive_cpu,
            "dropnet_tf_cpu_seconds": ours_cpu,
            "speedup_cpu_time": float(np.median(naive_cpu) / np.median(ours_cpu)),
        })

    result = {
        "benchmark": "iterative_cycle",
        "model": "Model A FC40-FC40",
        "data": f"fashion_mnist {len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)}",
        "batch_size": 32,
        "cycles": args.cycles,
        "machine": machine(),
        "load_average_1min_before_after": [load_before[0], os.getloadavg()[0]],
        "target_speedup": 10,
        "settings": settings,
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
