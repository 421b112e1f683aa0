"""DropNet (Tan & Motani, ICML 2020): iterative removal of nodes and filters.

=====================  ==========================================================
``statistics``         collect_statistics: E(a_i), E(f_i) and APoZ via Model.predict
``metrics``            the scorers of DropNet Table 1 ("metrics") and APoZ; update_masks
``oracle``             the greedy oracle of DropNet Section 5
``augmentation``       the supplement's Tiny ImageNet augmentation (Table C1) as Keras layers
``iterative``          iterative_prune: DropNet's Algorithm 1 (the iterative loop)
``arguments``          PROTOCOLS presets; checks of iterative_prune's arguments
``state``              resume state: fingerprint, state file, stop rules, run_masks
``experiment``         run_experiment: metrics × seeds into one results file
``progress``           expected_cycles of a run; GridETA, the grid's ETA on each cycle line
``population``         population_prune: many runs of one architecture as one computation
=====================  ==========================================================
"""

from dropnet_tf.dropnet.experiment import run_experiment
from dropnet_tf.dropnet.iterative import PROTOCOLS, IterativePruner, TrainingConfig, iterative_prune
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
