"""DropNet's Algorithm 1: iterative node/filter pruning with reset to the initial weights.

Tan & Motani, "DropNet: Reducing Neural Network Complexity via Iterative Pruning",
ICML 2020, Section 2, Algorithm 1::

    m = 1
    repeat
        1. revert the network to θ0
        2. apply the mask m
        3. train for at most j iterations until early stopping
        4. prune a fraction p of nodes/filters with the metric; update m
    until validation accuracy a' ≤ κ·a
    run steps 1 to 3

The model is compiled once and every cycle only assigns variables (weights, masks,
optimizer slots), so no cycle rebuilds, recompiles or retraces anything.  Each cycle's
record is appended atomically to a JSON-lines file, and the masks of the next cycle are
saved before it, so an interrupted run resumes after its last finished cycle.

The argument checks and protocol presets are in :mod:`dropnet_tf.dropnet.arguments`, the
resume state (fingerprint, state file, stop rules) in :mod:`dropnet_tf.dropnet.state`; their
public names are re-exported here.
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
import zlib

import numpy as np

from dropnet_tf.compaction.training import CompactTrainingError, check_exact, compacted_cycle
from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.distribute import check_strategy, require_built_in_scope
from dropnet_tf.core.distribute import scope as distribute_scope
from dropnet_tf.core.io import load_npz, save_npz_atomic
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import require_mask_layers, set_masks
from dropnet_tf.harness.progress import EpochLine, split_callbacks
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.core.scoring import UNIT_SCORERS, StatisticScorer, get_scorer, prune_step
from dropnet_tf.core.selection import NothingToPruneError, collapsed_layers
from dropnet_tf.engines.statistics_pass import StatisticsPass
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.engines.optimizers import make_optimizer, optimizer_variables
from dropnet_tf.engines.training import Trainer
from dropnet_tf.core.validation import check_splits
from dropnet_tf.dropnet.arguments import _sparse_labels, _unpack_data, check_prune_arguments
from dropnet_tf.dropnet.progress import expected_cycles
from dropnet_tf.dropnet.state import (
    ResumeRefusedError,
    _UNCHECKED_WARNED,
    _describe_difference,
    first_difference,
    run_fingerprint,
    state_path,
    stop_reason,
    stop_rule_verdict,
)


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from ints and strings (same inputs, same seed, every process)."""
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def _reseeded_config(config, seed: int):
    """Copy of a model config whose initializer seeds are replaced by fresh derived ones."""
    counter = [0]

    def visit(node):
        if isinstance(node, dict):
            if "seed" in node and (node["seed"] is None or isinstance(node["seed"], int)):
                counter[0] += 1
                node["seed"] = derive_seed(seed, counter[0])
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    config = copy.deepcopy(config)
    visit(config)
    return config


class IterativePruner:
    """Algorithm 1 for one model, metric and seed.  ``run()`` returns the cycle records.

    Most users call :func:`iterative_prune`; the class exists so that its pieces (reset,
    train, evaluate, prune) can be tested and reused, e.g. by the oracle comparison.
    """

    def __init__(
        self,
        model,
        data,
        metric="minimum",
        *,
        fraction: float = 0.2,
        kappa: float | None = None,
        min_fraction: float = 0.1,
        max_cycles: int | None = None,
        init: str = "original",
        seed: int = 0,
        count: int | None = None,
        min_units_per_layer: int | None = None,
        selection: str | None = None,
        protocol: str | None = None,
        training: TrainingConfig | None = None,
        results=None,
        experiment: str = "",
        verbose: int = 1,
        callbacks=None,
        strategy=None,
    ):
        args = check_prune_arguments(
            metric, fraction=fraction, kappa=kappa, min_fraction=min_fraction, max_cycles=max_cycles, init=init,
            seed=seed, count=count, min_units_per_layer=min_units_per_layer, selection=selection, protocol=protocol,
            training=training, results=results, experiment=experiment, verbose=verbose, callbacks=callbacks,
        )
        # The set-up in checked parts, in this order (each may refuse before anything is
        # trained or written): the strategy, the settings, the data, θ0 and the optimizer,
        # the training engine, compacted training.
        self._set_strategy(model, strategy, args["training"])
        self._set_settings(model, metric, args, protocol=protocol, experiment=experiment, verbose=verbose)
        self._set_data(model, data, results)
        optimizer = self._set_initial_state(model)
        self._set_engine(model, optimizer)
        self._set_compact_mode(model, optimizer)

    def _set_strategy(self, model, strategy, training) -> None:
        """Under a tf.distribute strategy the model must already live in its scope (checked
        before anything is trained or written); see dropnet_tf.core.distribute."""
        self.strategy = check_strategy(strategy)
        require_built_in_scope(model, strategy)
        if strategy is not None and training.train_transform is not None:
            raise ValueError(
                "TrainingConfig.train_transform (augmentation) is applied by the single-device graph engine only; "
                "it cannot be combined with strategy=... (pass strategy=None, or no train_transform)."
            )

    def _set_settings(self, model, metric, args, *, protocol, experiment, verbose) -> None:
        """The checked arguments, the mask layers and the scorer; the run's key."""
        self.model = model
        self.mask_layers = require_mask_layers(model)
        self.metric_name = metric if isinstance(metric, str) else getattr(metric, "name", str(metric))
        self.scorer = get_scorer(metric)
        self.fraction, self.count = args["fraction"], args["count"]
        if self.scorer.default_count is not None and self.count is None:
            # the oracle drops one unit at a time (Section 5)
            self.count, self.fraction = self.scorer.default_count, None
        self.kappa = args["kappa"]
        self.min_fraction = args["min_fraction"]
        self.max_cycles = args["max_cycles"]
        self.init = args["init"]
        self.seed = args["seed"]
        self.protocol = protocol
        self.selection, self.min_units_per_layer, self.training = (
            args["selection"], args["min_units_per_layer"], args["training"]
        )
        self.experiment = experiment
        self.verbose = verbose
        # Keras callbacks go to every cycle's training; CycleCallbacks see runs and cycles (issue 16).
        self.keras_callbacks, self.cycle_callbacks = split_callbacks(args["callbacks"])
        self._run_began = False
        self.key = {"experiment": experiment, "metric": self.metric_name, "seed": self.seed, "init": self.init}

    def _split_tensors(self) -> dict:
        """Every split as tensors once, not converted again each cycle (the training inputs
        also feed the statistics of scorers that read no more than them).  Made on first
        use: a population's members never use them (the population evaluates and collects
        statistics for them), and a copy per member was 0.22 GB of MNIST each, which is
        what filled the memory of a 45-run population."""
        if self._tensors is None:
            self._tensors = {name: (tf.convert_to_tensor(x), tf.convert_to_tensor(y))
                             for name, (x, y) in self.splits.items()}
        return self._tensors

    def _set_data(self, model, data, results) -> None:
        """The checked splits (also as tensors), the results file and the statistics pass."""
        x_train, y_train, x_val, y_val, x_test, y_test = _unpack_data(data)
        self.splits = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
        check_splits(self.splits, model=model, labels=_sparse_labels(self.training.loss))
        self.results = ResultsFile(results) if isinstance(results, (str, os.PathLike)) else results
        self._tensors = None  # the splits as tensors, made on first use (_split_tensors)
        self._statistics_data = None  # batched on first use, see _statistics_dataset
        # A statistic scorer (E|a|, APoZ) scores from the training pass of evaluate(), whose
        # statistics are kept for next_masks; a scorer that collects its own statistics keeps
        # its own pass (see _fused_statistics).
        self._statistics_pass = None
        # Under a strategy the statistics come from the distribution-aware collector
        # (summed across replicas and workers); the fused pass is single-device.
        if (self.strategy is None and isinstance(self.scorer, StatisticScorer)
                and type(self.scorer).statistics is StatisticScorer.statistics):
            self._statistics_pass = StatisticsPass(model, self.training.loss)
        self._cycle_statistics = None

    def _set_initial_state(self, model):
        """θ0, the optimizer (checked to be a Keras one) and the run's fingerprint; returns the optimizer."""
        mask_ids = {id(layer.mask) for layer in self.mask_layers}
        self._weights = [w for w in model.weights if id(w) not in mask_ids]
        self.theta0 = [w.numpy() for w in self._weights]

        with distribute_scope(self.strategy):  # optimizer state mirrored like the model's
            optimizer = make_optimizer(self.training)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                f"TrainingConfig.optimizer's factory must return a Keras Optimizer, got {type(optimizer).__name__}."
            )
        self.fingerprint = run_fingerprint(
            model=model, splits=self.splits, optimizer=optimizer, training=self.training,
            pruning=self._pruning_settings(),
        )
        return optimizer

    def _set_engine(self, model, optimizer) -> None:
        """The Trainer, and the optimizer's initial state that every cycle's reset restores."""
        # Compiled (by the Trainer) so that the model is ready for model.evaluate / predict
        # afterwards; training itself runs in the graph engine, traced once for every cycle.
        # Under a strategy, DistributedTrainer (the same loop over replicas and workers).
        self.trainer = Trainer(model, self.training, self.splits["train"], engine="graph", optimizer=optimizer,
                               strategy=self.strategy)
        self._optimizer_state0 = [v.numpy() for v in optimizer_variables(optimizer)]

    def _set_compact_mode(self, model, optimizer) -> None:
        """Compacted training (dropnet_tf.compaction.training): refused here, before any cycle,
        where it would not be the masked computation; the cycle's compact model, if any."""
        strategy = self.strategy
        mode = self.training.compact_training
        self._compact_mode = mode if isinstance(mode, str) else bool(mode)
        if strategy is not None and self._compact_mode is True:
            raise CompactTrainingError(
                "compact_training=True cannot be combined with strategy=...: the compact model of each cycle "
                "would be built outside the strategy's scope. Use compact_training='auto' (trains masked under "
                "a strategy) or False."
            )
        if strategy is not None or check_exact(self._compact_mode, model, self.training, optimizer) is not None:
            self._compact_mode = False  # "auto" where it is not exact, or under a strategy: masked training
        if self._compact_mode is True and self.keras_callbacks:
            raise CompactTrainingError(
                f"compact_training=True, but the Keras callbacks {[type(c).__name__ for c in self.keras_callbacks]} "
                "would see the compact model, not the masked one. Use compact_training='auto' (trains masked "
                "then) or False."
            )
        self._compacted = None

    # ------------------------------------------------------------------ the steps

    def _state_path(self):
        return None if self.results is None else state_path(self.results.path, self.key)

    def _fresh_weights(self, cycle: int) -> list[np.ndarray]:
        """A new random draw of the same architecture (the random re-initialisation arm)."""
        draw_seed = derive_seed("reinit", self.seed, cycle)
        keras.utils.set_random_seed(draw_seed)
        config = _reseeded_config(self.model.get_config(), draw_seed)
        clone = type(self.model).from_config(config, custom_objects={"MaskLayer": MaskLayer})
        mask_names = {layer.name for layer in self.mask_layers}
        by_name = {}
        for layer in clone.layers:
            if layer.name not in mask_names:
                for variable in layer.weights:
                    by_name.setdefault(layer.name, []).append(variable.numpy())
        fresh = []
        for layer in self.model.layers:
            if layer.name in mask_names:
                continue
            fresh.extend(by_name.get(layer.name, []))
        if len(fresh) != len(self._weights):
            raise RuntimeError("Could not match the fresh draw's weights to the model's.")
        return fresh

    def reset(self, cycle: int, masks) -> None:
        """Steps 1-2: weights back to θ0 (or a fresh draw), masks applied, optimizer reset."""
        weights = self.theta0 if self.init == "original" else self._fresh_weights(cycle)
        for variable, value in zip(self._weights, weights):
            variable.assign(value)
        for variable, value in zip(optimizer_variables(self.model.optimizer), self._optimizer_state0):
            variable.assign(value)
        set_masks(self.model, masks)
        self._cycle_statistics = None  # of the weights reset here

    def train(self, cycle: int) -> int:
        """Step 3: train with early stopping on validation loss; returns the epochs run.

        With ``TrainingConfig.compact_training`` the cycle may train the compacted network
        instead and write it back into the masked model (the same computation up to the
        order of floating-point sums; see :mod:`dropnet_tf.compaction.training`).
        """
        cycle_seed = derive_seed("train", self.seed, cycle)  # dropout, in-model randomness, sample order
        callbacks = self._training_callbacks(cycle)
        # Callbacks other than the epoch lines may read the model's weights: compacted, they
        # would see the compact model, so such cycles train masked ("auto") or refuse (True).
        watching = [c for c in callbacks if not isinstance(c, EpochLine)]
        if watching and self._compact_mode is True:
            raise CompactTrainingError(
                f"compact_training=True, but the Keras callbacks {[type(c).__name__ for c in watching]} would see "
                "the compact model, not the masked one. Use compact_training='auto' (trains masked then) or False."
            )
        mode = False if watching else self._compact_mode
        self._compacted = compacted_cycle(mode, self.model, self.training, self.splits["train"], self.model.optimizer)
        if self._compacted is not None:
            history = self._compacted.fit(self.splits["val"], seed=cycle_seed, callbacks=callbacks)
        else:
            history = self.trainer.fit(self.splits["val"], seed=cycle_seed, callbacks=callbacks)
        return len(history["loss"])

    def _training_callbacks(self, cycle: int) -> list:
        """This cycle's Keras callbacks: the user's, the cycle hooks', and at verbose >= 2 a line per epoch."""
        found = list(self.keras_callbacks)
        for hook in self.cycle_callbacks:
            found.extend(hook.keras_callbacks(cycle))
        if self.verbose >= 2:
            found.append(EpochLine(f"{self._line_prefix()} cycle={cycle}"))
        return found

    def _line_prefix(self) -> str:
        return f"[{self.experiment or 'dropnet'}] {self.metric_name} seed={self.seed} init={self.init}"

    def _begin_run(self, cycle: int, records: list) -> None:
        """Tells the cycle hooks where this run starts (see CycleCallback.on_run_begin)."""
        self._run_began = True
        if not self.cycle_callbacks:
            return  # nothing to tell: a run without hooks does exactly what it did before them
        units = {layer.name: int(layer.units) for layer in self.mask_layers}
        expected = expected_cycles(
            units, fraction=self.fraction, count=self.count, scope=self.scorer.default_scope,
            min_fraction=self.min_fraction, min_units_per_layer=self.min_units_per_layer,
        )
        run = {"key": dict(self.key), "first_cycle": cycle, "epochs_done": sum(int(r["epochs"]) for r in records),
               "units_per_layer": units, "expected_cycles": expected}
        for hook in self.cycle_callbacks:
            hook.on_run_begin(run)

    def evaluate(self) -> dict[str, float]:
        """Loss and accuracy of every split, in inference mode.

        The training split is read once per cycle: with a statistic scorer, the pass that
        yields its loss and accuracy (in batches of ``statistics_batch_size``) also collects
        the statistics that :meth:`next_masks` then scores.  Validation and test (and the
        training split otherwise) go through the one evaluation function that validated
        every epoch, traced once per run; after a compacted cycle, through the compact
        model's, which computes the masked model's function with fewer units.  After a
        compacted cycle the training pass and its statistics run on the compact model too
        (:meth:`~dropnet_tf.compaction.training.CompactedCycle.statistics`).
        """
        trainer = self.trainer if self._compacted is None else self._compacted
        scores = {}
        for split, (x, y) in self._split_tensors().items():
            if split == "train" and self._statistics_pass is not None:
                result, statistics = self._train_statistics(x, y)
                self._cycle_statistics = (self._statistics_key(), statistics)
            else:
                result = trainer.evaluate((x, y), batch_size=self.training.eval_batch_size)
            scores[f"{split}_loss"] = result["loss"]
            scores[f"{split}_accuracy"] = result["accuracy"]
        return scores

    def _train_statistics(self, x, y):
        """The training split's scores and statistics: after a compacted cycle from the compact
        model (fewer units, same values up to summation order, masked units at E = 0 and
        APoZ = 1 as on the masked model; see CompactedCycle.statistics), else the masked model's."""
        batch_size = self.training.statistics_batch_size
        if self._compacted is not None:
            found = self._compacted.statistics(x, y, self.training.loss, batch_size=batch_size)
            if found is not None:
                return found
        return self._statistics_pass(x, y, batch_size=batch_size)

    def _statistics_key(self):
        """What the kept statistics depend on: the weights (trained since the last reset, for
        so many steps) and the masks on the model."""
        masks = {layer.name: layer.mask.numpy().copy() for layer in self.mask_layers}
        return int(self.trainer.optimizer.iterations.numpy()), masks

    def _fused_statistics(self, masks):
        """The statistics of the training pass of :meth:`evaluate`, if they belong to the
        network as it is now and to ``masks``; else None (they are collected afresh)."""
        if self._cycle_statistics is None:
            return None
        (steps, kept_masks), statistics = self._cycle_statistics
        now_steps, now_masks = self._statistics_key()
        same_masks = set(kept_masks) == set(masks) and all(
            np.array_equal(kept_masks[name], now_masks[name]) and np.array_equal(kept_masks[name], masks[name])
            for name in kept_masks
        )
        return statistics if steps == now_steps and same_masks else None

    def _statistics_dataset(self):
        if self._statistics_data is None:
            self._statistics_data = tf.data.Dataset.from_tensor_slices(self._split_tensors()["train"][0]).batch(
                self.training.statistics_batch_size
            )
        return self._statistics_data

    def next_masks(self, cycle: int, masks):
        """Step 4: score the trained network and drop units."""
        rng = np.random.default_rng(derive_seed("prune", self.seed, cycle))
        # Statistic scorers read the batched training inputs; the others (the oracle, the
        # LayerPrune criteria, a user's) the training split (x, y).  The model is compiled
        # with the training loss, which the oracle measures.  The masks go on the model at
        # the next cycle's reset.
        # The statistics kept from evaluate()'s training pass stand in for that data: the
        # statistic scorers take UnitStatistics as data.
        data = self._fused_statistics(masks)
        if data is None:
            data = self._statistics_dataset() if self.scorer.inputs_only else self.splits["train"]
        return prune_step(
            self.model, self.scorer, data, fraction=self.fraction, count=self.count, rng=rng,
            min_units_per_layer=self.min_units_per_layer, selection=self.selection, masks=masks, apply=False,
        )

    # ------------------------------------------------------------------ the loop

    def _pruning_settings(self) -> dict:
        return {
            "metric": self.metric_name, "pruning_fraction": self.fraction, "drop_count": self.count,
            "min_units_per_layer": self.min_units_per_layer, "selection": self.selection, "init": self.init,
            "seed": self.seed,
        }

    def _settings(self) -> dict:
        """What must not change between a run and its resumption."""
        cfg = self.training
        return {
            "pruning_fraction": self.fraction if self.count is None else None,
            "drop_count": self.count,
            "min_units_per_layer": self.min_units_per_layer,
            "selection": self.selection,
            "training": {
                "batch_size": cfg.batch_size,
                "max_epochs": cfg.max_epochs,
                "patience": cfg.patience,
                "restore_best_weights": cfg.restore_best_weights,
                "shuffle": cfg.shuffle,
                "optimizer": self.model.optimizer.__class__.__name__,
                "learning_rate": float(np.asarray(self.model.optimizer.learning_rate)),
            },
        }

    #: Settings added after records were first written, with the value older records had.
    _SETTINGS_BEFORE_RECORDED = {"selection": "exact"}

    def _check_same_settings(self, record: dict) -> None:
        current = self._settings()
        stored = {key: record.get(key, self._SETTINGS_BEFORE_RECORDED.get(key)) for key in current}
        changed = {key: (stored[key], value) for key, value in current.items() if stored[key] != value}
        if changed:
            details = "; ".join(f"{key}: stored {old!r}, now {new!r}" for key, (old, new) in changed.items())
            raise ResumeRefusedError(
                f"{self.results.path} already holds records for {self.key} made with other settings "
                f"({details}). Use another results file or experiment name, or the same settings."
            )

    def _load_state(self) -> dict:
        path = self._state_path()
        if path is None or not os.path.exists(path):
            return {}
        try:
            return load_npz(path)
        except ValueError as error:
            raise ResumeRefusedError(
                f"The state file {path} of the run {self.key} cannot be read ({error}). It was damaged outside "
                f"dropnet_tf (its writes are atomic). To start this run afresh, delete that file and this run's "
                f"records from {self.results.path}; to start every run afresh, delete {os.path.dirname(path)} "
                "and the results file."
            ) from error

    def _check_state(self, state: dict, has_records: bool) -> None:
        """Refuse a state file (θ0, masks) that belongs to another run; see :func:`run_fingerprint`."""
        path = self._state_path()
        stored_text = state.get("fingerprint")
        what = ("already holds a run" if has_records else
                "holds θ0 of a run that has no finished cycle yet (it was interrupted in cycle 0), made")
        remedy = (
            "Use another results file or experiment name, or the same model, data, optimizer and settings."
            if has_records else
            f"Delete {path} to start this run afresh with the new model, use another results file or "
            "experiment name, or pass the same model, data, optimizer and settings to resume it."
        )
        if stored_text is not None:
            stored = json.loads(str(stored_text))
            difference = first_difference(stored, self.fingerprint)
            if difference is not None:
                section = difference[0].split(".")[0].split("[")[0]
                raise ResumeRefusedError(
                    f"{self.results.path} {what} of {self.key} with a different {section} than the one given now "
                    f"(first difference: {_describe_difference(difference)}); its state file is {path}. {remedy}"
                )
        thetas = sorted(key for key in state if key.startswith("theta0_"))
        shapes = [tuple(state[key].shape) for key in thetas]
        expected = [tuple(w.shape) for w in self._weights]
        if shapes != expected:
            where = next((i for i, (a, b) in enumerate(zip(shapes, expected)) if a != b), min(len(shapes), len(expected)))
            stored_shape = shapes[where] if where < len(shapes) else "<absent>"
            model_shape = expected[where] if where < len(expected) else "<absent>"
            raise ResumeRefusedError(
                f"{self.results.path} {what} of {self.key} with another architecture: the state file {path} holds "
                f"{len(shapes)} weight arrays, the model has {len(expected)}; weight {where} is {stored_shape} there "
                f"and {model_shape} in the model. {remedy}"
            )
        names = {key[len("masks_0000_"):] for key in state if key.startswith("masks_")}
        unknown = sorted(names - {layer.name for layer in self.mask_layers})
        if unknown:
            raise ResumeRefusedError(
                f"{self.results.path} {what} of {self.key} with other mask layers: the state file {path} has masks "
                f"for {unknown}, which the model lacks (its mask layers are "
                f"{[layer.name for layer in self.mask_layers]}). {remedy}"
            )
        if stored_text is None and path not in _UNCHECKED_WARNED:
            _UNCHECKED_WARNED.add(path)
            warnings.warn(
                f"The state file {path} was written before runs stored a fingerprint: that the model, data and "
                "optimizer are the ones this run used is not checked (only the weight shapes are). From now on it "
                "is stored and checked.",
                stacklevel=3,
            )

    def _save_state(self, masks_by_cycle: dict) -> None:
        path = self._state_path()
        if path is None:
            return
        arrays = {f"theta0_{i:04d}": value for i, value in enumerate(self.theta0)}
        for cycle, masks in masks_by_cycle.items():
            for name, mask in masks.items():
                arrays[f"masks_{cycle:04d}_{name}"] = mask
        arrays["fingerprint"] = np.array(json.dumps(self.fingerprint, sort_keys=False))
        save_npz_atomic(path, **arrays)

    def run(self) -> list[dict]:
        """Cycles until a stop rule fires (or ``max_cycles`` pauses the run); resumes first.

        Drives :meth:`steps`, training each cycle it asks for with :meth:`train`.
        """
        steps = self.steps()
        try:
            cycle = next(steps)
            while True:
                cycle = steps.send(self.train(cycle))
        except StopIteration as done:
            return done.value

    def steps(self):
        """The run as a generator: yields each cycle to train, is sent the epochs trained; returns the records.

        Before yielding a cycle it has called :meth:`reset`; after it is sent the epochs it
        calls :meth:`evaluate` and :meth:`next_masks`.  :meth:`run` trains each cycle with
        :meth:`train`; a population (:mod:`dropnet_tf.dropnet.population`) trains many runs'
        cycles together instead.

        Resuming: the state file next to the results holds θ0 and the masks of every
        cycle, written before that cycle's predecessor's record, so the next cycle after
        the last record can always be rebuilt.  Per-cycle seeds make a resumed run produce
        the same records as an uninterrupted one.
        """
        self._run_began, self._records = False, []
        try:
            records = yield from self._run()
        except BaseException as error:
            if self._run_began:
                for hook in self.cycle_callbacks:
                    hook.on_run_end(self._records, error)
            raise
        if self._run_began:
            for hook in self.cycle_callbacks:
                hook.on_run_end(records)
        return records

    def _run(self) -> list[dict]:
        """Resume (or start) the run, then cycle: reset, train (the yield), evaluate, prune, record."""
        records, state = self._checked_records_and_state()
        verdict, at_cycle, reason = stop_rule_verdict(records, self.kappa, self.min_fraction)
        if verdict in ("refuse", "finished", "stop_here"):
            return self._settled_run(records, verdict, at_cycle, reason)
        if records and not state:
            raise RuntimeError(
                f"{self.results.path} has records for {self.key} but the state file "
                f"{self._state_path()} is missing; delete those records or restore the file to resume."
            )
        replacing = self._reopened_record(records, at_cycle) if verdict == "continue" else None
        cycle, masks_by_cycle = self._restored_masks(state, records)
        masks = masks_by_cycle[cycle]
        baseline = records[0]["val_accuracy"] if records else None
        cycles_this_call = 0
        self._records = records
        self._begin_run(cycle, records)
        while True:
            started = time.perf_counter()
            self.reset(cycle, masks)
            epochs = yield cycle
            scores = self.evaluate()
            units = {name: int(np.sum(mask > 0)) for name, mask in masks.items()}
            fraction_remaining = sum(units.values()) / sum(layer.units for layer in self.mask_layers)
            if baseline is None:
                baseline = scores["val_accuracy"]
            reason = stop_reason(self.kappa, self.min_fraction, cycle, scores["val_accuracy"], baseline,
                                 fraction_remaining)
            if reason is None:
                reason = self._prune_and_save(cycle, masks, masks_by_cycle)
            record = self._cycle_record(cycle, masks, units, fraction_remaining, scores, epochs, started, reason)
            self._write_record(record, replacing)
            replacing = None
            records.append(record)
            self._report_cycle(record)
            cycles_this_call += 1
            if reason is not None:
                return records
            if self.max_cycles is not None and cycles_this_call >= self.max_cycles:
                return records  # paused, not finished: a later call resumes here
            masks = masks_by_cycle[cycle + 1]
            cycle += 1

    def _checked_records_and_state(self):
        """This run's records and state file, each checked against the run as given now."""
        records = self.results.records(**self.key) if self.results is not None else []
        if records:
            self._check_same_settings(records[-1])
        state = self._load_state()
        if state:
            self._check_state(state, has_records=bool(records))
        return records, state

    def _settled_run(self, records, verdict, at_cycle, reason) -> list[dict]:
        """A run the stop rules settle before any cycle: refused, finished, or finished now."""
        if verdict == "refuse":
            raise ResumeRefusedError(
                f"{self.results.path} holds a run of {self.key} that went on past cycle {at_cycle}, where "
                f"kappa={self.kappa} and min_fraction={self.min_fraction} stop it ({reason}): it was made with other "
                "stop rules. Use those values again, or another results file or experiment name."
            )
        if verdict == "finished":
            return records
        # a paused run whose last cycle is where the rules given now stop it
        stopped = dict(records[-1], stop_reason=reason)
        self.results.replace(records[-1], stopped)
        records[-1] = stopped
        if self.verbose:
            print(f"[{self.experiment or 'dropnet'}] {self.metric_name} seed={self.seed}: finished at cycle "
                  f"{at_cycle} under the stop rules given now ({reason}).", flush=True)
        return records

    def _reopened_record(self, records, at_cycle) -> dict:
        """A finished run whose stop rule no longer fires at its last cycle: that cycle is
        trained again (the per-cycle seeds give the same record), pruned this time, and its
        record (popped from ``records`` and returned) is replaced by one without a stop reason."""
        replacing = records.pop()
        message = (
            f"{self.results.path}: the run {self.key} stopped at cycle {at_cycle} "
            f"({replacing['stop_reason']}), but with kappa={self.kappa} and min_fraction={self.min_fraction} it "
            f"goes on; continuing from cycle {at_cycle} (trained again, then pruned)."
        )
        warnings.warn(message, stacklevel=3)
        return replacing

    def _restored_masks(self, state, records):
        """θ0 and the masks of every cycle from the state file; the cycle to run next.

        A fresh run starts at cycle 0 with every unit kept, saved before it is trained."""
        if state:
            self.theta0 = [state[f"theta0_{i:04d}"] for i in range(len(self._weights))]
        masks_by_cycle: dict[int, dict] = {}
        for key, value in state.items():
            if key.startswith("masks_"):
                cycle_text, name = key[len("masks_"):].split("_", 1)
                masks_by_cycle.setdefault(int(cycle_text), {})[name] = value
        cycle = records[-1]["cycle"] + 1 if records else 0
        if cycle not in masks_by_cycle:
            if cycle:
                raise RuntimeError(f"State file {self._state_path()} has no masks for cycle {cycle}.")
            masks_by_cycle[0] = {layer.name: np.ones(layer.units, np.float32) for layer in self.mask_layers}
            self._save_state(masks_by_cycle)
        return cycle, masks_by_cycle

    def _prune_and_save(self, cycle, masks, masks_by_cycle):
        """Step 4, its masks saved as the next cycle's; the stop reason if nothing is left to prune."""
        try:
            next_masks = self.next_masks(cycle, masks)
        except NothingToPruneError as error:
            return f"nothing left to prune: {error}"
        masks_by_cycle[cycle + 1] = next_masks
        self._save_state(masks_by_cycle)
        return None

    def _cycle_record(self, cycle, masks, units, fraction_remaining, scores, epochs, started, reason) -> dict:
        return {
            **self.key,
            **self._settings(),
            "cycle": cycle,
            "fraction_remaining": fraction_remaining,
            "units_per_layer": units,
            "fraction_remaining_per_layer": {
                name: units[name] / mask.size for name, mask in masks.items()
            },
            "collapsed_layers": collapsed_layers(masks),
            **scores,
            "epochs": epochs,
            "compact_training": self._compacted is not None,
            "wall_seconds": time.perf_counter() - started,
            "stop_reason": reason,
        }

    def _write_record(self, record, replacing) -> None:
        """Appends the cycle's record to the results file, or replaces the reopened one."""
        if self.results is not None:
            if replacing is not None:
                self.results.replace(replacing, record)
            else:
                self.results.append(record)

    def _report_cycle(self, record) -> None:
        """The cycle hooks' on_cycle_end, and the cycle's line (with the hooks' texts) when verbose."""
        extras = [text for text in (hook.on_cycle_end(record) for hook in self.cycle_callbacks) if text]
        if self.verbose:
            print(
                f"{self._line_prefix()} "
                f"cycle={record['cycle']} remaining={record['fraction_remaining']:.3f} "
                f"val_acc={record['val_accuracy']:.4f} test_acc={record['test_accuracy']:.4f} "
                f"epochs={record['epochs']} {record['wall_seconds']:.1f}s"
                + "".join(f" | {text}" for text in extras),
                flush=True,
            )

def iterative_prune(model, data, metric="minimum", **kwargs) -> list[dict]:
    """Run DropNet's Algorithm 1 (ICML 2020, Section 2) on a model with MaskLayers.

    Each cycle resets the weights to θ0 (``init="original"``) or to a fresh random draw of
    the same architecture (``init="random"``, Section 6), applies the mask, trains with
    early stopping on validation loss, evaluates train/validation/test, then collects
    statistics on the training set and drops units with ``metric`` (a statistic metric's
    statistics come from the same pass over the training set as its loss and accuracy).  Training settings are
    given as ``training=TrainingConfig(...)``; the others are:

    Args:
        model: a functional or Sequential model with MaskLayers (see ``add_masks``).
        data: a :class:`dropnet_tf.data.Dataset` or ((x_train, y_train), (x_val, y_val),
            (x_test, y_test)).
        metric: a name in ``dropnet_tf.core.scoring.UNIT_SCORERS`` (DropNet's ``METRICS``, "oracle", the
            LayerPrune criteria, a registered scorer of ones own) or a ``UnitScorer``.
        fraction: p ∈ (0, 1], default 0.2 (Section 3.2).
        kappa: stop once validation accuracy ≤ κ·a, a being the unpruned network's
            (Algorithm 1).  None (default) disables the rule; the paper gives no value.
        min_fraction: stop once the fraction of units remaining is ≤ this (default 0.1, as
            the authors' code).  Every numeric argument accepts NumPy scalars; a bad one
            raises before anything is trained or written (:mod:`dropnet_tf.core.validation`).
        max_cycles: run at most this many cycles in this call; the run is paused, not
            finished, and a later call with the same results file continues it.
        init: "original" (reset to θ0) or "random" (fresh draw each cycle).
        seed: seeds training order, tie-breaking and the random metrics, per cycle.
        count: drop exactly this many units per cycle instead of a fraction (drop-one: 1).
        min_units_per_layer: layer-collapse guard (default 1; 0 under ``protocol="notebook"``).
        selection: "exact" (default): each cycle drops exactly floor(p·R) (or floor(p·R_l))
            of the lowest-scoring units, ties at random.  "notebook": the authors'
            notebooks' rule (:func:`dropnet_tf.core.selection.notebook_drop`; not with ``count``
            nor the oracle).  Stored in every record; resuming with the other is refused.
        protocol: None (default: every setting as given), "paper" or "notebook", presets
            of selection, min_units_per_layer and the TrainingConfig's shuffle,
            restore_best_weights and jit_compile (:data:`PROTOCOLS`).  "notebook" is
            selection="notebook", min_units_per_layer=0, shuffle=False,
            restore_best_weights=False, jit_compile=False; APoZ stays this library's
            (see :data:`PROTOCOLS`).  Unset
            arguments and TrainingConfig fields at their defaults take the preset's
            values; explicit ones that contradict it raise ValueError.
        results: path of a JSON-lines results file; the run resumes from it.  The run's
            state file (``<results>.state/<key>.npz``: θ0, the masks of every cycle and a
            fingerprint of the pruning settings, every training setting, the optimizer's
            config, the data's shapes and content hash and the architecture, see
            :func:`run_fingerprint`) is reused only by the same run: a call that differs
            raises ValueError naming the results file, the state file and the first
            difference, and changes nothing on disk.  This holds from cycle 0 on, so θ0
            left by a run interrupted in its first cycle is never picked up by another
            model.  State files written before fingerprints existed resume unchecked
            (with a warning).  ``kappa`` and ``min_fraction`` may change between calls: a
            finished run whose stop rule no longer fires at its last cycle continues from
            there (that cycle is trained again, with a warning), a paused run whose last
            cycle now stops is marked finished, and a run that went on past a cycle where
            the new rules stop is refused.
        experiment: a name stored in every record (part of the resume key).
        verbose: 0 prints nothing, 1 one line per cycle, 2 also one line per epoch (epoch,
            loss, val_loss, val_accuracy, seconds; :class:`dropnet_tf.harness.progress.EpochLine`).
        callbacks: Keras callbacks, given to every cycle's training (e.g. a user's
            ``keras.callbacks.CSVLogger``), and :class:`dropnet_tf.harness.progress.CycleCallback`
            hooks, told when the run begins, before each cycle's training and after each
            cycle's record (e.g. :class:`~dropnet_tf.harness.progress.TensorBoardLogger`,
            :class:`dropnet_tf.dropnet.progress.GridETA`).  They observe: the records are
            the same with or without them.
        strategy: a ``tf.distribute.Strategy`` (``MirroredStrategy``,
            ``MultiWorkerMirroredStrategy``) to train, evaluate and collect statistics
            under, or None (default: one device, the graph trainer).  The model must be
            built inside ``strategy.scope()``; training then runs in
            :class:`dropnet_tf.engines.distributed_training.DistributedTrainer` (no
            ``train_transform``), see :mod:`dropnet_tf.core.distribute`.  Each worker of a
            multi-worker run needs its own ``results`` path (or None).

    Returns:
        One record (dict) per cycle; see ``dropnet_tf.harness.results`` for the fields.
    """
    return IterativePruner(model, data, metric, **kwargs).run()
