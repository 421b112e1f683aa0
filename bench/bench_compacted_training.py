"""Compacted training: one whole DropNet run, masked vs compacted, wall time (issue 15, section 1).

Model B Conv64-Conv64 (Tan & Motani, ICML 2020, Fig. 2) on MNIST-shaped data: by default the
first ``--train`` training images of Fashion-MNIST (28×28×1, 10 classes) with ``--val`` /
``--test`` images of its validation and test splits; ``--data synthetic`` draws 28×28×1
images of 10 classes instead (a pattern per class plus noise; no files needed),
metric ``minimum``, p = 0.2 per cycle down to 10 % of the units remaining (12 cycles), a
fixed number of epochs per cycle (early stopping cannot fire before the last one), batch 32,
SGD 0.1.  Both arms run in this process, cycle by cycle in turn (see :func:`run_interleaved`), with the
same θ0, data and seeds:

* masked: ``TrainingConfig(compact_training=False)``, the full model with its MaskLayers;
* compacted: ``compact_training=True``, each cycle from cycle 1 on trains
  ``compact(model)`` and writes it back (dropnet_tf.compaction.training).

Each cycle's wall time covers reset, training, evaluation of train/val/test and the
statistics pass (in the compacted arm on the compact model, whose per-unit statistics are put
back at the mask layers' indices; ``compact_statistics`` says in which cycles).  Also measured: the
time to build and trace a compact model, and the per-step training losses of one cycle
(cycle 3's widths) in both arms, to show how their difference grows step by step, next to
the same growth between two masked runs whose only difference is the order of conv_1's
filters (an exact reformulation too: the noise floor of float32 training).

Usage: python bench/bench_compacted_training.py [--train 2000] [--epochs 3] [--data fashion_mnist] [--json out.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _report import machine, report

from dropnet_tf import load_dataset
from dropnet_tf.compaction.training import CompactedCycle
from dropnet_tf.core.backend import keras
from dropnet_tf.core.masking import set_masks
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.engines.optimizers import make_optimizer
from dropnet_tf.engines.training import Trainer
from dropnet_tf.dropnet.iterative import IterativePruner
from dropnet_tf.models import model_b


def synthetic_mnist(n_train, n_val, n_test, seed=0):
    """28×28×1 images of 10 classes: a fixed random pattern per class plus noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((10, 28, 28, 1)).astype("float32")

    def draw(n):
        y = rng.integers(0, 10, n)
        x = np.clip(0.5 * patterns[y] + 0.5 * rng.random((n, 28, 28, 1)).astype("float32"), 0, 1)
        return x.astype("float32"), y.astype("int64")

    return draw(n_train), draw(n_val), draw(n_test)


def make_pruner(data, compact, epochs, seed=0):
    keras.utils.set_random_seed(seed)
    model = model_b((64, 64), input_shape=(28, 28, 1), num_classes=10, seed=seed)
    training = TrainingConfig(max_epochs=epochs, patience=epochs, batch_size=32, compact_training=compact)
    return IterativePruner(model, data, "minimum", fraction=0.2, min_fraction=0.1, seed=seed, training=training,
                           verbose=0)


def run_interleaved(data, epochs, seed=0):
    """Both arms cycle by cycle, alternating (which goes first alternates too), so that the
    load of the shared machine falls on both alike.  Each cycle is Algorithm 1's body as
    ``IterativePruner.run`` does it: reset, train, evaluate, score and select."""
    arms = {}
    for compact in (False, True):
        started = time.perf_counter()
        pruner = make_pruner(data, compact, epochs, seed)
        masks = {layer.name: np.ones(layer.units, np.float32) for layer in pruner.mask_layers}
        arms[compact] = {"pruner": pruner, "masks": masks, "setup": time.perf_counter() - started, "cycles": []}
    total = sum(layer.units for layer in arms[False]["pruner"].mask_layers)
    cycle = 0
    while True:
        for compact in ((False, True) if cycle % 2 == 0 else (True, False)):
            arm = arms[compact]
            pruner, masks = arm["pruner"], arm["masks"]
            started = time.perf_counter()
            pruner.reset(cycle, masks)
            epochs_run = pruner.train(cycle)
            scores = pruner.evaluate()
            remaining = sum(int(m.sum()) for m in masks.values()) / total
            trained_compact = pruner._compacted is not None
            compact_statistics = trained_compact and pruner._compacted.unit_tensors() is not None
            if remaining > 0.1:
                arm["masks"] = pruner.next_masks(cycle, masks)
            arm["cycles"].append({
                "cycle": cycle, "seconds": time.perf_counter() - started, "epochs": epochs_run,
                "units_per_layer": {name: int(m.sum()) for name, m in masks.items()},
                "masks": {name: m.copy() for name, m in masks.items()}, "fraction_remaining": remaining,
                "compact_training": trained_compact, "compact_statistics": compact_statistics, **scores,
            })
            print(f"{'compacted' if compact else 'masked'} cycle {cycle}: remaining={remaining:.3f} "
                  f"val_acc={scores['val_accuracy']:.4f} {arm['cycles'][-1]['seconds']:.1f} s", flush=True)
        if remaining <= 0.1:  # min_fraction: the run stops after this cycle
            return arms[False], arms[True]
        cycle += 1


class _StepLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


def _permute_conv_1(model, masks, seed=0):
    """Reorder conv_1's filters (kernel, bias, mask) and conv_2's input channels alike: the same
    function, computed with another order of the sums over channels."""
    order = np.random.default_rng(seed).permutation(64)
    conv_1, conv_2 = model.get_layer("conv_1"), model.get_layer("conv_2")
    kernel, bias = conv_1.get_weights()
    conv_1.set_weights([kernel[..., order], bias[order]])
    kernel, bias = conv_2.get_weights()
    conv_2.set_weights([kernel[:, :, order, :], bias])
    return {**masks, "conv_1_mask": masks["conv_1_mask"][order]}


def step_differences(data, masks, steps, seed=0):
    """Per-step losses of one cycle from θ0 with ``masks`` (1 step per call into TensorFlow):
    masked, compacted, and masked with conv_1's filters reordered (the noise floor: an exact
    reformulation that changes only the order of floating-point sums, as compaction does)."""
    config = TrainingConfig(max_epochs=1, iterations=steps, batch_size=32, steps_per_call=1, early_stopping=False)
    losses, build_seconds = {}, None
    for arm in ("masked", "compacted", "reordered"):
        keras.utils.set_random_seed(seed)
        model = model_b((64, 64), input_shape=(28, 28, 1), num_classes=10, seed=seed)
        set_masks(model, _permute_conv_1(model, masks) if arm == "reordered" else masks)
        optimizer = make_optimizer(config)
        trainer = Trainer(model, config, data[0], optimizer=optimizer)
        recorder = _StepLosses()
        if arm == "compacted":
            started = time.perf_counter()
            cycle = CompactedCycle(model, config, data[0], optimizer)
            cycle.trainer.evaluate(data[1])  # traces evaluation, as a cycle's validation does
            cycle.trainer.fit(None, seed=seed, callbacks=[_Stop(1)])  # traces the training step
            build_seconds = time.perf_counter() - started
            cycle = CompactedCycle(model, config, data[0], make_optimizer(config))
            cycle.trainer.fit(None, callbacks=[recorder], seed=seed)
        else:
            trainer.fit(None, callbacks=[recorder], seed=seed)
        losses[arm] = np.array(recorder.losses)
    return (np.abs(losses["masked"] - losses["compacted"]), np.abs(losses["masked"] - losses["reordered"]),
            build_seconds)


class _Stop(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("fashion_mnist", "synthetic"), default="fashion_mnist")
    parser.add_argument("--train", type=int, default=2000, help="training samples (MNIST: 54000)")
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3, help="fixed epochs per cycle")
    parser.add_argument("--steps", type=int, default=300, help="steps of the per-step loss comparison")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    if args.data == "synthetic":
        data = synthetic_mnist(args.train, args.val, args.test)
        described = "synthetic MNIST-shaped 28x28x1, 10 classes"
    else:
        full = load_dataset("fashion_mnist")
        data = ((full.x_train[: args.train], full.y_train[: args.train]), (full.x_val[: args.val], full.y_val[: args.val]),
                (full.x_test[: args.test], full.y_test[: args.test]))
        described = "Fashion-MNIST 28x28x1 (first samples of each split)"
    masked_arm, compacted_arm = run_interleaved(data, args.epochs)
    masked, compacted = masked_arm["cycles"], compacted_arm["cycles"]
    masked_seconds = masked_arm["setup"] + sum(r["seconds"] for r in masked)
    compacted_seconds = compacted_arm["setup"] + sum(r["seconds"] for r in compacted)
    same_masks = all(
        all(np.array_equal(a["masks"][name], b["masks"][name]) for name in a["masks"]) for a, b in zip(masked, compacted)
    ) and len(masked) == len(compacted)
    first_difference = next((a["cycle"] for a, b in zip(masked, compacted)
                             if any(not np.array_equal(a["masks"][n], b["masks"][n]) for n in a["masks"])), None)

    # Masks of cycle 3's size (its first units kept): the comparison needs a cycle's widths,
    # not the metric's choice of units.
    units = compacted[min(3, len(compacted) - 1)]["units_per_layer"]
    masks = {name: (np.arange(64) < kept).astype("float32") for name, kept in units.items()}
    differences, floor, build_seconds = step_differences(data, masks, args.steps)
    checkpoints = [s for s in (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 1000) if s <= len(differences)]

    result = {
        "benchmark": "compacted_training",
        "model": "Model B Conv64-Conv64",
        "data": f"{described}, {args.train}/{args.val}/{args.test} train/val/test samples per epoch/evaluation "
                "(MNIST has 54000/6000/10000)",
        "protocol": f"metric minimum, p=0.2 to 10% remaining, {args.epochs} epoch(s) per cycle (fixed), batch 32, SGD 0.1",
        "machine": machine() + " (2 cores, both shared with other CPU-bound runs; 1 TF intra-op thread)",
        "cycles": len(masked),
        "masked_seconds": masked_seconds,
        "compacted_seconds": compacted_seconds,
        "speedup": masked_seconds / compacted_seconds,
        "setup_seconds": {"masked": masked_arm["setup"], "compacted": compacted_arm["setup"]},
        "masked_seconds_per_cycle": [round(r["seconds"], 2) for r in masked],
        "compacted_seconds_per_cycle": [round(r["seconds"], 2) for r in compacted],
        "compacted_cycles": [r["compact_training"] for r in compacted],
        "compact_statistics_cycles": [r["compact_statistics"] for r in compacted],
        "fraction_remaining": [round(r["fraction_remaining"], 4) for r in compacted],
        "same_masks_every_cycle": same_masks,
        "first_cycle_with_other_masks": first_difference,
        "same_epochs": [r["epochs"] for r in masked] == [r["epochs"] for r in compacted],
        "max_abs_difference_while_masks_agree": {
            key: max(abs(a[key] - b[key]) for a, b in zip(masked, compacted)
                     if first_difference is None or a["cycle"] < first_difference)
            for key in ("train_loss", "val_loss", "test_loss", "train_accuracy", "val_accuracy", "test_accuracy")
        },
        "build_seconds": build_seconds,
        "val_accuracy_per_cycle": {"masked": [round(r["val_accuracy"], 4) for r in masked],
                                   "compacted": [round(r["val_accuracy"], 4) for r in compacted]},
        "per_step_loss_difference": {
            "masks": {name: int(kept) for name, kept in units.items()},
            "steps": len(differences),
            "max_abs_up_to_step": {str(s): float(differences[:s].max()) for s in checkpoints},
            "noise_floor_reordered_filters_max_abs_up_to_step": {str(s): float(floor[:s].max()) for s in checkpoints},
        },
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
