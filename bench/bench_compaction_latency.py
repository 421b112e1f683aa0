"""Latency of dense vs masked vs compacted models, next to the FLOP-ideal speedup.

For Model C (Conv64-64-128-128, 32x32x3 input) and VGG19 (CIFAR shape), at 80/50/20/10 % of
filters remaining: every masked layer keeps ``max(1, round(fraction * units))`` of its units,
chosen at random with a fixed seed.  Three versions of each model are timed in one process:

* dense: the same architecture built without MaskLayers (same seed, same weights);
* masked: the model with its MaskLayers set (still computes every unit);
* compacted: ``dropnet_tf.compaction.compact(masked)``, the masked units physically removed.

Latency is the median over ``repeats`` timed calls of ``tf.function(model(x, training=False))``
after tracing and warm-up, at batch 1 and batch 64; all versions of one model are timed with
their calls interleaved (``compare_latency``) so that load changes on the machine hit them
alike.  FLOP speedup = dense MACs / compacted MACs (``count_flops``); measured speedup = dense
latency / compacted latency; their ratio is the fraction of the ideal speedup realised.
Target from the issue: ratio >= 0.8 at batch 64 on CPU.  Also reported: parameter counts and
float32 TFLite file sizes of the dense and compacted models.

Usage: python bench/bench_compaction_latency.py [--quick] [--models model_c vgg19]
       [--fractions 0.8 0.5 0.2 0.1] [--repeats-b1 N] [--repeats-b64 N] [--json PATH]

``--quick`` (smoke test: Model C only, few repeats) writes no JSON unless ``--json`` is given;
a full run writes ``bench/results/compaction_latency_cpu.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep the TFLite converter's logs out of the table

import argparse
import json
import tempfile
import time

import numpy as np

from _report import machine

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.compaction.compact import compact
from dropnet_tf.compaction.counting import count_flops, count_parameters
from dropnet_tf.compaction.latency import compare_latency, export_tflite, tflite_available, tflite_latency
from dropnet_tf.core.masking import get_masks, set_masks
from dropnet_tf.models import model_c, vgg19
from dropnet_tf.core.io import atomic_write_text

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "compaction_latency_cpu.json")
BUILDERS = {
    "model_c": lambda masked: model_c(input_shape=(32, 32, 3), masked=masked, seed=0),
    "vgg19": lambda masked: vgg19(masked=masked, seed=0),
}
BATCH_SIZES = (1, 64)
TARGET = 0.8
#: compact(channel_multiple=ROUND_TO) is timed too: CPU convolutions vectorise over channel blocks.
ROUND_TO = 8
# Every timed model gets its own tf.function, which TensorFlow's retracing heuristic reports
# as "tf.function created in a loop"; each one is in fact traced once.
tf.get_logger().setLevel("ERROR")


def random_masks(model, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Keep ``max(1, round(fraction * units))`` units of every MaskLayer, at random."""
    rng = np.random.default_rng(seed)
    masks = {}
    for name, mask in get_masks(model).items():
        keep = max(1, int(round(fraction * mask.size)))
        chosen = rng.choice(mask.size, size=keep, replace=False)
        new = np.zeros(mask.size, np.float32)
        new[chosen] = 1.0
        masks[name] = new
    return masks


def max_abs_difference(masked, compacted, x) -> dict[str, float]:
    """Largest output difference, and that of the softmax's input (the untrained softmax is
    nearly uniform, so its output alone would hide errors)."""

    def penultimate(model):
        return keras.Model(model.input, model.get_layer("predictions").input)(x, training=False)

    pairs = {
        "output": (masked(x, training=False), compacted(x, training=False)),
        "penultimate": (penultimate(masked), penultimate(compacted)),
    }
    return {key: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for key, (a, b) in pairs.items()}


def tflite_size(model, directory: str, name: str) -> int | None:
    if not tflite_available():
        return None
    path = os.path.join(directory, f"{name}.tflite")
    size = export_tflite(model, path)
    os.remove(path)
    return size


def bench_model(name: str, fractions, args, tmp: str) -> dict:
    keras.backend.clear_session()
    started = time.perf_counter()
    dense = BUILDERS[name](False)
    dense_flops = count_flops(dense)
    row = {
        "dense": {
            "flops": dense_flops,
            "parameters": count_parameters(dense),
            "tflite_bytes": tflite_size(dense, tmp, f"{name}_dense"),
        },
        "fractions": [],
    }
    x = np.random.default_rng(1).standard_normal((8, *dense.inputs[0].shape[1:])).astype(np.float32)
    models = {"dense": dense}
    for index, fraction in enumerate(fractions):
        masked = BUILDERS[name](True)
        masks = random_masks(masked, fraction, seed=1000 + index)
        set_masks(masked, masks)
        compacted = compact(masked)
        rounded = compact(masked, channel_multiple=ROUND_TO)
        difference = max_abs_difference(masked, compacted, x)
        rounded_difference = max_abs_difference(masked, rounded, x)
        flops = count_flops(compacted)
        row["fractions"].append(
            {
                "fraction_remaining": fraction,
                "kept_units": int(sum(m.sum() for m in masks.values())),
                "total_units": int(sum(m.size for m in masks.values())),
                "flops": flops,
                "parameters": count_parameters(compacted),
                "masked_parameters": count_parameters(masked),
                "tflite_bytes": tflite_size(compacted, tmp, f"{name}_{fraction}"),
                "max_abs_output_difference": difference["output"],
                "max_abs_penultimate_difference": difference["penultimate"],
                "outputs_equal_1e-5": max(difference.values()) <= 1e-5,
                "flop_speedup": dense_flops / flops,
                "rounded": {
                    "channel_multiple": ROUND_TO,
                    "flops": count_flops(rounded),
                    "parameters": count_parameters(rounded),
                    "outputs_equal_1e-5": max(rounded_difference.values()) <= 1e-5,
                },
            }
        )
        models[f"rounded_{fraction}"] = rounded
        models[f"masked_{fraction}"] = masked
        models[f"compacted_{fraction}"] = compacted
    setup_s = time.perf_counter() - started

    latency = {}
    for batch in BATCH_SIZES:
        repeats = args.repeats_b1 if batch == 1 else args.repeats_b64
        t = time.perf_counter()
        latency[batch] = compare_latency(models, batch, warmup=args.warmup, repeats=repeats, seed=0)
        print(f"{name}: batch {batch} timed ({len(models)} models x {repeats} repeats) in {time.perf_counter() - t:.0f} s",
              flush=True)
    row["dense"]["latency"] = {str(b): latency[b]["dense"].as_dict() for b in BATCH_SIZES}
    for entry in row["fractions"]:
        fraction = entry["fraction_remaining"]
        entry["latency"] = {
            kind: {str(b): latency[b][f"{kind}_{fraction}"].as_dict() for b in BATCH_SIZES}
            for kind in ("masked", "compacted")
        }
        measured = {str(b): latency[b]["dense"].median_s / latency[b][f"compacted_{fraction}"].median_s for b in BATCH_SIZES}
        entry["measured_speedup"] = measured
        entry["masked_speedup"] = {
            str(b): latency[b]["dense"].median_s / latency[b][f"masked_{fraction}"].median_s for b in BATCH_SIZES
        }
        entry["measured_over_flop_speedup"] = {b: s / entry["flop_speedup"] for b, s in measured.items()}
        entry["meets_target_batch64"] = entry["measured_over_flop_speedup"]["64"] >= TARGET
        # Widths rounded up to a multiple of ROUND_TO: compared with the *exact* compaction's
        # FLOP ideal, so the padding's extra FLOPs count against it.
        rounded = entry["rounded"]
        rounded["latency"] = {str(b): latency[b][f"rounded_{fraction}"].as_dict() for b in BATCH_SIZES}
        rounded["measured_speedup"] = {
            str(b): latency[b]["dense"].median_s / latency[b][f"rounded_{fraction}"].median_s for b in BATCH_SIZES
        }
        rounded["measured_over_flop_speedup"] = {
            b: v / entry["flop_speedup"] for b, v in rounded["measured_speedup"].items()
        }
        rounded["meets_target_batch64"] = rounded["measured_over_flop_speedup"]["64"] >= TARGET
    if tflite_available():
        # The deployed view: TFLite's CPU kernels, dense and compacted at batch 64.
        t = time.perf_counter()
        dense_tflite = tflite_latency(dense, 64, repeats=args.repeats_b64)
        row["dense"]["tflite_latency_64"] = dense_tflite.as_dict()
        for entry in row["fractions"]:
            compacted = models[f"compacted_{entry['fraction_remaining']}"]
            result = tflite_latency(compacted, 64, repeats=args.repeats_b64)
            speedup = dense_tflite.median_s / result.median_s
            entry["tflite_latency_64"] = result.as_dict()
            entry["tflite_speedup_64"] = speedup
            entry["tflite_over_flop_speedup_64"] = speedup / entry["flop_speedup"]
        print(f"{name}: TFLite batch 64 timed in {time.perf_counter() - t:.0f} s", flush=True)
    row["setup_s"] = setup_s
    return row


def print_table(results: dict) -> None:
    ms = lambda r: 1000.0 * r["median_s"]  # noqa: E731

    def tfl_ms(entry):
        found = entry.get("tflite_latency_64")
        return "-" if found is None else f"{ms(found):.1f}"

    header = (
        f"{'model':8} {'kept':>5} {'params':>10} {'MMACs':>8} {'FLOPx':>6} | "
        f"{'b1 dense':>8} {'masked':>7} {'compact':>7} {'x':>5} | "
        f"{'b64 dense':>9} {'masked':>7} {'compact':>7} {'x':>6} {'x/FLOPx':>7} | "
        f"{'c' + str(ROUND_TO) + ' b64':>7} {'x/FLOPx':>7} | {'TFL b64':>7} {'x/FLOPx':>7} | {'TFLite MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, row in results["models"].items():
        dense = row["dense"]
        d1, d64 = dense["latency"]["1"], dense["latency"]["64"]
        tfl = "-" if dense["tflite_bytes"] is None else f"{dense['tflite_bytes'] / 2**20:.2f}"
        print(
            f"{name:8} {'100%':>5} {dense['parameters']:>10,} {dense['flops'] / 1e6:>8.1f} {1.0:>6.2f} | "
            f"{ms(d1):>8.2f} {'':>7} {'':>7} {'':>5} | {ms(d64):>9.1f} {'':>7} {'':>7} {'':>6} {'':>7} | "
            f"{'':>7} {'':>7} | {tfl_ms(dense):>7} {'':>7} | {tfl:>9}"
        )
        for e in row["fractions"]:
            lat = e["latency"]
            tfl = "-" if e["tflite_bytes"] is None else f"{e['tflite_bytes'] / 2**20:.2f}"
            print(
                f"{'':8} {e['fraction_remaining']:>5.0%} {e['parameters']:>10,} {e['flops'] / 1e6:>8.1f} "
                f"{e['flop_speedup']:>6.2f} | "
                f"{'':>8} {ms(lat['masked']['1']):>7.2f} {ms(lat['compacted']['1']):>7.2f} {e['measured_speedup']['1']:>5.2f} | "
                f"{'':>9} {ms(lat['masked']['64']):>7.1f} {ms(lat['compacted']['64']):>7.1f} "
                f"{e['measured_speedup']['64']:>6.2f} {e['measured_over_flop_speedup']['64']:>7.2f} | "
                f"{ms(e['rounded']['latency']['64']):>7.1f} {e['rounded']['measured_over_flop_speedup']['64']:>7.2f} | "
                f"{tfl_ms(e):>7} {e.get('tflite_over_flop_speedup_64', float('nan')):>7.2f} | {tfl:>9}"
            )
    print("latencies: median ms; x = dense / compacted latency; x/FLOPx = measured / FLOP-ideal speedup "
          f"(target >= {TARGET} at batch 64); c{ROUND_TO} = compact(channel_multiple={ROUND_TO}), its x/FLOPx "
          "against the exact compaction's FLOP ideal; TFL = the compacted model's TFLite latency, its speedup over "
          "the dense TFLite model / FLOP ideal")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: Model C only, few repeats, no JSON by default")
    parser.add_argument("--models", nargs="+", choices=sorted(BUILDERS), default=None)
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.8, 0.5, 0.2, 0.1])
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per model after tracing")
    parser.add_argument("--repeats-b1", type=int, default=None, help="timed calls per model at batch 1")
    parser.add_argument("--repeats-b64", type=int, default=None, help="timed calls per model at batch 64")
    parser.add_argument("--json", default=None, help=f"output path (default {DEFAULT_JSON}; none with --quick)")
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = ["model_c"] if args.quick else ["model_c", "vgg19"]
    if args.warmup is None:
        args.warmup = 2 if args.quick else 3
    if args.repeats_b1 is None:
        args.repeats_b1 = 10 if args.quick else 50
    if args.repeats_b64 is None:
        args.repeats_b64 = 5 if args.quick else 20
    json_path = args.json if args.json is not None else (None if args.quick else DEFAULT_JSON)
    if any(not 0 < f <= 1 for f in args.fractions):
        parser.error("--fractions must lie in (0, 1]")

    started = time.perf_counter()
    results = {
        "benchmark": "compaction_latency",
        "machine": machine(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "quick": args.quick,
        "warmup": args.warmup,
        "repeats": {"1": args.repeats_b1, "64": args.repeats_b64},
        "flops": "multiply-accumulates of Dense and Conv layers per forward pass of one example",
        "target": f"measured_over_flop_speedup >= {TARGET} at batch 64 on CPU",
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            results["models"][name] = bench_model(name, args.fractions, args, tmp)
    results["total_s"] = time.perf_counter() - started
    print_table(results)
    print(f"total {results['total_s']:.0f} s")
    for name, row in results["models"].items():
        for e in row["fractions"]:
            if not e["outputs_equal_1e-5"]:
                print(f"WARNING: {name} at {e['fraction_remaining']:.0%}: compacted outputs differ from the masked "
                      f"model's by {e['max_abs_output_difference']:.3g} (softmax input {e['max_abs_penultimate_difference']:.3g})")
    if json_path:
        atomic_write_text(json_path, json.dumps(results, indent=2) + "\n")
        print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
