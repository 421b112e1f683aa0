"""The one interface every weight-level scorer implements: ``score``.

A scorer turns a model (and, when it needs them, a batch of examples) into one array of
scores per prunable weight tensor.  **Lower scores are pruned first**, the convention of
the whole package (see :mod:`dropnet_tf.core.selection`); a method whose paper removes the
*highest* scores (GraSP) returns the negated score and says so.  Selecting (global vs
layer-wise), applying masks, iterating (SynFlow) and counting compression live once, in
:mod:`dropnet_tf.foresight.prune`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


class WeightScorer:
    """Base class: subclasses set ``name`` and implement :meth:`score`.

    Attributes:
        name: registry name (``"snip"``, ``"magnitude"``, ...).
        needs_data: whether :meth:`score` reads ``data``; data-free scorers (random,
            magnitude, LAP, LAMP, SynFlow) accept ``data=None``.
        default_scope: the selection the method's paper uses ("global" or "layer").
        default_iterations: score/prune rounds the paper uses (SynFlow: 100).
    """

    name: str = ""
    needs_data: bool = True
    default_scope: str = "global"
    default_iterations: int = 1

    def score(self, model, weights: Sequence, data=None, rng: np.random.Generator | None = None) -> Mapping[str, np.ndarray]:
        """``{weight.name: scores with the weight's shape}``; lower is pruned first.

        Args:
            model: the Keras model holding ``weights`` (masked entries already zero).
            weights: the :class:`~dropnet_tf.foresight.weights.PrunableWeight` list.
            data: ``(x, y)`` numpy arrays, a batch of training examples, or None.
            rng: numpy Generator for scorers that draw random numbers.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
