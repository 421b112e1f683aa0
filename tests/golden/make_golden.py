"""Record the golden file that pins today's behaviour before a restructuring.

Short, seeded runs through the *public* API only (the names users import), so that the
same script still runs after modules move:

* ``iterative_prune`` (DropNet Algorithm 1) on scikit-learn's digits, Model A FC16-FC16,
  metrics ``minimum`` and ``minimum_layer``, 3 cycles: the masks of every cycle and the
  per-cycle losses and accuracies;
* ``foresight.prune_at_init`` with SNIP and SynFlow on LeNet-300-100 (digits, r = 10):
  the kept-weight masks (as index digests and counts) and the compression report;
* ``layerprune.prune_filters`` with ``l1_norm`` and ``taylor`` on a masked Model B: the masks;
* ``compact`` of a pruned Model B: the compacted layer shapes and its predictions.

Run ``python tests/golden/make_golden.py`` to rewrite ``golden_runs.json`` (only when a
behaviour change is intended, and say so in the commit); ``tests/test_golden.py`` runs the
same function and compares.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden_runs.json")


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array)).tobytes()).hexdigest()[:16]


def _masks(masks: dict) -> dict:
    return {name: np.asarray(m).astype(int).tolist() for name, m in sorted(masks.items())}


def record() -> dict:
    import dropnet_tf
    from dropnet_tf import TrainingConfig, add_masks, compact, get_masks, iterative_prune, load_dataset
    from dropnet_tf.core.backend import keras
    from dropnet_tf.foresight import add_weight_masks, get_weight_masks, prune_at_init
    from dropnet_tf.models.foresight import lenet_300_100
    from dropnet_tf.dropnet.state import run_masks
    from dropnet_tf.layerprune import prune_filters
    from dropnet_tf.models import model_a, model_b

    out = {"keras": keras.__version__}
    digits = load_dataset("digits")
    training = TrainingConfig(max_epochs=3, patience=2, batch_size=64, jit_compile=False)

    dropnet = {}
    with tempfile.TemporaryDirectory() as tmp:
        results = os.path.join(tmp, "results.jsonl")
        for metric in ("minimum", "minimum_layer"):
            keras.utils.set_random_seed(0)
            model = model_a((16, 16), input_shape=(8, 8, 1), num_classes=10, seed=0)
            records = iterative_prune(model, digits, metric, fraction=0.25, max_cycles=3, seed=0,
                                      training=training, results=results, experiment="golden", verbose=0)
            masks = run_masks(results, "golden", metric, 0)
            dropnet[metric] = [
                {
                    "cycle": r["cycle"],
                    "units_per_layer": r["units_per_layer"],
                    "masks": _masks(masks[r["cycle"]]),
                    "val_loss": r["val_loss"],
                    "test_accuracy": r["test_accuracy"],
                }
                for r in records
            ]
    out["iterative_prune"] = dropnet

    x, y = digits.x_train[:100], digits.y_train[:100]
    foresight = {}
    for method in ("snip", "synflow"):
        keras.utils.set_random_seed(0)
        model = add_weight_masks(lenet_300_100(input_shape=(8, 8, 1), num_classes=10, seed=0, masked=False))
        report = prune_at_init(model, method, 10.0, data=(x, y), seed=0)
        masks = get_weight_masks(model)
        foresight[method] = {
            "kept": {name: int(np.asarray(m).sum()) for name, m in sorted(masks.items())},
            "digest": {name: _digest(np.asarray(m).astype(np.int8)) for name, m in sorted(masks.items())},
            "empirical_ratio": float(report.empirical_ratio),
        }
    out["prune_at_init"] = foresight

    images = digits.x_train[:64]
    labels = digits.y_train[:64]
    layerprune = {}
    for criterion in ("l1_norm", "taylor"):
        keras.utils.set_random_seed(0)
        model = model_b((8, 8), input_shape=(8, 8, 1), num_classes=10, seed=0)
        result = prune_filters(model, criterion, data=(images, labels), fraction=0.25, rng=0)
        layerprune[criterion] = _masks(result.masks)
    out["prune_filters"] = layerprune

    keras.utils.set_random_seed(0)
    model = model_b((8, 8), input_shape=(8, 8, 1), num_classes=10, seed=0)
    prune_filters(model, "l1_norm", fraction=0.5, rng=0)
    small = compact(model)
    out["compact"] = {
        "masks": _masks(get_masks(model)),
        "shapes": {w.path if hasattr(w, "path") else w.name: list(w.shape) for w in small.weights},
        "predictions": np.asarray(small.predict(images[:8], verbose=0), dtype=float).round(6).tolist(),
        "dense_predictions": np.asarray(model.predict(images[:8], verbose=0), dtype=float).round(6).tolist(),
    }
    out["version"] = dropnet_tf.__version__
    return out


if __name__ == "__main__":
    result = record()
    with open(GOLDEN + ".tmp", "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    os.replace(GOLDEN + ".tmp", GOLDEN)
    print(f"wrote {GOLDEN}", file=sys.stderr)
