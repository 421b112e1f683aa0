"""Structured scorers (unit = Dense node or Conv2D filter), one registry, and one pruning step.

Every structured criterion of the package is a :class:`UnitScorer`: its one job is

    score(model, data, *, batch_size) -> {mask layer name: float64 array of shape (units,)}

and **lower scores are dropped first** (so a criterion whose large values mean "unimportant"
returns their negation).  Scores of units that are already masked do not matter: only
active units are candidates.  What a scorer does *not* decide is which units go: scope
(global or per layer), how many (a fraction or a count), ties, the layer-collapse guard and
the exact or notebook rule are parameters of selection (:mod:`dropnet_tf.core.selection`), applied
by the one loop :func:`prune_step` (score → select → apply) that DropNet's iterative
pruning, the oracle and LayerPrune's one-shot / iterative filter pruning all run.

One registry, :data:`UNIT_SCORERS` (:func:`register_scorer`, :func:`get_scorer`), holds every
built-in scorer under its paper name.  DropNet's ``*_layer`` metrics are aliases binding
``default_scope="layer"`` to the same scorer; LayerPrune's ``mean_activation`` is an alias
of DropNet's ``minimum`` (one implementation).  The built-ins register themselves where
they are defined (:mod:`dropnet_tf.core.statistic_scorers`, :mod:`dropnet_tf.dropnet.oracle`,
:mod:`dropnet_tf.layerprune.criteria`), which importing ``dropnet_tf`` always does.  Foresight's
weight scorers are another kind, with their own registry
(:data:`dropnet_tf.foresight.scorers.WEIGHT_SCORERS`).

A scorer of one's own is a ten-line subclass::

    @register_scorer
    class Smallest(UnitScorer):
        name = "smallest_bias"

        def score(self, model, data=None, *, batch_size=DEFAULT_BATCH_SIZE):
            ...
            return {mask_name: scores, ...}

after which ``"smallest_bias"`` works in ``iterative_prune`` and ``prune_filters`` alike.
"""

from __future__ import annotations

import copy
import numbers
import weakref
from typing import Mapping

import numpy as np

from dropnet_tf.core.masking import get_masks, require_mask_layers, set_masks
from dropnet_tf.core.selection import SCOPES, SELECTIONS, apply_drop, as_generator, select_units
from dropnet_tf.core.statistics import StatisticsCollector, UnitStatistics

#: Mini-batch size a scorer reads data in unless the caller gives one.
DEFAULT_BATCH_SIZE = 128


class UnitScorer:
    """A structured importance criterion: per-unit scores, lower dropped first.

    Class attributes (a subclass sets what differs; an instance may override ``name`` and
    ``default_scope`` through the constructor, which is how registry aliases are made):

    Attributes:
        name: registry name.
        needs_data: whether :meth:`score` reads ``data``.
        default_scope: ``"global"`` or ``"layer"``, the scope :func:`prune_step` selects
            with when the caller gives none.
        inputs_only: the scorer reads only the inputs, so ``data`` may be ``x`` alone (or
            a ``tf.data.Dataset`` of inputs) as well as ``(x, y)``.
        random_scores: the scores are all equal by design (random pruning), so the
            notebooks' selection rule draws the units uniformly instead of applying its
            threshold (see :func:`dropnet_tf.core.selection.notebook_random_drop`).
        default_count: units dropped per step when the caller gives neither a fraction nor
            a count (the oracle drops one at a time); None means a fraction is needed.
    """

    name: str = ""
    needs_data: bool = False
    default_scope: str = "global"
    inputs_only: bool = False
    random_scores: bool = False
    default_count: int | None = None

    def __init__(self, name: str | None = None, scope: str | None = None):
        if name is not None:
            self.name = name
        if scope is not None:
            if scope not in SCOPES:
                raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
            self.default_scope = scope

    @property
    def scope(self) -> str:
        """The default scope (``default_scope``)."""
        return self.default_scope

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, np.ndarray]:
        """``{mask layer name: float64 scores of shape (units,)}``; lower is dropped first.

        Args:
            model: a model with MaskLayers (see :func:`dropnet_tf.add_masks`).
            data: ``(x, y)`` numpy arrays (inputs, integer labels) for the scorers that
                read data; ignored by the others.
            batch_size: mini-batch size of the data scorers.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, scope={self.default_scope!r})"


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


# One StatisticsCollector per model (building it traces a predict function, ~1 s).
_COLLECTORS: dict = {}


def _collector(model) -> StatisticsCollector:
    for key in [key for key, (ref, _) in _COLLECTORS.items() if ref() is None]:
        del _COLLECTORS[key]
    entry = _COLLECTORS.get(id(model))
    if entry is None or entry[0]() is not model:
        entry = (weakref.ref(model), StatisticsCollector(model))
        _COLLECTORS[id(model)] = entry
    return entry[1]


class StatisticScorer(UnitScorer):
    """A scorer that is a function of :class:`dropnet_tf.UnitStatistics` (E|a|, APoZ).

    The statistics come from :func:`dropnet_tf.collect_statistics` (``Model.predict``,
    reduced in-graph), with one collector per model reused across calls.  A subclass
    implements :meth:`from_statistics`; :meth:`score` also takes the statistics directly,
    ``score(statistics)``; a subclass that overrides ``score(statistics)`` instead has
    that method used as its :meth:`from_statistics`.
    """

    needs_data = True
    inputs_only = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "score" in vars(cls) and "from_statistics" not in vars(cls):
            cls.from_statistics = vars(cls)["score"]
            cls.score = StatisticScorer.score

    def from_statistics(self, statistics: UnitStatistics) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def statistics(self, model, data, *, batch_size: int = DEFAULT_BATCH_SIZE) -> UnitStatistics:
        """The statistics of ``model`` over the inputs of ``data`` (``x``, ``(x, y)`` or a Dataset)."""
        if data is None:
            raise ValueError(f"The scorer {self.name!r} needs data: pass data=(x, y) (or just the inputs x).")
        batch_size = check_batch_size(batch_size)
        x = data[0] if isinstance(data, (tuple, list)) and len(data) == 2 else data
        return _collector(model).collect(x, batch_size=batch_size)

    def score(self, model, data=None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        if isinstance(model, UnitStatistics):
            return self.from_statistics(model)
        if isinstance(data, UnitStatistics):
            # Collected already, e.g. by the pass that evaluated the training set
            # (dropnet_tf.engines.statistics_pass): nothing is read again.
            return self.from_statistics(data)
        return self.from_statistics(self.statistics(model, data, batch_size=batch_size))


# --------------------------------------------------------------------------- registry

#: Every registered scorer by name (aliases included); filled as the modules defining
#: scorers are imported, which ``import dropnet_tf`` does.
UNIT_SCORERS: dict[str, UnitScorer] = {}


def register_scorer(scorer, name: str | None = None, *, scope: str | None = None, replace: bool = False):
    """Add a scorer to :data:`UNIT_SCORERS`; usable as a class decorator.

    Args:
        scorer: a :class:`UnitScorer` instance, or a subclass (instantiated with no
            arguments; the class is returned, so ``@register_scorer`` works).
        name: register under this name instead of ``scorer.name``: an alias, a copy of
            the scorer whose ``name`` is ``name`` (``minimum_layer``, ``mean_activation``).
        scope: the alias's ``default_scope`` (``"layer"`` for the ``*_layer`` names).
        replace: allow replacing a scorer already registered under that name.
    """
    returned = scorer
    if isinstance(scorer, type) and issubclass(scorer, UnitScorer):
        scorer = scorer()
    if not isinstance(scorer, UnitScorer):
        raise TypeError(f"register_scorer takes a UnitScorer instance or subclass, got {type(scorer).__name__}.")
    if name is not None or scope is not None:
        scorer = copy.copy(scorer)
        UnitScorer.__init__(scorer, name, scope)
    if not isinstance(scorer.name, str) or not scorer.name:
        raise ValueError(f"A scorer needs a non-empty string name, got {scorer.name!r}.")
    if scorer.default_scope not in SCOPES:
        raise ValueError(f"default_scope must be one of {SCOPES}, got {scorer.default_scope!r}.")
    if scorer.name in UNIT_SCORERS and not replace:
        raise ValueError(f"A scorer named {scorer.name!r} is already registered; pass replace=True to replace it.")
    UNIT_SCORERS[scorer.name] = scorer
    return returned if name is None and scope is None else scorer


def get_scorer(scorer, kind: str = "scorer", allowed=None) -> UnitScorer:
    """A scorer by registry name, or a :class:`UnitScorer` instance passed through.

    ``kind`` and ``allowed`` only shape the error of an unknown name (the old
    ``get_metric`` / ``get_filter_criterion`` messages); every registry name resolves.
    """
    if isinstance(scorer, UnitScorer):
        return scorer
    if isinstance(scorer, str) and scorer in UNIT_SCORERS:
        return UNIT_SCORERS[scorer]
    allowed = sorted(UNIT_SCORERS) if allowed is None else allowed
    raise ValueError(f"Unknown {kind} {scorer!r}; allowed: {allowed}.")


# --------------------------------------------------------------------------- the one loop


def select_and_drop(
    scores: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    *,
    fraction: float | None = None,
    count: int | None = None,
    scope: str = "global",
    selection: str = "exact",
    min_units_per_layer: int = 1,
    rng=None,
    random_scores: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Select and drop: ``(new masks, {layer: bool array of the units dropped})``.

    ``count`` wins over ``fraction``.  ``random_scores`` marks scores that rank nothing
    (the random metrics): under ``selection="notebook"`` the units are then drawn as the
    authors' code draws them, uniformly over the active units (``select_units(uniform=True)``).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    scores = {name: scores[name] for name in masks}
    rng = as_generator(rng)
    drop = select_units(
        scores,
        masks,
        fraction=None if count is not None else fraction,
        scope=scope,
        rng=rng,
        count=count,
        min_units_per_layer=min_units_per_layer,
        selection=selection,
        uniform=random_scores,
    )
    return apply_drop(masks, drop), drop


def prune_step(
    model,
    scorer,
    data=None,
    *,
    fraction: float | None = None,
    count: int | None = None,
    scope: str | None = None,
    selection: str = "exact",
    min_units_per_layer: int = 1,
    rng=None,
    batch_size: int | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    apply: bool = True,
) -> dict[str, np.ndarray]:
    """One pruning step: score the model, select the lowest-scoring units, drop them.

    Args:
        model: a model with MaskLayers.
        scorer: a registry name or a :class:`UnitScorer`.
        data: what the scorer reads (``(x, y)``; ``x`` or a Dataset of inputs for the
            statistic scorers).
        fraction: drop floor(p·R) of the R active units (``scope="global"``) or of each
            layer's R_l (``"layer"``), at least one.
        count: drop exactly this many instead (wins over ``fraction``).  With neither,
            the scorer's ``default_count``.
        scope: ``"global"`` or ``"layer"``; None takes the scorer's ``default_scope``.
        selection, min_units_per_layer: as in :func:`dropnet_tf.select_units`.
        rng: numpy Generator or int seed (ties, random scores).
        batch_size: passed to ``scorer.score`` when given (else the scorer's default).
        masks: the current masks; None reads them from the model.
        apply: set the new masks on the model (``set_masks``).

    Returns:
        The new masks.

    Raises:
        NothingToPruneError: when every layer is at ``min_units_per_layer``.
    """
    scorer = get_scorer(scorer)
    require_mask_layers(model)
    if fraction is None and count is None:
        count = scorer.default_count
    scope = scorer.default_scope if scope is None else scope
    masks = get_masks(model) if masks is None else masks
    options = {} if batch_size is None else {"batch_size": batch_size}
    scores = scorer.score(model, data, **options)
    missing = sorted(set(masks) - set(scores))
    if missing:
        raise ValueError(f"The scorer {scorer.name!r} gave no scores for mask layer(s) {missing}.")
    new, _ = select_and_drop(
        scores, masks, fraction=fraction, count=count, scope=scope, selection=selection,
        min_units_per_layer=min_units_per_layer, rng=rng, random_scores=scorer.random_scores,
    )
    if apply:
        set_masks(model, new)
    return new


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "UnitScorer",
    "StatisticScorer",
    "UNIT_SCORERS",
    "register_scorer",
    "get_scorer",
    "select_and_drop",
    "prune_step",
]
