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

Schedule defaults (:func:`pruning_schedule_steps`)
    With ``N = epochs * ceil(n_train / batch_size)`` training steps, pruning starts at
    ``begin_step = floor(begin_fraction * N)`` (default 0: from the first step) and reaches
    the target at ``end_step ≈ end_fraction * N`` (default 2/3 of training); the last third
    fine-tunes the pruned network with a fixed mask.  ``end_step`` is rounded down to
    ``begin_step + k * frequency`` because TFMOT only updates the mask on steps where
    ``(step - begin_step) % frequency == 0``; otherwise the last update would happen
    before ``end_step`` and the target would not be reached.  When the pruning window is
    shorter than ``frequency`` steps (tiny runs), the frequency is lowered to a quarter of
    the window (at least 1), so the sparsity still rises in several steps.

TFMOT only works with tf-keras (Keras 2).  :func:`gradual_magnitude_pruning` must therefore
run in a process started with ``TF_USE_LEGACY_KERAS=1``; a Keras-3 program (the experiment
scripts) calls :func:`run_in_tf_keras`, which runs this module as a child process with that
setting and returns the result dict::

    TF_USE_LEGACY_KERAS=1 python -m dropnet_tf.foresight.tfmot.baseline \\
        --model lenet_300_100 --data mnist.npz --sparsity 0.99 --epochs 20 \\
        --optimizer '{"optimizer": "sgd", "learning_rate": 0.1}' --out gmp.json

Use as a foresight-grid baseline (the record's ``method`` is ``"tfmot_gmp"``, so register
it under that name)::

    external = {"tfmot_gmp": lambda seed, r: run_in_tf_keras(
        "lenet_300_100", {}, "data.npz", 1 - 1 / r, protocol.epochs, out_json=...,
        optimizer=protocol, batch_size=protocol.batch_size, seed=seed)}
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from dropnet_tf.core.backend import USE_LEGACY_KERAS, keras, tf
from dropnet_tf.core.io import atomic_write_text, load_npz, save_npz_atomic, to_jsonable
from dropnet_tf.core.training import OPTIMIZER_FIELDS, Trainer, TrainingConfig, evaluate, is_optimizer, optimizer_spec_fields
from dropnet_tf.core.training import make_optimizer as build_optimizer

#: The ``method`` of every result (and the name to register it under in a foresight grid).
METHOD = "tfmot_gmp"

#: Default fraction of the training steps after which the target sparsity is reached.
DEFAULT_END_FRACTION: float = 2.0 / 3.0

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
}

_STDERR_TAIL = 4000

_LEGACY_ERROR = (
    "gradual_magnitude_pruning needs tf-keras, because tensorflow-model-optimization does not "
    "support Keras 3, but this process imported Keras {version}. Set TF_USE_LEGACY_KERAS=1 in "
    "the environment before Python starts (e.g. `TF_USE_LEGACY_KERAS=1 python -m "
    "dropnet_tf.foresight.tfmot.baseline ...`), or call "
    "dropnet_tf.foresight.tfmot.baseline.run_in_tf_keras(...), which runs it in a tf-keras "
    "child process from a Keras-3 program."
)


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------


def _check_fraction(value, what: str, low_open: bool, high_open: bool) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}.") from None
    too_low = value <= 0.0 if low_open else value < 0.0
    too_high = value >= 1.0 if high_open else value > 1.0
    if not math.isfinite(value) or too_low or too_high:
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{what} must lie in {interval}, got {value!r}.")
    return value


def _check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


def pruning_schedule_steps(
    total_steps: int,
    begin_fraction: float = 0.0,
    end_fraction: float = DEFAULT_END_FRACTION,
    frequency: int = 100,
) -> dict:
    """The ``PolynomialDecay`` steps for a run of ``total_steps`` optimiser steps.

    Returns ``begin_step``, ``end_step``, ``frequency`` (the one used) and
    ``requested_frequency``, ``mask_updates`` (how many times the mask changes) and
    ``fine_tune_steps`` (steps after ``end_step``).  See the module docstring for the rules.

    TFMOT increments its step counter before the mask update of each training batch, so the
    batches see steps ``1 .. total_steps``; ``end_step <= total_steps`` is always reached.
    """
    total_steps = _check_positive_int(total_steps, "total_steps")
    begin_fraction = _check_fraction(begin_fraction, "begin_fraction", low_open=False, high_open=True)
    end_fraction = _check_fraction(end_fraction, "end_fraction", low_open=True, high_open=False)
    frequency = _check_positive_int(frequency, "frequency")
    if end_fraction <= begin_fraction:
        raise ValueError(f"end_fraction ({end_fraction}) must be larger than begin_fraction ({begin_fraction}).")
    begin = int(math.floor(begin_fraction * total_steps))
    end = min(total_steps, int(math.floor(end_fraction * total_steps + 1e-9)))
    span = end - begin
    if span < 1:
        raise ValueError(
            f"The pruning window [{begin_fraction}, {end_fraction}] of {total_steps} training steps holds "
            "no step; train for more steps (epochs, or a smaller batch size) or widen the window."
        )
    used = frequency if span >= frequency else max(1, span // 4)
    end = begin + (span // used) * used
    # Steps seen by the training batches are 1..total_steps, so step 0 never updates the mask.
    first = begin if begin >= 1 else used
    updates = 0 if first > end else (end - first) // used + 1
    return {
        "begin_step": begin,
        "end_step": end,
        "frequency": used,
        "requested_frequency": frequency,
        "mask_updates": updates,
        "fine_tune_steps": total_steps - end,
        "total_steps": total_steps,
    }


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
    out["learning_rate_drops"] = [[int(step), float(factor)] for step, factor in (out["learning_rate_drops"] or ())]
    return out


def _check_optimizer(obj):
    if not is_optimizer(obj):
        module = type(obj).__module__
        hint = (
            " It looks like a Keras 3 optimizer; TFMOT trains with tf-keras, so build it from "
            "`dropnet_tf._keras.keras` inside the tf-keras process (pass a factory or a spec)."
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

    sparsity = _check_fraction(sparsity, "sparsity", low_open=False, high_open=True)
    epochs = _check_positive_int(epochs, "epochs")
    batch_size = _check_positive_int(batch_size, "batch_size")
    power = _check_positive_int(power, "power")
    x_train, y_train = _split(train, "train")
    x_test, y_test = _split(test, "test")

    fit_validation = None
    n_train = len(y_train)
    if validation is not None:
        if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
            split = _check_fraction(validation, "validation", low_open=True, high_open=True)
            fit_validation = split
            n_train = int(math.floor(n_train * (1.0 - split)))  # Keras' own rounding
        else:
            fit_validation = _split(validation, "validation")
    steps_per_epoch = int(math.ceil(n_train / batch_size))
    schedule = pruning_schedule_steps(epochs * steps_per_epoch, begin_fraction, end_fraction, frequency)
    schedule.update(
        type="PolynomialDecay", initial_sparsity=0.0, final_sparsity=sparsity, power=power,
        begin_fraction=float(begin_fraction), end_fraction=float(end_fraction),
    )

    keras.utils.set_random_seed(int(seed))
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
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=pruning_schedule)
    opt, opt_description = make_optimizer(optimizer)
    top5_k = min(5, num_classes)

    def metrics():
        return [
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=top5_k, name="top5"),
        ]

    config = TrainingConfig(batch_size=batch_size, max_epochs=epochs, shuffle=True, early_stopping=False)
    trainer = Trainer(pruned, config, (x_train, y_train), engine="keras", optimizer=opt, metrics=metrics())
    start = time.perf_counter()
    history = trainer.fit(
        fit_validation, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], seed=int(seed), verbose=verbose
    )
    train_seconds = time.perf_counter() - start

    kernels = _pruned_weights(pruned)  # the same variables live on in the stripped model
    final = tfmot.sparsity.keras.strip_pruning(pruned)
    target_ratio = 1.0 / (1.0 - sparsity)
    report = _sparsity_report(kernels, target_ratio)
    all_values = [w for w in final.get_weights()]
    total_params = int(sum(w.size for w in all_values))
    total_nonzero = int(sum(np.count_nonzero(w) for w in all_values))

    final.compile(loss="sparse_categorical_crossentropy", metrics=metrics())
    scores = evaluate(final, (x_test, y_test), engine="keras", batch_size=512)
    loss, top1, top5 = scores["loss"], scores["top1"], scores["top5"]
    result = {
        "method": METHOD,
        "target_sparsity": sparsity,
        "target_ratio": target_ratio,
        **report,
        "total_params": total_params,
        "total_nonzero": total_nonzero,
        "top1": float(top1),
        "top5": float(top5),
        "top5_k": top5_k,
        "test_loss": float(loss),
        "train_loss": [float(v) for v in history.get("loss", [])],
        "train_top1": [float(v) for v in history.get("top1", [])],
        "train_seconds": train_seconds,
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
        result["val_top1"] = [float(v) for v in history["val_top1"]]
        result["val_loss"] = [float(v) for v in history.get("val_loss", [])]
    return to_jsonable(result)


# --------------------------------------------------------------------------------------------
# Running it from a Keras-3 program
# --------------------------------------------------------------------------------------------


def save_data_npz(path, data) -> str:
    """Write a :class:`dropnet_tf.data.Dataset` (or anything with ``x_train`` ... ``y_test``)
    to the NPZ file :func:`run_in_tf_keras` reads; ``x_val`` / ``y_val`` are kept if present."""
    arrays = {name: getattr(data, name) for name in ("x_train", "y_train", "x_test", "y_test")}
    for name in ("x_val", "y_val"):
        value = getattr(data, name, None)
        if value is not None and len(value):
            arrays[name] = value
    return save_npz_atomic(path, **arrays)


def _resolve_data_spec(data_spec) -> tuple[str, bool]:
    if isinstance(data_spec, (str, os.PathLike)):
        return os.fspath(data_spec), True
    if isinstance(data_spec, Mapping):
        unknown = sorted(set(data_spec) - {"path", "npz", "validation"})
        path = data_spec.get("path", data_spec.get("npz"))
        if unknown or path is None:
            raise ValueError(
                "data_spec must be an NPZ path or {'path': ..., 'validation': bool}; "
                f"got keys {sorted(data_spec)}."
            )
        return os.fspath(path), bool(data_spec.get("validation", True))
    raise TypeError(f"data_spec must be an NPZ path or a mapping, got {type(data_spec).__name__}.")


def load_data_npz(path, use_validation: bool = True):
    """``(train, test, validation or None)`` from an NPZ with x_train, y_train, x_test, y_test
    (and optionally x_val, y_val)."""
    arrays = load_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: the NPZ file lacks the arrays {missing} (it has {sorted(arrays)}).")
    validation = None
    if use_validation and "x_val" in arrays and "y_val" in arrays and len(arrays["y_val"]):
        validation = (arrays["x_val"], arrays["y_val"])
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]), validation


def resolve_builder(model_name: str, model_kwargs: Mapping | None = None) -> Callable[[], Any]:
    """A zero-argument builder: ``build_foresight_model(model_name, masked=False, **kwargs)``,
    or, for ``"package.module:function"``, that function called with ``**kwargs``."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(model_kwargs or {}).items()}
    if ":" in model_name:
        module_name, _, attr = model_name.partition(":")
        function = getattr(importlib.import_module(module_name), attr)
        return lambda: function(**kwargs)
    from dropnet_tf.models.foresight import build_foresight_model

    return lambda: build_foresight_model(model_name, masked=False, **kwargs)


def _child_environment() -> dict:
    env = dict(os.environ)
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = str(pathlib.Path(__file__).resolve().parents[2])  # so the child imports this checkout
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_in_tf_keras(
    model_name: str,
    model_kwargs: Mapping | None,
    data_spec,
    sparsity: float,
    epochs: int,
    out_json=None,
    *,
    batch_size: int = 128,
    optimizer=None,
    begin_fraction: float = 0.0,
    end_fraction: float = DEFAULT_END_FRACTION,
    frequency: int = 100,
    seed: int = 0,
    power: int = 3,
    timeout: float | None = None,
    python: str | None = None,
) -> dict:
    """Run :func:`gradual_magnitude_pruning` in a tf-keras child process; return its result.

    The child is ``python -m dropnet_tf.foresight.tfmot.baseline`` with
    ``TF_USE_LEGACY_KERAS=1``; it builds ``build_foresight_model(model_name, masked=False,
    **model_kwargs)`` (or ``"module:function"``), reads the arrays x_train, y_train, x_test,
    y_test (and x_val, y_val if present) from the NPZ ``data_spec`` (a path, or
    ``{"path": ..., "validation": False}`` to ignore x_val), and writes the result JSON
    atomically to ``out_json`` (a temporary file, removed afterwards, when None).

    ``model_kwargs`` and ``optimizer`` must be JSON-able: the optimizer is a spec (None, a
    name, a mapping or a TrainingProtocol), not a factory or an instance.  Any failure of
    the child raises :class:`RuntimeError` with the tail of its stderr.
    """
    path, use_validation = _resolve_data_spec(data_spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data_spec: no NPZ file at {path!r}.")
    if callable(optimizer) and not isinstance(optimizer, (str, Mapping)) and not hasattr(optimizer, "as_dict"):
        raise TypeError(
            "run_in_tf_keras needs an optimizer spec (None, a name, a mapping or a TrainingProtocol): "
            "factories and optimizer instances cannot be sent to the tf-keras process."
        )
    spec = normalise_optimizer_spec(optimizer)
    model_kwargs = to_jsonable(dict(model_kwargs or {}))
    cleanup = None
    if out_json is None:
        cleanup = tempfile.mkdtemp(prefix="tfmot_gmp_")
        out_json = os.path.join(cleanup, "result.json")
    out_json = os.fspath(out_json)
    command = [
        python or sys.executable, "-m", "dropnet_tf.foresight.tfmot.baseline",
        "--model", model_name,
        "--model-kwargs", json.dumps(model_kwargs),
        "--data", path,
        "--sparsity", repr(float(sparsity)),
        "--epochs", str(int(epochs)),
        "--out", out_json,
        "--batch-size", str(int(batch_size)),
        "--optimizer", json.dumps(spec),
        "--begin-fraction", repr(float(begin_fraction)),
        "--end-fraction", repr(float(end_fraction)),
        "--frequency", str(int(frequency)),
        "--power", str(int(power)),
        "--seed", str(int(seed)),
    ]
    if not use_validation:
        command.append("--no-validation")
    try:
        try:
            completed = subprocess.run(
                command, env=_child_environment(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as error:
            tail = (error.stderr or b"")[-_STDERR_TAIL:]
            tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
            raise RuntimeError(f"The tf-keras TFMOT run timed out after {timeout} s. stderr tail:\n{tail}") from None
        if completed.returncode != 0:
            raise RuntimeError(
                f"The tf-keras TFMOT run failed (exit status {completed.returncode}): "
                f"{' '.join(command[:4])} ...\nstderr tail:\n{completed.stderr[-_STDERR_TAIL:]}"
            )
        try:
            with open(out_json, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"The tf-keras TFMOT run exited normally but {out_json!r} could not be read ({error}).\n"
                f"stderr tail:\n{completed.stderr[-_STDERR_TAIL:]}"
            ) from None
    finally:
        if cleanup is not None:
            for name in os.listdir(cleanup):
                os.remove(os.path.join(cleanup, name))
            os.rmdir(cleanup)


# --------------------------------------------------------------------------------------------
# CLI (the child process of run_in_tf_keras)
# --------------------------------------------------------------------------------------------


def _optimizer_argument(text: str):
    text = text.strip()
    return json.loads(text) if text.startswith("{") else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dropnet_tf.foresight.tfmot.baseline",
        description="TFMOT gradual magnitude pruning (PolynomialDecay) of a foresight model; "
        "needs TF_USE_LEGACY_KERAS=1.",
    )
    parser.add_argument("--model", required=True, help="build_foresight_model name, or package.module:function")
    parser.add_argument("--model-kwargs", default="{}", type=json.loads, help="JSON object of builder kwargs")
    parser.add_argument("--data", required=True, help="NPZ with x_train, y_train, x_test, y_test [, x_val, y_val]")
    parser.add_argument("--no-validation", action="store_true", help="ignore x_val / y_val in the NPZ")
    parser.add_argument("--sparsity", required=True, type=float, help="target sparsity in [0, 1)")
    parser.add_argument("--epochs", required=True, type=int)
    parser.add_argument("--out", required=True, help="result JSON (written atomically)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--optimizer", type=_optimizer_argument, default=None,
        help='"sgd", "adam" or a JSON spec such as \'{"optimizer": "sgd", "learning_rate": 0.1}\'',
    )
    parser.add_argument("--begin-fraction", type=float, default=0.0)
    parser.add_argument("--end-fraction", type=float, default=DEFAULT_END_FRACTION)
    parser.add_argument("--frequency", type=int, default=100)
    parser.add_argument("--power", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if not isinstance(args.model_kwargs, dict):
        raise SystemExit("--model-kwargs must be a JSON object.")
    train, test, validation = load_data_npz(args.data, use_validation=not args.no_validation)
    result = gradual_magnitude_pruning(
        resolve_builder(args.model, args.model_kwargs), train, test, args.sparsity, args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, begin_fraction=args.begin_fraction,
        end_fraction=args.end_fraction, frequency=args.frequency, seed=args.seed,
        validation=validation, power=args.power, verbose=args.verbose,
    )
    result.update(model=args.model, model_kwargs=args.model_kwargs, data=os.path.abspath(args.data))
    atomic_write_text(args.out, json.dumps(to_jsonable(result), indent=1, sort_keys=True) + "\n")
    return result


__all__ = [
    "DEFAULT_END_FRACTION",
    "DEFAULT_OPTIMIZER_SPEC",
    "METHOD",
    "gradual_magnitude_pruning",
    "load_data_npz",
    "make_optimizer",
    "normalise_optimizer_spec",
    "pruning_schedule_steps",
    "resolve_builder",
    "run_in_tf_keras",
    "save_data_npz",
]


if __name__ == "__main__":
    main()
