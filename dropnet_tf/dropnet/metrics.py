"""Structured pruning metrics: each one only turns statistics into unit scores.

Each metric is a :class:`dropnet_tf.core.scoring.StatisticScorer` of
:mod:`dropnet_tf.core.statistic_scorers` in the one unit-scorer registry (``METRICS`` is
DropNet's view of it); a ``*_layer`` name is an alias of its metric with
``default_scope="layer"``.  Lower scores are pruned first; selection (global or
layer-wise, ties, minimum layer size) lives once in :mod:`dropnet_tf.core.selection`, and the
score → select → apply step once in :func:`dropnet_tf.core.scoring.prune_step`.

DropNet (Tan & Motani, ICML 2020) Table 1:

=================  =====================  ==========
metric             importance score       type
=================  =====================  ==========
minimum            E(a_i) or E(f_i)       global
maximum            −E(a_i) or −E(f_i)     global
random             0 (random ties)        global
minimum_layer      E(a_i) or E(f_i)       layer-wise
maximum_layer      −E(a_i) or −E(f_i)     layer-wise
random_layer       0 (random ties)        layer-wise
=================  =====================  ==========

plus APoZ (supplement Section 4; Hu et al. 2016): the highest average percentage of zeros
is pruned first, so the score is −APoZ; ``apoz`` global, ``apoz_layer`` layer-wise.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dropnet_tf.core.scoring import StatisticScorer, UnitScorer, get_scorer, register_scorer, select_and_drop
from dropnet_tf.core.selection import SELECTIONS, collapsed_layers
from dropnet_tf.core import statistic_scorers  # noqa: F401  (registers the scorers METRICS views)
from dropnet_tf.core.statistics import UnitStatistics


#: DropNet's statistic metrics (Table 1 and APoZ), a view of the scorer registry.
METRICS: dict[str, StatisticScorer] = {
    name: get_scorer(name)
    for name in ("minimum", "maximum", "random", "minimum_layer", "maximum_layer", "random_layer", "apoz", "apoz_layer")
}

#: The six metrics of DropNet Table 1, in the paper's order.
PAPER_METRICS = ("minimum", "maximum", "random", "minimum_layer", "maximum_layer", "random_layer")


def get_metric(metric) -> StatisticScorer:
    """A metric by name (see ``METRICS``), or a scorer instance passed through.

    Every scorer is in :func:`dropnet_tf.core.scoring.get_scorer`; this is its DropNet view.
    """
    if isinstance(metric, UnitScorer):
        return metric
    if isinstance(metric, str) and metric in METRICS:
        return METRICS[metric]
    raise ValueError(f"Unknown metric {metric!r}; allowed metrics are {sorted(METRICS)}.")


def update_masks(
    masks: Mapping[str, np.ndarray],
    statistics: UnitStatistics,
    metric,
    fraction: float | None = 0.2,
    rng=None,
    count: int | None = None,
    min_units_per_layer: int = 1,
    selection: str = "exact",
) -> dict[str, np.ndarray]:
    """One pruning step of DropNet's Algorithm 1 (step 4) from given statistics.

    The select-and-drop half of :func:`dropnet_tf.core.scoring.prune_step`, for statistics
    already collected.

    Args:
        masks: current masks ``{mask layer name: 0/1 array}`` (not modified).
        statistics: from :func:`dropnet_tf.collect_statistics`.
        metric: a name from ``METRICS`` or a :class:`StatisticScorer`.
        fraction: p ∈ (0, 1]; global metrics drop floor(p·R) of the R remaining units,
            layer-wise ones floor(p·R_l) of each layer's R_l; at least one unit either way.
        rng: numpy Generator or int seed for tie-breaking and the random metrics.
        count: drop exactly this many units instead of a fraction (``count=1`` is the
            drop-one mode of the oracle comparison, paper Section 5); overrides ``fraction``.
        min_units_per_layer: the layer-collapse guard (default 1; 0 allows collapse).
        selection: "exact" (default) drops exactly the k lowest-scoring units, ties at
            random; "notebook" applies the authors' notebooks' rule
            (:func:`dropnet_tf.core.selection.notebook_drop`); the random metrics draw their
            units uniformly, as the notebooks do (``notebook_random_drop``).  "notebook"
            needs ``fraction`` (not ``count``).

    Returns:
        New masks.  Layers left with no unit are listed by
        :func:`dropnet_tf.core.selection.collapsed_layers`, and a warning is issued.
    """
    metric = get_metric(metric)
    if not isinstance(metric, StatisticScorer):
        raise TypeError(f"update_masks needs a metric computed from statistics; {metric.name!r} is not one.")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    missing = sorted(set(masks) - set(statistics.mean_abs))
    if missing:
        raise ValueError(f"No statistics for mask layer(s) {missing}.")
    new, _ = select_and_drop(
        metric.from_statistics(statistics), masks, fraction=fraction, count=count, scope=metric.default_scope,
        selection=selection, min_units_per_layer=min_units_per_layer, rng=rng, random_scores=metric.random_scores,
    )
    return new


__all__ = [
    "METRICS",
    "PAPER_METRICS",
    "get_metric",
    "update_masks",
    "collapsed_layers",
]
