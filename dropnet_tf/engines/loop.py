"""What the graph engines share: the per-sample loss, the epoch loop driving Keras callbacks,
one trace per input signature, and the loss and accuracy sums of a batch.

:class:`~dropnet_tf.engines.graph_trainer.GraphTrainer` (one device),
:class:`~dropnet_tf.engines.distributed_training.DistributedTrainer` (a ``tf.distribute``
strategy), :class:`~dropnet_tf.engines.stacked.StackedTrainer` and
:class:`~dropnet_tf.engines.statistics_pass.StatisticsPass` build on these; they import
nothing of each other's, so the engines import without a cycle.
"""

from __future__ import annotations

from typing import Callable

from dropnet_tf.core.backend import keras, tf


def per_sample_loss(loss) -> Callable:
    """A callable (y_true, y_pred) -> per-sample losses, from a Keras loss name/function/object."""
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    function = keras.losses.get(loss)
    return function.call if isinstance(function, keras.losses.Loss) else function


def fit_epochs(model, callbacks, epochs: int, blocks, evaluate, validation_data=None, eval_batch_size: int = 1024,
               max_steps: int | None = None) -> dict[str, list]:
    """The epoch loop of the graph trainers (:class:`GraphTrainer`, and
    :class:`~dropnet_tf.engines.distributed_training.DistributedTrainer` under a strategy).

    ``blocks(epoch)`` yields one callable per block of training steps: ``run(limit)`` trains
    the block, cut to at most ``limit`` steps when ``limit`` is not None, and returns (summed
    loss, steps).  Keras callbacks get batch hooks once per block (as ``fit`` with
    ``steps_per_execution``) and epoch hooks with ``loss`` and, given ``validation_data``,
    ``val_loss`` and ``val_accuracy`` from ``evaluate(x, y, batch_size)``: the keys Keras' own
    callbacks monitor.  ``max_steps`` stops after that many steps in all.
    """
    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    history: dict[str, list] = {"loss": []}
    if validation_data is not None:
        x_val, y_val = validation_data
        history.update({"val_loss": [], "val_accuracy": []})
    model.stop_training = False
    callback_list.on_train_begin()
    steps_left = None if max_steps is None else int(max_steps)
    for epoch in range(int(epochs)):
        callback_list.on_epoch_begin(epoch)
        loss_sum, steps = 0.0, 0
        for block_index, run_block in enumerate(blocks(epoch)):
            if steps_left is not None and steps_left <= 0:
                break
            callback_list.on_train_batch_begin(block_index)
            block_loss, block_steps = run_block(steps_left)
            block_loss, block_steps = float(block_loss), int(block_steps)
            loss_sum += block_loss
            steps += block_steps
            if steps_left is not None:
                steps_left -= block_steps
            callback_list.on_train_batch_end(block_index, {"loss": block_loss / block_steps})
            if model.stop_training:
                break
        logs = {"loss": loss_sum / max(steps, 1)}
        if validation_data is not None:
            validation = evaluate(x_val, y_val, eval_batch_size)
            logs.update({"val_loss": validation["loss"], "val_accuracy": validation["accuracy"]})
        for key, value in logs.items():
            history[key].append(value)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training or (steps_left is not None and steps_left <= 0):
            break
    callback_list.on_train_end()
    return history


def traced_for(cache: dict, python_function, x, y):
    """``python_function(x, y, batch_size)`` traced once per dtype and per-sample shape of
    (x, y), with the sample count left open, kept in ``cache``: every split of one model
    (validation during ``fit``, then validation, test and training) shares one trace."""
    key = (x.dtype, tuple(x.shape[1:]), y.dtype, tuple(y.shape[1:]))
    function = cache.get(key)
    if function is None:
        signature = [tf.TensorSpec((None, *key[1]), key[0]), tf.TensorSpec((None, *key[3]), key[2]),
                     tf.TensorSpec((), tf.int32)]
        function = cache[key] = tf.function(python_function, input_signature=signature)
    return function


def loss_and_correct(loss, y_batch, predictions):
    """(Σ per-sample loss, number of correct top-1 predictions) of one batch, both float64.

    ``loss`` is a per-sample loss (:func:`per_sample_loss`); ``y_batch`` holds integer labels
    or one-hot targets.  Sums, so that the batches of a pass add up to exact means.
    """
    losses = tf.cast(loss(y_batch, predictions), tf.float64)
    if len(y_batch.shape) == len(predictions.shape) and predictions.shape[-1] not in (None, 1):
        labels = tf.argmax(y_batch, axis=-1)  # one-hot targets
    else:
        labels = tf.cast(tf.reshape(y_batch, [-1]), tf.int64)
    correct = tf.equal(tf.argmax(predictions, axis=-1), labels)
    return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(correct, tf.float64))


__all__ = ["fit_epochs", "loss_and_correct", "per_sample_loss", "traced_for"]
