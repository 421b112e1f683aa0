"""XLA on the CPU: one training epoch of Model B (convolutions) and Model A (Dense only), with and without.

Why ``GraphTrainer(jit_compile="auto")`` uses XLA on the CPU only for models without
convolutions.  Each model trains with ``jit_compile=True`` and ``False`` on the same
Fashion-MNIST subset (batch 32, SGD 0.1), alternating for ``--repeats`` rounds in one
process; the first epoch of each (tracing and compiling) is timed apart from the median of
the following ones.

Usage: python bench/bench_xla_cpu.py [--samples 1000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _report import machine, report

from dropnet_tf import load_dataset
from dropnet_tf.core.backend import keras
from dropnet_tf.models import model_a, model_b
from dropnet_tf.engines.graph_trainer import GraphTrainer


def trainer(build, data, jit_compile):
    keras.utils.set_random_seed(0)
    model = build()
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    optimizer.build(model.trainable_variables)
    return GraphTrainer(model, optimizer, "sparse_categorical_crossentropy", data.x_train, data.y_train,
                        batch_size=32, jit_compile=jit_compile)


def epoch_seconds(trainer_, data, seed):
    started = time.perf_counter()
    trainer_.fit(1, validation_data=(data.x_val, data.y_val), seed=seed)
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    data = load_dataset("fashion_mnist").subset(args.samples, 500, 500, seed=0)
    shape, classes = data.input_shape, data.num_classes
    models = {
        "Model B Conv64-Conv64": lambda: model_b((64, 64), input_shape=shape, num_classes=classes),
        "Model A FC40-FC40": lambda: model_a((40, 40), input_shape=shape, num_classes=classes),
    }
    result = {"benchmark": "xla_cpu", "data": f"fashion_mnist {len(data.x_train)} training samples, batch 32",
              "machine": machine(), "models": {}}
    for name, build in models.items():
        trainers = {flag: trainer(build, data, flag) for flag in (True, False)}
        first = {flag: epoch_seconds(t, data, 0) for flag, t in trainers.items()}
        times = {True: [], False: []}
        for repeat in range(args.repeats):
            for flag, t in trainers.items():
                times[flag].append(epoch_seconds(t, data, repeat + 1))
        xla, plain = float(np.median(times[True])), float(np.median(times[False]))
        result["models"][name] = {
            "epoch_seconds_xla": xla, "epoch_seconds_no_xla": plain, "xla_slowdown": xla / plain,
            "first_epoch_seconds_xla": first[True], "first_epoch_seconds_no_xla": first[False],
        }
        print(f"{name}: XLA {xla:.2f} s, without {plain:.2f} s per epoch ({xla / plain:.1f}×)", flush=True)
    report(result, args.json)


if __name__ == "__main__":
    main()
