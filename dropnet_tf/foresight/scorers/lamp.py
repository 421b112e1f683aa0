"""Layer-adaptive magnitude pruning, LAMP (Lee et al. 2021; thesis Section 3.3, eq. 3.4)."""

from __future__ import annotations

import numpy as np

from dropnet_tf.foresight.scorers.base import WeightScorer


def lamp_scores(values: np.ndarray) -> np.ndarray:
    """LAMP(u, W) = W[u]² / Σ_{v ≥ u} W[v]² (thesis eq. 3.4) for one tensor, in its shape.

    u and v index the flattened tensor sorted by ascending |W|.  Ties in magnitude are
    ordered by flat (row-major) index with a stable sort, so among equal weights the later
    one has the smaller tail sum and the larger score.  This keeps the property the thesis
    states — exactly one weight per tensor scores 1, the largest — also when the largest
    magnitude is shared, which is what guarantees that global selection never empties a
    tensor while at least one weight per tensor is kept.  An all-zero tensor (fully pruned)
    scores 0 everywhere instead of 0/0.
    """
    values = np.asarray(values, np.float64)
    squares = np.square(values).ravel()
    order = np.argsort(squares, kind="stable")
    sorted_squares = squares[order]
    # Suffix sums Σ_{v ≥ u}, accumulated from the largest weight down.
    tails = np.cumsum(sorted_squares[::-1])[::-1]
    sorted_scores = np.divide(sorted_squares, tails, out=np.zeros_like(sorted_squares), where=tails > 0)
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    return scores.reshape(values.shape)


class LAMPScorer(WeightScorer):
    """LAMP scores per tensor (thesis eq. 3.4), compared across tensors with one threshold.

    Each weight's squared magnitude is divided by the summed squares of the weights of its
    own tensor that are at least as large, so the scores of different layers are on one
    scale ((0, 1], the largest weight of each tensor at 1) and global selection gives every
    layer an adapted sparsity.  Uses the current (masked) values: pruned weights score 0.
    """

    name = "lamp"
    needs_data = False
    default_scope = "global"

    def score(self, model, weights, data=None, rng=None):
        return {w.name: lamp_scores(w.variable.numpy()) for w in weights}
