"""Keras callbacks of the training engines: :class:`StopOnDivergence` (stops a run that has
diverged, and says where) and the step limit of engine "keras" (``TrainingConfig.iterations``).
"""

from __future__ import annotations

import math

from dropnet_tf.core.backend import keras


class _StopAfterIterations(keras.callbacks.Callback):
    """Stops ``Model.fit`` after ``iterations`` training steps (engine "keras")."""

    def __init__(self, iterations: int):
        super().__init__()
        self.iterations = int(iterations)
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen >= self.iterations:
            self.model.stop_training = True


class StopOnDivergence(keras.callbacks.Callback):
    """Stops ``Model.fit`` once training has diverged, and says where (``diverged_at``).

    Diverged: the running training loss Keras reports after a batch is NaN or infinite, or
    more than ``factor`` times the loss after the first batch.  Keras' ``TerminateOnNaN``
    catches only the first case, but a blown-up network often keeps a finite loss of 1e27
    and outputs a constant class (the dense LeNet-5-Caffe at SNIP's momentum 0.9 / lr 0.1
    does both, depending on the seed); either way it never comes back, and finishing a
    long protocol would record chance accuracy as if it were a trained result.  A healthy
    run's loss does not rise 100-fold above its first-batch value (about ln(classes)).
    """

    def __init__(self, factor: float = 100.0):
        super().__init__()
        if not factor > 1:
            raise ValueError(f"factor must be > 1, got {factor!r}.")
        self.factor = float(factor)
        self.first_loss = None
        self.epoch = 0
        #: ``(epoch, batch)`` where training stopped, or None.
        self.diverged_at = None

    def on_train_begin(self, logs=None):
        self.first_loss, self.diverged_at = None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if self.first_loss is None and math.isfinite(loss):
            self.first_loss = loss
            return
        if not math.isfinite(loss) or (self.first_loss is not None and loss > self.factor * abs(self.first_loss)):
            self.diverged_at = (self.epoch, int(batch))
            self.model.stop_training = True

    def verdict(self, losses) -> dict:
        """A record's ``diverged`` and ``diverged_at``: stopped by this guard, or any of ``losses``
        (the epochs' training losses, the test loss) not finite."""
        return {"diverged": self.diverged_at is not None or not all(math.isfinite(float(v)) for v in losses),
                "diverged_at": list(self.diverged_at) if self.diverged_at else None}


__all__ = ["StopOnDivergence"]
