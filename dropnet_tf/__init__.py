"""dropnet_tf: DropNet and related neural-network pruning for Keras / TensorFlow.

The public API in one place; each name lives in a small module of its own:

=====================  ==========================================================
``layers``             MaskLayer, the per-unit binary mask
``masking``            add_masks / get_masks / set_masks / mask_layers
``statistics``         collect_statistics: E(a_i), E(f_i) and APoZ via Model.predict
``metrics``            the pruning metrics of DropNet Table 1 and APoZ; update_masks
``scoring``            UnitScorer: one scorer shape, one registry, prune_step (score → select → apply)
``selection``          global vs layer-wise selection shared by every metric (exact or notebook)
``training``           GraphTrainer: many steps per call, driving Keras callbacks
``iterative``          iterative_prune: DropNet's Algorithm 1 (the iterative loop)
``oracle``             the greedy oracle of DropNet Section 5
``experiment``         run_experiment: metrics × seeds into one results file
``models``             Model A/B/C, ResNet18 and VGG19 as in the paper's figures
``data``               load_dataset: MNIST, Fashion-MNIST, CIFAR, Tiny ImageNet, digits
``results``            atomic JSON-lines results, NPZ state, CSV export
``plotting``           accuracy vs fraction remaining with 95% CI error bars
``graph``              LayerGraph: a model's layers and neighbours, from its public config
``compaction``         compact(): masked units physically removed; FLOP/parameter counts,
                       latency and TFLite export
``layerprune``         LayerPrune: filter criteria vs removing whole layers and blocks
``foresight``          pruning at initialisation, weight by weight: SNIP, GraSP,
                       SynFlow, OBD, LAP, LAMP and baselines (see its __init__)
=====================  ==========================================================
"""

from dropnet_tf import compaction, data, foresight, layerprune, models, plotting, results
from dropnet_tf.compaction import compact
from dropnet_tf.data import Dataset, DatasetUnavailableError, load_dataset
from dropnet_tf.experiment import run_experiment
from dropnet_tf.iterative import PROTOCOLS, IterativePruner, TrainingConfig, iterative_prune
from dropnet_tf.layers import MaskLayer
from dropnet_tf.masking import add_masks, get_masks, mask_layers, set_masks
from dropnet_tf.metrics import METRICS, PAPER_METRICS, UnitMetric, get_metric, update_masks
from dropnet_tf.oracle import mask_similarity, oracle_scores
from dropnet_tf.results import ResultsFile
from dropnet_tf.scoring import SCORERS, UnitScorer, get_scorer, prune_step, register_scorer
from dropnet_tf.selection import SELECTIONS, NothingToPruneError, collapsed_layers, select_units
from dropnet_tf.statistics import StatisticsCollector, UnitStatistics, collect_statistics
from dropnet_tf.training import GraphTrainer

__all__ = [
    "MaskLayer",
    "compact",
    "add_masks",
    "get_masks",
    "set_masks",
    "mask_layers",
    "collect_statistics",
    "StatisticsCollector",
    "UnitStatistics",
    "METRICS",
    "PAPER_METRICS",
    "UnitMetric",
    "get_metric",
    "update_masks",
    "select_units",
    "UnitScorer",
    "SCORERS",
    "get_scorer",
    "register_scorer",
    "prune_step",
    "SELECTIONS",
    "collapsed_layers",
    "NothingToPruneError",
    "iterative_prune",
    "IterativePruner",
    "TrainingConfig",
    "PROTOCOLS",
    "GraphTrainer",
    "oracle_scores",
    "mask_similarity",
    "run_experiment",
    "load_dataset",
    "Dataset",
    "DatasetUnavailableError",
    "ResultsFile",
    "compaction",
    "data",
    "foresight",
    "layerprune",
    "models",
    "plotting",
    "results",
]
__version__ = "0.1.0"
