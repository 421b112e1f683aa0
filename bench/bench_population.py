"""Population training vs one run after the other, and the memory of a population.

Speed: Model A FC40-FC40 on Fashion-MNIST, 30 DropNet runs (6 metrics x 5 seeds), a fixed
number of epochs per cycle (early stopping kept, with a patience it cannot reach),
``run_experiment`` once with the default path (each run alone through ``iterative_prune``)
and once with ``population=30`` (:mod:`dropnet_tf.dropnet.population`), in one process, on
a subset of the data and a few cycles so that both arms fit in minutes on one busy core.
Both arms write their records to a results file; the JSON also says how far the two
record sets differ (they should agree up to summation order).

Memory: the peak resident memory (and on a GPU, the device's peak) of one child process
training a population of 30 Model B Conv64-Conv64 runs for one cycle, next to a child
training one Model B run alone.

Runs per second are runs / wall seconds of each arm, on whatever device TensorFlow uses (on
a GPU, runs per second of device time).

Usage: python bench/bench_population.py [--train 3000] [--epochs 2] [--cycles 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from _report import machine, report

METRICS = ("minimum", "maximum", "random", "minimum_layer", "maximum_layer", "random_layer")
SEEDS = (0, 1, 2, 3, 4)


def _subset(data, train: int, val: int, test: int):
    return ((data.x_train[:train], data.y_train[:train]), (data.x_val[:val], data.y_val[:val]),
            (data.x_test[:test], data.y_test[:test]))


def _device() -> str:
    from dropnet_tf.core.backend import tf

    gpus = tf.config.list_logical_devices("GPU")
    return "GPU " + gpus[0].name if gpus else "CPU"


def speed(args) -> dict:
    import dropnet_tf
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.models import model_a

    data = _subset(dropnet_tf.load_dataset("fashion_mnist"), args.train, args.val, args.test)
    config = TrainingConfig(max_epochs=args.epochs, patience=args.epochs, batch_size=32)
    settings = dict(fraction=0.2, min_fraction=0.0, max_cycles=args.cycles, training=config, verbose=0)

    def build(seed):
        return model_a((40, 40), input_shape=(28, 28, 1), num_classes=10, seed=seed)

    arms = {}
    with tempfile.TemporaryDirectory() as folder:
        for arm, population in (("sequential", None), ("population", len(METRICS) * len(SEEDS))):
            path = os.path.join(folder, f"{arm}.jsonl")
            started = time.perf_counter()
            records = dropnet_tf.run_experiment(build, data, list(METRICS), list(SEEDS), path, "bench",
                                                population=population, **settings)
            arms[arm] = {"seconds": time.perf_counter() - started, "records": records}
    key = lambda r: (r["metric"], r["seed"], r["cycle"])  # noqa: E731
    sequential = {key(r): r for r in arms["sequential"]["records"]}
    together = {key(r): r for r in arms["population"]["records"]}
    same_keys = sorted(sequential) == sorted(together)
    runs = len(METRICS) * len(SEEDS)
    return {
        "model": "Model A FC40-FC40",
        "data": f"fashion_mnist first {args.train}/{args.val}/{args.test} (train/val/test)",
        "runs": runs,
        "grid": f"{len(METRICS)} metrics x {len(SEEDS)} seeds, init original, p = 0.2",
        "epochs_per_cycle": args.epochs,
        "cycles_per_run": args.cycles,
        "batch_size": 32,
        "sequential_seconds": arms["sequential"]["seconds"],
        "population_seconds": arms["population"]["seconds"],
        "speedup": arms["sequential"]["seconds"] / arms["population"]["seconds"],
        "sequential_runs_per_second": runs / arms["sequential"]["seconds"],
        "population_runs_per_second": runs / arms["population"]["seconds"],
        "records_match": {
            "same_runs_and_cycles": same_keys,
            "same_masks": same_keys and all(
                sequential[k]["units_per_layer"] == together[k]["units_per_layer"] for k in sequential),
            "max_abs_test_loss_difference": max(
                abs(sequential[k]["test_loss"] - together[k]["test_loss"]) for k in sequential) if same_keys else None,
            "max_abs_test_accuracy_difference": max(
                abs(sequential[k]["test_accuracy"] - together[k]["test_accuracy"]) for k in sequential)
            if same_keys else None,
        },
    }


def memory_child(runs: int, train: int) -> None:
    """Trains ``runs`` Model B runs for one cycle (one epoch) and prints its peak memory as JSON."""
    import dropnet_tf
    from dropnet_tf.core.backend import tf
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.models import model_b

    data = _subset(dropnet_tf.load_dataset("fashion_mnist"), train, 500, 500)
    before = _rss_mib()
    peak = [before]
    done = threading.Event()

    def watch():  # the resident memory, sampled while the runs train (ru_maxrss also counts the data loading)
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_mib())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        dropnet_tf.run_experiment(
            lambda seed: model_b((64, 64), input_shape=(28, 28, 1), num_classes=10, seed=seed), data,
            ["minimum"], list(range(runs)), os.path.join(folder, "r.jsonl"), "memory",
            population=runs if runs > 1 else None, max_cycles=1, min_fraction=0.0,
            training=TrainingConfig(max_epochs=1, batch_size=32), verbose=0)
        seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    peak[0] = max(peak[0], _rss_mib())
    found = {"runs": runs, "rss_before_mib": before, "peak_rss_while_training_mib": peak[0],
             "training_added_mib": peak[0] - before,
             "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}
    if tf.config.list_logical_devices("GPU"):
        found["gpu_peak_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    print("MEMORY " + json.dumps(found), flush=True)


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory(args) -> dict:
    found = {}
    for label, runs in (("one_run", 1), ("population", args.memory_runs)):
        output = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", str(runs), "--memory-train",
             str(args.memory_train)], capture_output=True, text=True, check=True, env=os.environ.copy(),
        ).stdout
        line = next(line for line in output.splitlines() if line.startswith("MEMORY "))
        found[label] = json.loads(line[len("MEMORY "):])
    return {
        "model": "Model B Conv64-Conv64",
        "data": f"fashion_mnist first {args.memory_train} training samples, one cycle of one epoch",
        **found,
        "note": "rss_before_mib: after TensorFlow and the data are loaded; training_added_mib: peak while the runs "
                "train (sampled every 50 ms) minus that",
        "population_over_one_run_added_memory": found["population"]["training_added_mib"]
        / max(found["one_run"]["training_added_mib"], 1e-9),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--memory-runs", type=int, default=30)
    parser.add_argument("--memory-train", type=int, default=500)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.memory_train)
        return None
    result = {
        "benchmark": "population",
        "machine": machine(),
        "device": _device(),
        "tensorflow_threads": {name: os.environ.get(name) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")},
        "speed": speed(args),
    }
    if not args.skip_memory:
        result["memory"] = memory(args)
    report(result, args.json)
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
