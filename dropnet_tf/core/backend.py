"""The one place dropnet_tf imports Keras.

Keras 3 (the ``keras`` package, TensorFlow backend) is the primary target.  When the user
has set ``TF_USE_LEGACY_KERAS=1`` *before* importing dropnet_tf, the legacy ``tf_keras``
package is used instead, which is what tensorflow-model-optimization needs.  The setting is
read, never written: importing this library must not change the user's environment.
"""

from __future__ import annotations

import os

import tensorflow as tf

_LEGACY_VALUES = {"1", "true", "yes", "on"}

#: True when the user asked TensorFlow for the legacy Keras 2 implementation (tf-keras).
USE_LEGACY_KERAS: bool = os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() in _LEGACY_VALUES

if USE_LEGACY_KERAS:  # pragma: no cover - exercised by the second CI pass
    try:
        import tf_keras as keras
    except ImportError as error:  # give the user the fix, not just the traceback
        raise ImportError(
            "TF_USE_LEGACY_KERAS=1 is set but the 'tf-keras' package is not installed; "
            "install it with `pip install tf-keras` or unset TF_USE_LEGACY_KERAS."
        ) from error
else:
    import keras

#: Major version of the Keras implementation in use (2 for tf-keras, 3 for Keras 3).
KERAS_MAJOR: int = int(keras.__version__.split(".")[0])

register_serializable = keras.utils.register_keras_serializable

__all__ = ["keras", "tf", "USE_LEGACY_KERAS", "KERAS_MAJOR", "register_serializable"]
