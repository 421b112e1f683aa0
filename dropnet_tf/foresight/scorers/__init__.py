"""Weight-level scorers, one module per method; lower scores are pruned first.

``WEIGHT_SCORERS`` maps a scorer name to its class; ``METHODS`` names the methods the thesis
compares as (scorer, scope) pairs, e.g. ``"layer_magnitude"`` (LayerMag) or ``"snip"``.
"""

from __future__ import annotations

from dropnet_tf.foresight.scorers.base import WeightScorer

from dropnet_tf.foresight.scorers.activation import ActivationScorer
from dropnet_tf.foresight.scorers.gradient import GradientScorer
from dropnet_tf.foresight.scorers.grasp import GraSPScorer
from dropnet_tf.foresight.scorers.lamp import LAMPScorer
from dropnet_tf.foresight.scorers.lap import LAPScorer
from dropnet_tf.foresight.scorers.magnitude import MagnitudeScorer
from dropnet_tf.foresight.scorers.obd import OBDScorer
from dropnet_tf.foresight.scorers.random import RandomScorer
from dropnet_tf.foresight.scorers.snip import SNIPScorer
from dropnet_tf.foresight.scorers.synflow import SynFlowScorer

WEIGHT_SCORERS: dict[str, type] = {
    cls.name: cls
    for cls in (RandomScorer, MagnitudeScorer, GradientScorer, ActivationScorer, LAPScorer, LAMPScorer,
                SNIPScorer, OBDScorer, GraSPScorer, SynFlowScorer)
}

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

__all__ = ["WeightScorer", "WEIGHT_SCORERS", "METHODS", "THESIS_LABELS"] + [cls.__name__ for cls in WEIGHT_SCORERS.values()]
