"""Population training: many DropNet runs of one architecture trained as one computation.

Each member is one run of DropNet's Algorithm 1 (Tan & Motani, ICML 2020, Section 2) with
its own metric, seed, init, masks, optimizer state, data order, early-stopping state and
cycle counter.  The members' weights live in one :class:`dropnet_tf.engines.stacked.StackedTrainer`
(a leading run axis); every epoch trains all members at once, each on its own order of
the training data (``derive_seed("train", seed, cycle)``, as :class:`IterativePruner`).  A
member whose training ends (early stopping or its last epoch) is evaluated and scored
(statistics of the stacked network, one pass for every member that ended), pruned, reset
to θ0 (or a fresh draw) and goes on with its next cycle while the others keep training; a
finished run leaves its row to the next run of the grid, and rows left empty are dropped.

Each member *is* an :class:`IterativePruner` driven through :meth:`IterativePruner.steps`:
the records, the results file, the state files (θ0, masks, fingerprint) and resuming are
its own, so a population's records are those of separate runs and a killed population
resumes every member after its last finished cycle.

Exact up to the order of floating-point summation, which holds for: the statistic metrics
(minimum, maximum, random, APoZ and their layer-wise twins), init "original" or "random",
keras SGD (constant learning rate, momentum, Nesterov), early stopping on any monitor, the
layers of Models A, B and C.  Anything else raises ValueError before a model is trained.
"""

from __future__ import annotations

import numbers

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.core.scoring import StatisticScorer, get_scorer, select_and_drop
from dropnet_tf.engines.stacked import XLA_MIN_ROWS, StackedNetwork, StackedTrainer, architecture, sgd_settings
from dropnet_tf.dropnet.iterative import IterativePruner, derive_seed

#: The largest population ``"auto"`` makes.
AUTO_LIMIT = 64


def check_population(population, runs: int | None = None):
    """``population`` as an int ≥ 1 (``"auto"``: every run, at most :data:`AUTO_LIMIT`), or None."""
    if population is None:
        return None
    if isinstance(population, str):
        if population != "auto":
            raise ValueError(f"population must be an integer >= 1, 'auto' or None, got {population!r}.")
        return max(1, min(AUTO_LIMIT, runs if runs is not None else AUTO_LIMIT))
    if isinstance(population, bool) or not isinstance(population, numbers.Integral):
        raise TypeError(f"population must be an integer >= 1, 'auto' or None, got {population!r}.")
    if population < 1:
        raise ValueError(f"population must be an integer >= 1, 'auto' or None, got {population!r}.")
    return int(population)


def check_population_metric(metric) -> None:
    """Population training scores from the stacked network's statistics: statistic scorers only."""
    scorer = get_scorer(metric)
    if not isinstance(scorer, StatisticScorer):
        name = metric if isinstance(metric, str) else getattr(scorer, "name", repr(metric))
        raise ValueError(
            f"Population training supports the statistic metrics (minimum, maximum, random, apoz and their *_layer "
            f"twins); {name!r} is not one (it scores the model itself). Run it separately (population=None)."
        )


def check_population_training(training) -> None:
    """Refuse the training settings a stacked trainer cannot reproduce exactly."""
    if training.iterations is not None:
        raise ValueError(f"Population training counts epochs; TrainingConfig.iterations={training.iterations!r} is not supported.")
    if training.max_epochs < 1:
        raise ValueError(f"Population training needs TrainingConfig.max_epochs >= 1, got {training.max_epochs!r}.")
    if training.train_transform is not None:
        raise ValueError("Population training does not apply TrainingConfig.train_transform (augmentation).")
    if tuple(training.callbacks):
        raise ValueError(f"Population training runs no Keras callbacks; TrainingConfig.callbacks={training.callbacks!r}.")


class PopulationMember(IterativePruner):
    """An :class:`IterativePruner` whose training, evaluation and statistics a population computes.

    Its :meth:`reset` leaves the weights and masks for the population to load, and
    :meth:`evaluate` / :meth:`next_masks` use what the population computed for it.
    """

    def __init__(self, model, data, metric="minimum", **kwargs):
        check_population_metric(metric)
        super().__init__(model, data, metric, **kwargs)
        check_population_training(self.training)
        self.sgd = sgd_settings(self.model.optimizer)
        # The per-run trainer and statistics data are not used: the population computes both.
        self.trainer = None
        self._statistics_data = None
        self.pending = None  # (weights, masks) of the cycle about to be trained
        self.scores = None
        self.unit_statistics = None

    def reset(self, cycle: int, masks) -> None:
        weights = self.theta0 if self.init == "original" else self._fresh_weights(cycle)
        self.pending = ([np.asarray(w, np.float32) for w in weights],
                        [np.asarray(masks[layer.name], np.float32) for layer in self.mask_layers])

    def train(self, cycle: int) -> int:
        raise RuntimeError("A PopulationMember is trained by its population (train_population), not alone.")

    def evaluate(self) -> dict[str, float]:
        return dict(self.scores)

    def next_masks(self, cycle: int, masks):
        # As prune_step does with the statistic scorers, on the statistics the population computed.
        rng = np.random.default_rng(derive_seed("prune", self.seed, cycle))
        count = self.count
        if self.fraction is None and count is None:
            count = self.scorer.default_count
        scores = self.scorer.from_statistics(self.unit_statistics)
        missing = sorted(set(masks) - set(scores))
        if missing:
            raise ValueError(f"The scorer {self.scorer.name!r} gave no scores for mask layer(s) {missing}.")
        new, _ = select_and_drop(
            scores, masks, fraction=self.fraction, count=count, scope=self.scorer.default_scope,
            selection=self.selection, min_units_per_layer=self.min_units_per_layer, rng=rng,
            random_scores=self.scorer.random_scores,
        )
        return new


class _Slot:
    """A row of the stacked trainer and the member in it, with its early-stopping state."""

    def __init__(self, member, steps, cycle):
        self.member, self.steps = member, steps
        self.begin(cycle)

    def begin(self, cycle):
        self.cycle = cycle
        self.epoch = 0
        self.wait = 0
        self.best = None
        self.has_best = False


def _improved(monitor: str, current: float, best) -> bool:
    if best is None:
        return True
    return current < best if monitor.endswith("loss") else current > best


def train_population(members, size: int, *, verbose: int = 0) -> dict:
    """Run every member to its end, ``size`` at a time; returns ``{member key (tuple): records}``.

    Args:
        members: an iterable of zero-argument callables, each returning a
            :class:`PopulationMember` (built when a row is free, so that only ``size`` models
            exist at a time).  All must share the architecture and the training settings.
        size: rows trained at once.
        verbose: 1 prints a line when rows are dropped.
    """
    population = _Population(members, check_population(size), verbose)
    if not population.fill():
        return population.finished
    while population.training():
        ended = population.train_epoch()
        if ended:  # evaluate those rows, prune, load their next cycles or members
            population.end_cycles(ended)
            population.drop_empty_rows()
    return population.finished


class _Population:
    """The state of :func:`train_population`: the queue of members, the stacked trainer, its
    rows (a :class:`_Slot` each, None once empty) and the finished runs' records."""

    def __init__(self, members, size: int, verbose: int):
        self.queue = iter(members)
        self.size, self.verbose = size, verbose
        self.finished: dict = {}
        self.first = {}  # the first member's architecture and training settings, to compare the others with
        self.trainer = None
        self.slots: list = []

    def next_member(self):
        """The next member that has a cycle to train, as (member, steps, cycle); None when none is left."""
        for factory in self.queue:
            member = factory()
            if not isinstance(member, PopulationMember):
                raise TypeError(f"A population member factory must return a PopulationMember, got {type(member).__name__}.")
            described = architecture(member.model)
            if not self.first:
                self.first.update(architecture=described, training=member.training, sgd=member.sgd, key=member.key)
            else:
                _check_same(self.first, member, described)
            steps = member.steps()
            try:
                cycle = next(steps)
            except StopIteration as done:  # finished before: its records, nothing to train
                self.finished[tuple(member.key.values())] = done.value
                continue
            return member, steps, cycle
        return None

    def load(self, row, slot):
        weights, masks = slot.member.pending
        self.trainer.set_row(row, weights, masks)
        self.trainer.set_active(row, True)

    def fill(self) -> bool:
        """Fills the rows (the trainer is built for the first member); False if no member has a cycle to train."""
        slots = self.slots
        while len(slots) < self.size:
            found = self.next_member()
            if found is None:
                break
            if self.trainer is None:
                member = found[0]
                network = StackedNetwork(member.model)
                x_train, y_train = member.splits["train"]
                self.trainer = StackedTrainer(
                    network, max(self.size, XLA_MIN_ROWS), x_train, y_train, member.training.loss,
                    jit_compile=member.training.jit_compile, model=member.model, **member.sgd,
                )
            slots.append(_Slot(*found))
            self.load(len(slots) - 1, slots[-1])
        if self.trainer is None:
            return False
        rows = max(len(slots), self.trainer.min_rows)
        slots.extend([None] * (rows - len(slots)))  # empty rows, never active
        if rows < self.trainer.size:
            self.trainer.keep_rows(range(rows))
        self.cfg = self.first["training"]
        self.reference = slots[0].member
        return True

    def training(self) -> bool:
        return any(slot is not None for slot in self.slots)

    def train_epoch(self) -> list:
        """One epoch of every row, then early stopping row by row; returns the rows whose training ended."""
        cfg, slots, monitor = self.cfg, self.slots, self.cfg.monitor
        rows = [r for r, slot in enumerate(slots) if slot is not None]
        seeds = [derive_seed("train", slot.member.seed, slot.cycle) if slot is not None else 0 for slot in slots]
        epochs = [slot.epoch if slot is not None else 0 for slot in slots]
        train_loss = self.trainer.train_epoch(seeds, epochs, batch_size=cfg.batch_size, shuffle=cfg.shuffle,
                                              steps_per_call=cfg.steps_per_call)
        validation = {}
        if cfg.early_stopping and monitor.startswith("val_"):
            x_val, y_val = self.reference.splits["val"]
            for row, result in zip(rows, self.trainer.evaluate(rows, x_val, y_val, cfg.eval_batch_size)):
                validation[row] = result
        snapshot = np.zeros(len(slots), bool)
        ended = []
        for row in rows:
            slot = slots[row]
            stop = cfg.early_stopping and self._early_stop(slot, row, float(train_loss[row]), validation, snapshot)
            slot.epoch += 1
            if stop or slot.epoch >= cfg.max_epochs:
                ended.append(row)
        if snapshot.any():
            self.trainer.snapshot(snapshot)
        return ended

    def _early_stop(self, slot, row, train_loss, validation, snapshot) -> bool:
        """keras.callbacks.EarlyStopping(min_delta=0, baseline=None), epoch by epoch; marks the
        rows whose weights to snapshot in ``snapshot``."""
        cfg, monitor = self.cfg, self.cfg.monitor
        logs = {"loss": train_loss}
        if row in validation:
            logs.update(val_loss=validation[row]["loss"], val_accuracy=validation[row]["accuracy"])
        current = logs[monitor]
        if cfg.restore_best_weights and not slot.has_best:
            snapshot[row] = slot.has_best = True
        slot.wait += 1
        if _improved(monitor, current, slot.best):
            slot.best = current
            if cfg.restore_best_weights:
                snapshot[row] = True
            slot.wait = 0
        elif slot.wait >= cfg.patience and slot.epoch > 0:
            return True
        return False

    def end_cycles(self, ended) -> None:
        """Restores the best weights, evaluates and collects statistics of the ended rows (one
        pass each), and hands each member its cycle's end: its next cycle, or the next member."""
        cfg, slots, trainer, reference = self.cfg, self.slots, self.trainer, self.reference
        if cfg.early_stopping and cfg.restore_best_weights:
            restore = np.zeros(len(slots), bool)
            restore[[row for row in ended if slots[row].has_best]] = True
            trainer.restore(restore)
        # Evaluation and statistics of every member whose training ended, in one pass each.
        scores = {row: {} for row in ended}
        for split in ("train", "val", "test"):
            x, y = reference.splits[split]
            for row, result in zip(ended, trainer.evaluate(ended, x, y, cfg.eval_batch_size)):
                scores[row][f"{split}_loss"] = result["loss"]
                scores[row][f"{split}_accuracy"] = result["accuracy"]
        statistics = trainer.statistics(ended, reference.splits["train"][0], cfg.statistics_batch_size)
        for row, unit_statistics in zip(ended, statistics):
            slot = slots[row]
            slot.member.scores, slot.member.unit_statistics = scores[row], unit_statistics
            try:
                cycle = slot.steps.send(slot.epoch)
            except StopIteration as done:
                self.finished[tuple(slot.member.key.values())] = done.value
                trainer.set_active(row, False)
                found = self.next_member()
                slots[row] = None if found is None else _Slot(*found)
                if found is not None:
                    self.load(row, slots[row])
                continue
            slot.begin(cycle)
            self.load(row, slot)

    def drop_empty_rows(self) -> None:
        """Rows left empty are dropped once they are half of all: smaller steps, few retraces."""
        slots = self.slots
        empty = [r for r, slot in enumerate(slots) if slot is None]
        if empty and len(empty) * 2 >= len(slots) and len(empty) < len(slots):
            keep = [r for r, slot in enumerate(slots) if slot is not None]
            keep += empty[: self.trainer.min_rows - len(keep)]  # an empty row beside a last run under XLA
            if len(keep) == len(slots):
                return
            self.trainer.keep_rows(keep)
            self.slots = [slots[r] for r in keep]
            if self.verbose:
                print(f"[population] {len(keep)} runs left in training.", flush=True)

def _check_same(first: dict, member, described) -> None:
    if described != first["architecture"]:
        where = next(
            (i for i, (a, b) in enumerate(zip(described, first["architecture"])) if a != b),
            min(len(described), len(first["architecture"])),
        )
        mine = described[where] if where < len(described) else "<absent>"
        theirs = first["architecture"][where] if where < len(first["architecture"]) else "<absent>"
        raise ValueError(
            f"A population trains one architecture: the run {member.key} differs from {first['key']} at layer "
            f"{where} ({mine} vs {theirs}). Train different architectures in separate populations."
        )
    if member.training != first["training"] or member.sgd != first["sgd"]:
        raise ValueError(
            f"A population trains with one TrainingConfig and optimizer: the run {member.key} has "
            f"{member.training} / {member.sgd}, the run {first['key']} {first['training']} / {first['sgd']}."
        )


def population_prune(build_model, data, runs, *, population="auto", results=None, experiment: str = "",
                     verbose: int = 0, **prune_kwargs) -> dict:
    """:func:`dropnet_tf.iterative_prune` for many runs as one population.

    Args:
        build_model: ``seed -> masked model`` (called with Keras' global seed set to ``seed``,
            as :func:`dropnet_tf.run_experiment` does, so a member's θ0 is its separate run's).
        data: as for :func:`iterative_prune`.
        runs: ``(metric, seed, init)`` triples.
        population: rows trained at once (int ≥ 1 or "auto": all runs, at most
            :data:`AUTO_LIMIT`).
        results, experiment, verbose, **prune_kwargs: as for :func:`iterative_prune`.

    Returns:
        ``{(experiment, metric, seed, init): records}``.
    """
    runs = [tuple(run) for run in runs]
    size = check_population(population, len(runs))
    for metric, _, _ in runs:
        check_population_metric(metric)

    def factory(metric, seed, init):
        def make():
            keras.utils.set_random_seed(seed)
            model = build_model(seed)
            return PopulationMember(model, data, metric, seed=seed, init=init, results=results,
                                    experiment=experiment, verbose=verbose, **prune_kwargs)
        return make

    return train_population([factory(*run) for run in runs], size, verbose=verbose)


__all__ = ["AUTO_LIMIT", "PopulationMember", "check_population", "population_prune", "train_population"]
