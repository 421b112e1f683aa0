"""Gradual magnitude pruning with TensorFlow Model Optimization: the baseline for SNIP & co.

A TensorFlow user who wants a sparse network would normally not prune at initialisation:
they would reach for ``tfmot.sparsity.keras.prune_low_magnitude`` (tensorflow-model-
optimization, "TFMOT").  This module trains that baseline on the same architecture, to the
same sparsity, with the same optimiser and number of epochs as the foresight runs, and
reports top-1 / top-5 in the same form, so that it can sit in the same tables.

What TFMOT does
    :func:`prune_low_magnitude` wraps every prunable layer (Dense and Conv kernels, the
    recurrent kernels of LSTM/GRU; not biases, not BatchNorm) in a ``PruneLowMagnitude``
    wrapper that holds a binary mask per kernel.  While the network trains, every
    ``frequency`` steps inside ``[begin_step, end_step]`` the mask of each kernel is
    recomputed so that the ``s(t)`` smallest-magnitude weights *of that kernel* are zero,
    where the target sparsity ``s(t)`` follows :class:`PolynomialDecay` (Zhu & Gupta, 2017,
    "To prune, or not to prune")::

        s(t) = s_f + (s_0 - s_f) * (1 - (t - begin_step) / (end_step - begin_step)) ** power

    with ``s_0 = 0`` and ``s_f = sparsity`` here.  Pruned weights are zeroed in every
    forward pass, so they stop contributing; after ``end_step`` the mask is frozen and the
    remaining weights are fine-tuned.  :func:`strip_pruning` finally removes the wrappers
    and leaves plain layers whose kernels contain exact zeros.

How it differs from pruning at initialisation
    SNIP, GraSP, SynFlow, ... (:func:`dropnet_tf.foresight.prune_at_init`) choose the mask
    *once, before training*, from a saliency computed at the random initialisation, and
    then train the sparse network.  Gradual magnitude pruning chooses the mask *during
    training* from the magnitude of the *trained* weights: it trains the dense network at
    first and removes weights progressively, so it pays for (part of) dense training and
    uses information the foresight methods do not have.  It is therefore the stronger,
    "train-then-prune" reference: a foresight method that matches it saves the dense
    training at no cost in accuracy.  Note also that TFMOT prunes every kernel to the same
    sparsity (layer-wise, uniform), whereas SNIP ranks all weights globally.

The schedule is :mod:`dropnet_tf.foresight.tfmot.schedule`; the tf-keras child process that
runs this from a Keras-3 program is :mod:`dropnet_tf.foresight.tfmot.child`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from dropnet_tf.core.backend import USE_LEGACY_KERAS, keras
from dropnet_tf.core.io import to_jsonable
from dropnet_tf.engines.callbacks import StopOnDivergence
from dropnet_tf.engines.config import OPTIMIZER_FIELDS, WEIGHT_DECAY_MODES, TrainingConfig, is_optimizer, optimizer_spec_fields
from dropnet_tf.engines.optimizers import make_optimizer as build_optimizer
from dropnet_tf.engines.training import Trainer, evaluate
from dropnet_tf.foresight.tfmot.schedule import (
    DEFAULT_END_FRACTION,
    _check_fraction,
    _check_positive_int,
    pruning_schedule_steps,
)

#: The ``method`` of every result (and the name to register it under in a foresight grid).
METHOD = "tfmot_gmp"

#: Keys of an optimiser spec (the fields of :class:`~dropnet_tf.foresight.experiment.TrainingProtocol`).
OPTIMIZER_SPEC_KEYS = OPTIMIZER_FIELDS

#: Optimiser used when none is given: SGD with Nesterov momentum 0.9 at learning rate 0.1.
DEFAULT_OPTIMIZER_SPEC = {
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 0.0,
    "learning_rate_drops": [],
    # How weight_decay acts: "decoupled" (Keras' option, the default) or "coupled" (through the
    # gradient); a foresight grid passes its protocol's, so the baseline trains as the grid does.
    "weight_decay_mode": "decoupled",
}

_LEGACY_ERROR = (
    "gradual_magnitude_pruning needs tf-keras, because tensorflow-model-optimization does not "
    "support Keras 3, but this process imported Keras {version}. Set TF_USE_LEGACY_KERAS=1 in "
    "the environment before Python starts (e.g. `TF_USE_LEGACY_KERAS=1 python -m "
    "dropnet_tf.foresight.tfmot.baseline ...`), or call "
    "dropnet_tf.foresight.tfmot.run_in_tf_keras(...), which runs it in a tf-keras "
    "child process from a Keras-3 program."
)


# --------------------------------------------------------------------------------------------
# Optimiser
# --------------------------------------------------------------------------------------------


def normalise_optimizer_spec(spec) -> dict:
    """An optimiser spec as a complete, JSON-able dict (see :data:`OPTIMIZER_SPEC_KEYS`).

    Accepts None (:data:`DEFAULT_OPTIMIZER_SPEC`), a name (``"sgd"``/``"adam"``: the
    defaults with that optimiser), a mapping with keys from :data:`OPTIMIZER_SPEC_KEYS`
    (``"name"`` is an alias of ``"optimizer"``; missing keys take the defaults: momentum
    0.9, Nesterov, no weight decay), or an object with ``as_dict()`` such as a
    :class:`~dropnet_tf.foresight.experiment.TrainingProtocol` (its ``epochs`` and
    ``batch_size`` are ignored here: pass them as arguments).
    """
    if spec is None:
        return dict(DEFAULT_OPTIMIZER_SPEC)
    if isinstance(spec, str):
        spec = {"optimizer": spec}
    elif hasattr(spec, "as_dict") and not isinstance(spec, Mapping):
        spec = {k: v for k, v in spec.as_dict().items() if k in OPTIMIZER_SPEC_KEYS}
    if not isinstance(spec, Mapping):
        raise TypeError(f"An optimizer spec must be None, a name or a mapping, got {type(spec).__name__}.")
    spec = optimizer_spec_fields(spec)
    out = {**DEFAULT_OPTIMIZER_SPEC, **spec}
    out["optimizer"] = str(out["optimizer"]).lower()
    if out["optimizer"] not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {out['optimizer']!r}.")
    out["learning_rate"] = float(out["learning_rate"])
    if not out["learning_rate"] > 0:
        raise ValueError(f"learning_rate must be > 0, got {out['learning_rate']!r}.")
    out["momentum"] = float(out["momentum"])
    out["nesterov"] = bool(out["nesterov"])
    out["weight_decay"] = float(out["weight_decay"] or 0.0)
    if out["weight_decay_mode"] not in WEIGHT_DECAY_MODES:
        raise ValueError(f"weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {out['weight_decay_mode']!r}.")
    out["learning_rate_drops"] = [[int(step), float(factor)] for step, factor in (out["learning_rate_drops"] or ())]
    return out


def _check_optimizer(obj):
    if not is_optimizer(obj):
        module = type(obj).__module__
        hint = (
            " It looks like a Keras 3 optimizer; TFMOT trains with tf-keras, so build it from "
            "`dropnet_tf.core.backend.keras` inside the tf-keras process (pass a factory or a spec)."
            if module.startswith("keras") else ""
        )
        raise TypeError(f"Expected a tf-keras optimizer, got {module}.{type(obj).__name__}.{hint}")
    return obj


def make_optimizer(optimizer) -> tuple[Any, dict]:
    """``(tf-keras optimizer, JSON-able description)`` from a spec, a factory or an instance.

    Specs are those of :func:`normalise_optimizer_spec`.  A factory is a zero-argument
    callable returning a tf-keras optimizer (e.g. ``lambda: keras.optimizers.SGD(0.1,
    momentum=0.9, nesterov=True)``); an optimizer instance is used as it is (it must not
    have been used on another model).
    """
    if is_optimizer(optimizer):
        return optimizer, _describe_optimizer(optimizer)
    if callable(optimizer) and not isinstance(optimizer, (str, Mapping)) and not hasattr(optimizer, "as_dict"):
        built = _check_optimizer(optimizer())
        return built, _describe_optimizer(built)
    spec = normalise_optimizer_spec(optimizer)
    return build_optimizer(spec), spec  # the library's one optimizer factory


def _describe_optimizer(optimizer) -> dict:
    description = {"class": type(optimizer).__name__}
    try:
        config = optimizer.get_config()
        description["config"] = to_jsonable({k: v for k, v in config.items() if not callable(v)})
    except Exception:  # a description only: never fail a finished run over it
        pass
    return description


# --------------------------------------------------------------------------------------------
# The tf-keras training run
# --------------------------------------------------------------------------------------------


def _split(data, what: str):
    if isinstance(data, Mapping):
        data = (data["x"], data["y"])
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be an (x, y) pair of arrays.") from None
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"{what}: x and y must be non-empty and of the same length, got {len(x)} and {len(y)}.")
    return x, y


def _pruned_weights(model) -> list:
    """The kernels TFMOT prunes: ``(layer name, variable)`` of every PruneLowMagnitude wrapper."""
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    found, seen = [], set()
    for module in [model, *model.submodules]:
        if isinstance(module, pruning_wrapper.PruneLowMagnitude) and id(module) not in seen:
            seen.add(id(module))
            for weight, _mask, _threshold in module.pruning_vars:
                found.append((module.layer.name, weight))
    return found


def _sparsity_report(weights, target_ratio: float) -> dict:
    total = nonzero = 0
    per_weight, collapsed = {}, []
    for layer_name, variable in weights:
        value = variable.numpy()
        kept = int(np.count_nonzero(value))
        name = f"{layer_name}/{variable.name.split('/')[-1].split(':')[0]}"
        total += value.size
        nonzero += kept
        per_weight[name] = kept / value.size
        if kept == 0:
            collapsed.append(name)
    if total == 0:
        raise ValueError("The model has no weight TFMOT can prune (no Dense/Conv/RNN kernel).")
    ratio = float("inf") if nonzero == 0 else total / nonzero
    return {
        "prunable": total,
        "nonzero": nonzero,
        "empirical_sparsity": 1.0 - nonzero / total,
        "empirical_ratio": ratio,
        "compression_error": (target_ratio - ratio) / target_ratio,
        "collapsed_layers": collapsed,
        "per_weight_density": per_weight,
    }


def gradual_magnitude_pruning(
    build_model: Callable[[], Any],
    train,
    test,
    sparsity: float,
    epochs: int,
    batch_size: int = 128,
    optimizer=None,
    begin_fraction: float = 0.0,
    end_fraction: float = DEFAULT_END_FRACTION,
    frequency: int = 100,
    seed: int = 0,
    validation=None,
    power: int = 3,
    verbose: int = 0,
) -> dict:
    """Train ``build_model()`` with TFMOT gradual magnitude pruning to ``sparsity``; evaluate.

    Must run under tf-keras (``TF_USE_LEGACY_KERAS=1`` set before Python imports
    TensorFlow); under Keras 3 it raises :class:`RuntimeError` — use :func:`run_in_tf_keras`.

    Args:
        build_model: zero-argument callable returning an unpruned tf-keras model (plain
            Dense/Conv2D/... layers, softmax output), e.g.
            ``lambda: build_foresight_model("lenet_300_100", masked=False)``.  It is called
            after ``keras.utils.set_random_seed(seed)``.
        train, test: ``(x, y)`` pairs, integer labels.
        sparsity: target fraction of zero weights in every prunable kernel, in [0, 1);
            the compression ratio is r = 1 / (1 - sparsity).
        epochs, batch_size: training length; steps = epochs * ceil(n_train / batch_size).
        optimizer: None (SGD, Nesterov momentum 0.9, learning rate 0.1), a spec (name,
            mapping or TrainingProtocol, see :func:`normalise_optimizer_spec`), a factory
            or a tf-keras optimizer instance (see :func:`make_optimizer`).
        begin_fraction, end_fraction, frequency: the ``PolynomialDecay`` window and mask
            update interval, see :func:`pruning_schedule_steps`.
        seed: global seed for initialisation and shuffling.
        validation: None, an ``(x, y)`` pair, or a float fraction of ``train`` held out
            (Keras' ``validation_split``); only reported per epoch, never used to select.
        power: exponent of the polynomial (TFMOT's default 3: prunes fast, then slowly).

    Returns:
        A JSON-able dict: ``method`` ("tfmot_gmp"), ``target_sparsity``, ``target_ratio``
        (r), ``empirical_sparsity`` / ``empirical_ratio`` / ``prunable`` / ``nonzero`` /
        ``compression_error`` / ``per_weight_density`` / ``collapsed_layers`` over the
        pruned kernels (counted as exact zeros after :func:`strip_pruning`), ``top1``,
        ``top5``, ``test_loss``, ``train_loss`` / ``train_top1`` (per epoch),
        ``train_seconds``, ``epochs``, ``batch_size``, ``steps_per_epoch``, ``schedule``,
        ``optimizer``, ``seed`` and the library versions.
    """
    if not USE_LEGACY_KERAS:
        raise RuntimeError(_LEGACY_ERROR.format(version=keras.__version__))
    import tensorflow_model_optimization as tfmot

    sparsity, epochs, batch_size, power = _check_settings(sparsity, epochs, batch_size, power)
    x_train, y_train = _split(train, "train")
    x_test, y_test = _split(test, "test")

    fit_validation, n_train = _fit_validation(validation, len(y_train))
    steps_per_epoch = int(math.ceil(n_train / batch_size))
    schedule = _polynomial_schedule(epochs * steps_per_epoch, begin_fraction, end_fraction, frequency, sparsity, power)

    keras.utils.set_random_seed(int(seed))
    pruned, num_classes = _build_pruned(tfmot, build_model, sparsity, power, schedule)
    opt, opt_description = make_optimizer(optimizer)
    top5_k = min(5, num_classes)
    metrics = _top_metrics(top5_k)
    history, guard, train_seconds = _train_pruned(
        tfmot, pruned, opt, metrics, (x_train, y_train), fit_validation, batch_size, epochs, seed, verbose
    )
    target_ratio = 1.0 / (1.0 - sparsity)
    counts, scores = _strip_and_evaluate(tfmot, pruned, target_ratio, (x_test, y_test), metrics)
    result = {
        "method": METHOD,
        "target_sparsity": sparsity,
        "target_ratio": target_ratio,
        **counts,
        "top1": float(scores["top1"]),
        "top5": float(scores["top5"]),
        "top5_k": top5_k,
        "test_loss": float(scores["loss"]),
        **_training_fields(history, guard, scores["loss"], train_seconds),
        "epochs": epochs,
        "batch_size": batch_size,
        "train_examples": n_train,
        "steps_per_epoch": steps_per_epoch,
        "schedule": schedule,
        "optimizer": opt_description,
        "seed": int(seed),
        "keras": f"tf_keras {keras.__version__}",
        "tfmot": tfmot.__version__,
    }
    if "val_top1" in history:
        result.update(_validation_fields(history))
    return to_jsonable(result)


def _training_fields(history, guard, test_loss, train_seconds) -> dict:
    """The result's per-epoch training loss and top-1, seconds, and the divergence verdict."""
    return {
        "train_loss": [float(v) for v in history.get("loss", [])],
        "train_top1": [float(v) for v in history.get("top1", [])],
        "train_seconds": train_seconds,
        **guard.verdict(list(history.get("loss", [])) + [test_loss]),
    }


def _validation_fields(history) -> dict:
    return {
        "val_top1": [float(v) for v in history["val_top1"]],
        "val_loss": [float(v) for v in history.get("val_loss", [])],
    }


def _check_settings(sparsity, epochs, batch_size, power):
    sparsity = _check_fraction(sparsity, "sparsity", low_open=False, high_open=True)
    epochs = _check_positive_int(epochs, "epochs")
    batch_size = _check_positive_int(batch_size, "batch_size")
    power = _check_positive_int(power, "power")
    return sparsity, epochs, batch_size, power


def _top_metrics(top5_k: int):
    """A factory of fresh top-1 and top-k metrics (k = 5, or fewer classes), for training and for the test."""

    def metrics() -> list:
        return [
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=top5_k, name="top5"),
        ]

    return metrics


def _train_pruned(tfmot, pruned, opt, metrics, train, fit_validation, batch_size, epochs, seed, verbose):
    """Trains the wrapped model with TFMOT's pruning step; its history, divergence guard and seconds."""
    config = TrainingConfig(batch_size=batch_size, max_epochs=epochs, shuffle=True, early_stopping=False)
    trainer = Trainer(pruned, config, train, engine="keras", optimizer=opt, metrics=metrics())
    start = time.perf_counter()
    # As in the foresight grid's own training, a run that blows up stops at once.
    guard = StopOnDivergence()
    history = trainer.fit(
        fit_validation, callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), guard], seed=int(seed), verbose=verbose,
    )
    return history, guard, time.perf_counter() - start


def _fit_validation(validation, n_train: int):
    """What ``fit`` validates on (None, a held-out fraction or an ``(x, y)`` pair) and the
    number of examples it then trains on."""
    fit_validation = None
    if validation is not None:
        if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
            split = _check_fraction(validation, "validation", low_open=True, high_open=True)
            fit_validation = split
            n_train = int(math.floor(n_train * (1.0 - split)))  # Keras' own rounding
        else:
            fit_validation = _split(validation, "validation")
    return fit_validation, n_train


def _polynomial_schedule(total_steps, begin_fraction, end_fraction, frequency, sparsity, power) -> dict:
    """The PolynomialDecay window in steps, with its settings, as recorded in every result."""
    schedule = pruning_schedule_steps(total_steps, begin_fraction, end_fraction, frequency)
    schedule.update(
        type="PolynomialDecay", initial_sparsity=0.0, final_sparsity=sparsity, power=power,
        begin_fraction=float(begin_fraction), end_fraction=float(end_fraction),
    )
    return schedule


def _build_pruned(tfmot, build_model, sparsity, power, schedule):
    """``build_model()`` wrapped by ``prune_low_magnitude`` on the schedule; and its number of classes."""
    model = build_model()
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"build_model() must return a tf-keras Model, got {type(model).__module__}.{type(model).__name__}."
        )
    num_classes = int(model.output_shape[-1])
    pruning_schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=schedule["begin_step"],
        end_step=schedule["end_step"], power=power, frequency=schedule["frequency"],
    )
    return tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=pruning_schedule), num_classes


def _strip_and_evaluate(tfmot, pruned, target_ratio, test, metrics):
    """Strips the wrappers; the pruned kernels' sparsity report with the parameters (all,
    nonzero), and the test scores of the stripped model."""
    kernels = _pruned_weights(pruned)  # the same variables live on in the stripped model
    final = tfmot.sparsity.keras.strip_pruning(pruned)
    report = _sparsity_report(kernels, target_ratio)
    all_values = [w for w in final.get_weights()]
    total_params = int(sum(w.size for w in all_values))
    total_nonzero = int(sum(np.count_nonzero(w) for w in all_values))

    final.compile(loss="sparse_categorical_crossentropy", metrics=metrics())
    scores = evaluate(final, test, engine="keras", batch_size=512)
    return {**report, "total_params": total_params, "total_nonzero": total_nonzero}, scores


__all__ = [
    "DEFAULT_OPTIMIZER_SPEC",
    "METHOD",
    "OPTIMIZER_SPEC_KEYS",
    "gradual_magnitude_pruning",
    "make_optimizer",
    "normalise_optimizer_spec",
]
