"""dropnet_tf: DropNet and related neural-network pruning for Keras / TensorFlow.

Layers
------
The packages form layers, each importing only from its own package and the layers below it
(at module level and inside functions alike); packages of one layer never import each
other, so the three method packages share only what lies beneath them.  Bottom to top::

    core < data, models < engines < harness < compaction < dropnet, foresight, layerprune < plotting

``core`` holds the pruning primitives, ``engines`` the training loops, ``harness`` the
machinery of a grid of runs; ``paper_experiments/`` and ``bench/`` sit above the library.
``tests/test_architecture.py`` enforces this order, and that no import cycle exists.  What
each package and module holds is listed once, in the README's Layout section.

Vocabulary
----------
One set of words across the library.

*unit*
    A node of a Dense layer or a filter (output channel) of a convolution: what DropNet,
    LayerPrune's filter criteria and compaction remove.  A *weight* is one scalar of a kernel:
    what foresight removes.
*mask layer*
    :class:`MaskLayer`, a non-trainable 0/1 vector multiplied into a layer's output, one entry
    per unit; ``add_masks`` puts one after every hidden Dense/Conv2D.  (Weight masks,
    foresight's, live inside the ``Masked*`` layers of :mod:`dropnet_tf.core.masked_layers`
    instead, one entry per weight.)
*scorer*
    Anything that gives units or weights a score, the lowest being pruned first.  A unit
    scorer is a :class:`UnitScorer`, registered by name in
    :data:`dropnet_tf.core.scoring.UNIT_SCORERS` (``register_scorer``): DropNet's *metrics*
    (``METRICS``, ``get_metric``) and LayerPrune's filter *criteria* (``FILTER_CRITERIA``)
    are views of that registry.  A weight scorer is a foresight ``WeightScorer``, its classes
    in :data:`dropnet_tf.foresight.scorers.WEIGHT_SCORERS`, and foresight's *methods*
    (``METHODS``) pair one with a scope.
*fraction* (p)
    Of the units still active, the fraction dropped in one pruning cycle (DropNet's
    ``pruning_fraction``, e.g. 0.2).
*fraction remaining*
    Units (or weights) left over units at the start: after k cycles at fraction p it is
    about (1 - p)^k.  The x axis of the DropNet figures.
*compression* (r)
    For weights: r = n / n_kept, the total over the kept (foresight's ``compression``;
    r = 64 keeps 1/64 of the weights).  Its inverse 1/r is the fraction remaining, and
    1 - 1/r the *sparsity*.
*selection*
    Global (one ranking over all layers) or layer-wise (``*_layer``: the same fraction of
    every layer); see :mod:`dropnet_tf.core.selection`.
*cycle*
    One round of train → score → drop (DropNet's Algorithm 1; cycle 0 is the unpruned
    network).
"""

from dropnet_tf import compaction, data, foresight, layerprune, models
from dropnet_tf.compaction import compact
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import add_masks, get_masks, mask_layers, set_masks
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.core.scoring import UnitScorer, register_scorer
from dropnet_tf.core.selection import SELECTIONS, NothingToPruneError, collapsed_layers, select_units
from dropnet_tf.data import Dataset, DatasetUnavailableError, load_dataset
from dropnet_tf.dropnet.experiment import run_experiment
from dropnet_tf.dropnet.arguments import PROTOCOLS
from dropnet_tf.dropnet.iterative import IterativePruner, iterative_prune
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.engines.graph_trainer import GraphTrainer
from dropnet_tf.dropnet.metrics import METRICS, PAPER_METRICS, get_metric, update_masks
from dropnet_tf.dropnet.oracle import mask_similarity, oracle_scores
from dropnet_tf.core.statistics import StatisticsCollector, UnitStatistics, collect_statistics


def __getattr__(name: str):
    """``dropnet_tf.plotting`` (matplotlib) is imported on first use, not with the package."""
    if name == "plotting":
        import importlib

        return importlib.import_module("dropnet_tf.plotting")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "UnitScorer",
    "register_scorer",
    "get_metric",
    "update_masks",
    "select_units",
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
]
__version__ = "0.1.0"
