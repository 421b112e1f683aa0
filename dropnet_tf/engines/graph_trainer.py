"""The compiled graph engine: :class:`GraphTrainer`, training and evaluation with many steps per
call into TensorFlow, driving Keras callbacks (engine "graph" of
:func:`dropnet_tf.engines.training.fit` on one device).

Algorithm 1 trains the same architecture once per cycle, often for tens of epochs of
batch-32 steps.  On a CPU a step of a small network costs far less than Keras' per-step
machinery around it (iterator, metric trackers, callbacks), so ``Model.fit`` spends most
of a cycle outside the network.  :class:`GraphTrainer` instead runs blocks of steps inside
one ``tf.function`` (a loop over index blocks that gathers each batch from tensors held in
memory) and calls the standard Keras callback hooks: the batch hooks once per block (as
``fit`` does with ``steps_per_execution``) and the epoch hooks once per epoch, so
``keras.callbacks.EarlyStopping`` stops training exactly as it would under ``fit``.

It is compiled once per model and reused by every cycle: nothing is retraced when the
weights, masks or optimizer state are reassigned.
"""

from __future__ import annotations

from typing import Callable, Sequence

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.engines.loop import fit_epochs, loss_and_correct, per_sample_loss, traced_for


def _xla_pays_off(model) -> bool:
    """Whether "auto" should compile with XLA: on a GPU always, on the CPU without convolutions."""
    if tf.config.list_logical_devices("GPU"):
        return True
    convolutions = tuple(
        getattr(keras.layers, name)
        for name in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
        if hasattr(keras.layers, name)
    )
    return not any(isinstance(layer, convolutions) for layer in _all_layers(model))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # nested models
            yield from _all_layers(layer)


#: A block of training steps: one row of sample indices per step (see ``GraphTrainer._epoch_blocks``).
_INDEX_BLOCK = [tf.TensorSpec((None, None), tf.int32)]


class GraphTrainer:
    """Trains ``model`` on in-memory tensors, ``steps_per_call`` batches per call.

    Args:
        model: a built Keras model.
        optimizer: a Keras optimizer, built on ``model.trainable_variables``.
        loss: Keras loss name, function or object (mean over the batch, plus
            ``model.losses`` as in ``Model.fit``).
        x, y: training tensors (all samples; batches are gathered by index).
        batch_size: samples per step.
        steps_per_call: training steps inside one call into TensorFlow.
        train_transform: optional ``(x_batch, y_batch) -> (x_batch, y_batch)`` applied in
            the graph to every training batch (data augmentation).
        jit_compile: compile the block of steps with XLA: True, False, or "auto".  "auto"
            uses XLA on a GPU, and on the CPU only for models without convolutions:
            XLA's CPU convolutions are far slower than TensorFlow's oneDNN kernels (one
            epoch of Model B Conv64-Conv64 on 3000 samples, 2 cores: 42.6 s with XLA,
            2.7 s without), while dense models gain from it.  If XLA cannot compile the
            step (e.g. an augmentation op it lacks), "auto" falls back to the plain graph
            with a warning.
    """

    def __init__(
        self,
        model,
        optimizer,
        loss,
        x,
        y,
        batch_size: int = 32,
        steps_per_call: int = 128,
        train_transform: Callable | None = None,
        jit_compile="auto",
    ):
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}.")
        self.model = model
        self.optimizer = optimizer
        self.x = tf.convert_to_tensor(x)
        self.y = tf.convert_to_tensor(y)
        self.batch_size = int(batch_size)
        self.steps_per_call = int(steps_per_call)
        self._loss = per_sample_loss(loss)
        self._transform = train_transform
        self._jit_compile = jit_compile
        if jit_compile == "auto" and not _xla_pays_off(model):
            self._jit_compile = jit_compile = False
        # Traced once for blocks of any shape (full, the epoch's last shorter one, the ragged
        # last batch) instead of once per shape; XLA still compiles each shape it meets.
        self._train_block = tf.function(self._train_block_python, jit_compile=jit_compile is not False,
                                        input_signature=_INDEX_BLOCK)
        self._evaluate_functions: dict = {}  # see _evaluate_function


    # ------------------------------------------------------------------ graph functions

    def _train_block_python(self, index_block):
        """Runs one SGD step per row of ``index_block``; returns (loss sum, steps)."""
        variables = self.model.trainable_variables
        total = tf.constant(0.0, tf.float32)
        for row in tf.range(tf.shape(index_block)[0]):
            index = index_block[row]
            x_batch = tf.gather(self.x, index)
            y_batch = tf.gather(self.y, index)
            if self._transform is not None:
                x_batch, y_batch = self._transform(x_batch, y_batch)
            with tf.GradientTape() as tape:
                predictions = self.model(x_batch, training=True)
                loss = tf.reduce_mean(self._loss(y_batch, predictions))
                if self.model.losses:
                    loss = loss + tf.add_n([tf.cast(extra, loss.dtype) for extra in self.model.losses])
            gradients = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(gradients, variables))
            total += tf.cast(loss, tf.float32)
        return total, tf.shape(index_block)[0]

    def _run_train_block(self, block):
        if self._jit_compile != "auto":
            return self._train_block(block)
        try:
            return self._train_block(block)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            if "XLA" not in str(error) and "xla" not in str(error) and "compil" not in str(error):
                raise
            import warnings

            warnings.warn(f"XLA could not compile the training step; training without it ({error}).", stacklevel=2)
            self._jit_compile = False
            self._train_block = tf.function(self._train_block_python, input_signature=_INDEX_BLOCK)
            return self._train_block(block)

    def _evaluate_all_python(self, x, y, batch_size):
        """(sum of per-sample losses, correct top-1 predictions) over all of (x, y)."""
        count = tf.shape(x)[0]
        loss_sum = tf.constant(0.0, tf.float64)
        correct = tf.constant(0.0, tf.float64)
        for start in tf.range(0, count, batch_size):
            batch_loss, batch_correct = self._evaluate_batch(x[start : start + batch_size], y[start : start + batch_size])
            loss_sum += batch_loss
            correct += batch_correct
        return loss_sum, correct

    def _evaluate_batch(self, x_batch, y_batch):
        return loss_and_correct(self._loss, y_batch, self.model(x_batch, training=False))

    # ------------------------------------------------------------------ public

    def evaluate(self, x, y, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss and top-1 accuracy over all of (x, y), in inference mode."""
        x = tf.convert_to_tensor(x)
        y = tf.convert_to_tensor(y)
        count = int(x.shape[0])
        if count == 0:
            raise ValueError("Cannot evaluate on zero samples.")
        loss_sum, correct = self._evaluate_function(x, y)(x, y, tf.constant(int(batch_size)))
        return {"loss": float(loss_sum) / count, "accuracy": float(correct) / count}

    def _evaluate_function(self, x, y):
        """The traced evaluation for inputs like ``x``, ``y`` of any number of samples.

        One function per dtype and per-sample shape, traced with the sample count left
        open: the validation split during ``fit`` and every split evaluated afterwards
        (validation, test, training) share one trace, instead of the retrace that a new
        count costs before ``reduce_retracing`` relaxes the shape.
        """
        return traced_for(self._evaluate_functions, self._evaluate_all_python, x, y)

    def _epoch_blocks(self, seed: int, epoch: int, shuffle: bool) -> list:
        count = int(self.x.shape[0])
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int32), seed=tf.constant([seed, epoch], tf.int64)
            )
        else:
            order = tf.range(count, dtype=tf.int32)
        full = (count // self.batch_size) * self.batch_size
        batches = tf.reshape(order[:full], (-1, self.batch_size))
        blocks = [batches[i : i + self.steps_per_call] for i in range(0, int(batches.shape[0]), self.steps_per_call)]
        if full < count:  # the last, smaller batch, as fit would run it
            blocks.append(tf.reshape(order[full:], (1, -1)))
        return blocks

    def fit(
        self,
        epochs: int,
        validation_data=None,
        callbacks: Sequence = (),
        seed: int = 0,
        shuffle: bool = True,
        eval_batch_size: int = 1024,
        max_steps: int | None = None,
    ) -> dict[str, list]:
        """Train up to ``epochs`` epochs; Keras callbacks (e.g. EarlyStopping) may stop early.

        Each epoch's logs hold ``loss`` (mean training loss) and, with ``validation_data``,
        ``val_loss`` and ``val_accuracy``, the keys Keras' own callbacks monitor.  The order
        of samples depends only on ``seed`` and the epoch number.  ``max_steps`` stops after
        that many training steps in all (the last block is cut short).
        """
        def blocks(epoch):
            for block in self._epoch_blocks(seed, epoch, shuffle):
                yield lambda limit, block=block: self._run_train_block(block if limit is None else block[:limit])

        return fit_epochs(self.model, callbacks, epochs, blocks, self.evaluate, validation_data, eval_batch_size,
                          max_steps)


__all__ = ["GraphTrainer"]
