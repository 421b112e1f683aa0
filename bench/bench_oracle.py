"""One oracle step: batched candidate evaluation vs one ``model.evaluate`` per candidate.

Model A FC20-FC20 (the oracle comparison of DropNet Section 5) trained for one epoch on
Fashion-MNIST; both methods score every one of the 40 active nodes by the training loss
with that node removed, on the same training samples, in one process.

Usage: python bench/bench_oracle.py [--samples 54000] [--json out.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _report import machine, report

from dropnet_tf import load_dataset
from dropnet_tf.core.backend import keras
from dropnet_tf.models import model_a
from dropnet_tf.dropnet.oracle import oracle_scores, oracle_scores_naive


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=54000, help="training samples the loss is measured on")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    data = load_dataset("fashion_mnist")
    x, y = data.x_train[: args.samples], data.y_train[: args.samples]
    model = model_a((20, 20), input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)

    started = time.perf_counter()
    batched = oracle_scores(model, x, y)
    batched_seconds = time.perf_counter() - started
    started = time.perf_counter()
    naive = oracle_scores_naive(model, x, y, batch_size=32)
    naive_seconds = time.perf_counter() - started
    difference = max(float(np.max(np.abs(batched[k] - naive[k]))) for k in batched)

    result = {
        "benchmark": "oracle_step",
        "model": "Model A FC20-FC20 (40 candidates)",
        "samples": len(x),
        "machine": machine(),
        "naive_seconds": naive_seconds,
        "batched_seconds": batched_seconds,
        "speedup": naive_seconds / batched_seconds,
        "max_abs_score_difference": difference,
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
