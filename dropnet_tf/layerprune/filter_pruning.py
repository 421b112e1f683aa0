"""One-shot and iterative filter pruning with the criteria of :mod:`.criteria`.

LayerPrune's supplement (Section 1.1 and "One-shot vs iterative", Table 1) prunes a total
number of filters either at once ("one-shot") or iteratively, "re-evaluating [the]
criterion of [each] filter after each prune", 10 % of the total per iteration with a few
mini-batches of fine-tuning in between (following Molchanov et al. 2019).  Here:

* ``schedule="one_shot"``: score once, drop the whole total.
* ``schedule="iterative"``: split the total into ``steps`` near-equal parts; before each
  part re-score the model *with its current masks* (and whatever ``between_steps`` did to
  its weights), then drop that part.

Each step is :func:`dropnet_tf.core.scoring.prune_step` with ``count=k``, the loop DropNet's
iterative pruning runs too (lower scores are pruned first, ties at random,
``min_units_per_layer`` kept per layer), so "global" and "layer" scopes mean exactly what
they mean for the DropNet metrics, and any registered scorer can be used.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dropnet_tf.core.objective import as_batch
from dropnet_tf.core.scoring import DEFAULT_BATCH_SIZE
from dropnet_tf.layerprune.criteria import get_filter_criterion
from dropnet_tf.core.masking import get_masks, require_mask_layers
from dropnet_tf.core.scoring import prune_step
from dropnet_tf.core.selection import SCOPES, NothingToPruneError, as_generator, prune_count, validate_fraction
from dropnet_tf.core.validation import check_int, check_xy

SCHEDULES = ("one_shot", "iterative")


@dataclass
class FilterPruningResult:
    """What :func:`prune_filters` did.

    Attributes:
        masks: the final masks ``{mask layer name: float32 0/1 array}`` (also set on the model).
        history: one dict per pruning step, ``{"step": 1-based index, "pruned": units
            removed in that step, "remaining": active units after it}``.
        requested: the total number of units asked for (from ``fraction`` or ``count``).
    """

    masks: dict
    history: list = field(default_factory=list)
    requested: int = 0

    @property
    def pruned(self) -> int:
        """Units removed over all steps."""
        return int(sum(entry["pruned"] for entry in self.history))


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def split_evenly(total: int, steps: int) -> list[int]:
    """``total`` split into ``min(steps, total)`` near-equal positive parts, larger first.

    >>> split_evenly(7, 3)
    [3, 2, 2]
    """
    steps = max(1, min(steps, total))
    base, extra = divmod(total, steps)
    return [base + (1 if index < extra else 0) for index in range(steps)]


def _active(masks) -> int:
    return int(sum(int(np.count_nonzero(np.asarray(mask) > 0)) for mask in masks.values()))


def _spare(masks, min_units_per_layer: int) -> int:
    return int(sum(max(0, int(np.count_nonzero(np.asarray(m) > 0)) - min_units_per_layer) for m in masks.values()))


def prune_filters(
    model,
    criterion,
    *,
    data=None,
    fraction: float | None = None,
    count: int | None = None,
    scope: str | None = None,
    schedule: str = "one_shot",
    steps: int = 10,
    between_steps: Callable | None = None,
    rng=None,
    min_units_per_layer: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> FilterPruningResult:
    """Prune filters (and Dense nodes) of a masked model by a filter criterion, in place.

    Args:
        model: a model with MaskLayers; its masks are updated with ``set_masks``.
        criterion: a name from ``FILTER_CRITERIA`` (or any name of the scorer registry,
            :data:`dropnet_tf.core.scoring.UNIT_SCORERS`) or a :class:`~dropnet_tf.core.scoring.UnitScorer`.
        data: ``(x, y)`` for the data criteria (taylor, feature_maps, mean_activation).
        fraction: prune ``floor(fraction · R)`` units in total (at least one), R the
            units active when the call starts; in (0, 1].
        count: prune exactly this many units in total instead.  Give one of the two.
        scope: ``"global"`` (lowest scores across all layers) or ``"layer"`` (spread so
            that the layers' remaining fractions stay level), as in :func:`select_units`;
            None (default) takes the criterion's ``default_scope`` ("global" for every
            LayerPrune criterion, "layer" for DropNet's ``*_layer`` aliases).
        schedule: ``"one_shot"`` (score once, drop all) or ``"iterative"`` (re-score
            before each of ``steps`` near-equal parts).
        steps: number of parts of the iterative schedule (>= 1).  When the total is
            smaller than ``steps``, there are ``total`` steps of one unit each.
        between_steps: optional ``f(model, step)`` called after steps 1 .. n−1 of the
            iterative schedule — i.e. *between* steps, n−1 times, never after the last
            step (fine-tuning after pruning is the caller's next phase) and never under
            the one-shot schedule.  ``step`` is the 1-based index of the step just done;
            the model already carries that step's masks.  Use it to fine-tune a few
            mini-batches, as the supplement does.
        rng: numpy Generator or int seed; breaks ties between equal scores.
        min_units_per_layer: never leave a layer with fewer active units (0 allows
            layer collapse).  If the layers' minimums leave fewer units prunable than
            requested, fewer are pruned and a warning says so.
        batch_size: mini-batch size of the data criteria.

    Returns:
        A :class:`FilterPruningResult` with the final masks and one history entry per step.

    Raises:
        ValueError: on a bad argument (naming it and the allowed values), or when the
            criterion needs data and none is given.
        NothingToPruneError: when no unit can be pruned at all.
    """
    criterion = get_filter_criterion(criterion)
    scope = criterion.default_scope if scope is None else scope
    fraction = _check_prune_filters_arguments(
        criterion, data, fraction, count, scope, schedule, steps, between_steps, min_units_per_layer
    )
    batch_size = check_int("batch_size", batch_size, 1)
    require_mask_layers(model)
    if criterion.needs_data:
        x, y = as_batch(data, f"prune_filters' data for the criterion {criterion.name!r}")
        check_xy(x, y, f"prune_filters' data for the criterion {criterion.name!r}", model=model)
    rng = as_generator(rng)
    masks = get_masks(model)
    total = count if count is not None else prune_count(fraction, _active(masks))
    if _spare(masks, min_units_per_layer) == 0:
        raise NothingToPruneError(
            f"No unit can be removed: every layer is at min_units_per_layer={min_units_per_layer}."
        )
    parts = [total] if schedule == "one_shot" else split_evenly(total, steps)

    history = []
    for step, part in enumerate(parts, start=1):
        if _spare(masks, min_units_per_layer) == 0:
            break  # the layers' minimums are reached; nothing more can go
        before = _active(masks)
        masks = prune_step(
            model, criterion, data, count=int(part), scope=scope, rng=rng,
            min_units_per_layer=min_units_per_layer, batch_size=batch_size, masks=masks,
        )
        history.append({"step": step, "pruned": before - _active(masks), "remaining": _active(masks)})
        if between_steps is not None and step < len(parts):
            between_steps(model, step)

    result = FilterPruningResult(masks=masks, history=history, requested=int(total))
    if result.pruned < total:
        warnings.warn(
            f"Pruned {result.pruned} of the {total} requested units: the other layers are at "
            f"min_units_per_layer={min_units_per_layer}.",
            stacklevel=2,
        )
    return result


def _check_prune_filters_arguments(criterion, data, fraction, count, scope, schedule, steps, between_steps,
                                   min_units_per_layer):
    """prune_filters' argument checks, before the model is read; returns the checked fraction."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
    if not _is_int(steps) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}.")
    if (fraction is None) == (count is None):
        raise ValueError(
            f"Give exactly one of fraction and count (got fraction={fraction!r}, count={count!r})."
        )
    if fraction is not None:
        fraction = validate_fraction(fraction)
    if count is not None and (not _is_int(count) or count < 1):
        raise ValueError(f"count must be a positive integer, got {count!r}.")
    if not _is_int(min_units_per_layer) or min_units_per_layer < 0:
        raise ValueError(f"min_units_per_layer must be an integer >= 0, got {min_units_per_layer!r}.")
    if between_steps is not None and not callable(between_steps):
        raise TypeError(f"between_steps must be a callable f(model, step) or None, got {type(between_steps).__name__}.")
    if criterion.needs_data and data is None:
        raise ValueError(f"The filter criterion {criterion.name!r} needs data: pass data=(x, y).")
    return fraction


__all__ = ["prune_filters", "FilterPruningResult", "SCHEDULES", "split_evenly"]
