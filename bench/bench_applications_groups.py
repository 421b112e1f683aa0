"""Every keras.applications family with dependency-group masks: what add_masks places and what compact removes.

For the smallest member of each family (weights=None, the smallest input it takes, 10
classes, logits out): ``add_masks(model, groups=True)``, 30 % of every group's units
dropped at random (seed 0), ``compact``; recorded: masks (= groups), places they are called,
pinned spaces, the compacted model's max |Δ| against the masked model on two inputs (and
relative to the largest output), and the fraction of the plain model's weights removed.
Also the same with per-layer masks (``groups=False``), the way before issue 26.

Usage: python bench/bench_applications_groups.py [--families VGG16 ...] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import time

import numpy as np

from _report import machine, report

from dropnet_tf.core.backend import keras
from dropnet_tf.compaction import compact
from dropnet_tf.core.masking import add_masks, mask_layers, random_masks, set_masks

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "applications_groups.json")
FAMILIES = {
    "ConvNeXtTiny": 32, "DenseNet121": 32, "EfficientNetB0": 32, "EfficientNetV2B0": 32, "InceptionResNetV2": 75,
    "InceptionV3": 75, "MobileNet": 32, "MobileNetV2": 32, "MobileNetV3Small": 32, "NASNetMobile": 32,
    "ResNet50": 32, "ResNet50V2": 32, "VGG16": 32, "Xception": 71,
}


def one(name, size, groups):
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10,
                                              classifier_activation=None)
    started = time.perf_counter()
    try:
        masked = add_masks(model, groups=groups)
    except Exception as error:  # noqa: BLE001 - recorded: the refusal and its reason
        return {"refused": f"{type(error).__name__}: {error}"}
    layers = mask_layers(masked)
    set_masks(masked, random_masks(masked, 0.3, 0))
    x = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype("float32")
    reference = np.asarray(masked(x))
    try:
        small = compact(masked)
    except Exception as error:  # noqa: BLE001 - recorded: the failure before issue 26
        return {"masks": len(layers), "compact_failed": f"{type(error).__name__}: {error}"[:300]}
    delta = float(np.abs(np.asarray(small(x)) - reference).max())
    entry = {
        "masks": len(layers),
        "mask_calls": int(sum(len(getattr(layer, "_inbound_nodes", [None])) for layer in layers)),
        "units": int(sum(layer.units for layer in layers)),
        "max_abs_delta": delta,
        "relative_delta": delta / max(1e-12, float(np.abs(reference).max())),
        "params_plain": int(model.count_params()),
        "params_compact": int(small.count_params()),
        "weights_removed": 1.0 - small.count_params() / model.count_params(),
        "seconds": time.perf_counter() - started,
    }
    if groups:
        entry["pinned"] = len(masked.dependency_groups.pinned)
        entry["pinned_examples"] = dict(list(masked.dependency_groups.pinned.items())[:3])
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    results = {"machine": machine(), "load_before": os.getloadavg()[0], "fraction_dropped": 0.3, "families": {}}
    for name in args.families:
        results["families"][name] = {
            "input": FAMILIES[name],
            "groups": one(name, FAMILIES[name], True),
            "per_layer": one(name, FAMILIES[name], False),
        }
        print(name, results["families"][name], flush=True)
    results["load_after"] = os.getloadavg()[0]
    report(results, args.json)


if __name__ == "__main__":
    main()
