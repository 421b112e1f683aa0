"""What watching a DropNet run costs: cycles with verbose=2, TensorBoardLogger and GridETA vs silent ones.

Same model (Model A FC40-FC40), data (Fashion-MNIST, a stratified subset; digits where it
is not installed), SGD 0.1, batch 32 and a fixed number of epochs per cycle (patience
longer than the epochs), in one process: the two arms alternate, ``--repeats`` times each,
and each arm's cycles after the first (which traces the training step) are timed by the
records' own ``wall_seconds``.  The result is the ratio of the medians, measured within one
run, so that it holds on a busy machine as well as on an idle one.

Usage: python bench/bench_progress_overhead.py [--epochs 5] [--cycles 3] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile

from _report import machine, report

import dropnet_tf
from dropnet_tf.core.backend import keras
from dropnet_tf.harness.progress import TensorBoardLogger
from dropnet_tf.dropnet.progress import GridETA, grid_runs
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.models import model_a


def load():
    try:
        data = dropnet_tf.load_dataset("fashion_mnist")
        return data.subset(max_train=5000, max_val=1000, max_test=1000, seed=0)
    except dropnet_tf.DatasetUnavailableError:
        return dropnet_tf.load_dataset("digits")


def cycles(data, args, watched: bool, folder: str, repeat: int) -> list[float]:
    keras.backend.clear_session()
    model = model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    callbacks = []
    if watched:
        callbacks = [TensorBoardLogger(os.path.join(folder, f"tb{repeat}")),
                     GridETA(grid_runs("bench", ["minimum"], [0]), min_fraction=0.1)]
    with contextlib.redirect_stdout(io.StringIO()):  # the lines are produced, not shown
        records = dropnet_tf.iterative_prune(
            model, data, "minimum", experiment="bench", max_cycles=args.cycles, verbose=2 if watched else 0,
            training=TrainingConfig(max_epochs=args.epochs, patience=args.epochs + 1), callbacks=callbacks,
        )
    return [r["wall_seconds"] for r in records[1:]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.cycles < 2:
        parser.error(f"--cycles must be at least 2 (the first cycle traces and is not timed), got {args.cycles}")

    data = load()
    seconds = {"silent": [], "watched": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for arm in ("silent", "watched"):
                seconds[arm].extend(cycles(data, args, arm == "watched", folder, repeat))
                print(f"{arm} repeat {repeat}: {seconds[arm][-(args.cycles - 1):]}", flush=True)
    medians = {arm: statistics.median(values) for arm, values in seconds.items()}
    report({
        "benchmark": "progress_overhead",
        "machine": machine(),
        "data": f"{data.name} {len(data.y_train)}/{len(data.y_val)}/{len(data.y_test)}",
        "model": "Model A FC40-FC40",
        "epochs_per_cycle": args.epochs,
        "timed_cycles_per_arm": len(seconds["silent"]),
        "median_cycle_seconds": {arm: round(value, 3) for arm, value in medians.items()},
        "watched_over_silent": round(medians["watched"] / medians["silent"], 3),
        "watched": "verbose=2 (a line per epoch and per cycle), TensorBoardLogger, GridETA",
    }, args.json)


if __name__ == "__main__":
    main()
