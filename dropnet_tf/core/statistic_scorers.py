"""The scorers computed from unit statistics (E|a| and APoZ): DropNet's metrics of Table 1 and
APoZ, and LayerPrune's ``mean_activation`` (DropNet's ``minimum``, one implementation).

Each is a :class:`dropnet_tf.core.scoring.StatisticScorer` registered in
:data:`dropnet_tf.core.scoring.UNIT_SCORERS` under its name and, with ``default_scope="layer"``,
under ``<name>_layer``, when this module is imported.  :mod:`dropnet_tf.dropnet.metrics`
gives DropNet's view of them (``METRICS``, Table 1).
"""

from __future__ import annotations

import numpy as np

from dropnet_tf.core.scoring import StatisticScorer, register_scorer


class MinimumActivation(StatisticScorer):
    """DropNet's metric: the smallest expected absolute post-activation goes first (Sec. 2).

    Also LayerPrune's ``mean_activation`` criterion (an alias in the registry).
    """

    name = "minimum"

    def from_statistics(self, statistics):
        return {name: np.asarray(value, np.float64) for name, value in statistics.mean_abs.items()}


class MaximumActivation(StatisticScorer):
    """The control opposite of DropNet: the largest E(a_i) / E(f_i) goes first."""

    name = "maximum"

    def from_statistics(self, statistics):
        return {name: -np.asarray(value, np.float64) for name, value in statistics.mean_abs.items()}


class RandomScore(StatisticScorer):
    """Score 0 for every unit, so the random tie-break alone decides (Table 1).

    Under ``selection="notebook"`` the scores are not used: as in the authors' code, k of
    the active units of all layers are drawn uniformly, with no threshold, layer order or
    layer guard (:func:`dropnet_tf.core.selection.notebook_random_drop`); ``random_layer``
    draws k_l uniformly within each layer.
    """

    name = "random"
    random_scores = True

    def from_statistics(self, statistics):
        return {name: np.zeros(np.shape(value)) for name, value in statistics.mean_abs.items()}


class HighestAPoZ(StatisticScorer):
    """APoZ (Hu et al. 2016): the unit most often exactly zero goes first."""

    name = "apoz"

    def from_statistics(self, statistics):
        return {name: -np.asarray(value, np.float64) for name, value in statistics.apoz.items()}


for _scorer in (MinimumActivation(), MaximumActivation(), RandomScore(), HighestAPoZ()):
    register_scorer(_scorer)
    register_scorer(_scorer, f"{_scorer.name}_layer", scope="layer")


__all__ = ["MinimumActivation", "MaximumActivation", "RandomScore", "HighestAPoZ"]
