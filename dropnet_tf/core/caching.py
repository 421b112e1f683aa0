"""Per-model caches of traced functions and the variables tapes watch; shared by scorers.

Foresight's scorers (OBD, GraSP, SynFlow) and LayerPrune's criteria trace one
``tf.function`` per model and differentiate with respect to its variables.
"""

from __future__ import annotations

import weakref

from dropnet_tf.core.backend import tf

__all__ = ["PerModelCache", "tf_variables"]


class PerModelCache:
    """Traced functions keyed by (model, key), dropped when the model is garbage collected.

    A ``tf.function`` closes over its model, so retracing it on every call would cost a
    full graph build per scoring round; SynFlow scores 100 times per pruning run.
    """

    def __init__(self):
        self._entries: dict = {}

    def get(self, model, key, build):
        self._entries = {k: v for k, v in self._entries.items() if v[0]() is not None}
        entry = self._entries.get((id(model), key))
        if entry is not None and entry[0]() is model:
            return entry[1]
        value = build()
        self._entries[(id(model), key)] = (weakref.ref(model), value)
        return value


def tf_variables(variables) -> list:
    """The ``tf.Variable`` behind each variable: Keras 3 wraps it, and tapes only watch the
    wrapped one."""
    return [v if isinstance(v, tf.Variable) else v.value for v in variables]
