"""Scoring cost of the foresight scorers, as multiples of one forward+backward pass.

For each model (VGG-16 and ResNet-56 on CIFAR-shaped input) and each scorer (SNIP, GraSP,
SynFlow — one round — and OBD with a Hutchinson estimate), the median wall time of
``scorer.score`` on one batch is divided by the median time of one plain forward+backward
pass (``tf.GradientTape`` gradient of the cross-entropy w.r.t. the trainable weights) on
the same batch, measured in the same process.  Each scorer is called once first so that
tracing/compilation is not counted (it is reported separately as ``first_call_s``).
Target from the issue: GraSP <= 3x SNIP.

Usage: python bench/bench_foresight_scoring.py [--models vgg16 resnet56] [--batch 128]
       [--repeats 3] [--probes 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from _report import machine, report

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.foresight import prunable_weights
from dropnet_tf.models.foresight import build_foresight_model
from dropnet_tf.core.objective import cross_entropy
from dropnet_tf.foresight.scorers import WEIGHT_SCORERS


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_backward(model):
    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = cross_entropy(model, x, y, training=True)
        return tape.gradient(loss, model.trainable_variables)

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet56"])
    parser.add_argument("--batch", type=int, default=128, help="examples in the scoring batch (SNIP: 128 for CIFAR)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probes", type=int, default=8, help="Hutchinson probes for OBD")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 32, 32, 3), dtype=np.float32)
    y = np.arange(args.batch) % 10  # GraSP draws per class: every class present
    scorers = {
        "snip": WEIGHT_SCORERS["snip"](),
        "grasp": WEIGHT_SCORERS["grasp"](samples_per_class=max(1, args.batch // 10)),
        "synflow": WEIGHT_SCORERS["synflow"](),
        "obd_hutchinson": WEIGHT_SCORERS["obd"](hessian="hutchinson", probes=args.probes),
    }
    results = {"machine": machine(), "tensorflow": tf.__version__, "batch": args.batch, "repeats": args.repeats,
               "obd_probes": args.probes, "models": {}}
    for name in args.models:
        keras.backend.clear_session()
        model = build_foresight_model(name, input_shape=(32, 32, 3), num_classes=10, seed=0)
        weights = prunable_weights(model)
        step = forward_backward(model)
        xt, yt = tf.constant(x), tf.constant(y)
        step(xt, yt)  # trace
        base = median_time(lambda: [g.numpy() for g in step(xt, yt)], args.repeats)
        row = {
            # count_params() would also count the mask variables (one per pruned weight).
            "trainable_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            "prunable_weights": int(sum(w.size for w in weights)),
            "forward_backward_s": base,
            "scorers": {},
        }
        for scorer_name, scorer in scorers.items():
            start = time.perf_counter()
            scorer.score(model, weights, (x, y), np.random.default_rng(0))
            first = time.perf_counter() - start
            seconds = median_time(lambda: scorer.score(model, weights, (x, y), np.random.default_rng(0)), args.repeats)
            row["scorers"][scorer_name] = {"seconds": seconds, "first_call_s": first, "x_forward_backward": seconds / base}
            print(f"{name} {scorer_name}: {seconds:.3f} s = {seconds / base:.2f}x fwd+bwd (first call {first:.1f} s)", flush=True)
        row["grasp_over_snip"] = row["scorers"]["grasp"]["seconds"] / row["scorers"]["snip"]["seconds"]
        results["models"][name] = row
    report(results, args.json)


if __name__ == "__main__":
    main()
