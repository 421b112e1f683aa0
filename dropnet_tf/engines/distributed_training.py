"""The graph trainer's contract under a ``tf.distribute`` strategy: :class:`DistributedTrainer`.

:class:`dropnet_tf.engines.graph_trainer.GraphTrainer` runs many SGD steps per call on one device.
This is the same loop for ``MirroredStrategy`` and ``MultiWorkerMirroredStrategy``: every
global batch (the config's ``batch_size``, in the same sample order as the graph trainer:
a stateless shuffle of ``(seed, epoch)``) is split over the replicas by
``strategy.experimental_distribute_dataset``; each replica divides the *sum* of its
per-sample losses by the number of samples in the whole global batch (an all-reduced
count), and the optimizer sums the replicas' gradients.  Weight decay in either mode of
``TrainingConfig.weight_decay_mode`` is the optimizer's, applied once per step to the
mirrored weights after that sum (coupled: in :class:`~dropnet_tf.engines.optimizers.CoupledSGD`'s
per-variable step), never once per replica.  The update is therefore the
gradient of the global batch's mean loss, up to summation order, also when a batch does
not split evenly (a mean of per-replica means would weight the smaller share's samples
more).  Non-trainable state that each replica updates on its own share of the batch
(BatchNormalization's moving mean and variance, which Keras 3 creates with aggregation
"none", so that every replica's copy drifts apart and a read returns the first one's) is
averaged over every replica and worker after each block of steps; a moving average is
linear in its updates, so this gives what averaging after every step would, and what
Keras 2's on-read mean variables gave.  Evaluation adds per-sample loss sums, correct predictions and counts across
replicas and workers before dividing; ``sample_metrics`` (e.g. foresight's top-5) are
per-sample scores reduced the same way.

Keras' own ``Model.fit`` / ``evaluate`` would do for ``MirroredStrategy``, but Keras 3's
fails under ``MultiWorkerMirroredStrategy`` before its first step (its symbolic build
reduces a nested batch, which that strategy does not accept: keras-team/keras#20585);
this loop uses ``strategy.run`` and works under both.
"""

from __future__ import annotations

import math
from typing import Sequence

from dropnet_tf.core.backend import tf
from dropnet_tf.engines.loop import fit_epochs, per_sample_loss

_SUM = tf.distribute.ReduceOp.SUM


def replica_local_state(model) -> list:
    """The model's non-trainable mirrored variables with aggregation "none": each replica's copy
    is updated from its own share of a batch (Keras 3's BatchNormalization moving statistics).
    Keras 2's (on-read, mean) and variables that are never assigned in training need nothing."""
    found = []
    for variable in model.non_trainable_variables:
        value = getattr(variable, "value", variable)
        value = variable if callable(value) else value  # tf-keras: value() is a method
        if (isinstance(value, tf.distribute.DistributedValues)
                and getattr(value, "aggregation", None) == tf.VariableAggregation.NONE
                and getattr(value, "synchronization", None) != tf.VariableSynchronization.ON_READ):
            found.append(value)
    return found


def _distributable(dataset):
    """Shard by data (every worker holds the same arrays): worker i takes its part of each batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class DistributedTrainer:
    """Trains ``model`` under ``strategy`` on in-memory ``(x, y)``, ``steps_per_call`` global batches per call.

    The model and the optimizer must have been built in ``strategy.scope()``.  ``fit`` and
    ``evaluate`` return what :class:`~dropnet_tf.engines.graph_trainer.GraphTrainer`'s do and drive
    Keras callbacks the same way (batch hooks per block, epoch hooks per epoch).  Every
    worker of a multi-worker strategy must call them with the same arguments.
    """

    def __init__(self, model, optimizer, loss, x, y, strategy, batch_size: int = 32, steps_per_call: int = 128,
                 sample_metrics=None):
        sample_metrics = dict(sample_metrics or {})
        for name, function in sample_metrics.items():
            if not isinstance(name, str) or name in ("loss", "accuracy") or not callable(function):
                raise ValueError(
                    "sample_metrics must map new names (not 'loss' or 'accuracy') to callables "
                    f"(y_true, y_pred) -> per-sample scores, got {name!r}: {function!r}."
                )
        # Each one a per-sample score (1/0 for a hit): summed over replicas and workers,
        # divided by the sample count, as the top-1 accuracy is.
        self.sample_metrics = sample_metrics
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.x = tf.convert_to_tensor(x)
        self.y = tf.convert_to_tensor(y)
        self.batch_size = int(batch_size)
        self.steps_per_call = int(steps_per_call)
        self._loss = per_sample_loss(loss)
        self._local_state = replica_local_state(model)
        #: False only in tests: shows the replicas' copies without the averaging.
        self.average_local_state = True
        self._train_steps = tf.function(self._train_steps_python)
        self._evaluate_all = tf.function(self._evaluate_all_python, reduce_retracing=True)
        # Distributing a dataset costs about a second on a CPU: the evaluation sets (the same
        # arrays every epoch and cycle) are distributed once.
        self._evaluation_sets: dict = {}

    # ------------------------------------------------------------------ replica functions

    def _replica_train_step(self, x_batch, y_batch):
        context = tf.distribute.get_replica_context()
        # The whole global batch's size: each replica's sum over it gives the global mean.
        count = context.all_reduce(_SUM, tf.cast(tf.shape(x_batch)[0], tf.float32))
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            predictions = self.model(x_batch, training=True)
            loss = tf.reduce_sum(tf.cast(self._loss(y_batch, predictions), tf.float32)) / count
            if self.model.losses:  # counted once in all: each replica adds its share
                extra = tf.add_n([tf.cast(value, tf.float32) for value in self.model.losses])
                loss = loss + extra / tf.cast(context.num_replicas_in_sync, tf.float32)
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))  # sums the replicas' gradients
        return loss

    def _replica_evaluate_step(self, x_batch, y_batch):
        predictions = self.model(x_batch, training=False)
        losses = tf.cast(self._loss(y_batch, predictions), tf.float64)
        if len(y_batch.shape) == len(predictions.shape) and predictions.shape[-1] not in (None, 1):
            labels = tf.argmax(y_batch, axis=-1)  # one-hot targets
        else:
            labels = tf.cast(tf.reshape(y_batch, [-1]), tf.int64)
        correct = tf.cast(tf.equal(tf.argmax(predictions, axis=-1), labels), tf.float64)
        extra = tuple(tf.reduce_sum(tf.cast(function(y_batch, predictions), tf.float64))
                      for function in self.sample_metrics.values())
        return (tf.reduce_sum(losses), tf.reduce_sum(correct), tf.cast(tf.shape(x_batch)[0], tf.float64)) + extra

    # ------------------------------------------------------------------ graph functions

    def _train_steps_python(self, iterator, steps):
        """``steps`` global batches from ``iterator``; returns the sum of their mean losses."""
        total = tf.constant(0.0, tf.float32)
        for _ in tf.range(steps):
            x_batch, y_batch = next(iterator)
            per_replica = self.strategy.run(self._replica_train_step, args=(x_batch, y_batch))
            total += self.strategy.reduce(_SUM, per_replica, axis=None)
        if self._local_state and self.average_local_state:
            self.strategy.run(self._replica_average_local_state)
        return total

    def _replica_average_local_state(self):
        context = tf.distribute.get_replica_context()
        for variable in self._local_state:
            # tf.identity: this replica's copy as a tensor (all_reduce of the variable itself
            # fails under MultiWorkerMirroredStrategy: "destinations can not be empty").
            variable.assign(context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(variable)))

    def _evaluate_all_python(self, dataset):
        loss_sum = tf.constant(0.0, tf.float64)
        correct = tf.constant(0.0, tf.float64)
        count = tf.constant(0.0, tf.float64)
        extra = [tf.constant(0.0, tf.float64) for _ in self.sample_metrics]
        for x_batch, y_batch in dataset:
            batch = self.strategy.run(self._replica_evaluate_step, args=(x_batch, y_batch))
            loss_sum += self.strategy.reduce(_SUM, batch[0], axis=None)
            correct += self.strategy.reduce(_SUM, batch[1], axis=None)
            count += self.strategy.reduce(_SUM, batch[2], axis=None)
            extra = [total + self.strategy.reduce(_SUM, part, axis=None) for total, part in zip(extra, batch[3:])]
        return (loss_sum, correct, count) + tuple(extra)

    # ------------------------------------------------------------------ public

    def _evaluation_set(self, x, y, batch_size: int):
        key = (id(x), id(y), batch_size)
        found = self._evaluation_sets.get(key)
        if found is None or found[0] is not x or found[1] is not y:  # the arrays kept: ids stay theirs
            if len(self._evaluation_sets) >= 8:
                self._evaluation_sets.clear()
            dataset = tf.data.Dataset.from_tensor_slices((tf.convert_to_tensor(x), tf.convert_to_tensor(y)))
            found = (x, y, self.strategy.experimental_distribute_dataset(_distributable(dataset.batch(batch_size))))
            self._evaluation_sets[key] = found
        return found[2]

    def evaluate(self, x, y, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss, top-1 accuracy and the ``sample_metrics`` over all of (x, y): sums and counts of
        every replica, then divided."""
        if len(x) == 0:
            raise ValueError("Cannot evaluate on zero samples.")
        loss_sum, correct, count, *extra = self._evaluate_all(self._evaluation_set(x, y, int(batch_size)))
        count = float(count)
        found = {"loss": float(loss_sum) / count, "accuracy": float(correct) / count}
        found.update({name: float(total) / count for name, total in zip(self.sample_metrics, extra)})
        return found

    def _epoch_iterator(self, seed: int, epoch: int, shuffle: bool):
        count = int(self.x.shape[0])
        if shuffle:  # the graph trainer's order, so one device and many see the same batches
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int32), seed=tf.constant([seed, epoch], tf.int64)
            )
        else:
            order = tf.range(count, dtype=tf.int32)
        dataset = tf.data.Dataset.from_tensor_slices((tf.gather(self.x, order), tf.gather(self.y, order)))
        dataset = _distributable(dataset.batch(self.batch_size))
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def fit(self, epochs: int, validation_data=None, callbacks: Sequence = (), seed: int = 0, shuffle: bool = True,
            eval_batch_size: int = 1024, max_steps: int | None = None) -> dict[str, list]:
        """As :meth:`GraphTrainer.fit <dropnet_tf.engines.graph_trainer.GraphTrainer.fit>`, under the strategy."""
        steps_per_epoch = math.ceil(int(self.x.shape[0]) / self.batch_size)

        def blocks(epoch):
            iterator = self._epoch_iterator(seed, epoch, shuffle)
            done = 0
            while done < steps_per_epoch:
                size = min(self.steps_per_call, steps_per_epoch - done)

                def run(limit, size=size):
                    count = size if limit is None else min(size, limit)
                    return self._train_steps(iterator, tf.constant(count)), count

                yield run
                done += size

        return fit_epochs(self.model, callbacks, epochs, blocks, self.evaluate, validation_data, eval_batch_size,
                          max_steps)


__all__ = ["DistributedTrainer", "replica_local_state"]
