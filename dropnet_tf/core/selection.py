"""Choosing which units to remove from scores: global vs layer-wise, once for every scorer.

Scores follow one convention everywhere: **lower scores are pruned first**.  Only units
still active are candidates, ties are broken at random with the caller's generator
(DropNet, ICML 2020, Section 3.1: "ties are broken randomly"), and by default every layer
keeps at least one unit so that the network can never be cut in two without being told.

Two selection rules (``selection=``):

``"exact"`` (default)
    exactly k = floor(p·R) of the lowest-scoring active units (at least one), ties at random.
``"notebook"``
    the authors' notebooks' rule, for comparing with them (:func:`notebook_drop`): every
    active unit scoring at most the score at position floor(p·R) of the ascending sorted
    scores qualifies (k+1 units without ties), and units are dropped visiting the layers in
    model order, each layer's qualifiers in random order, until the quota k is used up.
    The unit left over is in the last layer that has a qualifier (global metrics) or is a
    random one of the layer's qualifiers (layer-wise metrics); with ties the earlier layers
    lose theirs first.  The random metrics (``uniform=True``) skip the threshold: the
    notebooks draw k of the active units uniformly (:func:`notebook_random_drop`).  With
    ``count=1`` it is the notebooks' drop-one mode (:func:`notebook_drop_one`).
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np

SCOPES = ("global", "layer")
SELECTIONS = ("exact", "notebook")
#: Weight selection rules of :func:`select_weights` (foresight pruning): ``"exact"`` keeps
#: exactly round(n/r) weights, ties at the threshold at random; ``"thesis"`` keeps every
#: weight tied with the last one kept (the thesis' under-pruning, its Section 4.2.3).
WEIGHT_SELECTIONS = ("exact", "thesis")


class NothingToPruneError(ValueError):
    """Raised when no active unit may be removed (every layer is at its minimum size)."""


def as_generator(rng) -> np.random.Generator:
    """Accept a numpy Generator, an int seed, or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}.")


def validate_fraction(fraction) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating, np.integer)):
        raise TypeError(f"fraction must be a number in (0, 1], got {fraction!r}.")
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    return fraction


def prune_count(fraction: float, active: int) -> int:
    """floor(p·R) with a minimum of one, as the DropNet authors' code does.

    The small epsilon keeps products such as 0.29 · 100 = 28.999999999999996 from losing a unit.
    """
    return max(1, int(math.floor(fraction * active + 1e-9)))


def notebook_threshold_position(fraction: float, active: int) -> int:
    """Where the notebooks' rule reads its threshold in the ascending sorted scores.

    Position floor(p·R) (0-based), so that floor(p·R) + 1 units score at most the threshold
    when there are no ties; capped at R - 1, so p = 1 qualifies every unit.
    """
    return min(int(math.floor(fraction * active + 1e-9)), active - 1)


def notebook_drop(
    scores: Mapping[str, np.ndarray],
    active: Mapping[str, np.ndarray],
    fraction: float,
    scope: str,
    rng: np.random.Generator,
    spare: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """The authors' notebooks' selection rule: indices of the units to drop, per layer.

    For each group of units (all layers for ``scope="global"``, each layer on its own for
    ``"layer"``) with R active units:

    1. the threshold is the score at position floor(p·R) of the group's ascending sorted
       scores (:func:`notebook_threshold_position`); the active units scoring at most it
       *qualify*: floor(p·R) + 1 of them without ties, more with ties;
    2. the quota is :func:`prune_count` (floor(p·R), at least one);
    3. the group's layers are visited in model order (the order of ``active``), each
       layer's qualifiers in random order, and qualifiers are dropped until the quota is
       used up.

    So, without ties, exactly one qualifier is left over: for global metrics it lies in the
    last layer (model order) that has a qualifier, for layer-wise ones it is a random one of
    the layer's qualifiers.  ``spare`` (units each layer may still lose, the
    ``min_units_per_layer`` guard) skips the qualifiers of a layer at its minimum; the
    quota may then not be used up.
    """
    names = list(active)
    spare = dict(spare) if spare is not None else {name: active[name].size for name in names}
    groups = [names] if scope == "global" else [[name] for name in names]
    dropped = {name: [] for name in names}
    for group in groups:
        total = sum(active[name].size for name in group)
        if total == 0:
            continue
        quota = prune_count(fraction, total)
        group_scores = np.concatenate([np.asarray(scores[name], np.float64)[active[name]] for name in group])
        threshold = np.sort(group_scores)[notebook_threshold_position(fraction, total)]
        for name in group:
            if quota == 0:
                break
            layer_scores = np.asarray(scores[name], np.float64)[active[name]]
            qualifiers = active[name][layer_scores <= threshold]
            for unit in rng.permutation(qualifiers):
                if quota == 0 or spare[name] == 0:
                    break
                dropped[name].append(int(unit))
                spare[name] -= 1
                quota -= 1
    return {name: np.asarray(units, dtype=np.int64) for name, units in dropped.items()}


def notebook_random_drop(
    active: Mapping[str, np.ndarray],
    fraction: float,
    scope: str,
    rng: np.random.Generator,
    spare: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """The authors' notebooks' ``random`` and ``random_layer``: indices of the units to drop.

    No scores, no threshold and no layer order.  ``scope="global"`` permutes the indices of
    every active unit of every layer together and drops the first k = max(1, int(p·R)) of
    them, wherever they fall, so a layer can lose all of its units; ``"layer"`` drops
    max(1, int(p·R_l)) uniformly drawn active units of each layer.  The number each layer
    loses under ``"global"`` is therefore hypergeometric.  ``spare`` (the
    ``min_units_per_layer`` guard, which the notebooks do not have) passes over a unit of a
    layer at its minimum and takes the next one of the permutation instead.
    """
    names = list(active)
    spare = dict(spare) if spare is not None else {name: active[name].size for name in names}
    groups = [names] if scope == "global" else [[name] for name in names]
    dropped = {name: [] for name in names}
    for group in groups:
        layer_of = np.concatenate([np.full(active[name].size, i) for i, name in enumerate(group)])
        unit_of = np.concatenate([active[name] for name in group])
        if unit_of.size == 0:
            continue
        quota = prune_count(fraction, unit_of.size)
        for position in rng.permutation(unit_of.size):
            if quota == 0:
                break
            name = group[layer_of[position]]
            if spare[name] == 0:
                continue
            dropped[name].append(int(unit_of[position]))
            spare[name] -= 1
            quota -= 1
    return {name: np.asarray(units, dtype=np.int64) for name, units in dropped.items()}


def _ranked(scores: np.ndarray, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``candidates`` ordered by ascending score, ties in random order."""
    tie_break = rng.random(candidates.size)
    order = np.lexsort((tie_break, scores[candidates]))
    return candidates[order]


def notebook_drop_one(
    scores: Mapping[str, np.ndarray],
    active: Mapping[str, np.ndarray],
    scope: str,
    rng: np.random.Generator,
    spare: Mapping[str, int] | None = None,
    uniform: bool = False,
) -> dict[str, np.ndarray]:
    """The authors' notebooks' drop-one mode (their oracle comparison, DropNet Section 5):
    indices of the units to drop, per layer.

    In this mode the notebooks read the threshold at position 0 (the lowest score) and
    shuffle nothing, so:

    * score metrics, ``scope="global"``: the first active unit in model order (layer, then
      index) with the lowest score, one unit in all (the oracle's strict ``<`` over the
      units in that order picks the same one);
    * score metrics, ``"layer"``: in every layer, its first active unit with the layer's
      lowest score, one unit per layer;
    * random metrics (``uniform``), ``"global"``: one active unit drawn uniformly;
    * random metrics, ``"layer"``: the first active unit of every layer, one per layer and
      no draw at all (the notebooks' ``random_layer`` takes the layer's qualifiers in index
      order and shuffles them only when dropping a fraction).

    ``spare`` (the ``min_units_per_layer`` guard, which the notebooks do not have) leaves
    out the layers at their minimum; the lowest score is then taken over the others.
    """
    names = list(active)
    spare = dict(spare) if spare is not None else {name: active[name].size for name in names}
    candidates = [name for name in names if active[name].size and spare[name] > 0]
    dropped = {name: np.zeros(0, dtype=np.int64) for name in names}
    if not candidates:
        return dropped
    if uniform and scope == "global":
        units = np.concatenate([active[name] for name in candidates])
        layers = np.concatenate([np.full(active[name].size, i) for i, name in enumerate(candidates)])
        position = int(rng.integers(units.size))
        dropped[candidates[layers[position]]] = units[position : position + 1].astype(np.int64)
    elif uniform:
        for name in candidates:
            dropped[name] = active[name][:1].astype(np.int64)
    elif scope == "global":
        layer_scores = {name: np.asarray(scores[name], np.float64)[active[name]] for name in candidates}
        lowest = min(values.min() for values in layer_scores.values())
        first = next(name for name in candidates if (layer_scores[name] <= lowest).any())
        dropped[first] = active[first][np.flatnonzero(layer_scores[first] <= lowest)[:1]].astype(np.int64)
    else:
        for name in candidates:
            values = np.asarray(scores[name], np.float64)[active[name]]
            dropped[name] = active[name][np.flatnonzero(values <= values.min())[:1]].astype(np.int64)
    return dropped


def select_units(
    scores: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    fraction: float | None,
    scope: str,
    rng,
    count: int | None = None,
    min_units_per_layer: int = 1,
    selection: str = "exact",
    uniform: bool = False,
) -> dict[str, np.ndarray]:
    """Boolean arrays (per layer) of the active units to remove.

    Args:
        scores: per-layer unit scores; lower is pruned first.
        masks: per-layer current masks (1 = active); only active units are candidates.
        fraction: p. ``global`` removes floor(p·R) of all R remaining units; ``layer``
            removes floor(p·R_l) of each layer's R_l remaining units (at least one each).
        scope: "global" or "layer".
        rng: numpy Generator (or seed) for tie-breaking.
        count: instead of a fraction, remove exactly this many units in total (the
            oracle comparison's drop-one mode is ``count=1``).  With ``scope="layer"`` each
            unit comes from the layer with the largest fraction of units remaining (ties
            at random), which keeps the layers' fractions level as the layer-wise metrics do.
        min_units_per_layer: a layer is never pruned below this many active units
            (0 allows layer collapse, which is then reported with a warning).
        selection: "exact" (default): the k lowest-scoring units, ties at random.
            "notebook": the authors' notebooks' rule (:func:`notebook_drop`): every unit
            scoring at most the (k+1)-th lowest score qualifies, and qualifiers are dropped
            layer by layer in model order, at random within a layer, until k are gone.  With
            ``count=1`` it is the notebooks' drop-one mode (:func:`notebook_drop_one`); other
            counts have only the exact rule.  The guard still applies:
            a layer at ``min_units_per_layer`` keeps its qualifiers, and if no qualifier may
            go, NothingToPruneError is raised.
        uniform: the scores rank nothing (the random metrics).  Under "exact" the random
            tie-break then decides alone; under "notebook" the units are drawn as the
            notebooks' random metrics draw them (:func:`notebook_random_drop`), not through
            the threshold rule.
    """
    fraction = _check_selection_arguments(scores, masks, fraction, scope, count, min_units_per_layer, selection)
    rng = as_generator(rng)
    names = list(masks)
    active = {name: np.flatnonzero(np.asarray(masks[name]) > 0) for name in names}
    for name in names:
        if np.shape(scores[name]) != np.shape(masks[name]):
            raise ValueError(
                f"Scores for layer '{name}' have shape {np.shape(scores[name])}, mask has {np.shape(masks[name])}."
            )
    spare = {name: max(0, active[name].size - min_units_per_layer) for name in names}
    if sum(spare.values()) == 0:
        raise NothingToPruneError(
            f"No unit can be removed: every layer is at min_units_per_layer={min_units_per_layer}."
        )
    drop = {name: np.zeros(np.shape(masks[name]), dtype=bool) for name in names}
    # Each rule marks the units it drops in ``drop`` and uses up ``spare``.
    if selection == "notebook" and count is not None:
        chosen = notebook_drop_one(scores, active, scope, rng, spare, uniform)
        for name in names:
            drop[name][chosen[name]] = True
    elif selection == "notebook":
        _drop_notebook(drop, scores, active, spare, fraction, scope, rng, uniform, min_units_per_layer)
    elif scope == "layer" and count is None:
        _drop_per_layer(drop, scores, active, spare, fraction, rng)
    elif scope == "layer":
        _drop_count_per_layer(drop, scores, masks, active, spare, count, rng)
    else:
        _drop_global(drop, scores, active, spare, fraction, count, rng)

    collapsed = [name for name in names if active[name].size and active[name].size == drop[name].sum()]
    if collapsed:
        warnings.warn(f"Layer collapse: every unit of {collapsed} is being removed.", stacklevel=2)
    return drop


def _check_selection_arguments(scores, masks, fraction, scope, count, min_units_per_layer, selection):
    """select_units' argument checks, before anything is drawn; returns the checked fraction."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    if selection == "notebook" and count is not None and count != 1:
        raise ValueError(
            f"selection='notebook' is a rule for a pruning fraction or for dropping one unit (count=1, the "
            f"notebooks' oracle comparison); count={count!r} has only selection='exact'."
        )
    if (fraction is None) == (count is None):
        raise ValueError("Give exactly one of fraction and count.")
    if fraction is not None:
        fraction = validate_fraction(fraction)
    if count is not None and (not isinstance(count, (int, np.integer)) or count < 1):
        raise ValueError(f"count must be a positive integer, got {count!r}.")
    if not isinstance(min_units_per_layer, (int, np.integer)) or min_units_per_layer < 0:
        raise ValueError(f"min_units_per_layer must be an integer >= 0, got {min_units_per_layer!r}.")
    if set(scores) != set(masks):
        raise ValueError(
            f"Scores and masks must cover the same layers; scores have {sorted(scores)}, "
            f"masks have {sorted(masks)}."
        )
    return fraction


def _drop_notebook(drop, scores, active, spare, fraction, scope, rng, uniform, min_units_per_layer) -> None:
    """selection="notebook": the notebooks' threshold rule, or their random draw (uniform)."""
    names = list(drop)
    if uniform:
        chosen = notebook_random_drop(active, fraction, scope, rng, spare)
    else:
        chosen = notebook_drop(
            {name: np.asarray(scores[name]) for name in names}, active, fraction, scope, rng, spare
        )
    if not any(units.size for units in chosen.values()):
        raise NothingToPruneError(
            f"No qualifying unit can be removed under selection='notebook': every unit at or below "
            f"the threshold is in a layer at min_units_per_layer={min_units_per_layer}."
        )
    for name in names:
        drop[name][chosen[name]] = True


def _drop_per_layer(drop, scores, active, spare, fraction, rng) -> None:
    """Layer-wise with a fraction: floor(p·R_l) of each layer's lowest, within its spare units."""
    for name in drop:
        wanted = min(prune_count(fraction, active[name].size), spare[name]) if active[name].size else 0
        chosen = _ranked(np.asarray(scores[name], np.float64), active[name], rng)[:wanted]
        drop[name][chosen] = True


def _drop_count_per_layer(drop, scores, masks, active, spare, count, rng) -> None:
    """Layer-wise with a count: each unit from the layer with the largest fraction remaining (ties at random)."""
    names = list(drop)
    sizes = {name: np.size(masks[name]) for name in names}
    remaining = {name: list(_ranked(np.asarray(scores[name], np.float64), active[name], rng)) for name in names}
    for _ in range(min(count, sum(spare.values()))):
        open_layers = [name for name in names if spare[name] > 0]
        fractions = np.array([len(remaining[name]) / sizes[name] for name in open_layers])
        best = np.flatnonzero(fractions == fractions.max())
        name = open_layers[int(rng.choice(best))]
        drop[name][remaining[name].pop(0)] = True
        spare[name] -= 1


def _drop_global(drop, scores, active, spare, fraction, count, rng) -> None:
    """Global: the lowest-scoring active units of all layers, skipping layers at their minimum."""
    names = list(drop)
    total_active = sum(a.size for a in active.values())
    wanted = count if count is not None else prune_count(fraction, total_active)
    layer_of = np.concatenate([np.full(active[name].size, i) for i, name in enumerate(names)])
    unit_of = np.concatenate([active[name] for name in names])
    all_scores = np.concatenate([np.asarray(scores[name], np.float64)[active[name]] for name in names])
    order = np.lexsort((rng.random(all_scores.size), all_scores))
    taken = 0
    for position in order:
        if taken == wanted:
            break
        name = names[layer_of[position]]
        if spare[name] == 0:
            continue  # this layer is at its minimum; the next-lowest unit elsewhere goes
        drop[name][unit_of[position]] = True
        spare[name] -= 1
        taken += 1

def apply_drop(masks: Mapping[str, np.ndarray], drop: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """New masks with the chosen units set to zero (the inputs are not modified)."""
    return {name: np.where(drop[name], 0.0, np.asarray(mask, np.float32)).astype(np.float32) for name, mask in masks.items()}


def collapsed_layers(masks: Mapping[str, np.ndarray]) -> list[str]:
    """Names of layers whose every unit is masked."""
    return [name for name, mask in masks.items() if not np.any(np.asarray(mask) > 0)]


# --------------------------------------------------------------------------------------------
# Weight-level selection (foresight pruning): the same convention, lower scores go first.
# --------------------------------------------------------------------------------------------


def keep_count(size: int, density: float) -> int:
    """How many of ``size`` weights a density keeps: round(size · density), exact for r = 2^k."""
    return int(math.floor(size * density + 0.5))


def _top_k(values: np.ndarray, k: int, rng: np.random.Generator, selection: str = "exact") -> np.ndarray:
    """Boolean mask of the k largest values.

    ``"exact"``: exactly k, ties at the threshold (the k-th largest value) broken at random.
    ``"thesis"``: every value at least the k-th largest, so all ties at the threshold stay
    (k or more kept); put the other way, a value is pruned only when it is strictly below
    the (n − k + 1)-th smallest, the smallest value the exact rule could keep.

    O(n) with ``np.partition`` (no full sort), so that iterating SynFlow 100 times over
    millions of weights stays cheap.
    """
    keep = np.zeros(values.size, dtype=bool)
    if k <= 0:
        return keep
    if k >= values.size:
        keep[:] = True
        return keep
    threshold = np.partition(values, values.size - k)[values.size - k]
    if selection == "thesis":
        return values >= threshold
    keep = values > threshold
    needed = k - int(keep.sum())
    if needed > 0:
        ties = np.flatnonzero(values == threshold)
        keep[rng.choice(ties, size=needed, replace=False)] = True
    return keep


def select_weights(
    scores: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    density: float,
    scope: str,
    rng,
    selection: str = "exact",
) -> dict[str, np.ndarray]:
    """New 0/1 masks keeping the highest-scoring active weights (lower scores are pruned).

    Args:
        scores: per-tensor scores, each with its mask's shape.
        masks: current masks; only active entries (1) can be kept.
        density: fraction of *all* prunable weights to keep, 1/r for a compression ratio r
            (thesis eq. 4.1).  ``global`` keeps round(n·density) weights across every tensor
            (SNIP eq. 7: the top-κ of all connections); ``layer`` keeps round(n_l·density)
            of each tensor on its own (thesis Section 2.2).
        scope: "global" or "layer".
        rng: numpy Generator or seed; breaks ties at the threshold (``"exact"`` only).
        selection: how ties at the threshold fall, with K = round(n·density) the weights to
            keep (n = all weights of the group: the network for ``global``, the tensor for
            ``layer``) and t the K-th largest active score:

            ``"exact"`` (default)
                exactly K weights kept: every score above t, and as many of those equal to t
                as fill K, drawn at random.  r_e = r up to rounding.
            ``"thesis"``
                every score at least t is kept, so a weight is pruned only when its score is
                strictly below t; all ties at t stay.  The thesis' under-pruning (its Section
                4.2.3, Fig. 4.13): when many scores are equal, e.g. the exact zeros of OBD's
                and GraSP's second-order scores, "the algorithm, not wanting to over-prune,
                decides not to prune all the zero scores".  Without ties both rules keep the
                same K weights; with ties it keeps more, and the compression error
                (r − r_e) / r is positive.

    A tensor can lose every weight (layer collapse, thesis Section 3.6); it is not
    prevented, because measuring it is part of the comparison.  ``weight_collapse`` finds it.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
    if selection not in WEIGHT_SELECTIONS:
        raise ValueError(f"selection must be one of {WEIGHT_SELECTIONS}, got {selection!r}.")
    if isinstance(density, bool) or not isinstance(density, (int, float, np.floating, np.integer)):
        raise TypeError(f"density must be a number in (0, 1], got {density!r}.")
    density = float(density)
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1] (1/r for compression ratio r >= 1), got {density}.")
    if set(scores) != set(masks):
        raise ValueError(
            f"Scores and masks must cover the same weights; scores have {sorted(scores)}, masks have {sorted(masks)}."
        )
    rng = as_generator(rng)
    names = list(masks)
    flat_scores, active = {}, {}
    for name in names:
        mask = np.asarray(masks[name])
        score = np.asarray(scores[name], np.float64)
        if score.shape != mask.shape:
            raise ValueError(f"Scores for '{name}' have shape {score.shape}, its mask has {mask.shape}.")
        if not np.all(np.isfinite(score[mask > 0])):
            bad = score[(mask > 0) & ~np.isfinite(score)].ravel()[:3]
            raise ValueError(f"Scores for '{name}' are not finite ({bad.tolist()}); the scorer overflowed or divided by zero.")
        flat_scores[name] = score.ravel()
        active[name] = mask.ravel() > 0
    new = {}
    if scope == "layer":
        for name in names:
            k = min(keep_count(active[name].size, density), int(active[name].sum()))
            keep = np.zeros(active[name].size, dtype=bool)
            candidates = np.flatnonzero(active[name])
            keep[candidates[_top_k(flat_scores[name][candidates], k, rng, selection)]] = True
            new[name] = keep.reshape(np.shape(masks[name])).astype(np.float32)
        return new
    total = sum(a.size for a in active.values())
    candidates_scores = np.concatenate([flat_scores[n][active[n]] for n in names])
    k = min(keep_count(total, density), candidates_scores.size)
    chosen = _top_k(candidates_scores, k, rng, selection)
    start = 0
    for name in names:
        count = int(active[name].sum())
        keep = np.zeros(active[name].size, dtype=bool)
        keep[np.flatnonzero(active[name])[chosen[start : start + count]]] = True
        start += count
        new[name] = keep.reshape(np.shape(masks[name])).astype(np.float32)
    return new
