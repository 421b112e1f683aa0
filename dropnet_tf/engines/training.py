"""The one training layer: :class:`Trainer`, :func:`fit`, :func:`evaluate`.

Every part of the library trains through here: DropNet's cycles (``engine="graph"``), the
foresight grid, the LayerPrune scripts and the TFMOT baseline (``engine="keras"``, i.e.
``Model.fit``); under a ``tf.distribute`` strategy (``Trainer(strategy=...)``) engine "graph"
is :mod:`dropnet_tf.engines.distributed_training` (what every method trains with under a
strategy) and engine "keras" Keras' distributed ``fit``.  One
:class:`~dropnet_tf.engines.config.TrainingConfig` describes a training run for both engines,
and :func:`~dropnet_tf.engines.optimizers.make_optimizer` is the one place an optimizer is
built from a config or from the TFMOT baseline's JSON spec.  Engine "graph" on one device is
:class:`~dropnet_tf.engines.graph_trainer.GraphTrainer`; the callbacks the engines add are in
:mod:`dropnet_tf.engines.callbacks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Sequence

import numpy as np

from dropnet_tf.core.backend import KERAS_MAJOR, keras, tf
from dropnet_tf.core.distribute import check_strategy, require_built_in_scope
from dropnet_tf.engines.callbacks import _StopAfterIterations
from dropnet_tf.engines.config import check_config
from dropnet_tf.engines.distributed_training import DistributedTrainer
from dropnet_tf.engines.graph_trainer import GraphTrainer
from dropnet_tf.engines.optimizers import make_optimizer


#: Engines of :func:`fit`: "graph" is :class:`GraphTrainer` (DropNet's cycles), "keras" is
#: ``Model.fit`` (foresight, LayerPrune, the TFMOT baseline).
ENGINES = ("graph", "keras")


def _xy(data, what: str):
    if isinstance(data, Mapping):
        data = (data["x"], data["y"])
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be an (x, y) pair, got {type(data).__name__}.") from None
    return x, y


def _check_engine(engine) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    return engine


class Trainer:
    """One model, one config, one engine: :meth:`fit` (repeatable) and :meth:`evaluate`.

    Made once and reused, e.g. by every DropNet cycle: engine "graph" traces its training
    step once (:class:`GraphTrainer`).  The model is compiled here with ``optimizer`` (by
    default :func:`make_optimizer` of the config), the config's loss and ``metrics``
    (default ``["accuracy"]``), so that ``model.evaluate`` / ``predict`` work afterwards.

    Args:
        model: a built Keras model.
        config: a :class:`~dropnet_tf.engines.config.TrainingConfig`, a preset with ``to_training_config()``, or None.
        train: the training ``(x, y)``, in memory.
        engine: "graph" (:class:`GraphTrainer`) or "keras" (``Model.fit``).
        optimizer: an optimizer to use instead of building one from the config.
        metrics: compiled metrics (engine "keras": what ``history`` and :meth:`evaluate` report).
        strategy: a ``tf.distribute.Strategy`` to train and evaluate under (the model must
            have been built in its scope), or None (default: one device).  Engine "graph"
            then runs :class:`dropnet_tf.engines.distributed_training.DistributedTrainer` (the
            same loop over replicas and workers), engine "keras" Keras' distribution-aware
            ``Model.fit`` (Keras 3's fails under ``MultiWorkerMirroredStrategy``, so that
            combination is refused); the optimizer is built in the strategy's scope here.
        sample_metrics: ``{name: fn(y_true, y_pred) -> per-sample scores}`` that
            :meth:`evaluate` adds to loss and accuracy, reduced over replicas and workers
            (engine "graph" under a strategy only, e.g. foresight's top-5).
    """

    def __init__(self, model, config=None, train=None, *, engine: str = "graph", optimizer=None, metrics=None,
                 strategy=None, sample_metrics=None):
        self.config = check_config(config)
        self.engine = _check_engine(engine)
        self.strategy = check_strategy(strategy)
        self.model = model
        if train is None:
            raise TypeError("train must be the training (x, y) pair.")
        self.x, self.y = _xy(train, "train")
        if sample_metrics and (strategy is None or engine != "graph"):
            raise ValueError(
                f"sample_metrics are evaluated by the distributed graph engine only (strategy=... and engine='graph'), "
                f"got engine={engine!r}, strategy={strategy!r}; with engine 'keras' pass Keras metrics as metrics=."
            )
        self._sample_metrics = sample_metrics
        if strategy is not None:
            self._init_distributed(optimizer, metrics)
            return
        self.optimizer = make_optimizer(self.config) if optimizer is None else optimizer
        cfg = self.config
        if engine == "graph":
            model.compile(optimizer=self.optimizer, loss=cfg.loss, metrics=["accuracy"] if metrics is None else metrics)
            self.optimizer.build(model.trainable_variables)
            self._graph = GraphTrainer(
                model, self.optimizer, cfg.loss, self.x, self.y, batch_size=cfg.batch_size,
                steps_per_call=cfg.steps_per_call, train_transform=cfg.train_transform, jit_compile=cfg.jit_compile,
            )
        else:
            if cfg.train_transform is not None:
                raise ValueError("TrainingConfig.train_transform is applied by engine 'graph' only; got engine='keras'.")
            options = {} if cfg.jit_compile == "auto" else {"jit_compile": bool(cfg.jit_compile)}
            model.compile(optimizer=self.optimizer, loss=cfg.loss, metrics=["accuracy"] if metrics is None else metrics,
                          **options)

    def _init_distributed(self, optimizer, metrics) -> None:
        """Compile and build the optimizer in ``self.strategy``'s scope; engine "graph" gets a
        :class:`~dropnet_tf.engines.distributed_training.DistributedTrainer`."""
        cfg = self.config
        if cfg.train_transform is not None:
            raise ValueError(
                "TrainingConfig.train_transform is applied by the single-device graph engine only; "
                "it cannot be used with a tf.distribute strategy (strategy=None, or no train_transform)."
            )
        if (self.engine == "keras" and KERAS_MAJOR >= 3
                and isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)):
            raise ValueError(
                "engine='keras' (Model.fit) fails under MultiWorkerMirroredStrategy in Keras 3 "
                "(keras-team/keras#20585); use engine='graph', MirroredStrategy, or tf-keras (TF_USE_LEGACY_KERAS=1)."
            )
        require_built_in_scope(self.model, self.strategy)
        with self.strategy.scope():
            self.optimizer = make_optimizer(cfg) if optimizer is None else optimizer
            options = {} if self.engine == "graph" or cfg.jit_compile == "auto" else {"jit_compile": bool(cfg.jit_compile)}
            self.model.compile(optimizer=self.optimizer, loss=cfg.loss,
                               metrics=["accuracy"] if metrics is None else metrics, **options)
            # Built now, so that its slots exist (mirrored) before training: DropNet's reset
            # assigns them at every cycle.
            self.optimizer.build(self.model.trainable_variables)
        if self.engine == "graph":
            self._graph = DistributedTrainer(self.model, self.optimizer, cfg.loss, self.x, self.y, self.strategy,
                                             batch_size=cfg.batch_size, steps_per_call=cfg.steps_per_call,
                                             sample_metrics=self._sample_metrics)

    def _callbacks(self, validation, callbacks) -> list:
        cfg = self.config
        found = []
        if cfg.early_stopping:
            if validation is None and cfg.monitor.startswith("val_"):
                raise ValueError(
                    f"TrainingConfig.early_stopping monitors {cfg.monitor!r}, which needs validation data; "
                    "pass validation=(x, y), or set early_stopping=False or monitor='loss'."
                )
            found.append(keras.callbacks.EarlyStopping(
                monitor=cfg.monitor, mode="min" if cfg.monitor.endswith("loss") else "max", patience=cfg.patience,
                restore_best_weights=cfg.restore_best_weights,
            ))
        found.extend(cfg.callbacks)
        found.extend(callbacks)
        return found

    def fit(self, validation=None, callbacks: Sequence = (), seed: int | None = 0, verbose: int = 0,
            train=None) -> dict[str, list]:
        """Train with the config; returns the history (lists per epoch, ``{}`` for zero epochs).

        Keras' global seed is set to ``seed`` first (dropout, and the order of samples;
        None leaves the global random state as it is); callbacks run after the config's
        early stopping and ``config.callbacks``.  ``train``: other (x, y) for this call
        (engine "keras" only; the optimizer's state carries over, as with ``Model.fit``).
        """
        cfg = self.config
        x, y = self.x, self.y
        if train is not None:
            if self.engine == "graph":
                raise ValueError("Trainer.fit(train=...) needs engine='keras'; engine 'graph' trains on the data it was made with.")
            x, y = _xy(train, "train")
        count = len(x)
        steps_per_epoch = math.ceil(count / cfg.batch_size)
        epochs = cfg.max_epochs if cfg.iterations is None else math.ceil(cfg.iterations / max(steps_per_epoch, 1))
        if epochs == 0:
            return {}
        callbacks = self._callbacks(validation, callbacks)
        if seed is not None:
            keras.utils.set_random_seed(seed)
        if self.engine == "graph":
            if validation is not None and not isinstance(validation, tuple):
                validation = _xy(validation, "validation")
            return self._graph.fit(
                epochs, validation_data=validation, callbacks=callbacks, seed=0 if seed is None else seed, shuffle=cfg.shuffle,
                eval_batch_size=cfg.eval_batch_size, max_steps=cfg.iterations,
            )
        if cfg.iterations is not None:
            callbacks.append(_StopAfterIterations(cfg.iterations))
        options = {}
        if callbacks:
            options["callbacks"] = callbacks
        if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
            options["validation_split"] = float(validation)
        elif validation is not None:
            options["validation_data"] = _xy(validation, "validation")
        return self.model.fit(
            x, y, batch_size=cfg.batch_size, epochs=epochs, verbose=verbose, shuffle=cfg.shuffle, **options
        ).history

    def evaluate(self, data, batch_size: int | None = None) -> dict[str, float]:
        """Loss and metrics on ``data`` = (x, y) in inference mode (graph: loss and top-1 accuracy)."""
        x, y = _xy(data, "data")
        batch_size = self.config.eval_batch_size if batch_size is None else batch_size
        if self.engine == "graph":
            return self._graph.evaluate(x, y, batch_size=batch_size)
        return {k: float(v) for k, v in self.model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True).items()}


def fit(model, train, validation=None, config=None, engine: str = "graph", callbacks: Sequence = (), seed: int = 0,
        *, optimizer=None, metrics=None, verbose: int = 0, strategy=None) -> dict[str, list]:
    """Train ``model`` on ``train`` = (x, y) with ``config``: the one training entry.

    ``engine="graph"``: :class:`GraphTrainer` (many steps per call; DropNet's cycles).
    ``engine="keras"``: ``Model.fit`` (foresight, LayerPrune, the TFMOT baseline).  Both take
    the same :class:`~dropnet_tf.engines.config.TrainingConfig`.  ``validation``: an (x, y) pair, or for engine
    "keras" also a fraction held out (``validation_split``).  ``strategy``: a
    ``tf.distribute.Strategy`` to train under (the model built in its scope), see
    :class:`Trainer`.
    """
    return Trainer(model, config, train, engine=engine, optimizer=optimizer, metrics=metrics, strategy=strategy).fit(
        validation, callbacks=callbacks, seed=seed, verbose=verbose
    )


def evaluate(model, data, config=None, engine: str = "keras", batch_size: int | None = None) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` = (x, y) in inference mode.

    ``engine="keras"``: ``Model.evaluate`` of the compiled model (its compiled metrics, by
    name).  ``engine="graph"``: mean loss (the config's) and top-1 ``accuracy``.
    """
    config = check_config(config)
    _check_engine(engine)
    x, y = _xy(data, "data")
    batch_size = config.eval_batch_size if batch_size is None else batch_size
    if engine == "graph":
        return GraphTrainer(model, None, config.loss, x, y, jit_compile=False).evaluate(x, y, batch_size=batch_size)
    return {k: float(v) for k, v in model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True).items()}


__all__ = ["ENGINES", "Trainer", "evaluate", "fit"]
