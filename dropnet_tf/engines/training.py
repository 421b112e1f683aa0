"""The one training layer: :class:`TrainingConfig`, :func:`make_optimizer`, :func:`fit`, :func:`evaluate`.

Every part of the library trains through here: DropNet's cycles (``engine="graph"``), the
foresight grid, the LayerPrune scripts and the TFMOT baseline (``engine="keras"``, i.e.
``Model.fit``); under a ``tf.distribute`` strategy (``Trainer(strategy=...)``) engine "graph"
is :mod:`dropnet_tf.engines.distributed_training` (what every method trains with under a
strategy) and engine "keras" Keras' distributed ``fit``.  One
:class:`TrainingConfig` describes a training run for both engines, and
:func:`make_optimizer` is the one place an optimizer is built from a config or from the
TFMOT baseline's JSON spec.

Training and evaluation with many steps per call into TensorFlow, driving Keras callbacks.

Algorithm 1 trains the same architecture once per cycle, often for tens of epochs of
batch-32 steps.  On a CPU a step of a small network costs far less than Keras' per-step
machinery around it (iterator, metric trackers, callbacks), so ``Model.fit`` spends most
of a cycle outside the network.  :class:`GraphTrainer` instead runs blocks of steps inside
one ``tf.function`` (a loop over index blocks that gathers each batch from tensors held in
memory) and calls the standard Keras callback hooks: the batch hooks once per block (as
``fit`` does with ``steps_per_execution``) and the epoch hooks once per epoch, so
``keras.callbacks.EarlyStopping`` stops training exactly as it would under ``fit``.

It is compiled once per model and reused by every cycle: nothing is retraced when the
weights, masks or optimizer state are reassigned.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dropnet_tf.core.backend import KERAS_MAJOR, keras, register_serializable, tf
from dropnet_tf.core.distribute import check_strategy, require_built_in_scope
from dropnet_tf.core.validation import check_int
from dropnet_tf.engines.distributed_training import DistributedTrainer
from dropnet_tf.engines.loop import fit_epochs, loss_and_correct, per_sample_loss, traced_for


def _xla_pays_off(model) -> bool:
    """Whether "auto" should compile with XLA: on a GPU always, on the CPU without convolutions."""
    if tf.config.list_logical_devices("GPU"):
        return True
    convolutions = tuple(
        getattr(keras.layers, name)
        for name in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
        if hasattr(keras.layers, name)
    )
    return not any(isinstance(layer, convolutions) for layer in _all_layers(model))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # nested models
            yield from _all_layers(layer)


#: A block of training steps: one row of sample indices per step (see ``GraphTrainer._epoch_blocks``).
_INDEX_BLOCK = [tf.TensorSpec((None, None), tf.int32)]


class GraphTrainer:
    """Trains ``model`` on in-memory tensors, ``steps_per_call`` batches per call.

    Args:
        model: a built Keras model.
        optimizer: a Keras optimizer, built on ``model.trainable_variables``.
        loss: Keras loss name, function or object (mean over the batch, plus
            ``model.losses`` as in ``Model.fit``).
        x, y: training tensors (all samples; batches are gathered by index).
        batch_size: samples per step.
        steps_per_call: training steps inside one call into TensorFlow.
        train_transform: optional ``(x_batch, y_batch) -> (x_batch, y_batch)`` applied in
            the graph to every training batch (data augmentation).
        jit_compile: compile the block of steps with XLA: True, False, or "auto".  "auto"
            uses XLA on a GPU, and on the CPU only for models without convolutions:
            XLA's CPU convolutions are far slower than TensorFlow's oneDNN kernels (one
            epoch of Model B Conv64-Conv64 on 3000 samples, 2 cores: 42.6 s with XLA,
            2.7 s without), while dense models gain from it.  If XLA cannot compile the
            step (e.g. an augmentation op it lacks), "auto" falls back to the plain graph
            with a warning.
    """

    def __init__(
        self,
        model,
        optimizer,
        loss,
        x,
        y,
        batch_size: int = 32,
        steps_per_call: int = 128,
        train_transform: Callable | None = None,
        jit_compile="auto",
    ):
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}.")
        self.model = model
        self.optimizer = optimizer
        self.x = tf.convert_to_tensor(x)
        self.y = tf.convert_to_tensor(y)
        self.batch_size = int(batch_size)
        self.steps_per_call = int(steps_per_call)
        self._loss = per_sample_loss(loss)
        self._transform = train_transform
        self._jit_compile = jit_compile
        if jit_compile == "auto" and not _xla_pays_off(model):
            self._jit_compile = jit_compile = False
        # Traced once for blocks of any shape (full, the epoch's last shorter one, the ragged
        # last batch) instead of once per shape; XLA still compiles each shape it meets.
        self._train_block = tf.function(self._train_block_python, jit_compile=jit_compile is not False,
                                        input_signature=_INDEX_BLOCK)
        self._evaluate_functions: dict = {}  # see _evaluate_function


    # ------------------------------------------------------------------ graph functions

    def _train_block_python(self, index_block):
        """Runs one SGD step per row of ``index_block``; returns (loss sum, steps)."""
        variables = self.model.trainable_variables
        total = tf.constant(0.0, tf.float32)
        for row in tf.range(tf.shape(index_block)[0]):
            index = index_block[row]
            x_batch = tf.gather(self.x, index)
            y_batch = tf.gather(self.y, index)
            if self._transform is not None:
                x_batch, y_batch = self._transform(x_batch, y_batch)
            with tf.GradientTape() as tape:
                predictions = self.model(x_batch, training=True)
                loss = tf.reduce_mean(self._loss(y_batch, predictions))
                if self.model.losses:
                    loss = loss + tf.add_n([tf.cast(extra, loss.dtype) for extra in self.model.losses])
            gradients = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(gradients, variables))
            total += tf.cast(loss, tf.float32)
        return total, tf.shape(index_block)[0]

    def _run_train_block(self, block):
        if self._jit_compile != "auto":
            return self._train_block(block)
        try:
            return self._train_block(block)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            if "XLA" not in str(error) and "xla" not in str(error) and "compil" not in str(error):
                raise
            import warnings

            warnings.warn(f"XLA could not compile the training step; training without it ({error}).", stacklevel=2)
            self._jit_compile = False
            self._train_block = tf.function(self._train_block_python, input_signature=_INDEX_BLOCK)
            return self._train_block(block)

    def _evaluate_all_python(self, x, y, batch_size):
        """(sum of per-sample losses, correct top-1 predictions) over all of (x, y)."""
        count = tf.shape(x)[0]
        loss_sum = tf.constant(0.0, tf.float64)
        correct = tf.constant(0.0, tf.float64)
        for start in tf.range(0, count, batch_size):
            batch_loss, batch_correct = self._evaluate_batch(x[start : start + batch_size], y[start : start + batch_size])
            loss_sum += batch_loss
            correct += batch_correct
        return loss_sum, correct

    def _evaluate_batch(self, x_batch, y_batch):
        return loss_and_correct(self._loss, y_batch, self.model(x_batch, training=False))

    # ------------------------------------------------------------------ public

    def evaluate(self, x, y, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss and top-1 accuracy over all of (x, y), in inference mode."""
        x = tf.convert_to_tensor(x)
        y = tf.convert_to_tensor(y)
        count = int(x.shape[0])
        if count == 0:
            raise ValueError("Cannot evaluate on zero samples.")
        loss_sum, correct = self._evaluate_function(x, y)(x, y, tf.constant(int(batch_size)))
        return {"loss": float(loss_sum) / count, "accuracy": float(correct) / count}

    def _evaluate_function(self, x, y):
        """The traced evaluation for inputs like ``x``, ``y`` of any number of samples.

        One function per dtype and per-sample shape, traced with the sample count left
        open: the validation split during ``fit`` and every split evaluated afterwards
        (validation, test, training) share one trace, instead of the retrace that a new
        count costs before ``reduce_retracing`` relaxes the shape.
        """
        return traced_for(self._evaluate_functions, self._evaluate_all_python, x, y)

    def _epoch_blocks(self, seed: int, epoch: int, shuffle: bool) -> list:
        count = int(self.x.shape[0])
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int32), seed=tf.constant([seed, epoch], tf.int64)
            )
        else:
            order = tf.range(count, dtype=tf.int32)
        full = (count // self.batch_size) * self.batch_size
        batches = tf.reshape(order[:full], (-1, self.batch_size))
        blocks = [batches[i : i + self.steps_per_call] for i in range(0, int(batches.shape[0]), self.steps_per_call)]
        if full < count:  # the last, smaller batch, as fit would run it
            blocks.append(tf.reshape(order[full:], (1, -1)))
        return blocks

    def fit(
        self,
        epochs: int,
        validation_data=None,
        callbacks: Sequence = (),
        seed: int = 0,
        shuffle: bool = True,
        eval_batch_size: int = 1024,
        max_steps: int | None = None,
    ) -> dict[str, list]:
        """Train up to ``epochs`` epochs; Keras callbacks (e.g. EarlyStopping) may stop early.

        Each epoch's logs hold ``loss`` (mean training loss) and, with ``validation_data``,
        ``val_loss`` and ``val_accuracy``, the keys Keras' own callbacks monitor.  The order
        of samples depends only on ``seed`` and the epoch number.  ``max_steps`` stops after
        that many training steps in all (the last block is cut short).
        """
        def blocks(epoch):
            for block in self._epoch_blocks(seed, epoch, shuffle):
                yield lambda limit, block=block: self._run_train_block(block if limit is None else block[:limit])

        return fit_epochs(self.model, callbacks, epochs, blocks, self.evaluate, validation_data, eval_batch_size,
                          max_steps)


def optimizer_variables(optimizer) -> list:
    """The optimizer's state variables (iterations, slots), for both Keras flavours."""
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


# ====================================================================== the one training layer

#: Engines of :func:`fit`: "graph" is :class:`GraphTrainer` (DropNet's cycles), "keras" is
#: ``Model.fit`` (foresight, LayerPrune, the TFMOT baseline).
ENGINES = ("graph", "keras")

#: Optimizer names that take the config's hyperparameters (learning rate, momentum, ...).
OPTIMIZER_NAMES = ("sgd", "adam")

#: What early stopping may monitor (logs both engines write).
MONITORS = ("val_loss", "val_accuracy", "loss")

#: The optimizer fields of a config: also the keys of the TFMOT baseline's JSON spec.
OPTIMIZER_FIELDS = ("optimizer", "learning_rate", "momentum", "nesterov", "weight_decay", "learning_rate_drops",
                    "weight_decay_mode")

#: How ``weight_decay`` enters the update (``TrainingConfig.weight_decay_mode``):
#:
#: * ``"decoupled"`` (the default, what this library always did): Keras' optimizer option
#:   ``SGD(weight_decay=wd)`` / ``Adam(weight_decay=wd)``, ``w <- w - lr*wd*w`` applied before
#:   the step and outside the momentum (Loshchilov & Hutter's decoupled decay, "AdamW");
#: * ``"coupled"``: L2 weight decay as Caffe, TF 1 (an L2 term in the loss) and PyTorch's
#:   ``SGD(weight_decay=wd)`` apply it: ``g <- g + wd*w``, so that it passes through the
#:   momentum (and Adam's moments).  Under momentum m the steady-state pull towards zero is
#:   1/(1-m) times the decoupled one: ten times at m = 0.9.  Without momentum (plain SGD)
#:   the two give the same update.
WEIGHT_DECAY_MODES = ("decoupled", "coupled")

#: The learning rate of ``optimizer=None``: DropNet's SGD (Section 3.2).
DEFAULT_LEARNING_RATE = 0.1


@dataclass
class TrainingConfig:
    """How a network is trained, for either engine of :func:`fit`.  Defaults follow DropNet Section 3.2.

    ``restore_best_weights=True`` evaluates the weights at minimum validation loss, as the
    paper's problem statement does (Section 2); the authors' notebooks left it False and
    evaluated the last epoch.  ``shuffle=True`` reshuffles every epoch; the notebooks
    trained with ``shuffle=False``.  Batch size 32 is Keras' default, which the notebooks
    used.  ``steps_per_call`` runs that many training steps per call into TensorFlow
    (engine "graph" only, see :class:`GraphTrainer`), which is most of why a cycle here is
    much faster than the notebooks' loop.

    The optimizer: ``optimizer`` is None (SGD), a Keras name, a Keras Optimizer or a
    zero-argument factory.  With None, "sgd" or "adam", the hyperparameter fields
    (``learning_rate``, ``momentum``, ``nesterov``, ``weight_decay``,
    ``learning_rate_drops``) build it (:func:`make_optimizer`); left at None they take
    the optimizer's own defaults (learning rate 0.1 for ``optimizer=None``).
    ``learning_rate_drops`` lists ``(iteration, factor)``: the rate is multiplied by
    ``factor`` at each iteration (SNIP Section 5: ×0.1 every 25k / 30k iterations).
    ``weight_decay_mode`` says how ``weight_decay`` acts (:data:`WEIGHT_DECAY_MODES`):
    ``"decoupled"`` (default, the behaviour before the option existed: Keras' optimizer
    option, ``w <- w - lr*wd*w`` outside the momentum) or ``"coupled"`` (``g <- g + wd*w``
    through the momentum, as Caffe, TF 1's L2 loss term and PyTorch's SGD do; SNIP's public
    code adds ``wd/2 * sum(w^2)`` to its loss).  Coupled decay acts on every variable the
    optimizer updates, the same set the decoupled option decays (Keras'
    ``exclude_from_weight_decay`` is respected by both); a masked weight that is zero stays
    zero under either.  It is applied inside the optimizer's per-variable step
    (:class:`CoupledSGD`, :class:`CoupledAdam`), after the gradients of a distributed step are
    summed over replicas, so every engine (graph, Keras ``fit``, distributed) gets the same
    update, and the stacked trainer reproduces both modes.

    Length: ``max_epochs`` epochs, or with ``iterations`` that many training steps.
    Early stopping (``early_stopping``) watches ``monitor`` with ``patience`` and
    ``restore_best_weights``, and needs validation data when it monitors a ``val_`` key.

    ``compact_training`` (DropNet's cycles only): "auto" (default) trains the compacted
    network each cycle and writes it back into the masked model where that is exact and saves
    time, else the masked model; True always compacts, refusing settings where that is not
    the same computation; False always trains the masked model
    (:mod:`dropnet_tf.compaction.training`).  Not part of a run's fingerprint: it changes
    results only by floating-point summation order.
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
    learning_rate: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    learning_rate_drops: tuple = ()
    # "decoupled" (Keras' option, outside momentum; the default) or "coupled" (L2 through the gradient)
    weight_decay_mode: str = "decoupled"
    iterations: int | None = None
    early_stopping: bool = True
    monitor: str = "val_loss"
    # DropNet's cycles: train the compacted network and write it back (dropnet_tf.compaction.training)
    compact_training: object = "auto"


#: Fields added when the config became the one training config, with their defaults: a
#: config that keeps them describes the same training as before (see ``run_fingerprint``).
ADDED_FIELDS = {
    "learning_rate": None, "momentum": None, "nesterov": None, "weight_decay": None, "learning_rate_drops": (),
    "iterations": None, "early_stopping": True, "monitor": "val_loss", "weight_decay_mode": "decoupled",
}


def training_config(config=None) -> TrainingConfig:
    """The :class:`TrainingConfig` of ``config``: None (the defaults), a TrainingConfig, or a
    preset with ``to_training_config()`` such as :class:`dropnet_tf.foresight.TrainingProtocol`."""
    if config is None:
        return TrainingConfig()
    if isinstance(config, TrainingConfig):
        return config
    if hasattr(config, "to_training_config"):
        return config.to_training_config()
    raise TypeError(
        "config must be a dropnet_tf.TrainingConfig, an object with to_training_config() "
        f"(e.g. a foresight TrainingProtocol) or None, got {type(config).__name__}."
    )


def is_optimizer(obj) -> bool:
    """Whether ``obj`` is a Keras optimizer instance (either Keras flavour, legacy included)."""
    classes = [keras.optimizers.Optimizer]
    legacy = getattr(getattr(keras.optimizers, "legacy", None), "Optimizer", None)
    if legacy is not None:
        classes.append(legacy)
    return isinstance(obj, tuple(classes))


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _tuned(config) -> list[str]:
    """The optimizer hyperparameter fields that are set."""
    tuned = [name for name in ("learning_rate", "momentum", "nesterov", "weight_decay") if getattr(config, name) is not None]
    if config.learning_rate_drops:
        tuned.append("learning_rate_drops")
    if config.weight_decay_mode != "decoupled":
        tuned.append("weight_decay_mode")
    return tuned


def _check_optimizer_fields(config) -> None:
    mode = config.weight_decay_mode
    if not isinstance(mode, str) or mode not in WEIGHT_DECAY_MODES:
        raise ValueError(f"TrainingConfig.weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {mode!r}.")
    optimizer = config.optimizer
    if not (optimizer is None or isinstance(optimizer, str) or is_optimizer(optimizer) or callable(optimizer)):
        raise TypeError(
            "TrainingConfig.optimizer must be None, a name, a Keras Optimizer or a zero-argument factory, "
            f"got {type(optimizer).__name__}."
        )
    tuned = _tuned(config)
    if tuned and not (optimizer is None or (isinstance(optimizer, str) and optimizer.lower() in OPTIMIZER_NAMES)):
        shown = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
        raise ValueError(
            f"TrainingConfig sets {tuned}, which build the optimizer only for optimizer None or one of "
            f"{OPTIMIZER_NAMES}, got optimizer={shown!r}; set them on the optimizer instead."
        )
    rate = config.learning_rate
    if rate is not None and (_is_bool(rate) or not isinstance(rate, numbers.Real) or not rate > 0):
        raise ValueError(f"TrainingConfig.learning_rate must be a number > 0 or None, got {rate!r}.")
    for name in ("momentum", "weight_decay"):
        value = getattr(config, name)
        if value is not None and (_is_bool(value) or not isinstance(value, numbers.Real) or not value >= 0):
            raise ValueError(f"TrainingConfig.{name} must be a number >= 0 or None, got {value!r}.")
    if config.nesterov is not None and not _is_bool(config.nesterov):
        raise TypeError(f"TrainingConfig.nesterov must be True, False or None, got {config.nesterov!r}.")
    drops = config.learning_rate_drops
    try:
        pairs = [(step, factor) for step, factor in drops]
    except (TypeError, ValueError):
        raise TypeError(
            f"TrainingConfig.learning_rate_drops must be a sequence of (iteration, factor) pairs, got {drops!r}."
        ) from None
    for step, factor in pairs:
        if _is_bool(step) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(
                f"TrainingConfig.learning_rate_drops: iteration must be an integer >= 0, got {step!r} in {drops!r}."
            )
        if _is_bool(factor) or not isinstance(factor, numbers.Real) or not factor > 0:
            raise ValueError(f"TrainingConfig.learning_rate_drops: factor must be a number > 0, got {factor!r} in {drops!r}.")


def check_config(config, *, min_epochs: int = 0) -> TrainingConfig:
    """``config`` (see :func:`training_config`) if every field is allowed; else the error names the
    field, the bad value and what is allowed."""
    config = training_config(config)
    minimums = {"batch_size": 1, "max_epochs": min_epochs, "patience": 0, "steps_per_call": 1, "eval_batch_size": 1,
                "statistics_batch_size": 1}
    for name, minimum in minimums.items():
        check_int(f"TrainingConfig.{name}", getattr(config, name), minimum)
    check_int("TrainingConfig.iterations", config.iterations, 1, allow_none=True)
    for name in ("restore_best_weights", "shuffle", "early_stopping"):
        if not _is_bool(getattr(config, name)):
            raise TypeError(f"TrainingConfig.{name} must be True or False, got {getattr(config, name)!r}.")
    jit = config.jit_compile
    if not (_is_bool(jit) or (isinstance(jit, str) and jit == "auto")):
        raise ValueError(f"TrainingConfig.jit_compile must be True, False or 'auto', got {config.jit_compile!r}.")
    compacted = config.compact_training
    if not (_is_bool(compacted) or (isinstance(compacted, str) and compacted == "auto")):
        raise ValueError(f"TrainingConfig.compact_training must be True, False or 'auto', got {compacted!r}.")
    if config.monitor not in MONITORS:
        raise ValueError(f"TrainingConfig.monitor must be one of {MONITORS}, got {config.monitor!r}.")
    _check_optimizer_fields(config)
    if not (isinstance(config.loss, str) or callable(config.loss)):
        raise TypeError(f"TrainingConfig.loss must be a Keras loss name or callable, got {type(config.loss).__name__}.")
    if isinstance(config.callbacks, (str, bytes)) or not hasattr(config.callbacks, "__iter__"):
        raise TypeError(f"TrainingConfig.callbacks must be a sequence of Keras callbacks, got {config.callbacks!r}.")
    if config.train_transform is not None and not callable(config.train_transform):
        raise TypeError(
            f"TrainingConfig.train_transform must be a callable (x, y) -> (x, y) or None, got {config.train_transform!r}."
        )
    return config


def optimizer_spec_fields(spec: Mapping) -> dict:
    """A copy of an optimizer spec mapping with ``"name"`` renamed ``"optimizer"``; unknown keys
    raise ValueError naming them and :data:`OPTIMIZER_FIELDS`."""
    spec = dict(spec)
    if "name" in spec:
        if "optimizer" in spec:
            raise ValueError("An optimizer spec may give 'name' or 'optimizer', not both.")
        spec["optimizer"] = spec.pop("name")
    unknown = sorted(set(spec) - set(OPTIMIZER_FIELDS))
    if unknown:
        raise ValueError(f"Unknown optimizer spec keys {unknown}; allowed: {list(OPTIMIZER_FIELDS)}.")
    return spec


def optimizer_config(spec) -> TrainingConfig:
    """A TrainingConfig holding an optimizer spec: a mapping with keys of :data:`OPTIMIZER_FIELDS`
    (the TFMOT baseline's JSON spec; ``"name"`` is an alias of ``"optimizer"``)."""
    spec = optimizer_spec_fields(spec)
    spec["learning_rate_drops"] = tuple(tuple(pair) for pair in (spec.get("learning_rate_drops") or ()))
    return TrainingConfig(**spec)


def _coupled(base):
    """``base`` (Keras' SGD or Adam) with coupled weight decay: ``g <- g + wd*w`` before its step.

    The term is added in ``update_step``, the per-variable step both Keras flavours call
    after a distributed step has summed the replicas' gradients, so it enters once per step
    on every engine (``Model.fit``, :class:`GraphTrainer`, the distributed trainer), exactly
    as an L2 term ``wd/2 * sum(w^2)`` in the loss would (Caffe's and PyTorch's weight decay,
    SNIP's public code), without entering the reported loss.
    """

    class Coupled(base):
        def __init__(self, *args, coupled_weight_decay: float = 0.0, **kwargs):
            if kwargs.get("weight_decay"):
                raise ValueError(
                    f"{base.__name__} with coupled weight decay takes it as coupled_weight_decay, not also as "
                    f"weight_decay={kwargs['weight_decay']!r} (Keras' decoupled option)."
                )
            super().__init__(*args, **kwargs)
            self.coupled_weight_decay = float(coupled_weight_decay)

        def update_step(self, gradient, variable, *args, **kwargs):
            if self.coupled_weight_decay and self._use_weight_decay(variable):
                if isinstance(gradient, tf.IndexedSlices):
                    gradient = tf.convert_to_tensor(gradient)
                decay = tf.cast(self.coupled_weight_decay, variable.dtype)
                gradient = gradient + decay * tf.convert_to_tensor(variable)
            return super().update_step(gradient, variable, *args, **kwargs)

        def get_config(self):
            config = super().get_config()
            config["coupled_weight_decay"] = self.coupled_weight_decay
            return config

    Coupled.__name__ = Coupled.__qualname__ = f"Coupled{base.__name__}"
    Coupled.__doc__ = (f"keras.optimizers.{base.__name__} with coupled weight decay (``g <- g + wd*w`` before "
                       "the step, through the momentum); see :func:`make_optimizer`.")
    return register_serializable(package="dropnet_tf")(Coupled)


#: SGD and Adam with coupled weight decay (``TrainingConfig(weight_decay_mode="coupled")``).
CoupledSGD = _coupled(keras.optimizers.SGD)
CoupledAdam = _coupled(keras.optimizers.Adam)


def weight_decay_of(optimizer) -> tuple[float, str]:
    """``(weight decay, mode)`` of a Keras optimizer: (0.0, "decoupled") when it has none."""
    coupled = getattr(optimizer, "coupled_weight_decay", 0.0)
    if coupled:
        return float(coupled), "coupled"
    decay = getattr(optimizer, "weight_decay", None)
    return float(decay or 0.0), "decoupled"


def _build_optimizer(name: str, learning_rate, momentum, nesterov, weight_decay, drops, mode: str = "decoupled"):
    rate = learning_rate
    if drops:
        steps = [int(step) for step, _ in drops]
        values = [learning_rate]
        for _, factor in drops:
            values.append(values[-1] * float(factor))
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)
    decay = weight_decay or None
    if decay and mode == "coupled":
        if name == "adam":
            return CoupledAdam(rate, coupled_weight_decay=decay)
        return CoupledSGD(rate, momentum=momentum, nesterov=nesterov, coupled_weight_decay=decay)
    if name == "adam":
        return keras.optimizers.Adam(rate, weight_decay=decay)
    return keras.optimizers.SGD(rate, momentum=momentum, nesterov=nesterov, weight_decay=decay)


def make_optimizer(config_or_spec=None):
    """The one optimizer factory: a new Keras optimizer from a config or a spec.

    ``config_or_spec``: a :class:`TrainingConfig` (or a preset with ``to_training_config()``),
    a mapping spec (:func:`optimizer_config`), or what ``TrainingConfig.optimizer`` takes:
    None (SGD at learning rate 0.1), a Keras name (``keras.optimizers.get``), an Optimizer
    (returned as it is) or a zero-argument factory (called).

    "sgd" / "adam" / None with hyperparameters set: ``SGD(rate, momentum, nesterov,
    weight_decay)`` or ``Adam(rate, weight_decay)``, where ``rate`` is a
    ``PiecewiseConstantDecay`` when ``learning_rate_drops`` are given and unset fields take
    the optimizer's defaults (momentum 0, no Nesterov, no weight decay; learning rate 0.1
    for None, Keras' default for a name).  With ``weight_decay_mode="coupled"`` and a
    weight decay, :class:`CoupledSGD` / :class:`CoupledAdam` (the same optimizers, the decay
    added to the gradient) instead of Keras' decoupled ``weight_decay`` option.
    """
    if isinstance(config_or_spec, Mapping):
        config = optimizer_config(config_or_spec)
    elif isinstance(config_or_spec, TrainingConfig) or hasattr(config_or_spec, "to_training_config"):
        config = training_config(config_or_spec)
    else:
        config = TrainingConfig(optimizer=config_or_spec)
    _check_optimizer_fields(config)
    optimizer = config.optimizer
    if is_optimizer(optimizer):
        return optimizer
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer()
    tuned = _tuned(config)
    if isinstance(optimizer, str) and not tuned:
        return keras.optimizers.get(optimizer)
    name = "sgd" if optimizer is None else optimizer.lower()
    rate = config.learning_rate
    if rate is None:
        rate = DEFAULT_LEARNING_RATE if optimizer is None else keras.optimizers.get(name).get_config()["learning_rate"]
    momentum = 0.0 if config.momentum is None else config.momentum
    nesterov = False if config.nesterov is None else config.nesterov
    return _build_optimizer(name, rate, momentum, nesterov, config.weight_decay, config.learning_rate_drops,
                            config.weight_decay_mode)


class _StopAfterIterations(keras.callbacks.Callback):
    """Stops ``Model.fit`` after ``iterations`` training steps (engine "keras")."""

    def __init__(self, iterations: int):
        super().__init__()
        self.iterations = int(iterations)
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen >= self.iterations:
            self.model.stop_training = True


class StopOnDivergence(keras.callbacks.Callback):
    """Stops ``Model.fit`` once training has diverged, and says where (``diverged_at``).

    Diverged: the running training loss Keras reports after a batch is NaN or infinite, or
    more than ``factor`` times the loss after the first batch.  Keras' ``TerminateOnNaN``
    catches only the first case, but a blown-up network often keeps a finite loss of 1e27
    and outputs a constant class (the dense LeNet-5-Caffe at SNIP's momentum 0.9 / lr 0.1
    does both, depending on the seed); either way it never comes back, and finishing a
    long protocol would record chance accuracy as if it were a trained result.  A healthy
    run's loss does not rise 100-fold above its first-batch value (about ln(classes)).
    """

    def __init__(self, factor: float = 100.0):
        super().__init__()
        if not factor > 1:
            raise ValueError(f"factor must be > 1, got {factor!r}.")
        self.factor = float(factor)
        self.first_loss = None
        self.epoch = 0
        #: ``(epoch, batch)`` where training stopped, or None.
        self.diverged_at = None

    def on_train_begin(self, logs=None):
        self.first_loss, self.diverged_at = None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if self.first_loss is None and math.isfinite(loss):
            self.first_loss = loss
            return
        if not math.isfinite(loss) or (self.first_loss is not None and loss > self.factor * abs(self.first_loss)):
            self.diverged_at = (self.epoch, int(batch))
            self.model.stop_training = True

    def verdict(self, losses) -> dict:
        """A record's ``diverged`` and ``diverged_at``: stopped by this guard, or any of ``losses``
        (the epochs' training losses, the test loss) not finite."""
        return {"diverged": self.diverged_at is not None or not all(math.isfinite(float(v)) for v in losses),
                "diverged_at": list(self.diverged_at) if self.diverged_at else None}


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
        config: a :class:`TrainingConfig`, a preset with ``to_training_config()``, or None.
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
    the same :class:`TrainingConfig`.  ``validation``: an (x, y) pair, or for engine
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


__all__ = [
    "CoupledAdam", "CoupledSGD", "WEIGHT_DECAY_MODES", "weight_decay_of", "ENGINES", "MONITORS", "OPTIMIZER_FIELDS", "OPTIMIZER_NAMES", "GraphTrainer", "Trainer", "TrainingConfig",
    "check_config", "evaluate", "fit", "is_optimizer", "make_optimizer", "optimizer_config", "optimizer_spec_fields", "optimizer_variables",
    "training_config",
]
