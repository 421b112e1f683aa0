"""Running TFMOT's gradual magnitude pruning from a Keras-3 program: the tf-keras child process.

TFMOT only works with tf-keras (Keras 2).  :func:`gradual_magnitude_pruning` must therefore
run in a process started with ``TF_USE_LEGACY_KERAS=1``; a Keras-3 program (the experiment
scripts) calls :func:`run_in_tf_keras`, which runs it in a child process with that setting
and returns the result dict::

    TF_USE_LEGACY_KERAS=1 python -m dropnet_tf.foresight.tfmot.baseline \\
        --model lenet_300_100 --data mnist.npz --sparsity 0.99 --epochs 20 \\
        --optimizer '{"optimizer": "sgd", "learning_rate": 0.1}' --out gmp.json

Use as a foresight-grid baseline (the record's ``method`` is ``"tfmot_gmp"``, so register
it under that name)::

    external = {"tfmot_gmp": lambda seed, r: run_in_tf_keras(
        "lenet_300_100", {}, "data.npz", 1 - 1 / r, protocol.epochs, out_json=...,
        optimizer=protocol, batch_size=protocol.batch_size, seed=seed)}

The data travel as an NPZ file (:func:`save_data_npz`, :func:`load_data_npz`), the result as
a JSON file.  The child's entry point is :mod:`dropnet_tf.foresight.tfmot.baseline` (the
``python -m`` target above, which calls :func:`main` of this module).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any, Callable

from dropnet_tf.core.io import atomic_write_text, load_npz, save_npz_atomic, to_jsonable
from dropnet_tf.foresight.tfmot.pruning import gradual_magnitude_pruning, normalise_optimizer_spec
from dropnet_tf.foresight.tfmot.schedule import DEFAULT_END_FRACTION

_STDERR_TAIL = 4000


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
    # The directory holding the dropnet_tf package, so that the child imports this checkout.
    root = str(pathlib.Path(sys.modules["dropnet_tf"].__file__).resolve().parents[1])
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
        return _run_child(command, out_json, timeout)
    finally:
        if cleanup is not None:
            for name in os.listdir(cleanup):
                os.remove(os.path.join(cleanup, name))
            os.rmdir(cleanup)


def _run_child(command: list, out_json: str, timeout) -> dict:
    """Runs the child process; its result JSON, or RuntimeError with the tail of its stderr."""
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
    "build_parser",
    "load_data_npz",
    "main",
    "resolve_builder",
    "run_in_tf_keras",
    "save_data_npz",
]
