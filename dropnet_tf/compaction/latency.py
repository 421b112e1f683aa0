"""Inference latency of Keras models, and TFLite export for deployment-size comparisons.

:func:`measure_latency` times one model; :func:`compare_latency` times several on the same
input with their calls interleaved, so that a change of machine load during the measurement
(other processes, CPU frequency) affects every model alike and ratios of latencies stay fair.
Both run the model as ``tf.function(lambda x: model(x, training=False))``: traced once on a
fixed random input, warmed up, then every timed call ends by pulling the result to numpy, so
the time covers finished work, not a dispatched one.

:func:`export_tflite` converts a model with ``tf.lite.TFLiteConverter.from_keras_model``
(float32, no quantisation) and writes the flatbuffer atomically; :func:`tflite_predict` runs
a TFLite model with the TFLite interpreter, for checking a conversion.  With TensorFlow 2.21
and Keras 3, ``from_keras_model`` goes through ``model.export`` (a SavedModel) and is exact;
``from_concrete_functions`` on a Keras 3 model is *not* used because it does not capture
Keras 3 variables correctly (the converted model computes garbage).
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from dropnet_tf.core.backend import tf
from dropnet_tf.core.io import atomic_write_bytes


@dataclass(frozen=True)
class LatencyResult:
    """Wall time of one forward pass of ``batch_size`` examples, over ``repeats`` timed calls.

    ``median_s`` is the figure to report; ``p10_s`` and ``p90_s`` (10th and 90th
    percentiles) show the spread.  ``first_call_s`` is the untimed first call, which includes
    tracing the ``tf.function``.
    """

    median_s: float
    p10_s: float
    p90_s: float
    batch_size: int
    repeats: int
    first_call_s: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def _check_count(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}.")
    return value


def _random_inputs(model, batch_size: int, seed: int):
    """A fixed standard-normal batch for every model input, as tf constants."""
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Model '{model.name}' has no known inputs; build it on a keras.Input (or call "
            "model.build(input_shape)) before measuring its latency."
        )
    rng = np.random.default_rng(seed)
    tensors = []
    for tensor in model.inputs:
        shape = tuple(tensor.shape)[1:]
        shape = tuple(None if d is None else int(d) for d in shape)
        if any(d is None for d in shape):
            raise ValueError(f"Model '{model.name}' has input shape {tuple(tensor.shape)} with an unknown size.")
        dtype = getattr(tensor.dtype, "name", tensor.dtype)
        tensors.append(tf.constant(rng.standard_normal((batch_size, *shape)).astype(dtype)))
    return tensors[0] if len(tensors) == 1 else tensors


def _timed_callable(model, batch_size: int, seed: int):
    """A no-argument function running one forward pass to completion; the first call traces."""
    x = _random_inputs(model, batch_size, seed)
    forward = tf.function(lambda inputs: model(inputs, training=False))

    def run():
        outputs = forward(x)
        # Pulling every output to host memory waits for the computation to finish.
        return [np.asarray(t) for t in tf.nest.flatten(outputs)]

    return run


def _summary(times: list[float], batch_size: int, first: float) -> LatencyResult:
    p10, p90 = np.percentile(np.asarray(times), [10, 90])
    return LatencyResult(
        median_s=float(statistics.median(times)),
        p10_s=float(p10),
        p90_s=float(p90),
        batch_size=batch_size,
        repeats=len(times),
        first_call_s=float(first),
    )


def compare_latency(
    models: Mapping[str, object], batch_size: int, *, warmup: int = 5, repeats: int = 30, seed: int = 0
) -> dict[str, LatencyResult]:
    """Latency of several models on the same input, their timed calls interleaved.

    Every model is traced and warmed up first; then, ``repeats`` times, each model runs once
    (in a fixed order).  Models with the same input shape see the same random batch.

    Returns ``{name: LatencyResult}`` in the order of ``models``.
    """
    batch_size = _check_count(batch_size, "batch_size", 1)
    warmup = _check_count(warmup, "warmup", 0)
    repeats = _check_count(repeats, "repeats", 1)
    if not models:
        raise ValueError("compare_latency needs at least one model.")
    runs, first = {}, {}
    for name, model in models.items():
        runs[name] = _timed_callable(model, batch_size, seed)
        start = time.perf_counter()
        runs[name]()  # trace
        first[name] = time.perf_counter() - start
        for _ in range(warmup):
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: _summary(times[name], batch_size, first[name]) for name in models}


def measure_latency(model, batch_size: int, *, warmup: int = 5, repeats: int = 30, seed: int = 0) -> LatencyResult:
    """Median wall time of ``model(x, training=False)`` on a batch of ``batch_size``.

    The call is wrapped in a ``tf.function``, traced once (not timed), run ``warmup`` more
    times (not timed), then timed ``repeats`` times with ``time.perf_counter``; each timed
    call includes copying the outputs to numpy, so the work is finished.  ``x`` is a fixed
    standard-normal batch drawn with ``seed``.
    """
    return compare_latency({"model": model}, batch_size, warmup=warmup, repeats=repeats, seed=seed)["model"]


# ------------------------------------------------------------------------------ TFLite


def _tflite_module():
    lite = getattr(tf, "lite", None)
    if lite is None or not hasattr(lite, "TFLiteConverter"):
        raise RuntimeError(
            f"This TensorFlow ({tf.__version__}) has no tf.lite.TFLiteConverter, so TFLite export "
            "is unavailable."
        )
    return lite


def tflite_bytes(model) -> bytes:
    """The float32 TFLite flatbuffer of ``model`` (converted with ``from_keras_model``)."""
    lite = _tflite_module()
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built; build it on a keras.Input before exporting.")
    converter = lite.TFLiteConverter.from_keras_model(model)
    # Keras 3's model.export (used by the converter) prints a summary of the SavedModel it
    # writes to a temporary directory; keep that out of the caller's output.
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


def export_tflite(model, path) -> int:
    """Convert ``model`` to a float32 TFLite file at ``path``; return the bytes written.

    The file is written atomically (a temporary file in the same directory, then
    ``os.replace``), so ``path`` is either the complete new file or left as it was.
    Works with Keras 3 and tf-keras models (Sequential or functional).
    """
    data = tflite_bytes(model)
    atomic_write_bytes(path, data)
    return len(data)


def _interpreter_class():
    try:  # the successor of tf.lite.Interpreter, when installed
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter
    except ImportError:
        pass
    lite = getattr(tf, "lite", None)
    if lite is None or not hasattr(lite, "Interpreter"):
        raise RuntimeError(
            f"No TFLite interpreter: this TensorFlow ({tf.__version__}) has no tf.lite.Interpreter "
            "and the ai-edge-litert package is not installed."
        )
    return lite.Interpreter


def tflite_available() -> bool:
    """Whether this environment can both convert to TFLite and run the result."""
    try:
        _tflite_module()
        _interpreter_class()
    except RuntimeError:
        return False
    return True


def _tflite_interpreter(path_or_bytes, num_threads=None):
    interpreter_class = _interpreter_class()
    options = {} if num_threads is None else {"num_threads": int(num_threads)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter warns that it is deprecated
        if isinstance(path_or_bytes, (bytes, bytearray)):
            return interpreter_class(model_content=bytes(path_or_bytes), **options)
        return interpreter_class(model_path=os.fspath(path_or_bytes), **options)


def tflite_latency(
    model_or_bytes, batch_size: int, *, warmup: int = 3, repeats: int = 20, seed: int = 0, num_threads=None
) -> LatencyResult:
    """Median wall time of one TFLite ``invoke()`` on a batch of ``batch_size``.

    The deployed view of latency: TFLite's CPU kernels (XNNPACK) instead of TensorFlow's.
    ``model_or_bytes`` is a Keras model (converted with :func:`tflite_bytes`), flatbuffer
    bytes or a ``.tflite`` path; single-input models only.  ``num_threads`` is passed to the
    interpreter (default: its own choice).
    """
    batch_size = _check_count(batch_size, "batch_size", 1)
    warmup = _check_count(warmup, "warmup", 0)
    repeats = _check_count(repeats, "repeats", 1)
    if hasattr(model_or_bytes, "layers"):
        model_or_bytes = tflite_bytes(model_or_bytes)
    interpreter = _tflite_interpreter(model_or_bytes, num_threads)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ValueError(f"tflite_latency supports single-input models; this one has {len(inputs)} inputs.")
    detail = inputs[0]
    shape = (batch_size, *(int(d) for d in detail["shape"][1:]))
    interpreter.resize_tensor_input(detail["index"], shape)
    interpreter.allocate_tensors()
    x = np.random.default_rng(seed).standard_normal(shape).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    start = time.perf_counter()
    interpreter.invoke()
    first = time.perf_counter() - start
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return _summary(times, batch_size, first)


def tflite_predict(path_or_bytes, x):
    """Run a single-input TFLite model on the batch ``x``; return its output(s) as numpy.

    ``path_or_bytes`` is a ``.tflite`` file path or the flatbuffer bytes.  The input is
    resized to ``x.shape`` (batch size included).  A model with one output gives one array,
    otherwise a list in the interpreter's output order.
    """
    interpreter = _tflite_interpreter(path_or_bytes)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ValueError(f"tflite_predict supports single-input models; this one has {len(inputs)} inputs.")
    detail = inputs[0]
    array = np.asarray(x, dtype=detail["dtype"])
    interpreter.resize_tensor_input(detail["index"], array.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    outputs = [np.array(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]
    return outputs[0] if len(outputs) == 1 else outputs


__all__ = [
    "LatencyResult",
    "compare_latency",
    "export_tflite",
    "measure_latency",
    "tflite_available",
    "tflite_bytes",
    "tflite_latency",
    "tflite_predict",
]
