"""LayerPrune (Elkerdawy et al., ACCV 2020): filter criteria versus removing layers and blocks.

Its modules are listed, with what each holds, in the README's Layout section.
"""

from dropnet_tf.layerprune.blocks import (
    Block,
    blocks_after_removal,
    find_blocks,
    masks_by_block,
    remove_blocks,
    resnet_blocks,
    vgg_layers,
)
from dropnet_tf.layerprune.criteria import FILTER_CRITERIA, FilterCriterion, get_filter_criterion
from dropnet_tf.layerprune.filter_pruning import SCHEDULES, FilterPruningResult, prune_filters
from dropnet_tf.layerprune.imprinting import imprinting_accuracies, imprinting_importance
from dropnet_tf.layerprune.layer_importance import (
    block_scores_from_filter_scores,
    iterative_block_ranking,
    rank_ensemble,
    spearman,
)
from dropnet_tf.models.layerprune import cifar_resnet_layerprune, resnet56_layerprune, vgg19_bn

__all__ = [
    "Block",
    "FILTER_CRITERIA",
    "FilterCriterion",
    "FilterPruningResult",
    "SCHEDULES",
    "block_scores_from_filter_scores",
    "blocks_after_removal",
    "cifar_resnet_layerprune",
    "find_blocks",
    "get_filter_criterion",
    "imprinting_accuracies",
    "imprinting_importance",
    "iterative_block_ranking",
    "masks_by_block",
    "prune_filters",
    "rank_ensemble",
    "remove_blocks",
    "resnet56_layerprune",
    "resnet_blocks",
    "spearman",
    "vgg19_bn",
    "vgg_layers",
]
