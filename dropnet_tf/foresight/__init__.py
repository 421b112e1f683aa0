"""Foresight (pruning-at-initialisation) weight pruning: SNIP and the methods the thesis compares.

=========================  ==============================================================
``masked_layers``          MaskedDense / MaskedConv2D / MaskedLSTM / ...: weight masks
``weights``                add_weight_masks, prunable_weights, get/set masks, compression
``objective``              the loss scorers differentiate (logits, temperature)
``scorers/``               one module per method: random, magnitude, gradient, activation,
                           lap, lamp, snip, obd, grasp, synflow
``prune``                  prune_at_init: score → select → apply (iterated for SynFlow)
``models``                 the thesis' and SNIP's architectures (LeNets ... WRN, LSTM/GRU);
                           lives in dropnet_tf.models.foresight (the former path is an alias)
``experiment``             run_foresight_grid: methods × r × seeds, train, top-1/top-5
``tfmot/``                  TFMOT's gradual magnitude pruning, the TensorFlow baseline
                           (schedule, pruning, child; tfmot.baseline is the python -m
                           entry point, the former path tfmot_baseline an alias of it)
=========================  ==============================================================
"""

from dropnet_tf.core.aliases import alias_getattr
from dropnet_tf.foresight.experiment import TrainingProtocol, run_foresight_grid
from dropnet_tf.core.masked_layers import (
    MaskedBatchNormalization,
    MaskedConv1D,
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    MaskedGRU,
    MaskedLSTM,
    WeightMaskConstraint,
)
from dropnet_tf.foresight.prune import density_schedule, prune_at_init, resolve_method
from dropnet_tf.foresight.scorers import METHODS, SCORERS, THESIS_LABELS, WeightScorer
from dropnet_tf.foresight.weights import (
    CompressionReport,
    PrunableWeight,
    add_weight_masks,
    compression_report,
    get_weight_masks,
    prunable_weights,
    set_weight_masks,
)

__all__ = [
    "models",
    "TrainingProtocol",
    "run_foresight_grid",
    "MaskedDense",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedDepthwiseConv2D",
    "MaskedLSTM",
    "MaskedGRU",
    "MaskedBatchNormalization",
    "WeightMaskConstraint",
    "add_weight_masks",
    "prunable_weights",
    "get_weight_masks",
    "set_weight_masks",
    "compression_report",
    "CompressionReport",
    "PrunableWeight",
    "prune_at_init",
    "resolve_method",
    "density_schedule",
    "WeightScorer",
    "SCORERS",
    "METHODS",
    "THESIS_LABELS",
]

# dropnet_tf.foresight.models / .tfmot_baseline: the former modules, imported on first use
# (dropnet_tf.models.foresight builds on foresight.masked_layers, so not at import time).
__getattr__ = alias_getattr(__name__)
