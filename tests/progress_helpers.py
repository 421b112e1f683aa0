"""What the progress and TensorBoard tests of every family share: reading event files back,
and a user's Keras callback that keeps the epoch logs it is given (the reference)."""

from __future__ import annotations

import glob
import os

import numpy as np

from dropnet_tf.core.backend import keras, tf


def scalars(folder) -> dict:
    """{tag: {step: value}} of every event file in ``folder``, read with TensorFlow's own record reader."""
    from tensorflow.core.util import event_pb2

    found: dict = {}
    for path in sorted(glob.glob(os.path.join(str(folder), "events.out.tfevents.*"))):
        for raw in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(raw.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars", value.tag  # TensorBoard's scalars plugin
                found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return found


class EpochLogs(keras.callbacks.Callback):
    """A user's Keras callback: the epoch logs it is given, in order."""

    def __init__(self):
        super().__init__()
        self.logs = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append((epoch, dict(logs)))


def tiny_foresight():
    """A 96-sample, 4-class synthetic dataset and a masked two-layer MLP builder: the smallest foresight grid."""
    from dropnet_tf.data import Dataset
    from dropnet_tf.foresight import MaskedDense

    rng = np.random.default_rng(0)
    y = np.arange(96) % 4
    x = rng.normal(size=(96, 6)).astype(np.float32) + y[:, None] * 0.3
    data = Dataset("tiny", "synthetic", x, y, x[:8], y[:8], x[:40], y[:40], 4)

    def build(seed, init):
        return keras.Sequential([keras.Input((6,)), MaskedDense(8, activation="relu", name="hidden"),
                                 MaskedDense(4, activation="softmax", name="out")])

    return data, build
