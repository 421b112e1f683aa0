"""Magnitude pruning (thesis Section 2.2.1, eq. 2.1): s(θ) = |θ|."""

from __future__ import annotations

import numpy as np

from dropnet_tf.foresight.scorers.base import WeightScorer


class MagnitudeScorer(WeightScorer):
    """s(θ) = |θ| (thesis eq. 2.1): the smallest weights are pruned first."""

    name = "magnitude"
    needs_data = False

    def score(self, model, weights, data=None, rng=None):
        return {w.name: np.abs(w.variable.numpy()).astype(np.float64) for w in weights}
