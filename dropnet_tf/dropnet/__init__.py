"""DropNet (Tan & Motani, ICML 2020): iterative removal of nodes and filters.

Its modules are listed, with what each holds, in the README's Layout section.
"""

from dropnet_tf.dropnet.experiment import run_experiment
from dropnet_tf.dropnet.arguments import PROTOCOLS
from dropnet_tf.dropnet.iterative import IterativePruner, iterative_prune
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.dropnet.metrics import METRICS, PAPER_METRICS, get_metric, update_masks
from dropnet_tf.dropnet.oracle import mask_similarity, oracle_scores
from dropnet_tf.dropnet.population import population_prune
from dropnet_tf.core.statistics import StatisticsCollector, UnitStatistics, collect_statistics

__all__ = [
    "run_experiment",
    "PROTOCOLS",
    "IterativePruner",
    "TrainingConfig",
    "iterative_prune",
    "METRICS",
    "PAPER_METRICS",
    "get_metric",
    "update_masks",
    "mask_similarity",
    "oracle_scores",
    "population_prune",
    "StatisticsCollector",
    "UnitStatistics",
    "collect_statistics",
]
