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
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dropnet_tf._keras import keras, tf
from dropnet_tf.layers import MaskLayer
from dropnet_tf.masking import require_mask_layers, set_masks
from dropnet_tf.metrics import get_metric, update_masks
from dropnet_tf.results import ResultsFile, load_npz, save_npz_atomic
from dropnet_tf.oracle import oracle_scores
from dropnet_tf.selection import (
    SELECTIONS,
    NothingToPruneError,
    apply_drop,
    collapsed_layers,
    select_units,
    validate_fraction,
)
from dropnet_tf.statistics import StatisticsCollector
from dropnet_tf.training import GraphTrainer, optimizer_variables

INITS = ("original", "random")


@dataclass
class TrainingConfig:
    """How each cycle trains.  Defaults follow DropNet Section 3.2.

    ``restore_best_weights=True`` evaluates the weights at minimum validation loss, as the
    paper's problem statement does (Section 2); the authors' notebooks left it False and
    evaluated the last epoch.  ``shuffle=True`` reshuffles every epoch; the notebooks
    trained with ``shuffle=False``.  Batch size 32 is Keras' default, which the notebooks
    used.  ``steps_per_call`` runs that many training steps per call into TensorFlow
    (see :mod:`dropnet_tf.training`), which is most of why a cycle here is much faster
    than the notebooks' loop.
    """

    optimizer: object = None  # None: SGD(learning_rate=0.1); or a name, or a zero-arg factory
    loss: object = "sparse_categorical_crossentropy"
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 5
    restore_best_weights: bool = True
    shuffle: bool = True
    steps_per_call: int = 128
    jit_compile: object = "auto"  # XLA for the training steps: True, False or "auto"
    eval_batch_size: int = 1024
    statistics_batch_size: int = 1024
    callbacks: Sequence = field(default_factory=tuple)
    train_transform: Callable | None = None  # applied to each (x, y) training batch, e.g. augmentation


#: Presets of ``protocol=``: the pruning rule and the training fields each one sets.
#: "paper" is the library's defaults (DropNet's text where it says, Section 3.2);
#: "notebook" is what the authors' notebooks did (see the README's table of differences):
#: their selection rule, no layer-collapse guard, no shuffling, the last epoch's weights
#: and no XLA (with it off, issue 11 matched their validation losses from the same θ0).  APoZ is
#: this library's under both (fraction of zero outputs over samples and positions): the
#: paper and supplement define no other, and the README's note that the notebooks counted
#: samples whose whole map is zero (which differs for filters only) is not implemented.
PROTOCOLS = {
    "paper": {
        "selection": "exact",
        "min_units_per_layer": 1,
        "training": {"shuffle": True, "restore_best_weights": True},
    },
    "notebook": {
        "selection": "notebook",
        "min_units_per_layer": 0,
        "training": {"shuffle": False, "restore_best_weights": False, "jit_compile": False},
    },
}


def resolve_protocol(protocol=None, selection=None, min_units_per_layer=None, training=None):
    """``(selection, min_units_per_layer, training)`` for a run, with a preset applied.

    ``protocol=None`` applies no preset: unset arguments take the library defaults ("exact",
    1, ``TrainingConfig()``).  ``protocol="paper"`` or ``"notebook"`` (:data:`PROTOCOLS`)
    fills the unset arguments (None) from the preset, and the fields of ``training`` still at
    TrainingConfig's defaults; an argument or a non-default TrainingConfig field that
    contradicts the preset raises ValueError naming both values.
    """
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be None or one of {tuple(PROTOCOLS)}, got {protocol!r}.")
    if selection is not None and selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    if protocol is None:
        return (
            selection or "exact",
            1 if min_units_per_layer is None else min_units_per_layer,
            training or TrainingConfig(),
        )
    preset = PROTOCOLS[protocol]
    given = {"selection": selection, "min_units_per_layer": min_units_per_layer}
    for name, value in given.items():
        if value is not None and value != preset[name]:
            raise ValueError(
                f"protocol={protocol!r} sets {name}={preset[name]!r}, but {name}={value!r} was given; "
                f"drop one of them (protocol=None takes every setting as given)."
            )
    if training is not None and not isinstance(training, TrainingConfig):
        raise TypeError(f"training must be a TrainingConfig with protocol={protocol!r}, got {type(training).__name__}.")
    defaults = TrainingConfig()
    training = training or defaults
    for name, value in preset["training"].items():
        current = getattr(training, name)
        if current != value and current != getattr(defaults, name):
            raise ValueError(
                f"protocol={protocol!r} trains with {name}={value!r}, but the TrainingConfig has {name}={current!r}; "
                f"drop one of them (protocol=None takes every setting as given)."
            )
    training = dataclasses.replace(training, **preset["training"])
    return preset["selection"], preset["min_units_per_layer"], training


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _unpack_data(data):
    """(x_train, y_train, x_val, y_val, x_test, y_test) from a Dataset or three (x, y) pairs."""
    if all(hasattr(data, key) for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")):
        return data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test
    try:
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise TypeError(
            "data must be a dropnet_tf.data.Dataset or ((x_train, y_train), (x_val, y_val), (x_test, y_test))."
        ) from None
    return x_train, y_train, x_val, y_val, x_test, y_test


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from ints and strings (same inputs, same seed, every process)."""
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def _make_optimizer(spec):
    if spec is None:
        return keras.optimizers.SGD(learning_rate=0.1)
    if isinstance(spec, str):
        return keras.optimizers.get(spec)
    if isinstance(spec, keras.optimizers.Optimizer):
        return spec
    if callable(spec):
        return spec()
    raise TypeError(f"optimizer must be None, a name, an Optimizer or a factory, got {type(spec).__name__}.")


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


def state_path(results_path, key: dict) -> str:
    """Where the run ``key`` (experiment, metric, seed, init) keeps θ0 and its masks."""
    name = "__".join(f"{field}={key[field]}" for field in ("experiment", "metric", "seed", "init"))
    safe = "".join(ch if ch.isalnum() or ch in "=_-." else "_" for ch in name)
    return os.path.join(str(results_path) + ".state", safe + ".npz")


def run_masks(results_path, experiment: str, metric: str, seed: int, init: str = "original") -> dict[int, dict]:
    """The masks a run used in each cycle, ``{cycle: {mask layer name: mask}}``, from its state file.

    Used to compare runs unit by unit, e.g. each metric's masks with the oracle's (DropNet
    Section 5).  Raises FileNotFoundError naming the file if the run has no state.
    """
    path = state_path(results_path, {"experiment": experiment, "metric": metric, "seed": seed, "init": init})
    if not os.path.exists(path):
        raise FileNotFoundError(f"No state file for {experiment}/{metric}/seed={seed}/init={init}: {path}")
    by_cycle: dict[int, dict] = {}
    for name, value in load_npz(path).items():
        if name.startswith("masks_"):
            cycle_text, layer = name[len("masks_"):].split("_", 1)
            by_cycle.setdefault(int(cycle_text), {})[layer] = value
    return dict(sorted(by_cycle.items()))


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
    ):
        self.model = model
        self.mask_layers = require_mask_layers(model)
        self.metric_name = metric if isinstance(metric, str) else getattr(metric, "name", str(metric))
        self.metric = None if metric == "oracle" else get_metric(metric)
        self.fraction = validate_fraction(fraction) if count is None else None
        if count is not None:
            _check_positive_int("count", count)
        self.count = count
        if metric == "oracle" and count is None:
            self.count, self.fraction = 1, None  # the oracle drops one unit at a time (Section 5)
        if kappa is not None and not (isinstance(kappa, (int, float)) and 0.0 < kappa <= 1.0):
            raise ValueError(f"kappa must be in (0, 1] (or None to disable the accuracy stop), got {kappa!r}.")
        self.kappa = kappa
        if not (isinstance(min_fraction, (int, float)) and 0.0 <= min_fraction < 1.0):
            raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction!r}.")
        self.min_fraction = float(min_fraction)
        if max_cycles is not None:
            _check_positive_int("max_cycles", max_cycles)
        self.max_cycles = max_cycles
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}.")
        self.init = init
        self.seed = int(seed)
        self.protocol = protocol
        self.selection, self.min_units_per_layer, self.training = resolve_protocol(
            protocol, selection, min_units_per_layer, training
        )
        if self.selection == "notebook" and self.count is not None:
            what = "the oracle drops one unit per cycle" if metric == "oracle" else f"count={self.count}"
            raise ValueError(
                f"selection='notebook' is a rule for a pruning fraction, but {what}; "
                "the drop-count mode has only selection='exact'."
            )
        for name in ("batch_size", "max_epochs", "patience", "steps_per_call", "eval_batch_size"):
            _check_positive_int(name, getattr(self.training, name))
        self.experiment = experiment
        self.verbose = verbose
        self.results = ResultsFile(results) if isinstance(results, (str, os.PathLike)) else results
        self.key = {"experiment": experiment, "metric": self.metric_name, "seed": self.seed, "init": init}

        x_train, y_train, x_val, y_val, x_test, y_test = _unpack_data(data)
        self.splits = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
        # Batched once: every cycle's statistics pass reuses the same dataset.
        self._statistics_data = tf.data.Dataset.from_tensor_slices(tf.convert_to_tensor(x_train)).batch(
            self.training.statistics_batch_size
        )

        mask_ids = {id(layer.mask) for layer in self.mask_layers}
        self._weights = [w for w in model.weights if id(w) not in mask_ids]
        self.theta0 = [w.numpy() for w in self._weights]

        optimizer = _make_optimizer(self.training.optimizer)
        # Compiled so that the model is ready for model.evaluate / predict afterwards;
        # training itself runs in GraphTrainer, traced once for every cycle.
        model.compile(optimizer=optimizer, loss=self.training.loss, metrics=["accuracy"])
        optimizer.build(model.trainable_variables)
        self._optimizer_state0 = [v.numpy() for v in optimizer_variables(optimizer)]
        self.trainer = GraphTrainer(
            model,
            optimizer,
            self.training.loss,
            x_train,
            y_train,
            batch_size=self.training.batch_size,
            steps_per_call=self.training.steps_per_call,
            train_transform=self.training.train_transform,
            jit_compile=self.training.jit_compile,
        )
        self._collector = None

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

    def train(self, cycle: int) -> int:
        """Step 3: train with early stopping on validation loss; returns the epochs run."""
        cfg = self.training
        cycle_seed = derive_seed("train", self.seed, cycle)
        keras.utils.set_random_seed(cycle_seed)  # dropout and other in-model randomness
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", mode="min", patience=cfg.patience, restore_best_weights=cfg.restore_best_weights
        )
        history = self.trainer.fit(
            cfg.max_epochs,
            validation_data=self.splits["val"],
            callbacks=[stopper, *cfg.callbacks],
            seed=cycle_seed,
            shuffle=cfg.shuffle,
            eval_batch_size=cfg.eval_batch_size,
        )
        return len(history["loss"])

    def evaluate(self) -> dict[str, float]:
        scores = {}
        for split, (x, y) in self.splits.items():
            result = self.trainer.evaluate(x, y, batch_size=self.training.eval_batch_size)
            scores[f"{split}_loss"] = result["loss"]
            scores[f"{split}_accuracy"] = result["accuracy"]
        return scores

    def next_masks(self, cycle: int, masks):
        """Step 4: score the trained network and drop units."""
        rng = np.random.default_rng(derive_seed("prune", self.seed, cycle))
        if self.metric is None:
            scores = oracle_scores(self.model, *self.splits["train"], loss=self.training.loss)
            drop = select_units(
                scores, masks, None, "global", rng, count=self.count, min_units_per_layer=self.min_units_per_layer
            )
            return apply_drop(masks, drop)
        if self._collector is None:
            self._collector = StatisticsCollector(self.model)
        statistics = self._collector.collect(self._statistics_data)
        return update_masks(
            masks, statistics, self.metric, fraction=self.fraction, rng=rng,
            count=self.count, min_units_per_layer=self.min_units_per_layer, selection=self.selection,
        )

    # ------------------------------------------------------------------ the loop

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
            raise ValueError(
                f"{self.results.path} already holds records for {self.key} made with other settings "
                f"({details}). Use another results file or experiment name, or the same settings."
            )

    def _load_state(self) -> dict:
        path = self._state_path()
        return load_npz(path) if path is not None and os.path.exists(path) else {}

    def _save_state(self, masks_by_cycle: dict) -> None:
        path = self._state_path()
        if path is None:
            return
        arrays = {f"theta0_{i:04d}": value for i, value in enumerate(self.theta0)}
        for cycle, masks in masks_by_cycle.items():
            for name, mask in masks.items():
                arrays[f"masks_{cycle:04d}_{name}"] = mask
        save_npz_atomic(path, **arrays)

    def run(self) -> list[dict]:
        """Cycles until a stop rule fires (or ``max_cycles`` pauses the run); resumes first.

        Resuming: the state file next to the results holds θ0 and the masks of every
        cycle, written before that cycle's predecessor's record, so the next cycle after
        the last record can always be rebuilt.  Per-cycle seeds make a resumed run produce
        the same records as an uninterrupted one.
        """
        records = self.results.records(**self.key) if self.results is not None else []
        if records:
            self._check_same_settings(records[-1])
        if records and records[-1].get("stop_reason"):
            return records
        state = self._load_state()
        if records and not state:
            raise RuntimeError(
                f"{self.results.path} has records for {self.key} but the state file "
                f"{self._state_path()} is missing; delete those records or restore the file to resume."
            )
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
        masks = masks_by_cycle[cycle]
        baseline = records[0]["val_accuracy"] if records else None
        total_units = sum(layer.units for layer in self.mask_layers)
        cycles_this_call = 0
        while True:
            started = time.perf_counter()
            self.reset(cycle, masks)
            epochs = self.train(cycle)
            scores = self.evaluate()
            units = {name: int(np.sum(mask > 0)) for name, mask in masks.items()}
            fraction_remaining = sum(units.values()) / total_units
            if baseline is None:
                baseline = scores["val_accuracy"]
            stop_reason = None
            if self.kappa is not None and cycle > 0 and scores["val_accuracy"] <= self.kappa * baseline:
                stop_reason = f"val_accuracy <= kappa * a ({scores['val_accuracy']:.4f} <= {self.kappa} * {baseline:.4f})"
            elif fraction_remaining <= self.min_fraction:
                stop_reason = f"fraction_remaining <= min_fraction ({fraction_remaining:.4f} <= {self.min_fraction})"
            if stop_reason is None:
                try:
                    next_masks = self.next_masks(cycle, masks)
                except NothingToPruneError as error:
                    stop_reason = f"nothing left to prune: {error}"
                else:
                    masks_by_cycle[cycle + 1] = next_masks
                    self._save_state(masks_by_cycle)
            record = {
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
                "wall_seconds": time.perf_counter() - started,
                "stop_reason": stop_reason,
            }
            if self.results is not None:
                self.results.append(record)
            records.append(record)
            if self.verbose:
                print(
                    f"[{self.experiment or 'dropnet'}] {self.metric_name} seed={self.seed} init={self.init} "
                    f"cycle={cycle} remaining={fraction_remaining:.3f} val_acc={scores['val_accuracy']:.4f} "
                    f"test_acc={scores['test_accuracy']:.4f} epochs={epochs} {record['wall_seconds']:.1f}s",
                    flush=True,
                )
            cycles_this_call += 1
            if stop_reason is not None:
                return records
            if self.max_cycles is not None and cycles_this_call >= self.max_cycles:
                return records  # paused, not finished: a later call resumes here
            masks = next_masks
            cycle += 1


def iterative_prune(model, data, metric="minimum", **kwargs) -> list[dict]:
    """Run DropNet's Algorithm 1 (ICML 2020, Section 2) on a model with MaskLayers.

    Each cycle resets the weights to θ0 (``init="original"``) or to a fresh random draw of
    the same architecture (``init="random"``, Section 6), applies the mask, trains with
    early stopping on validation loss, evaluates train/validation/test, then collects
    statistics on the training set and drops units with ``metric``.  Training settings are
    given as ``training=TrainingConfig(...)``; the others are:

    Args:
        model: a functional or Sequential model with MaskLayers (see ``add_masks``).
        data: a :class:`dropnet_tf.data.Dataset` or ((x_train, y_train), (x_val, y_val),
            (x_test, y_test)).
        metric: a name in ``dropnet_tf.metrics.METRICS``, a UnitMetric, or "oracle".
        fraction: p ∈ (0, 1], default 0.2 (Section 3.2).
        kappa: stop once validation accuracy ≤ κ·a, a being the unpruned network's
            (Algorithm 1).  None (default) disables the rule; the paper gives no value.
        min_fraction: stop once the fraction of units remaining is ≤ this (default 0.1, as
            the authors' code).
        max_cycles: run at most this many cycles in this call; the run is paused, not
            finished, and a later call with the same results file continues it.
        init: "original" (reset to θ0) or "random" (fresh draw each cycle).
        seed: seeds training order, tie-breaking and the random metrics, per cycle.
        count: drop exactly this many units per cycle instead of a fraction (drop-one: 1).
        min_units_per_layer: layer-collapse guard (default 1; 0 under ``protocol="notebook"``).
        selection: "exact" (default): each cycle drops exactly floor(p·R) (or floor(p·R_l))
            of the lowest-scoring units, ties at random.  "notebook": the authors'
            notebooks' rule (:func:`dropnet_tf.selection.notebook_drop`; not with ``count``
            nor the oracle).  Stored in every record; resuming with the other is refused.
        protocol: None (default: every setting as given), "paper" or "notebook", presets
            of selection, min_units_per_layer and the TrainingConfig's shuffle,
            restore_best_weights and jit_compile (:data:`PROTOCOLS`).  "notebook" is
            selection="notebook", min_units_per_layer=0, shuffle=False,
            restore_best_weights=False, jit_compile=False; APoZ stays this library's
            (see :data:`PROTOCOLS`).  Unset
            arguments and TrainingConfig fields at their defaults take the preset's
            values; explicit ones that contradict it raise ValueError.
        results: path of a JSON-lines results file; the run resumes from it.
        experiment: a name stored in every record (part of the resume key).
        verbose: 1 prints one line per cycle.

    Returns:
        One record (dict) per cycle; see ``dropnet_tf.results`` for the fields.
    """
    return IterativePruner(model, data, metric, **kwargs).run()
