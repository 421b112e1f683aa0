"""Training and evaluation with many steps per call into TensorFlow, driving Keras callbacks.

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


def per_sample_loss(loss) -> Callable:
    """A callable (y_true, y_pred) -> per-sample losses, from a Keras loss name/function/object."""
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    function = keras.losses.get(loss)
    return function.call if isinstance(function, keras.losses.Loss) else function


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
        self._train_block = tf.function(self._train_block_python, jit_compile=jit_compile is not False)
        self._evaluate_all = tf.function(self._evaluate_all_python, reduce_retracing=True)


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
            self._train_block = tf.function(self._train_block_python)
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
        predictions = self.model(x_batch, training=False)
        losses = tf.cast(self._loss(y_batch, predictions), tf.float64)
        if len(y_batch.shape) == len(predictions.shape) and predictions.shape[-1] not in (None, 1):
            labels = tf.argmax(y_batch, axis=-1)  # one-hot targets
        else:
            labels = tf.cast(tf.reshape(y_batch, [-1]), tf.int64)
        correct = tf.equal(tf.argmax(predictions, axis=-1), labels)
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(correct, tf.float64))

    # ------------------------------------------------------------------ public

    def evaluate(self, x, y, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss and top-1 accuracy over all of (x, y), in inference mode."""
        x = tf.convert_to_tensor(x)
        y = tf.convert_to_tensor(y)
        count = int(x.shape[0])
        if count == 0:
            raise ValueError("Cannot evaluate on zero samples.")
        loss_sum, correct = self._evaluate_all(x, y, tf.constant(int(batch_size)))
        return {"loss": float(loss_sum) / count, "accuracy": float(correct) / count}

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
        validation_data,
        callbacks: Sequence = (),
        seed: int = 0,
        shuffle: bool = True,
        eval_batch_size: int = 1024,
    ) -> dict[str, list]:
        """Train up to ``epochs`` epochs; Keras callbacks (e.g. EarlyStopping) may stop early.

        Each epoch's logs hold ``loss`` (mean training loss), ``val_loss`` and
        ``val_accuracy``, the keys Keras' own callbacks monitor.  The order of samples
        depends only on ``seed`` and the epoch number.
        """
        x_val, y_val = validation_data
        callback_list = keras.callbacks.CallbackList(list(callbacks), model=self.model)
        history: dict[str, list] = {"loss": [], "val_loss": [], "val_accuracy": []}
        self.model.stop_training = False
        callback_list.on_train_begin()
        for epoch in range(int(epochs)):
            callback_list.on_epoch_begin(epoch)
            loss_sum, steps = 0.0, 0
            for block_index, block in enumerate(self._epoch_blocks(seed, epoch, shuffle)):
                # Batch hooks once per block of steps, as fit does with steps_per_execution.
                callback_list.on_train_batch_begin(block_index)
                block_loss, block_steps = self._run_train_block(block)
                loss_sum += float(block_loss)
                steps += int(block_steps)
                callback_list.on_train_batch_end(block_index, {"loss": float(block_loss) / int(block_steps)})
                if self.model.stop_training:
                    break
            validation = self.evaluate(x_val, y_val, eval_batch_size)
            logs = {"loss": loss_sum / steps, "val_loss": validation["loss"], "val_accuracy": validation["accuracy"]}
            for key, value in logs.items():
                history[key].append(value)
            callback_list.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break
        callback_list.on_train_end()
        return history


def optimizer_variables(optimizer) -> list:
    """The optimizer's state variables (iterations, slots), for both Keras flavours."""
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


__all__ = ["GraphTrainer", "per_sample_loss", "optimizer_variables"]
