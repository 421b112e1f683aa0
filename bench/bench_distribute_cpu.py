"""tf.distribute on the CPU: one training epoch of Model A on one device and under MirroredStrategy.

What a strategy costs where it cannot pay off: the CPU is split into two logical devices
(they share the same cores), and one epoch of Model A FC40-FC40 on the digits (batch 32,
SGD 0.1) is timed with the single-device ``GraphTrainer``, with ``DistributedTrainer``
under ``MirroredStrategy`` over one and over two logical devices, and with Keras'
``Model.fit`` under the two-device strategy.  The arms alternate for ``--repeats`` rounds
in one process; the first epoch of each (tracing) is reported apart from the median of the
following ones, and every arm as a multiple of the graph trainer.

Usage: python bench/bench_distribute_cpu.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import tensorflow as tf

# Before TensorFlow initialises: two logical CPU devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import numpy as np  # noqa: E402

from _report import machine, report  # noqa: E402

from dropnet_tf import load_dataset  # noqa: E402
from dropnet_tf.core.backend import keras  # noqa: E402
from dropnet_tf.engines.distributed_training import DistributedTrainer  # noqa: E402
from dropnet_tf.engines.graph_trainer import GraphTrainer  # noqa: E402
from dropnet_tf.models import model_a  # noqa: E402


def _built(data, strategy=None):
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes)
        optimizer = keras.optimizers.SGD(learning_rate=0.1)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def arms(data):
    x, y, loss = data.x_train, data.y_train, "sparse_categorical_crossentropy"
    found = {}
    model, optimizer = _built(data)
    graph = GraphTrainer(model, optimizer, loss, x, y, batch_size=32, jit_compile=False)
    found["graph trainer, one device"] = lambda seed: graph.fit(1, seed=seed)
    # One strategy per set of devices: two strategies over the same devices in one process
    # would draw the same collective keys (TensorFlow aborts on the shape mismatch).
    strategies = {devices: tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)]) for devices in (1, 2)}
    for devices, strategy in strategies.items():
        model, optimizer = _built(data, strategy)
        trainer = DistributedTrainer(model, optimizer, loss, x, y, strategy, batch_size=32)
        found[f"DistributedTrainer, mirrored over {devices}"] = (lambda t: lambda seed: t.fit(1, seed=seed))(trainer)
    strategy = strategies[2]
    model, optimizer = _built(data, strategy)
    with strategy.scope():
        model.compile(optimizer=optimizer, loss=loss)
    found["Model.fit, mirrored over 2"] = lambda seed: model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    data = load_dataset("digits")
    result = {"benchmark": "distribute_cpu", "data": f"digits {len(data.x_train)} training samples, batch 32, "
              "Model A FC40-FC40, 2 logical CPU devices on the same cores", "machine": machine(), "arms": {}}
    runs = arms(data)
    first, times = {}, {name: [] for name in runs}
    for name, run in runs.items():
        started = time.perf_counter()
        run(0)
        first[name] = time.perf_counter() - started
    for repeat in range(args.repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run(repeat + 1)
            times[name].append(time.perf_counter() - started)
    base = float(np.median(times["graph trainer, one device"]))
    for name in runs:
        median = float(np.median(times[name]))
        result["arms"][name] = {"epoch_seconds": median, "first_epoch_seconds": first[name],
                                "times_graph_trainer": median / base}
        print(f"{name}: {median:.3f} s per epoch ({median / base:.1f}× the graph trainer)", flush=True)
    report(result, args.json)


if __name__ == "__main__":
    main()
