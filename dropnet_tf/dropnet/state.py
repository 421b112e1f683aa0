"""The resume state of a DropNet run: its fingerprint, its state file and the stop rules.

An iterative run (:class:`dropnet_tf.dropnet.iterative.IterativePruner`) keeps θ0, the masks
of every cycle and a fingerprint of what defines it in ``<results>.state/<key>.npz``
(:func:`state_path`); a later call with the same results file and key resumes only if its
fingerprint (:func:`run_fingerprint`) shows no difference (:func:`first_difference`), and
:func:`stop_rule_verdict` tells how the stored records relate to the stop rules given now.
:func:`run_masks` reads the masks of a finished run back.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from dropnet_tf.core.io import load_npz
from dropnet_tf.engines.config import ADDED_FIELDS

# ---------------------------------------------------------------------------- fingerprints
#
# What defines a run, stored as JSON in its state file next to θ0 (key "fingerprint") and
# compared on every later call with the same results file and run key.  Sections:
#   "pruning"   metric, fraction/count, min_units_per_layer, selection, init, seed;
#   "training"  every TrainingConfig field that changes what is computed (not callbacks,
#               which observe, nor steps_per_call, which only groups the same steps);
#   "optimizer" the optimizer's full get_config();
#   "data"      each split's shapes, dtypes and a content hash (all labels, up to
#               _HASHED_ROWS evenly spaced samples);
#   "model"     the architecture: the model's config without initializer seeds and without
#               the model's own name (θ0's values are not part of it: a resumed run reads
#               θ0 from the state file, whatever the new model's initial weights are).
# kappa and min_fraction are not in it: they only decide where the run stops (see
# IterativePruner.run and stop_rule_verdict below).

_HASHED_ROWS = 64
_FINGERPRINT_VERSION = 1


def _plain(value):
    """A JSON-able copy of ``value``; anything else becomes its type's name (stable across processes)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if callable(value):
        return f"<{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}>"
    return f"<{type(value).__name__}>"


def _without_seeds(node):
    if isinstance(node, dict):
        return {key: _without_seeds(value) for key, value in node.items() if key != "seed"}
    if isinstance(node, list):
        return [_without_seeds(value) for value in node]
    return node


def _array_digest(x, y) -> dict:
    x, y = np.asarray(x), np.asarray(y)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(repr((x.shape, str(x.dtype), y.shape, str(y.dtype))).encode())
    digest.update(np.ascontiguousarray(y).tobytes())
    if len(x):
        rows = np.unique(np.linspace(0, len(x) - 1, min(_HASHED_ROWS, len(x))).round().astype(np.int64))
        digest.update(np.ascontiguousarray(x[rows]).tobytes())
    return {"x_shape": list(x.shape), "x_dtype": str(x.dtype), "y_shape": list(y.shape), "y_dtype": str(y.dtype),
            "content_hash": digest.hexdigest()}


def _model_fingerprint(model) -> dict:
    try:
        config = model.get_config()
    except Exception:  # noqa: BLE001 - subclassed models may not have one
        config = None
    config = _without_seeds(_plain(config)) if isinstance(config, dict) else None
    if isinstance(config, dict):
        config.pop("name", None)
    return {
        "class": type(model).__name__,
        "weight_shapes": [list(w.shape) for w in model.weights],
        "config": config,
    }


def run_fingerprint(*, model=None, splits=None, optimizer=None, training=None, pruning=None) -> dict:
    """The sections of a run's fingerprint that are given (see the comment above)."""
    fingerprint = {"version": _FINGERPRINT_VERSION}
    if pruning is not None:
        fingerprint["pruning"] = _plain(pruning)
    if training is not None:
        fingerprint["training"] = {
            "loss": _plain(training.loss.get_config() if hasattr(training.loss, "get_config") else training.loss),
            **{name: _plain(getattr(training, name)) for name in (
                "batch_size", "max_epochs", "patience", "restore_best_weights", "shuffle", "jit_compile",
                "eval_batch_size", "statistics_batch_size", "train_transform")},
            # Fields added later enter only when set, so older fingerprints still match.
            **{name: _plain(getattr(training, name)) for name, default in ADDED_FIELDS.items()
               if getattr(training, name, default) != default},
        }
    if optimizer is not None:
        config = {key: value for key, value in _plain(optimizer.get_config()).items() if key != "name"}
        fingerprint["optimizer"] = {"class": type(optimizer).__name__, "config": config}
    if splits is not None:
        fingerprint["data"] = {name: _array_digest(x, y) for name, (x, y) in splits.items()}
    if model is not None:
        fingerprint["model"] = _model_fingerprint(model)
    return fingerprint


def first_difference(stored, current, path: str = ""):
    """``(path, stored value, current value)`` of the first difference, or None.

    Only keys present in both fingerprints at the top level are compared, so a fingerprint
    computed without the model (``run_experiment``'s check) compares the other sections.
    """
    if isinstance(stored, dict) and isinstance(current, dict):
        for key in list(stored) + [key for key in current if key not in stored]:
            where = f"{path}.{key}" if path else str(key)
            if key not in stored or key not in current:
                if not path:
                    continue
                return where, stored.get(key, "<absent>"), current.get(key, "<absent>")
            found = first_difference(stored[key], current[key], where)
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(current, list):
        for index, (a, b) in enumerate(zip(stored, current)):
            label = f"[{index}]"
            if isinstance(a, dict) and isinstance(a.get("name"), str):
                label = f"[{index}:{a['name']}]"
            found = first_difference(a, b, path + label)
            if found:
                return found
        if len(stored) != len(current):
            return f"{path} (length)", len(stored), len(current)
        return None
    return None if stored == current else (path, stored, current)


def _describe_difference(difference) -> str:
    where, old, new = difference

    def short(value):
        text = repr(value)
        return text if len(text) <= 160 else text[:157] + "..."

    return f"{where}: stored {short(old)}, now {short(new)}"


def stop_reason(kappa, min_fraction, cycle, val_accuracy, baseline, fraction_remaining):
    """Algorithm 1's stop rules for one finished cycle: the reason to stop, or None."""
    val_accuracy = float("nan") if val_accuracy is None else val_accuracy
    if kappa is not None and cycle > 0 and baseline is not None and val_accuracy <= kappa * baseline:
        return f"val_accuracy <= kappa * a ({val_accuracy:.4f} <= {kappa} * {baseline:.4f})"
    if fraction_remaining <= min_fraction:
        return f"fraction_remaining <= min_fraction ({fraction_remaining:.4f} <= {min_fraction})"
    return None


_UNCHECKED_WARNED: set = set()

_RULE_STOPS = ("val_accuracy <= kappa", "fraction_remaining <= min_fraction")


def stop_rule_verdict(records, kappa, min_fraction):
    """How stored records of one run relate to the stop rules given now.

    Returns ``("refuse", cycle, reason)`` when the stored run went on past a cycle where the
    rules now stop it, ``("finished", None, None)`` when its last record stops under the rules
    now (or stopped because nothing was left to prune), ``("stop_here", cycle, reason)`` when
    a paused run's last cycle is where the rules now stop, ``("continue", cycle, None)`` when
    a finished run's stop rule no longer fires at its last cycle (the run goes on from there),
    and ``("resume", None, None)`` for a paused run that goes on.
    """
    if not records:
        return "resume", None, None
    baseline = records[0].get("val_accuracy")
    for record in records[:-1]:
        reason = stop_reason(kappa, min_fraction, record["cycle"], record.get("val_accuracy"), baseline,
                             record["fraction_remaining"])
        if reason is not None:
            return "refuse", record["cycle"], reason
    last = records[-1]
    now = stop_reason(kappa, min_fraction, last["cycle"], last.get("val_accuracy"), baseline,
                      last["fraction_remaining"])
    stored = last.get("stop_reason")
    if stored is None:
        return ("stop_here", last["cycle"], now) if now is not None else ("resume", None, None)
    if now is None and str(stored).startswith(_RULE_STOPS):
        return "continue", last["cycle"], None
    return "finished", None, None


class ResumeRefusedError(ValueError):
    """A stored run that this call cannot continue (other settings, data, architecture or a
    damaged state file): the message names the difference and what to do.  A ValueError, so
    older callers still catch it; the paper scripts end on it with their one-paragraph message."""

    #: The entry points print the message as one paragraph and exit 1, without a traceback.
    user_fixable = True


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


__all__ = [
    "ResumeRefusedError",
    "first_difference",
    "run_fingerprint",
    "run_masks",
    "state_path",
    "stop_reason",
    "stop_rule_verdict",
]
