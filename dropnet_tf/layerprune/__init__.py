"""LayerPrune (Elkerdawy et al., ACCV 2020): filter criteria versus removing layers and blocks.

=====================  ===========================================================
``criteria``           filter criteria as structured scores: weight norm (L1/L2),
                       Taylor (gate), feature maps, mean activation, BN scale, FPGM
``filter_pruning``     prune_filters: global or per-layer, one-shot or iterative
``blocks``             residual blocks / VGG layers; remove_blocks (identity)
``imprinting``         imprinted nearest-class-mean accuracy after each block
``layer_importance``   block means of filter scores, rank ensemble, Spearman,
                       one-shot vs iterative block ranking
``models``             VGG19-BN and the CIFAR ResNets (projection shortcuts); lives in
                       dropnet_tf.models.layerprune (the former path is an alias)
=====================  ===========================================================
"""

from dropnet_tf.core.aliases import alias_getattr
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

# dropnet_tf.layerprune.models: the former module, now dropnet_tf.models.layerprune.
__getattr__ = alias_getattr(__name__)
