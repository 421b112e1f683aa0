"""Pruning at initialisation: score → select → apply, once or iterated.

This is the loop of the thesis' Algorithm 1 and of SNIP's Algorithm 1 (lines 3-5): score
every prunable weight, keep the top 1/r (globally or per layer), write the masks.  SynFlow
repeats it ``n`` times with the exponential schedule of its paper (keep (1/r)^(k/n) after
round k).  Every scorer plugs in through :class:`~dropnet_tf.foresight.scorers.base.WeightScorer`.
"""

from __future__ import annotations

import numbers

import numpy as np

from dropnet_tf.foresight.scorers import METHODS, WEIGHT_SCORERS, WeightScorer
from dropnet_tf.foresight.weights import (
    CompressionReport,
    compression_report,
    get_weight_masks,
    prunable_weights,
    set_weight_masks,
)
from dropnet_tf.core.objective import as_batch
from dropnet_tf.core.selection import SCOPES, WEIGHT_SELECTIONS, as_generator, select_weights
from dropnet_tf.core.validation import check_xy

SCHEDULES = ("exponential", "linear")


def resolve_method(method) -> tuple[WeightScorer, str]:
    """``(scorer, scope)`` for a method name of :data:`METHODS`, or a scorer instance."""
    if isinstance(method, WeightScorer):
        return method, method.default_scope
    if isinstance(method, str) and method in METHODS:
        scorer_name, scope = METHODS[method]
        return WEIGHT_SCORERS[scorer_name](), scope
    raise ValueError(f"Unknown pruning method {method!r}; choose one of {sorted(METHODS)} or pass a WeightScorer.")


def check_compression(compression) -> float:
    if isinstance(compression, bool) or not isinstance(compression, numbers.Real):
        raise TypeError(f"compression must be a number >= 1 (r = 1/density), got {compression!r}.")
    compression = float(compression)
    if not np.isfinite(compression) or compression < 1.0:
        raise ValueError(f"compression must be a finite number >= 1 (r = 1 keeps every weight), got {compression}.")
    return compression


def density_schedule(compression: float, iterations: int, schedule: str = "exponential") -> list[float]:
    """Densities kept after each round.  Exponential: (1/r)^(k/n), SynFlow paper eq. in Alg. 1."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    final = 1.0 / compression
    rounds = np.arange(1, iterations + 1) / iterations
    if schedule == "exponential":
        return [float(final**fraction) for fraction in rounds]
    return [float(1.0 - (1.0 - final) * fraction) for fraction in rounds]


def prune_at_init(
    model,
    method,
    compression,
    data=None,
    *,
    scope: str | None = None,
    iterations: int | None = None,
    schedule: str = "exponential",
    seed=0,
    selection: str = "exact",
) -> CompressionReport:
    """Prune the masked weights of ``model`` to keep 1/``compression`` of them.

    Args:
        model: a model with weight masks (see ``add_weight_masks``), usually just initialised.
        method: a name of :data:`METHODS` (``"snip"``, ``"layer_magnitude"``, ...) or a
            :class:`WeightScorer` instance (then ``scope`` defaults to its ``default_scope``).
        compression: r >= 1; round(n / r) of the n prunable weights are kept (thesis eq. 4.1).
        data: ``(x, y)``, the batch data-driven scorers read (SNIP: 100 MNIST / 128 CIFAR
            examples; GraSP draws a few per class from it).  Ignored by data-free scorers.
        scope: "global" or "layer"; defaults to the method's.
        iterations: score/prune rounds; defaults to the method's (SynFlow: 100, others: 1).
        schedule: how density falls over the rounds, "exponential" (SynFlow) or "linear".
        seed: int or numpy Generator for random scores and tie-breaking.
        selection: how scores tied at the threshold fall (:func:`~dropnet_tf.core.selection.select_weights`):
            ``"exact"`` (default) keeps exactly round(n / r) weights, ties at random;
            ``"thesis"`` keeps every weight tied with the K-th highest score (pruned only
            when strictly below it), the rule behind the thesis' under-pruning of GraSP and
            OBD (its Fig. 4.13): compression error above 0 where scores tie.  SynFlow's
            rounds use it at every round.

    Returns:
        The :class:`CompressionReport` (r, r_e, compression error, collapsed tensors).
    """
    scorer, default_scope = resolve_method(method)
    scope = default_scope if scope is None else scope
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
    compression = check_compression(compression)
    iterations = scorer.default_iterations if iterations is None else iterations
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if selection not in WEIGHT_SELECTIONS:
        raise ValueError(f"selection must be one of {WEIGHT_SELECTIONS}, got {selection!r}.")
    if scorer.needs_data and data is None:
        raise ValueError(f"Method {method!r} scores with data: pass data=(x, y), a batch of training examples.")
    if scorer.needs_data:
        x, y = as_batch(data, "prune_at_init's data")
        check_xy(x, y, "prune_at_init's data", model=model)
    rng = as_generator(seed)
    weights = prunable_weights(model)
    masks = get_weight_masks(model)
    if compression > 1.0:
        for density in density_schedule(compression, int(iterations), schedule):
            scores = scorer.score(model, weights, data, rng)
            masks = select_weights(dict(scores), masks, density, scope, rng, selection)
            set_weight_masks(model, masks)
    return compression_report(model, target_ratio=compression)
