"""Random pruning (thesis Section 2.2.4): every weight gets a uniform random score."""

from __future__ import annotations

import numpy as np

from dropnet_tf.foresight.scorers.base import WeightScorer
from dropnet_tf.core.selection import as_generator


class RandomScorer(WeightScorer):
    """s(θ) ~ U(0, 1), independent per weight: keeps a uniformly random subset.

    With global selection every tensor keeps 1/r of its weights in expectation; with
    layer-wise selection exactly round(n_l / r).
    """

    name = "random"
    needs_data = False

    def score(self, model, weights, data=None, rng=None):
        rng = as_generator(rng)
        return {w.name: rng.random(w.shape) for w in weights}
