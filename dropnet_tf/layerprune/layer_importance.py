"""From filter scores to block importance, rank ensembles and one-shot vs iterative ranking.

LayerPrune (Elkerdawy et al., ACCV 2020) turns filter criteria (weight norm, Taylor, batch
norm scale, feature maps...) into layer criteria by averaging a block's filter scores
(Section 3.1), combines criteria by their ranks (the "ensemble" of supplement Figs. 2-3) and
checks in supplement Table 2 that one-shot ranking is as good as re-ranking after every
removal (Spearman correlation between the two).
"""

from __future__ import annotations

import numbers
from typing import Callable, Mapping, Sequence

import numpy as np

from dropnet_tf.layerprune.blocks import Block, blocks_after_removal, remove_blocks


# --------------------------------------------------------------------------- block scores


def block_scores_from_filter_scores(
    filter_scores: Mapping[str, Sequence[float]],
    block_masks: Mapping[str, Sequence[str]],
    masks: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, float]:
    """``{block: mean score of its filters}``: a filter criterion as a layer criterion.

    LayerPrune (Elkerdawy et al., ACCV 2020, Section 3.1) scores a block (or layer) by the
    average importance of its filters under a filter criterion.  ``filter_scores`` is what
    a criterion's ``score(model, data)`` returns (``{mask layer name: per-filter scores}``,
    lower = less important); ``block_masks`` maps each block to the MaskLayers inside it
    (:func:`dropnet_tf.layerprune.blocks.masks_by_block`).  With ``masks`` (``{mask layer
    name: 0/1 array}``, e.g. :func:`dropnet_tf.get_masks`) only active filters (mask 1)
    count.  All of a block's filters are pooled before averaging, so a wide layer weighs more
    than a narrow one.  A block without any (active) filter scores ``-inf``: it computes
    nothing and is the first to go.
    """
    result: dict[str, float] = {}
    for block, names in block_masks.items():
        if isinstance(names, str):
            raise ValueError(f"block_masks['{block}'] must be a list of mask layer names, got the string {names!r}.")
        pooled = []
        for name in names:
            if name not in filter_scores:
                raise ValueError(
                    f"Block '{block}' lists mask layer '{name}', which filter_scores lacks; "
                    f"filter_scores has {sorted(filter_scores)}."
                )
            scores = np.asarray(filter_scores[name], dtype=np.float64).reshape(-1)
            if np.isnan(scores).any():
                raise ValueError(f"filter_scores['{name}'] contains NaN.")
            if masks is not None:
                if name not in masks:
                    raise ValueError(f"masks lacks mask layer '{name}' (of block '{block}'); masks has {sorted(masks)}.")
                mask = np.asarray(masks[name], dtype=np.float64).reshape(-1)
                if mask.shape != scores.shape:
                    raise ValueError(
                        f"masks['{name}'] has {mask.size} entries but filter_scores['{name}'] has {scores.size}."
                    )
                if not np.all((mask == 0) | (mask == 1)):
                    raise ValueError(f"masks['{name}'] must contain only 0 and 1.")
                scores = scores[mask == 1]
            pooled.append(scores)
        values = np.concatenate(pooled) if pooled else np.zeros(0)
        result[block] = float(values.mean()) if values.size else float("-inf")
    return result


# --------------------------------------------------------------------------- ranks


def _average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values`` (ascending), tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        stop = start + 1
        while stop < len(values) and sorted_values[stop] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop]] = (start + 1 + stop) / 2.0  # mean of ranks start+1 .. stop
        start = stop
    return ranks


def rank_ensemble(importances: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{block: mean rank over the criteria}``: LayerPrune's ensemble of layer criteria.

    Supplement of Elkerdawy et al. (ACCV 2020), Section 1.3 / Figs. 2-3: each criterion
    ranks the blocks by its importance, rank 1 being the least important, and the ensemble
    importance of a block is its mean rank (so lower is still less important).  Ties within
    one criterion share the average of the ranks they span (scores 1, 2, 2, 3 get ranks
    1, 2.5, 2.5, 4).  Every criterion must score the same set of blocks; scores must not be
    NaN (``-inf`` / ``inf`` are allowed).
    """
    if not importances:
        raise ValueError("importances is empty: give at least one criterion's {block: score}.")
    criteria = list(importances)
    blocks = list(importances[criteria[0]])
    if not blocks:
        raise ValueError(f"Criterion '{criteria[0]}' scores no block.")
    total = np.zeros(len(blocks))
    for criterion in criteria:
        scores = importances[criterion]
        missing = [b for b in blocks if b not in scores]
        extra = [b for b in scores if b not in set(blocks)]
        if missing or extra:
            raise ValueError(
                f"Criterion '{criterion}' scores a different set of blocks than '{criteria[0]}': "
                f"missing {missing}, extra {extra}."
            )
        values = np.asarray([scores[b] for b in blocks], dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError(f"Criterion '{criterion}' gives NaN to {[b for b, v in zip(blocks, values) if np.isnan(v)]}.")
        total += _average_ranks(values)
    return {block: float(value / len(criteria)) for block, value in zip(blocks, total)}


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equal-length sequences (supplement Table 2).

    Used by LayerPrune (Elkerdawy et al., ACCV 2020, supplement Section 1.2) to compare
    one-shot and iterative block rankings: the Pearson correlation of the average ranks
    (ties share the mean of their ranks, as ``scipy.stats.spearmanr``).  Returns NaN when
    either sequence is constant (its ranks have no variance), like SciPy.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"spearman needs two 1-D sequences of the same length, got shapes {a.shape} and {b.shape}.")
    if a.size < 2:
        raise ValueError(f"spearman needs at least 2 values per sequence, got {a.size}.")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("spearman got NaN values; rank correlation is undefined for them.")
    ra = _average_ranks(a) - (a.size + 1) / 2.0
    rb = _average_ranks(b) - (b.size + 1) / 2.0
    denominator = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
    if denominator == 0:
        return float("nan")
    return float(np.clip(np.sum(ra * rb) / denominator, -1.0, 1.0))


# --------------------------------------------------------------------------- one-shot vs iterative


def _least_important(scores: Mapping[str, float], candidates: Sequence[Block]) -> Block:
    # Lowest score first; ties go to the block earliest in network order.
    return min(enumerate(candidates), key=lambda item: (scores[item[1].name], item[0]))[1]


def _checked_scores(scores, blocks: Sequence[Block], step: int) -> dict[str, float]:
    if not isinstance(scores, Mapping):
        raise ValueError(f"importance_fn must return a {{block name: score}} dict, got {type(scores).__name__} at step {step}.")
    missing = [block.name for block in blocks if block.name not in scores]
    if missing:
        raise ValueError(f"importance_fn gave no score to blocks {missing} at step {step}.")
    result = {block.name: float(scores[block.name]) for block in blocks}
    bad = [name for name, value in result.items() if np.isnan(value)]
    if bad:
        raise ValueError(f"importance_fn gave NaN to blocks {bad} at step {step}.")
    return result


def iterative_block_ranking(
    model,
    blocks: Sequence[Block],
    importance_fn: Callable[[object, list[Block]], Mapping[str, float]],
    n_remove: int,
) -> list[dict]:
    """One-shot versus iterative block removal, as in supplement Table 2 of LayerPrune.

    Elkerdawy et al. (ACCV 2020, supplement Section 1.2): *one-shot* ranks the blocks once
    and removes the ``n`` least important; *iterative* removes the least important block,
    recomputes the importances on the pruned model, and repeats.  The Spearman correlation
    between the one-shot ranking and each re-ranking shows how stable the criterion is.

    ``importance_fn(model, blocks)`` returns ``{block name: score}`` (lower = less
    important) for the given model and its remaining blocks.  It is called ``n_remove + 1``
    times: once on ``model`` (the one-shot ranking, also the first iterative choice) and once
    after each removal.  Only removable blocks (``not block.downsampling``) are ever chosen;
    ties go to the block earliest in ``blocks``.  Removal uses
    :func:`~dropnet_tf.layerprune.blocks.remove_blocks` and the remaining blocks are rewired
    with :func:`~dropnet_tf.layerprune.blocks.blocks_after_removal`.

    Returns one dict per step ``N = 1..n_remove``:

    * ``"n_removed"``: N;
    * ``"removed"``: the block the iterative procedure removed at step N;
    * ``"iterative_removed"`` / ``"one_shot_removed"``: the N blocks each procedure has
      removed so far (one-shot: the N lowest one-shot scores, in that order);
    * ``"scores"``: the importances recomputed on the model after N removals;
    * ``"spearman"``: Spearman correlation, over the removable blocks still present, between
      their one-shot scores and these recomputed scores (NaN if fewer than two remain or
      either ranking is constant);
    * ``"model"``: the iteratively pruned model after N removals (to fine-tune and evaluate;
      the one-shot model is ``remove_blocks(model, one_shot_removed)``).
    """
    blocks = list(blocks)
    if not blocks or not all(isinstance(block, Block) for block in blocks):
        raise ValueError("blocks must be a non-empty list of Block objects (see find_blocks).")
    if not callable(importance_fn):
        raise ValueError(f"importance_fn must be callable as importance_fn(model, blocks), got {importance_fn!r}.")
    removable = [block for block in blocks if block.removable]
    if isinstance(n_remove, bool) or not isinstance(n_remove, numbers.Integral) or not 1 <= n_remove <= len(removable):
        raise ValueError(
            f"n_remove must be an integer from 1 to the number of removable blocks ({len(removable)}), got {n_remove!r}."
        )

    one_shot = _checked_scores(importance_fn(model, list(blocks)), blocks, 0)
    one_shot_order = [
        block.name
        for _, block in sorted(enumerate(removable), key=lambda item: (one_shot[item[1].name], item[0]))
    ]

    records = []
    current_model, current_blocks, scores = model, blocks, one_shot
    removed: list[str] = []
    for step in range(1, int(n_remove) + 1):
        candidates = [block for block in current_blocks if block.removable]
        victim = _least_important(scores, candidates)
        current_model = remove_blocks(current_model, [victim.name], blocks=current_blocks)
        current_blocks = blocks_after_removal(current_blocks, [victim.name])
        removed.append(victim.name)
        scores = _checked_scores(importance_fn(current_model, list(current_blocks)), current_blocks, step)
        still = [block.name for block in current_blocks if block.removable]
        if len(still) >= 2:
            rho = spearman([one_shot[name] for name in still], [scores[name] for name in still])
        else:
            rho = float("nan")
        records.append(
            {
                "n_removed": step,
                "removed": victim.name,
                "iterative_removed": list(removed),
                "one_shot_removed": one_shot_order[:step],
                "scores": dict(scores),
                "spearman": rho,
                "model": current_model,
            }
        )
    return records


__all__ = [
    "block_scores_from_filter_scores",
    "iterative_block_ranking",
    "rank_ensemble",
    "spearman",
]
