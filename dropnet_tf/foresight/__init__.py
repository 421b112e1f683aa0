"""Foresight (pruning at initialisation) weight pruning: SNIP and the methods the thesis compares.

Its modules are listed, with what each holds, in the README's Layout section.
"""

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
from dropnet_tf.foresight.scorers import METHODS, WEIGHT_SCORERS, THESIS_LABELS, WeightScorer
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
    "WEIGHT_SCORERS",
    "METHODS",
    "THESIS_LABELS",
]
