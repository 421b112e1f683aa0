"""What compaction buys on keras.applications models: masked vs compacted at 50 % of units kept.

ResNet50, MobileNetV2 and EfficientNetB0 (weights=None, 128x128x3 input, 10 classes) get
dependency-group masks (``add_masks(model, groups=True)``).  Each group keeps the half of its
units with the highest E|a| (the statistic of DropNet's ``minimum`` metric, collected on a few
batches of random images; within each group, so that no group empties).  Then, in one process:

* parameters (``count_parameters``) and multiply-adds (``count_flops``) of the masked model
  (the dense cost it is computed at) and of ``compact(masked)``;
* Keras latency (``compare_latency``: tf.function, warm-up, median of interleaved repeats) of
  the masked and the compacted model at batch 1 and batch 8;
* TFLite latency (``tflite_latency``: XNNPACK, median of repeats) of both at batch 1;
* the multiply-add ideal speedup (masked MACs / compacted MACs) beside the measured ones.

Usage: python bench/bench_applications_compaction.py [--models ResNet50 ...] [--size 128]
       [--repeats N] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import time

import numpy as np

from _report import machine, report

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.compaction import compact
from dropnet_tf.compaction.latency import compare_latency, tflite_available, tflite_bytes, tflite_latency
from dropnet_tf.compaction.counting import count_flops, count_parameters
from dropnet_tf.core.masking import add_masks, mask_layers, set_masks
from dropnet_tf.core.statistics import collect_statistics

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "applications_compaction_cpu.json")
MODELS = ("ResNet50", "MobileNetV2", "EfficientNetB0")
tf.get_logger().setLevel("ERROR")


def keep_half_by_minimum(masked, x) -> None:
    """In every group, keep the ceil(units / 2) units of highest E|a| over ``x``."""
    statistics = collect_statistics(masked, x, batch_size=16)
    masks = {}
    for layer in mask_layers(masked):
        score = statistics.mean_abs[layer.name]
        keep = np.argsort(-score, kind="stable")[: (layer.units + 1) // 2]
        mask = np.zeros(layer.units, np.float32)
        mask[keep] = 1.0
        masks[layer.name] = mask
    set_masks(masked, masks)


def one(name, size, repeats):
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    masked = add_masks(model, groups=True)
    x = np.random.default_rng(0).uniform(0, 255, (48, size, size, 3)).astype("float32")
    keep_half_by_minimum(masked, x)
    small = compact(masked)
    probe = x[:4]
    delta = float(np.abs(np.asarray(small(probe)) - np.asarray(masked(probe))).max())
    macs_masked, macs_small = count_flops(masked), count_flops(small)
    entry = {
        "groups": len(mask_layers(masked)),
        "units_kept": float(np.mean([layer.get_mask().mean() for layer in mask_layers(masked)])),
        "params_masked": int(count_parameters(masked)),
        "params_compact": int(count_parameters(small)),
        "macs_masked": int(macs_masked),
        "macs_compact": int(macs_small),
        "ideal_speedup": macs_masked / macs_small,
        "max_abs_delta": delta,
        "keras": {},
    }
    for batch in (1, 8):
        timed = compare_latency({"masked": masked, "compact": small}, batch, warmup=3, repeats=repeats)
        entry["keras"][f"batch_{batch}"] = {
            "masked_s": timed["masked"].median_s,
            "compact_s": timed["compact"].median_s,
            "speedup": timed["masked"].median_s / timed["compact"].median_s,
        }
    if tflite_available():
        started = time.perf_counter()
        dense_bytes, small_bytes = tflite_bytes(masked), tflite_bytes(small)
        entry["tflite_bytes_masked"], entry["tflite_bytes_compact"] = len(dense_bytes), len(small_bytes)
        a = tflite_latency(dense_bytes, 1, repeats=repeats, num_threads=1)
        b = tflite_latency(small_bytes, 1, repeats=repeats, num_threads=1)
        entry["tflite"] = {"batch_1": {"masked_s": a.median_s, "compact_s": b.median_s,
                                       "speedup": a.median_s / b.median_s},
                           "seconds": time.perf_counter() - started}
    for key, value in list(entry["keras"].items()) + list(entry.get("tflite", {}).items()):
        if isinstance(value, dict):
            value["of_ideal"] = value["speedup"] / entry["ideal_speedup"]
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    result = {"machine": machine(), "input": [args.size, args.size, 3], "repeats": args.repeats,
              "load_before": os.getloadavg()[0], "models": {}}
    for name in args.models:
        result["models"][name] = one(name, args.size, args.repeats)
        print(name, result["models"][name], flush=True)
    result["load_after"] = os.getloadavg()[0]
    report(result, args.json)


if __name__ == "__main__":
    main()
