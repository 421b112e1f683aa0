"""Weight-level scorers, one module per method; lower scores are pruned first.

``SCORERS`` maps a scorer name to its class; ``METHODS`` names the methods the thesis
compares as (scorer, scope) pairs, e.g. ``"layer_magnitude"`` (LayerMag) or ``"snip"``.
"""

from __future__ import annotations

from dropnet_tf.foresight.scorers.base import WeightScorer

SCORERS: dict[str, type] = {}
_MISSING: list[str] = []


def _register(module: str, class_name: str, name: str) -> None:
    import importlib

    try:
        cls = getattr(importlib.import_module(f"dropnet_tf.foresight.scorers.{module}"), class_name)
    except (ImportError, AttributeError):  # pragma: no cover - only while a scorer is being written
        _MISSING.append(name)
        return
    SCORERS[name] = cls


for _module, _class, _name in [
    ("random", "RandomScorer", "random"),
    ("magnitude", "MagnitudeScorer", "magnitude"),
    ("gradient", "GradientScorer", "gradient"),
    ("activation", "ActivationScorer", "activation"),
    ("lap", "LAPScorer", "lap"),
    ("lamp", "LAMPScorer", "lamp"),
    ("snip", "SNIPScorer", "snip"),
    ("obd", "OBDScorer", "obd"),
    ("grasp", "GraSPScorer", "grasp"),
    ("synflow", "SynFlowScorer", "synflow"),
]:
    _register(_module, _class, _name)

#: method name → (scorer name, scope), with the thesis' table label in THESIS_LABELS.
METHODS: dict[str, tuple[str, str]] = {
    "random": ("random", "global"),
    "global_magnitude": ("magnitude", "global"),
    "layer_magnitude": ("magnitude", "layer"),
    "global_gradient": ("gradient", "global"),
    "layer_gradient": ("gradient", "layer"),
    "global_activation": ("activation", "global"),
    "layer_activation": ("activation", "layer"),
    "global_lap": ("lap", "global"),
    "layer_lap": ("lap", "layer"),
    "lamp": ("lamp", "global"),
    "snip": ("snip", "global"),
    "grasp": ("grasp", "global"),
    "synflow": ("synflow", "global"),
    "obd": ("obd", "global"),
}
METHODS = {name: spec for name, spec in METHODS.items() if spec[0] in SCORERS}

THESIS_LABELS = {
    "global_magnitude": "GlobalMag",
    "global_gradient": "GlobalGrad",
    "global_activation": "GlobalAct",
    "global_lap": "GlobalLAP",
    "layer_magnitude": "LayerMag",
    "layer_gradient": "LayerGrad",
    "layer_activation": "LayerAct",
    "layer_lap": "LayerLAP",
    "lamp": "LAMP",
    "snip": "SNIP",
    "grasp": "GraSP",
    "synflow": "SynFlow",
    "random": "Random",
    "obd": "OBD",
}

__all__ = ["WeightScorer", "SCORERS", "METHODS", "THESIS_LABELS"]
