"""Checks shared by every public entry point: reject a bad argument early and name it.

The rule the library follows (issue 12): a wrong argument is refused *before* any training,
any file write or any change to a model, with a TypeError (wrong kind of thing) or a
ValueError (right kind, wrong value) whose message names the argument, the value given and
what is allowed.  NumPy scalars (``np.float32(0.5)``, ``np.int64(3)``) are accepted wherever
a Python number is.  This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

__all__ = [
    "ArgumentTypeError",
    "check_int",
    "check_real",
    "check_choice",
    "check_path",
    "check_mapping",
    "check_xy",
    "check_inputs",
    "check_splits",
    "model_num_classes",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type.  A TypeError, and also a ValueError: several checks
    raised ValueError for a wrong type before this module existed, and code catching that
    keeps working."""


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def check_int(name: str, value, minimum: int | None = None, *, allow_none: bool = False):
    """``value`` as a Python int (bool refused), at least ``minimum`` when given."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (" or None" if allow_none else "")
        raise ArgumentTypeError(f"{name} must be {allowed}, got {_show(value)} ({type(value).__name__}).")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return value


def check_real(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
):
    """``value`` as a finite Python float in the interval given (bool refused)."""
    if value is None and allow_none:
        return None
    interval = (
        ("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}") + ", "
        + ("inf" if high is None else f"{high:g}") + (")" if high_open else "]")
    )
    allowed = f"a number in {interval}" + (" or None" if allow_none else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {_show(value)} ({type(value).__name__}).")
    value = float(value)
    inside = np.isfinite(value)
    if low is not None:
        inside = inside and (value > low if low_open else value >= low)
    if high is not None:
        inside = inside and (value < high if high_open else value <= high)
    if not inside:
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")
    return value


def check_choice(name: str, value, choices):
    """``value`` if it is one of ``choices`` (compared with ==, strings only)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {_show(value)}.")
    return value


def check_path(name: str, value, *, allow_none: bool = False):
    """``value`` if it is a str or os.PathLike (a file path)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)):
        allowed = "a file path (str or os.PathLike)" + (" or None" if allow_none else "")
        raise ArgumentTypeError(f"{name} must be {allowed}, got {_show(value)} ({type(value).__name__}).")
    return value


def check_mapping(name: str, value, what: str = "a dict"):
    """``value`` if it is a mapping (has ``keys`` and ``__getitem__``)."""
    if not (hasattr(value, "keys") and hasattr(value, "__getitem__")):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {_show(value)}.")
    return value


# ----------------------------------------------------------------------------- data


def model_num_classes(model) -> int | None:
    """The size of the last axis of a single-output model (its classes), or None if unknown."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return None
    shape = tuple(outputs[0].shape)
    if not shape or shape[-1] is None:
        return None
    return int(shape[-1])


def _model_input_shape(model):
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape)[1:]


def check_inputs(x, what: str, model=None):
    """``x`` as an array with at least one sample whose shape the model's input accepts."""
    try:
        array = np.asarray(x)
    except Exception:  # noqa: BLE001 - e.g. a ragged list
        raise TypeError(f"{what}: x must be an array of samples, got {type(x).__name__}.") from None
    if array.ndim == 0:
        raise ValueError(f"{what}: x must be an array of samples, got a scalar {_show(x)}.")
    if len(array) == 0:
        raise ValueError(f"{what}: x is empty (0 samples); every split needs at least one sample.")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what}: x must hold numbers, got dtype {array.dtype}.")
    expected = _model_input_shape(model) if model is not None else None
    if expected is not None:
        got = array.shape[1:]
        if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
            shown = tuple("None" if e is None else e for e in expected)
            raise ValueError(
                f"{what}: x has samples of shape {got}, but the model takes inputs of shape "
                f"{shown}."
            )
    return array


def check_xy(x, y, what: str, *, num_classes: int | None = None, model=None, labels: bool = True):
    """``(x, y)`` as arrays: same non-zero length, samples the model accepts, labels in range.

    Labels are class indices of shape ``(n,)`` (or ``(n, 1)``) with integer values in
    ``[0, num_classes)`` (``num_classes`` defaults to the model's output size), or one-hot rows
    of shape ``(n, num_classes)``.  ``labels=False`` checks only the lengths.
    """
    x = check_inputs(x, what, model)
    try:
        y = np.asarray(y)
    except Exception:  # noqa: BLE001
        raise TypeError(f"{what}: y must be an array of labels, got {type(y).__name__}.") from None
    if y.ndim == 0:
        raise ValueError(f"{what}: y must be an array of labels, got a scalar {_show(y)}.")
    if len(x) != len(y):
        raise ValueError(f"{what}: x has {len(x)} samples but y has {len(y)} labels; they must match.")
    if not labels:
        return x, y
    if num_classes is None and model is not None:
        num_classes = model_num_classes(model)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot or probabilities
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(
                f"{what}: y has one-hot rows of {y.shape[1]} classes, but the model has {num_classes} outputs."
            )
        return x, y
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1:
        raise ValueError(f"{what}: y must be class indices of shape (n,), got shape {y.shape}.")
    flat = flat[:, 0]
    if y.dtype.kind == "f":
        bad = ~np.isfinite(flat) | (flat != np.round(flat))
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{what}: labels must be integer class indices, found y[{index}] = {flat[index]!r}."
            )
    elif y.dtype.kind not in "iub":
        raise TypeError(f"{what}: labels must be integer class indices, got dtype {y.dtype}.")
    high = num_classes if num_classes is not None else None
    bad = flat < 0 if high is None else (flat < 0) | (flat >= high)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        allowed = "non-negative class indices" if high is None else f"class indices in [0, {high})"
        extra = "" if high is None else f" for a model with {high} outputs"
        raise ValueError(
            f"{what}: labels must be {allowed}{extra}; found y[{index}] = {flat[index].item()!r} "
            f"({int(bad.sum())} bad label(s), range {flat.min().item()}..{flat.max().item()})."
        )
    return x, y


def check_splits(splits, *, model=None, num_classes: int | None = None, labels: bool = True) -> None:
    """:func:`check_xy` for each ``{split name: (x, y)}``, naming the split in the message."""
    for name, (x, y) in splits.items():
        check_xy(x, y, f"the {name} split", num_classes=num_classes, model=model, labels=labels)
