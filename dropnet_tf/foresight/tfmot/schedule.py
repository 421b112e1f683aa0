"""The pruning schedule of TFMOT's gradual magnitude pruning: which steps update the mask.

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
"""

from __future__ import annotations

import math

import numpy as np

#: Default fraction of the training steps after which the target sparsity is reached.
DEFAULT_END_FRACTION: float = 2.0 / 3.0


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


__all__ = ["DEFAULT_END_FRACTION", "pruning_schedule_steps"]
