"""Structured pruning metrics: each one only turns statistics into unit scores.

Lower scores are pruned first; selection (global or layer-wise, ties, minimum layer
size) lives once in :mod:`dropnet_tf.core.selection`.

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

from dropnet_tf.core.selection import SELECTIONS, apply_drop, as_generator, collapsed_layers, select_units
from dropnet_tf.dropnet.statistics import UnitStatistics


class UnitMetric:
    """A structured pruning metric: a name, a scope, and a ``score`` method."""

    #: True for metrics whose scores are random draws under ``selection="notebook"``.
    random_scores = False

    def __init__(self, name: str, scope: str):
        self.name = name
        self.scope = scope

    def score(self, statistics: UnitStatistics) -> dict[str, np.ndarray]:
        """Per-layer unit scores; lower is pruned first."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, scope={self.scope!r})"


class MinimumActivation(UnitMetric):
    """DropNet's metric: the smallest expected absolute post-activation goes first (Sec. 2)."""

    def score(self, statistics):
        return {name: np.asarray(value, np.float64) for name, value in statistics.mean_abs.items()}


class MaximumActivation(UnitMetric):
    """The control opposite of DropNet: the largest E(a_i) / E(f_i) goes first."""

    def score(self, statistics):
        return {name: -np.asarray(value, np.float64) for name, value in statistics.mean_abs.items()}


class RandomScore(UnitMetric):
    """Score 0 for every unit, so the random tie-break alone decides (Table 1).

    Under ``selection="notebook"`` the scores are uniform random draws instead, as in the
    authors' notebooks, whose rule would otherwise let every tied unit qualify.
    """

    random_scores = True

    def score(self, statistics):
        return {name: np.zeros(np.shape(value)) for name, value in statistics.mean_abs.items()}


class HighestAPoZ(UnitMetric):
    """APoZ (Hu et al. 2016): the unit most often exactly zero goes first."""

    def score(self, statistics):
        return {name: -np.asarray(value, np.float64) for name, value in statistics.apoz.items()}


METRICS: dict[str, UnitMetric] = {
    metric.name: metric
    for metric in (
        MinimumActivation("minimum", "global"),
        MaximumActivation("maximum", "global"),
        RandomScore("random", "global"),
        MinimumActivation("minimum_layer", "layer"),
        MaximumActivation("maximum_layer", "layer"),
        RandomScore("random_layer", "layer"),
        HighestAPoZ("apoz", "global"),
        HighestAPoZ("apoz_layer", "layer"),
    )
}

#: The six metrics of DropNet Table 1, in the paper's order.
PAPER_METRICS = ("minimum", "maximum", "random", "minimum_layer", "maximum_layer", "random_layer")


def get_metric(metric) -> UnitMetric:
    """A metric by name (see ``METRICS``), or a UnitMetric instance passed through."""
    if isinstance(metric, UnitMetric):
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
    """One pruning step of DropNet's Algorithm 1 (step 4): score, select, and drop.

    Args:
        masks: current masks ``{mask layer name: 0/1 array}`` (not modified).
        statistics: from :func:`dropnet_tf.collect_statistics`.
        metric: a name from ``METRICS`` or a :class:`UnitMetric`.
        fraction: p ∈ (0, 1]; global metrics drop floor(p·R) of the R remaining units,
            layer-wise ones floor(p·R_l) of each layer's R_l; at least one unit either way.
        rng: numpy Generator or int seed for tie-breaking and the random metrics.
        count: drop exactly this many units instead of a fraction (``count=1`` is the
            drop-one mode of the oracle comparison, paper Section 5); overrides ``fraction``.
        min_units_per_layer: the layer-collapse guard (default 1; 0 allows collapse).
        selection: "exact" (default) drops exactly the k lowest-scoring units, ties at
            random; "notebook" applies the authors' notebooks' rule
            (:func:`dropnet_tf.core.selection.notebook_drop`), with random draws as the scores of
            the random metrics.  "notebook" needs ``fraction`` (not ``count``).

    Returns:
        New masks.  Layers left with no unit are listed by
        :func:`dropnet_tf.core.selection.collapsed_layers`, and a warning is issued.
    """
    metric = get_metric(metric)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    missing = sorted(set(masks) - set(statistics.mean_abs))
    if missing:
        raise ValueError(f"No statistics for mask layer(s) {missing}.")
    scores = metric.score(statistics)
    scores = {name: scores[name] for name in masks}
    rng = as_generator(rng)
    if selection == "notebook" and metric.random_scores:
        scores = {name: rng.random(np.shape(value)) for name, value in scores.items()}
    drop = select_units(
        scores,
        masks,
        fraction=None if count is not None else fraction,
        scope=metric.scope,
        rng=rng,
        count=count,
        min_units_per_layer=min_units_per_layer,
        selection=selection,
    )
    return apply_drop(masks, drop)


__all__ = [
    "UnitMetric",
    "METRICS",
    "PAPER_METRICS",
    "get_metric",
    "update_masks",
    "collapsed_layers",
]
