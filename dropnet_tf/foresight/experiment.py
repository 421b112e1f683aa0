"""Foresight-pruning experiments: methods × compression ratios × seeds into one results file.

One run = build the model at its initialisation, draw the scoring batch, prune with
:func:`~dropnet_tf.foresight.prune.prune_at_init`, train the sparse network with the
protocol, evaluate top-1 and top-5, and append one JSON record.  Runs already in the
results file are skipped, so an interrupted grid resumes where it stopped and a finished
run is never redone or lost.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.core.selection import WEIGHT_SELECTIONS
from dropnet_tf.foresight.prune import check_compression, prune_at_init, resolve_method
from dropnet_tf.foresight.weights import compression_report, get_weight_masks, set_weight_masks
from dropnet_tf.core.distribute import check_strategy, clone_in_scope, model_strategy
from dropnet_tf.harness.eta import RunsETA
from dropnet_tf.harness.grid import RunGrid
from dropnet_tf.harness.progress import RunScalars, safe_folder, split_callbacks
from dropnet_tf.engines.callbacks import StopOnDivergence
from dropnet_tf.engines.config import WEIGHT_DECAY_MODES, TrainingConfig
from dropnet_tf.engines.optimizers import make_optimizer
from dropnet_tf.engines.training import Trainer

#: The method name of the unpruned network trained with the same protocol (r = 1).
REFERENCE = "reference"


@dataclasses.dataclass(frozen=True)
class TrainingProtocol:
    """How the pruned network is trained after pruning: a preset of :class:`dropnet_tf.TrainingConfig`
    (:meth:`to_training_config`) with the thesis' / SNIP's field names and defaults.

    ``learning_rate_drops`` lists ``(step, factor)``: the rate is multiplied by ``factor``
    at each step (SNIP Section 5: ×0.1 every 25k / 30k iterations).

    ``weight_decay_mode`` (:data:`dropnet_tf.engines.config.WEIGHT_DECAY_MODES`):
    ``"decoupled"`` (default; Keras' ``SGD(weight_decay=...)``, outside the momentum, what
    every protocol here used before the option existed) or ``"coupled"`` (``g + wd*w``
    through the momentum, as SNIP's TF 1 code, Caffe and PyTorch do).  Each paper
    protocol in ``paper_experiments`` states its choice.
    """

    epochs: int
    learning_rate: float
    batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    learning_rate_drops: tuple = ()
    weight_decay_mode: str = "decoupled"

    def __post_init__(self):
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, got {self.epochs!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}.")
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(f"weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {self.weight_decay_mode!r}.")

    def to_training_config(self) -> TrainingConfig:
        """The protocol as the one training config (engine "keras": no early stopping, reshuffled
        epochs, evaluation at batch 512)."""
        return TrainingConfig(
            optimizer=self.optimizer, learning_rate=self.learning_rate, momentum=self.momentum,
            nesterov=self.nesterov, weight_decay=self.weight_decay, weight_decay_mode=self.weight_decay_mode,
            learning_rate_drops=tuple(tuple(drop) for drop in self.learning_rate_drops),
            batch_size=self.batch_size, max_epochs=self.epochs, early_stopping=False, shuffle=True,
            loss="sparse_categorical_crossentropy", eval_batch_size=512,
        )

    def make_optimizer(self):
        return make_optimizer(self)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def top_k_hits_with_ties_by_index(k: int):
    """Per-sample top-k hits (1.0 / 0.0) with ties ranked by class index: the function inside
    :func:`top_k_accuracy_with_ties_by_index`, also reduced by the distributed trainer."""

    def top_k(y_true, y_pred):
        y_true = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        classes = keras.ops.shape(y_pred)[-1]
        true_score = keras.ops.take_along_axis(y_pred, keras.ops.expand_dims(y_true, -1), axis=-1)
        index = keras.ops.arange(classes)[None, :]
        ahead = keras.ops.logical_or(
            keras.ops.greater(y_pred, true_score),
            keras.ops.logical_and(keras.ops.equal(y_pred, true_score), keras.ops.less(index, y_true[:, None])),
        )
        rank = keras.ops.sum(keras.ops.cast(ahead, "int32"), axis=-1)
        return keras.ops.cast(keras.ops.less(rank, k), "float32")

    top_k.__name__ = f"top{k}"
    return top_k


def top_k_accuracy_with_ties_by_index(k: int):
    """Top-k accuracy where tied scores are ranked by class index, as ``torch.topk`` does.

    Keras' ``SparseTopKCategoricalAccuracy`` counts every class tied with the k-th score as
    in the top k, so a collapsed network that outputs one-hot or constant predictions
    scores 100 % top-5; the thesis' tables report such networks at ~50 % top-5 on ten
    balanced classes (e.g. 49.45 % in Table 4.2).  Here the true class's rank is the
    number of classes scoring strictly higher plus the tied classes with a lower index.
    """

    return keras.metrics.MeanMetricWrapper(top_k_hits_with_ties_by_index(k), name=f"top{k}")


def scoring_batch(x, y, size: int, seed: int):
    """A random mini-batch of ``size`` training examples (SNIP: 100 MNIST / 128 CIFAR)."""
    if size is None or size >= len(y):
        return x, y
    index = np.random.default_rng(seed).choice(len(y), size=int(size), replace=False)
    return x[index], y[index]


class TestCheckpoints(keras.callbacks.Callback):
    """SNIP's public code's reported number: the test accuracy of a checkpoint every
    ``interval`` training steps, the last ``keep`` kept (``train.py`` saves every
    ``--save_interval`` = 1000 iterations with ``tf.train.Saver``'s default ``max_to_keep=5``;
    ``test.py`` evaluates the checkpoints kept and reports the error of the best).

    Needs a batch hook per step (``Model.fit``).  ``found`` holds ``[step, top1]`` pairs.
    """

    def __init__(self, x, y, interval: int = 1000, keep: int = 5, batch_size: int = 1000):
        super().__init__()
        for name, value in (("interval", interval), ("keep", keep), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TestCheckpoints {name} must be a positive integer, got {value!r}.")
        self.x, self.y = x, np.asarray(y).reshape(-1)
        self.interval, self.keep, self.batch_size = interval, keep, batch_size
        self.step, self.found = 0, []

    def on_train_begin(self, logs=None):
        self.step, self.found = 0, []

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.interval == 0:
            correct = 0
            for start in range(0, len(self.y), self.batch_size):
                scores = np.asarray(self.model(self.x[start:start + self.batch_size], training=False))
                correct += int(np.sum(scores.argmax(axis=-1) == self.y[start:start + self.batch_size]))
            self.found = (self.found + [[self.step, correct / len(self.y)]])[-self.keep:]

    def record(self) -> dict:
        """A record's ``checkpoints`` (the kept ``[step, top1]``) and ``top1_best_of_last5``
        (the best of them; None before the first checkpoint)."""
        return {"checkpoints": [list(pair) for pair in self.found], "checkpoint_interval": self.interval,
                "top1_best_of_last5": max((top1 for _, top1 in self.found), default=None)}


def train_and_evaluate(model, data, protocol: TrainingProtocol, labels=None, seed: int = 0, callbacks=(),
                       strategy=None, checkpoints=None) -> dict:
    """Fit with the protocol, then top-1 / top-5 accuracy and loss on the test split.

    ``callbacks``: Keras callbacks for the fit (e.g. :class:`dropnet_tf.harness.progress.EpochLine`).
    ``strategy``: a ``tf.distribute.Strategy`` (``MirroredStrategy``,
    ``MultiWorkerMirroredStrategy``) to train and evaluate under.  A model built outside its
    scope (pruned at initialisation on one device, as the grid does) is copied into the
    scope with its masks, trained there, and its trained weights are copied back into
    ``model``.  Under a strategy the training is
    :class:`~dropnet_tf.engines.distributed_training.DistributedTrainer` (``strategy.run``; Keras
    3's ``Model.fit`` fails under ``MultiWorkerMirroredStrategy``, keras-team/keras#20585):
    the same optimizer, weight decay, learning-rate drops and length, the masks kept by the
    masked layers' constraints inside each replicated update, batches in the graph
    trainer's order (a stateless shuffle of (seed, epoch)) rather than ``Model.fit``'s, and
    top-1 / top-5 / loss from sums and counts reduced over replicas and workers.  Its
    record's ``train_top1`` is empty (the distributed loop keeps the loss per epoch only).
    ``checkpoints``: ``(interval, keep)`` adds SNIP's public code's number, the best test
    top-1 of the last ``keep`` checkpoints taken every ``interval`` steps
    (:class:`TestCheckpoints`; one device only).
    """
    check_strategy(strategy)
    if checkpoints is not None and strategy is not None:
        raise ValueError(f"checkpoints={checkpoints!r} needs a batch hook per step (Model.fit, strategy=None); "
                         f"got strategy={type(strategy).__name__}.")
    y_train = data.y_train if labels is None else labels
    trainee = model
    if strategy is not None and model_strategy(model) is not strategy:
        trainee = clone_in_scope(model, strategy)
    k = min(5, data.num_classes)
    if strategy is None:
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="top1"), top_k_accuracy_with_ties_by_index(k)]
        trainer = Trainer(trainee, protocol, (data.x_train, y_train), engine="keras", metrics=metrics)
    else:
        trainer = Trainer(trainee, protocol, (data.x_train, y_train), engine="graph", strategy=strategy,
                          sample_metrics={f"top{k}": top_k_hits_with_ties_by_index(k)})
    # A run that blows up never recovers: stop it at once instead of spending the rest of a
    # 100k-iteration protocol on it (the dense LeNet-5-Caffe does this at SNIP's momentum
    # 0.9 / lr 0.1 within about 20 steps); the record says so (``diverged``, ``diverged_at``).
    guard = StopOnDivergence()
    tests = None if checkpoints is None else TestCheckpoints(data.x_test, data.y_test, *checkpoints)
    start = time.perf_counter()
    history = trainer.fit(seed=seed, callbacks=list(callbacks) + ([guard] if strategy is None else [])
                          + ([tests] if tests is not None else []))
    train_seconds = time.perf_counter() - start
    scores = trainer.evaluate((data.x_test, data.y_test))
    if trainee is not model:
        model.set_weights(trainee.get_weights())
    loss, top5 = scores["loss"], scores[f"top{k}"]
    top1 = scores["top1"] if strategy is None else scores["accuracy"]
    train_loss = [float(v) for v in history.get("loss", [])]
    return {
        "top1": float(top1),
        "top5": float(top5),
        "test_loss": float(loss),
        "train_loss": train_loss,
        "train_top1": [float(v) for v in history.get("top1", [])],
        "train_seconds": train_seconds,
        **guard.verdict(train_loss + [loss]),
        **(tests.record() if tests is not None else {}),
    }


#: ``run_foresight_grid(train_draw=...)``: train the scored weights, or a fresh draw under the mask.
TRAIN_DRAWS = ("same", "fresh")


def fresh_seed(seed: int) -> int:
    """The seed of the draw a run trains with ``train_draw="fresh"``: another weight draw than
    the scored one (``build_model(seed, ...)``) and than any run's scored draw for seeds
    below 2**30."""
    return int(seed) + 2**30


def grid_cells(experiment: str, methods: Sequence[str], compressions: Iterable[float], seeds: Iterable[int]
               ) -> list[dict]:
    """The keys of :func:`run_foresight_grid`'s cells in the order it runs them (method, r, seed;
    the reference once per seed at r = 1)."""
    compressions = [check_compression(r) for r in compressions]
    seeds = [int(s) for s in seeds]
    return [{"experiment": experiment, "method": method, "compression": compression, "seed": seed}
            for method in methods for compression in ([1.0] if method == REFERENCE else compressions)
            for seed in seeds]


def run_foresight_grid(
    results,
    experiment: str,
    build_model: Callable[[int, str], object],
    data,
    methods: Sequence[str],
    compressions: Iterable[float],
    seeds: Iterable[int],
    protocol: TrainingProtocol,
    scoring_batch_size: int | None = 128,
    init_for: Callable[[str], str] = lambda method: "default",
    method_options: dict | None = None,
    random_labels: bool = False,
    extra: dict | None = None,
    log: Callable[[str], None] | None = print,
    external: dict | None = None,
    train_init: str | None = None,
    callbacks: Sequence = (),
    order=None,
    strategy=None,
    eta: bool = False,
    tensorboard=None,
    selection: str = "exact",
    train_draw: str = "same",
    checkpoints=None,
) -> list[dict]:
    """Run every (method, r, seed) not yet in ``results`` and return the experiment's records.

    Args:
        build_model: ``(seed, init) -> masked model`` at initialisation; called after
            ``keras.utils.set_random_seed(seed)``.
        data: a :class:`dropnet_tf.data.Dataset`.
        methods: names of :data:`~dropnet_tf.foresight.METHODS`, or ``"reference"`` (the
            unpruned network, run once per seed at r = 1 and shared by every method's curve).
        compressions: ratios r >= 1.
        init_for: the initialisation each method starts from (thesis 4.1.3: PyTorch's
            default for every method but SNIP, which gets Xavier).
        method_options: ``{method: {"iterations": ..., "scope": ...}}`` passed to prune_at_init.
        random_labels: train on labels shuffled with the seed (SNIP Section 5.6); the scoring
            batch keeps the true labels, as in the paper.
        extra: constant fields added to every record (model, dataset, scale).
        external: ``{method: fn(seed, compression) -> dict}`` for baselines that train in
            their own way (TensorFlow Model Optimization's gradual magnitude pruning runs in
            a tf-keras process); ``fn`` returns at least top1, top5, empirical_ratio.
        train_init: train from a fresh draw of this initialisation with the pruned masks
            (SNIP Table 3 scores with RN/TN/VS-X/VS-H but trains from VS-X in every case).
            The draw is ``build_model(seed, train_init)``: the same values as the scored
            weights when ``train_init`` is the scoring init, unless ``train_draw="fresh"``.
        train_draw: "same" (default) trains the weights the mask was scored on; "fresh"
            scores one draw and trains another under the mask, as SNIP's public code does
            (its ``weights_bp`` / ``weights_ap``), for every method and the reference:
            ``build_model(fresh_seed(seed), ...)``, a seed no run's scoring draw uses.
        checkpoints: ``(interval, keep)``: every record adds SNIP's public code's number,
            the best test top-1 of the last ``keep`` checkpoints every ``interval`` steps
            (:class:`TestCheckpoints`), beside the final iterate's ``top1``.
        callbacks: Keras callbacks given to every run's training (issue 16), e.g.
            ``EpochLine`` for a line per epoch.
        order: a :class:`dropnet_tf.harness.shards.CellOrder`: run only one shard's
            (method, r, seed) cells, numbered in this loop's order (default: all).
        strategy: a ``tf.distribute.Strategy`` to train under (see :func:`train_and_evaluate`);
            pruning at initialisation stays on one device.
        eta: end each run's ``log`` line with the grid's progress (issue 16,
            :class:`dropnet_tf.harness.eta.RunsETA`): ``run i of n (r resumed), ETA ~ h:mm for
            the grid``, i and n counting this process's cells (one shard's under ``order``),
            the runs already in ``results`` done but not timed.  True: this call's cells;
            a ``RunsETA`` of :func:`grid_cells` over several calls sharing one results file:
            their whole grid.
        tensorboard: a folder (or a :class:`dropnet_tf.harness.progress.RunScalars`) for
            TensorBoard scalars of every run trained here: its epoch logs under
            ``<dir>/<experiment>/<method>_r<r>_seed<k>/{train,validation}``, and its top1,
            top5 and empirical compression ratio under
            ``<dir>/<experiment>/summary/<method>_seed<k>`` (tags ``summary/top1``,
            ``summary/top5``, ``summary/empirical_ratio``) at step = r rounded to an integer,
            so that TensorBoard draws each method's accuracy against r.
        selection: the weight selection of every pruned run, ``"exact"`` or ``"thesis"``
            (:func:`~dropnet_tf.foresight.prune.prune_at_init`); each record says which.
            A results file holds one rule: records of the other are refused.
    """
    check_strategy(strategy)
    grid = RunGrid(results, order=order)
    compressions = [check_compression(r) for r in compressions]
    seeds, methods, external = [int(s) for s in seeds], list(methods), external or {}
    keras_callbacks = _checked_grid_arguments(grid, experiment, methods, external, callbacks, eta, selection,
                                              train_draw)
    board = tensorboard if isinstance(tensorboard, RunScalars) or tensorboard is None else RunScalars(tensorboard)
    cells = grid_cells(experiment, methods, compressions, seeds)
    runs = _GridRuns(
        experiment=experiment, build_model=build_model, data=data, protocol=protocol,
        scoring_batch_size=scoring_batch_size, init_for=init_for, method_options=method_options or {},
        random_labels=random_labels, extra=extra or {}, log=log, external=external, train_init=train_init,
        keras_callbacks=keras_callbacks, strategy=strategy, board=board, selection=selection,
        train_draw=train_draw, checkpoints=checkpoints, progress=_grid_progress(eta, log, order, cells, grid),
    )
    if runs.progress is not None:
        runs.progress.start()
    try:
        for key in cells:
            method, compression, seed = key["method"], key["compression"], key["seed"]
            if method in external:
                grid.cell(key, lambda: runs.run_external(method, compression, seed), log=runs.log_external)
            else:
                grid.cell(key, lambda: runs.run_pruned(method, compression, seed), log=runs.log_pruned)
    finally:
        if board is not None and board is not tensorboard:
            board.close()  # a folder given: this call's writers; a RunScalars given stays the caller's
    return grid.records(experiment=experiment)


def _checked_grid_arguments(grid, experiment, methods, external, callbacks, eta, selection, train_draw) -> list:
    """Everything :func:`run_foresight_grid` refuses before any training; returns the Keras callbacks."""
    if selection not in WEIGHT_SELECTIONS:
        raise ValueError(f"selection must be one of {WEIGHT_SELECTIONS}, got {selection!r}.")
    if train_draw not in TRAIN_DRAWS:
        raise ValueError(f"train_draw must be one of {TRAIN_DRAWS}, got {train_draw!r}.")
    other = [record for record in grid.records(experiment=experiment)
             if record.get("method") != REFERENCE and record.get("selection", "exact") != selection]
    if other:
        raise ValueError(
            f"{grid.path} holds {len(other)} {experiment!r} run(s) pruned with selection="
            f"{other[0].get('selection', 'exact')!r}; this call asks for selection={selection!r}. "
            "Write each rule's runs to its own results file."
        )
    for method in methods:
        if method != REFERENCE and method not in external:
            resolve_method(method)  # fail before any training on a misspelt method
    keras_callbacks, cycle_hooks = split_callbacks(callbacks)
    if cycle_hooks:
        raise TypeError(f"run_foresight_grid trains each run once (no cycles): callbacks must be Keras callbacks, "
                        f"got {cycle_hooks!r}.")
    if not isinstance(eta, (bool, RunsETA)):
        raise TypeError(f"eta must be True, False or a dropnet_tf.harness.eta.RunsETA, got {eta!r}.")
    return keras_callbacks


def _grid_progress(eta, log, order, cells, grid):
    """The grid ETA that ends each run's line: the caller's RunsETA, this call's cells, or None."""
    if isinstance(eta, RunsETA):
        return eta
    if eta is True and log is not None and (order is None or order.run):
        # this call's cells; an order shared with earlier calls has numbered theirs already
        first, shard = (len(order.keys), order.shard) if order is not None else (0, None)
        return RunsETA([key for position, key in enumerate(cells, start=first)
                        if shard is None or shard.owns(position)], grid.results)
    return None


@dataclasses.dataclass
class _GridRuns:
    """How :func:`run_foresight_grid` runs, records and logs one cell (its arguments, checked)."""

    experiment: str
    build_model: Callable
    data: object
    protocol: TrainingProtocol
    scoring_batch_size: int | None
    init_for: Callable
    method_options: dict
    random_labels: bool
    extra: dict
    log: Callable | None
    external: dict
    train_init: str | None
    keras_callbacks: list
    strategy: object
    board: object
    selection: str
    train_draw: str
    checkpoints: object
    progress: object

    def ending(self, record) -> str:
        return "" if self.progress is None or self.log is None else " | " + self.progress.after_run(record)

    def summarise(self, record) -> None:
        if self.board is not None:
            folder = safe_folder(self.experiment, "summary", f"{record['method']}_seed{record['seed']}")
            self.board.scalars(folder, {f"summary/{name}": record.get(name) for name in ("top1", "top5", "empirical_ratio")},
                               step=int(round(float(record["compression"]))))

    def callbacks_of(self, method, compression, seed) -> list:
        if self.board is None:
            return self.keras_callbacks
        return self.keras_callbacks + self.board.epoch_callbacks(
            safe_folder(self.experiment, f"{method}_r{compression:g}_seed{seed}"))

    def run_external(self, method, compression, seed) -> dict:
        return {**self.extra, "protocol": self.protocol.as_dict(), **dict(self.external[method](seed, compression))}

    def log_external(self, record) -> None:
        self.summarise(record)
        if self.log is not None:
            self.log(f"{self.experiment} {record['method']:>17s} r={record['compression']:<5g} seed={record['seed']} "
                     f"top1={record.get('top1', float('nan')):.4f} top5={record.get('top5', float('nan')):.4f}"
                     + self.ending(record))

    def _pruned_model(self, method, compression, seed):
        """The model scored (and pruned) at initialisation, its report, init and scoring time."""
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        init = self.init_for(method)
        model = self.build_model(seed, init)
        batch = scoring_batch(self.data.x_train, self.data.y_train, self.scoring_batch_size, seed)
        start = time.perf_counter()
        if method == REFERENCE:
            report = compression_report(model, target_ratio=1.0)
        else:
            report = prune_at_init(model, method, compression, data=batch, seed=seed, selection=self.selection,
                                   **self.method_options.get(method, {}))
        scoring_seconds = time.perf_counter() - start
        if self.train_init is not None or self.train_draw == "fresh":
            masks = get_weight_masks(model)
            keras.utils.set_random_seed(seed + 1)
            model = self.build_model(fresh_seed(seed) if self.train_draw == "fresh" else seed, self.train_init or init)
            set_weight_masks(model, masks)
        return model, report, init, scoring_seconds

    def run_pruned(self, method, compression, seed) -> dict:
        model, report, init, scoring_seconds = self._pruned_model(method, compression, seed)
        labels = np.random.default_rng(seed).permutation(self.data.y_train) if self.random_labels else None
        outcome = train_and_evaluate(model, self.data, self.protocol, labels=labels, seed=seed,
                                     callbacks=self.callbacks_of(method, compression, seed), strategy=self.strategy,
                                     checkpoints=self.checkpoints)
        summary = report.as_dict()
        return {
            **self.extra,
            "init": init,
            "train_init": self.train_init or init,
            "train_draw": self.train_draw,
            "random_labels": bool(self.random_labels),
            "selection": self.selection,
            "scoring_seconds": scoring_seconds,
            **{name: summary[name] for name in ("prunable", "nonzero", "empirical_ratio", "compression_error",
                                                "collapsed_layers", "per_weight_density")},
            "protocol": self.protocol.as_dict(),
            **outcome,
        }

    def log_pruned(self, record) -> None:
        self.summarise(record)
        if self.log is not None:
            self.log(
                f"{self.experiment} {record['method']:>17s} r={record['compression']:<5g} seed={record['seed']} "
                f"r_e={record['empirical_ratio']:.2f} top1={record['top1']:.4f} top5={record['top5']:.4f} "
                f"collapsed={len(record['collapsed_layers'])} score {record['scoring_seconds']:.1f}s "
                f"train {record['train_seconds']:.1f}s" + (" DIVERGED (loss blew up, training stopped)"
                                                           if record.get("diverged") else "") + self.ending(record)
            )
