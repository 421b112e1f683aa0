"""Many networks of one architecture as one computation: weights with a leading run axis.

A population of N runs of one masked architecture (DropNet's Models A, B and C: Tan &
Motani, ICML 2020, Fig. 2) is held as one tensor per weight of shape ``(N, *shape)`` and
one per mask of shape ``(N, units)``.  One call computes all N forward passes:

* Dense: a batched matrix product, ``(N, B, I) @ (N, I, O)``;
* Conv2D: one grouped convolution, the N runs' channels side by side
  (``(B, H, W, N·C)`` with ``(kh, kw, C, N·F)`` filters, N groups);
* MaxPooling2D, Flatten: the run axis folded into the batch;
* MaskLayer: the mask of each run broadcast over its batch.

Each run's loss is the mean over its own batch, and the gradient of the *sum* of the N
losses with respect to the stacked weights is, row by row, each run's own gradient: the
runs do not interact, so the result equals N separate trainings up to the order of
floating-point summation.

Design measurement (2 shared CPU cores, one TensorFlow thread, batch 32, SGD step with
forward and backward, per run and step): Model A FC40-FC40 on 28x28 inputs, 30 runs: one
Keras model 0.18 ms (XLA), ``tf.vectorized_map`` over ``Model.stateless_call`` 0.19 ms
(without XLA; 2.4 ms with it), this stacked form 0.15 ms (XLA); Model B Conv64-Conv64, 8
runs: one model 31 ms, vectorized_map 55 ms, this grouped convolution 35 ms.  The stacked
form is the faster of the two population designs for both; on the CPU the gain over
separate runs comes from doing every per-epoch and per-cycle call (evaluation, statistics,
Python) once for all runs, not from the arithmetic, which is already compute bound.

Only what can be computed exactly in this form is accepted (:func:`check_stackable`): a
chain of InputLayer, Flatten, Dense, Conv2D, MaxPooling2D and MaskLayer, without
regularisers or random layers; anything else raises naming the layer.
"""

from __future__ import annotations

import logging

import numpy as np

from dropnet_tf.core.backend import tf
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.statistics import UnitStatistics
from dropnet_tf.engines.loop import per_sample_loss
from dropnet_tf.engines.config import WEIGHT_DECAY_MODES
from dropnet_tf.engines.graph_trainer import _xla_pays_off
from dropnet_tf.engines.optimizers import weight_decay_of

class _ExpectedRetraces(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning about StackedTrainer's own
    functions.  Their retraces are by design and bounded: a population re-makes its
    variables (and so its functions) each time it drops finished rows, and the leading run
    axis and the last ragged batch change shape a few times per run; read as advice, the
    warning would only send users looking for a bug that is not there.  Warnings about
    any other function pass through."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "StackedTrainer." in message)


if not any(isinstance(f, _ExpectedRetraces) for f in logging.getLogger("tensorflow").filters):
    logging.getLogger("tensorflow").addFilter(_ExpectedRetraces())


#: Layer classes a stacked network is made of (Models A, B and C).
STACKABLE_LAYERS = ("InputLayer", "Flatten", "Dense", "Conv2D", "MaxPooling2D", "MaskLayer")

#: Activations computed by the layer's own Keras function (same ops as the Keras layer).
STACKABLE_ACTIVATIONS = ("relu", "softmax", "linear")


def _activation_name(layer) -> str:
    return getattr(layer.activation, "__name__", str(layer.activation))


def check_stackable(model) -> list:
    """The model's layers in order, if a stacked network can compute it exactly; else ValueError.

    Requires a chain (each layer takes the previous one's output) of :data:`STACKABLE_LAYERS`,
    channels-last convolutions without dilation or groups, activations of
    :data:`STACKABLE_ACTIVATIONS`, and no regularisation losses.
    """
    layers = list(model.layers)
    if not layers:
        raise ValueError("A stacked network needs a model with layers, got one with none.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"A stacked network needs one input and one output, model {model.name!r} has "
            f"{len(model.inputs)} and {len(model.outputs)}."
        )
    for index, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind not in STACKABLE_LAYERS or (kind == "MaskLayer" and not isinstance(layer, MaskLayer)):
            raise ValueError(
                f"Population training computes only {list(STACKABLE_LAYERS)} (Models A, B and C); layer "
                f"{layer.name!r} of model {model.name!r} is a {kind}."
            )
        if kind in ("Dense", "Conv2D") and _activation_name(layer) not in STACKABLE_ACTIVATIONS:
            raise ValueError(
                f"Population training supports the activations {list(STACKABLE_ACTIVATIONS)}; layer {layer.name!r} "
                f"uses {_activation_name(layer)!r}."
            )
        if kind in ("Dense", "Conv2D") and any(
            getattr(layer, name, None) is not None
            for name in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                         "bias_constraint")
        ):
            raise ValueError(f"Population training does not support regularisers or constraints; layer {layer.name!r} has one.")
        if kind == "Conv2D":
            config = layer.get_config()
            if (config.get("data_format") not in (None, "channels_last") or tuple(config.get("dilation_rate")) != (1, 1)
                    or config.get("groups", 1) != 1):
                raise ValueError(
                    f"Population training supports channels-last Conv2D without dilation or groups; layer "
                    f"{layer.name!r} has data_format={config.get('data_format')!r}, "
                    f"dilation_rate={config.get('dilation_rate')!r}, groups={config.get('groups')!r}."
                )
        if kind == "MaxPooling2D" and layer.get_config().get("data_format") not in (None, "channels_last"):
            raise ValueError(f"Population training supports channels-last pooling; layer {layer.name!r} is not.")
        if index > 0 and kind != "InputLayer":
            previous = layers[index - 1]
            try:
                chained = layer.input is previous.output
            except (AttributeError, ValueError):
                chained = False
            if not chained:
                raise ValueError(
                    f"Population training needs a chain of layers; layer {layer.name!r} of model {model.name!r} "
                    f"does not take the output of the layer before it ({previous.name!r})."
                )
    if model.losses:
        raise ValueError(f"Population training does not support models with added losses; {model.name!r} has {len(model.losses)}.")
    return [layer for layer in layers if type(layer).__name__ != "InputLayer"]


def architecture(model) -> list:
    """What must be equal for two models to share a stacked network: per layer its class,
    computation settings and weight shapes (names excluded)."""
    described = []
    for layer in check_stackable(model):
        config = layer.get_config()
        settings = {key: config.get(key) for key in ("units", "filters", "kernel_size", "strides", "padding",
                                                       "pool_size", "use_bias")}
        if hasattr(layer, "activation"):
            settings["activation"] = _activation_name(layer)
        described.append({"class": type(layer).__name__, **{k: v for k, v in settings.items() if v is not None},
                          "weights": [list(w.shape) for w in layer.weights]})
    return described


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _broadcast_bias(bias, rank: int):
    """(N, F) bias as (N, 1, ..., 1, F), to add to an (N, B, ..., F) tensor of ``rank``."""
    return bias[(slice(None),) + (None,) * (rank - 2) + (slice(None),)]


@tf.custom_gradient
def _add_bias_row_exact(h, bias):
    """``h + bias`` per run, the bias gradient taken by a batched matrix product.

    Why: without XLA, TensorFlow's CPU sum over a middle axis (the gradient of a broadcast
    add) rounds a row's result according to where the row sits in memory: of 10 identical
    FC20-FC20 runs trained side by side, rows 0, 4 and 8 agreed and the others differed in
    the last bit after one epoch, which SGD then amplifies, so a run's result depended on its
    row in the population.  A batched matmul packs each row before multiplying, and gives
    every row the same result wherever it sits.  The forward value is the plain add.
    """
    def gradient(upstream):
        shape = tf.shape(upstream)
        flat = tf.reshape(upstream, tf.stack([shape[0], -1, shape[-1]]))  # (N, samples·positions, F)
        ones = tf.ones(tf.stack([shape[0], 1, tf.shape(flat)[1]]), upstream.dtype)
        return upstream, tf.reshape(tf.matmul(ones, flat), tf.shape(bias))

    return h + _broadcast_bias(bias, len(h.shape)), gradient


class StackedNetwork:
    """The forward pass of N runs of ``model``'s architecture at once (see the module docstring).

    Weights are passed in the order of ``model.weights`` without the masks (the order
    :class:`dropnet_tf.IterativePruner` keeps θ0 in), each with a leading run axis; masks in
    the order of the model's mask layers.
    """

    def __init__(self, model):
        self.layers = check_stackable(model)
        self.mask_layers = [layer for layer in self.layers if isinstance(layer, MaskLayer)]
        mask_ids = {id(layer.mask) for layer in self.mask_layers}
        variables = [w for w in model.weights if id(w) not in mask_ids]
        position = {id(w): i for i, w in enumerate(variables)}
        self.weight_shapes = [tuple(int(d) for d in w.shape) for w in variables]
        self.mask_units = [layer.units for layer in self.mask_layers]
        # Per layer, the positions of its kernel and bias in the weight list.
        self._slots = []
        for layer in self.layers:
            kernel = getattr(layer, "kernel", None)
            bias = getattr(layer, "bias", None)
            self._slots.append((
                None if kernel is None else position[id(kernel)],
                None if bias is None else position[id(bias)],
            ))
        self.input_shape = tuple(model.inputs[0].shape[1:])

    def forward(self, weights, masks, x, shared: bool = False, row_exact_bias: bool = False):
        """``(outputs (N, B, ...), [mask layer outputs (N, B, ..., units)])``.

        ``x`` is ``(N, B, *input_shape)``, one batch per run, or with ``shared`` one batch
        ``(B, *input_shape)`` that every run sees (evaluation, statistics).
        ``row_exact_bias`` takes the biases' gradient so that it does not depend on a run's
        row (:func:`_add_bias_row_exact`; the trainer asks for it without XLA).
        """
        add_bias = _add_bias_row_exact if row_exact_bias else (lambda h, b: h + _broadcast_bias(b, len(h.shape)))
        h = x
        n = tf.shape(weights[0])[0]
        mask_outputs = []
        mask_index = 0
        for layer, (kernel_at, bias_at) in zip(self.layers, self._slots):
            kind = type(layer).__name__
            if kind == "Flatten":
                keep = 1 if shared else 2
                h = tf.reshape(h, tf.concat([tf.shape(h)[:keep], [-1]], 0))
            elif kind == "Dense":
                kernel = weights[kernel_at]
                h = tf.einsum("bi,nio->nbo", h, kernel) if shared else tf.matmul(h, kernel)
                shared = False
                if bias_at is not None:
                    h = add_bias(h, weights[bias_at])
                h = layer.activation(h)
            elif kind == "Conv2D":
                h, shared = self._conv(layer, h, weights[kernel_at], n, shared)
                if bias_at is not None:
                    h = add_bias(h, weights[bias_at])
                h = layer.activation(h)
            elif kind == "MaxPooling2D":
                h = self._pool(layer, h, shared)
            elif kind == "MaskLayer":
                if shared:  # a mask right after the input: give every run its copy
                    h = tf.broadcast_to(h[None], tf.concat([[n], tf.shape(h)], 0))
                    shared = False
                mask = tf.cast(masks[mask_index], h.dtype)
                mask_index += 1
                h = h * tf.reshape(mask, [-1] + [1] * (len(h.shape) - 2) + [int(mask.shape[-1])])
                mask_outputs.append(h)
        if shared:
            h = tf.broadcast_to(h[None], tf.concat([[n], tf.shape(h)], 0))
        return h, mask_outputs

    def _conv(self, layer, h, kernel, n, shared):
        """The convolution of the N runs, before bias and activation; (N, B, H, W, F), False."""
        strides = tuple(layer.strides)
        padding = layer.padding.upper()
        kh, kw, channels, filters = (int(d) for d in kernel.shape[1:])
        # (N, kh, kw, C, F) -> (kh, kw, C, N·F): run r's filters are output channels r·F ... r·F+F-1.
        stacked_kernel = tf.reshape(tf.transpose(kernel, (1, 2, 3, 0, 4)), (kh, kw, channels, -1))
        if shared:
            out = tf.nn.conv2d(h, stacked_kernel, strides, padding)  # one input, N·F filters
        else:
            # (N, B, H, W, C) -> (B, H, W, N·C): with C-deep filters and N·C input channels the
            # convolution is grouped, group r seeing run r's channels only.
            shape = tf.shape(h)
            folded = tf.reshape(tf.transpose(h, (1, 2, 3, 0, 4)), tf.stack([shape[1], shape[2], shape[3], -1]))
            out = tf.nn.conv2d(folded, stacked_kernel, strides, padding)
        shape = tf.shape(out)
        out = tf.reshape(out, tf.stack([shape[0], shape[1], shape[2], n, filters]))
        return tf.transpose(out, (3, 0, 1, 2, 4)), False

    def _pool(self, layer, h, shared):
        pool = tuple(layer.pool_size)
        strides = tuple(layer.strides)
        padding = layer.padding.upper()
        if shared:
            return tf.nn.max_pool2d(h, pool, strides, padding)
        shape = tf.shape(h)
        folded = tf.reshape(h, tf.concat([[-1], shape[2:]], 0))
        out = tf.nn.max_pool2d(folded, pool, strides, padding)
        return tf.reshape(out, tf.concat([shape[:2], tf.shape(out)[1:]], 0))


#: The fewest rows a trainer compiled with XLA keeps: XLA compiles a one-row step otherwise
#: than a step of several rows (a lone FC20-FC20 run's weights differed by 1e-7 after one
#: epoch from the same run beside others, where every row count from two on gave the same
#: bits), so a run left alone at the end of a population, or a population of one, would
#: follow another path than the same run among others.  An empty row beside it costs one
#: run's arithmetic; without XLA no row count is special (see :func:`_add_bias_row_exact`).
XLA_MIN_ROWS = 2


class StackedTrainer:
    """SGD on ``size`` stacked runs: per-run weights, masks, momentum, best weights and data order.

    Exactly :class:`keras.optimizers.SGD` (learning rate, momentum, Nesterov, weight decay
    in either mode of :data:`dropnet_tf.engines.config.WEIGHT_DECAY_MODES`) applied to each
    run alone; other optimizers are refused by :func:`sgd_settings`.  A run whose row is not
    ``active`` keeps its weights and momentum.  Rows are set and read with numpy.

    Args:
        network: a :class:`StackedNetwork`.
        size: number of rows (runs trained at once).
        x, y: the training data every run draws its batches from.
        loss: a Keras loss (name, function or object), mean over each run's batch.
        learning_rate, momentum, nesterov: the SGD settings.
        weight_decay, weight_decay_mode: "decoupled" is Keras' ``SGD(weight_decay=wd)``,
            ``w <- w - lr*wd*w`` before the step, outside the momentum; "coupled" is
            :class:`~dropnet_tf.engines.optimizers.CoupledSGD`, ``g <- g + wd*w`` through it.
        jit_compile: True, False or "auto" (XLA on a GPU, or on the CPU without convolutions,
            as :class:`dropnet_tf.engines.graph_trainer.GraphTrainer`).
        model: the template model ("auto" looks at its layers).
    """

    def __init__(self, network, size, x, y, loss, *, learning_rate, momentum=0.0, nesterov=False, weight_decay=0.0,
                 weight_decay_mode="decoupled", jit_compile="auto", model=None):
        self.network = network
        self.size = int(size)
        self.x = tf.convert_to_tensor(x)
        self.y = tf.convert_to_tensor(y)
        self._loss = per_sample_loss(loss)
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(f"weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {weight_decay_mode!r}.")
        if not float(weight_decay) >= 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}.")
        self.weight_decay = float(weight_decay)
        self.weight_decay_mode = weight_decay_mode
        if jit_compile == "auto":
            jit_compile = _xla_pays_off(model) if model is not None else False
        self.jit_compile = bool(jit_compile)
        self._make_variables(
            [np.zeros((self.size,) + shape, np.float32) for shape in network.weight_shapes],
            [np.ones((self.size, units), np.float32) for units in network.mask_units],
            np.zeros(self.size, np.float32),
        )

    @property
    def min_rows(self) -> int:
        """The fewest rows to keep (:data:`XLA_MIN_ROWS` under XLA, else 1) for a run's result not
        to depend on how many rows it is trained with."""
        return XLA_MIN_ROWS if self.jit_compile else 1

    def _make_variables(self, weights, masks, active):
        self.weights = [tf.Variable(w) for w in weights]
        self.best = [tf.Variable(w, trainable=False) for w in weights]
        self.velocity = [tf.Variable(np.zeros_like(w), trainable=False) for w in weights] if self.momentum else []
        self.masks = [tf.Variable(m, trainable=False) for m in masks]
        self.active = tf.Variable(active, trainable=False)
        self.size = int(np.shape(active)[0])
        # New functions for new variables (the old ones captured the old variables).
        self._train_block = tf.function(self._train_block_python, jit_compile=self.jit_compile)
        self._evaluate = tf.function(self._evaluate_python, reduce_retracing=True)
        self._statistics = tf.function(self._statistics_python, reduce_retracing=True)

    # ------------------------------------------------------------------ rows

    def set_row(self, row: int, weights, masks) -> None:
        """Run ``row`` starts from ``weights`` (model order, masks excluded) and ``masks``, momentum zero."""
        for variable, value in zip(self.weights, weights):
            variable[row].assign(np.asarray(value, np.float32))
        for variable in self.velocity:
            variable[row].assign(tf.zeros(variable.shape[1:], variable.dtype))
        for variable, value in zip(self.masks, masks):
            variable[row].assign(np.asarray(value, np.float32))

    def set_active(self, row: int, active: bool) -> None:
        self.active[row].assign(1.0 if active else 0.0)

    def row_weights(self, row: int) -> list[np.ndarray]:
        return [variable[row].numpy() for variable in self.weights]

    def keep_rows(self, rows) -> None:
        """Keep only ``rows`` (in this order), e.g. once finished runs leave: smaller steps from then on."""
        rows = [int(r) for r in rows]
        weights = [variable.numpy()[rows] for variable in self.weights]
        masks = [variable.numpy()[rows] for variable in self.masks]
        velocity = [variable.numpy()[rows] for variable in self.velocity]
        best = [variable.numpy()[rows] for variable in self.best]
        active = self.active.numpy()[rows]
        self._make_variables(weights, masks, active)
        for variable, value in zip(self.velocity, velocity):
            variable.assign(value)
        for variable, value in zip(self.best, best):
            variable.assign(value)

    def snapshot(self, rows) -> None:
        """Early stopping's best weights: copy the current weights of ``rows`` (a bool per row)."""
        chosen = tf.constant(np.asarray(rows, bool))
        for best, current in zip(self.best, self.weights):
            where = tf.reshape(chosen, [-1] + [1] * (len(current.shape) - 1))
            best.assign(tf.where(where, current, best))

    def restore(self, rows) -> None:
        """Early stopping's restore: the best weights back into ``rows`` (a bool per row)."""
        chosen = tf.constant(np.asarray(rows, bool))
        for best, current in zip(self.best, self.weights):
            where = tf.reshape(chosen, [-1] + [1] * (len(current.shape) - 1))
            current.assign(tf.where(where, best, current))

    # ------------------------------------------------------------------ training

    def _train_block_python(self, index_block):
        """One SGD step per row of ``index_block`` (steps, N, B); returns each run's loss sum."""
        active = self.active
        total = tf.zeros([self.size], tf.float32)
        for step in tf.range(tf.shape(index_block)[0]):
            index = index_block[step]
            x_batch = tf.gather(self.x, index)
            y_batch = tf.gather(self.y, index)
            with tf.GradientTape() as tape:
                outputs, _ = self.network.forward([w.value() for w in self.weights], [m.value() for m in self.masks],
                                                  x_batch, row_exact_bias=not self.jit_compile)
                losses = tf.reduce_mean(self._loss(y_batch, outputs), axis=1)
                objective = tf.reduce_sum(losses * active)
            gradients = tape.gradient(objective, self.weights)
            for i, (variable, gradient) in enumerate(zip(self.weights, gradients)):
                where = tf.reshape(active > 0, [-1] + [1] * (len(variable.shape) - 1))
                # keras.optimizers.SGD's update, per row
                learning_rate = tf.cast(self.learning_rate, variable.dtype)
                if self.weight_decay:
                    decay = tf.cast(self.weight_decay, variable.dtype)
                    if self.weight_decay_mode == "coupled":  # CoupledSGD: L2 through the gradient
                        gradient = gradient + decay * variable
                    else:  # Keras' option: decayed before the step, the gradient taken at the old w
                        variable.assign(tf.where(where, variable - variable * decay * learning_rate, variable))
                if self.velocity:
                    velocity = self.velocity[i]
                    momentum = tf.cast(self.momentum, variable.dtype)
                    new_velocity = velocity * momentum - gradient * learning_rate
                    velocity.assign(tf.where(where, new_velocity, velocity))
                    step_value = new_velocity * momentum - gradient * learning_rate if self.nesterov else new_velocity
                    variable.assign(tf.where(where, variable + step_value, variable))
                else:
                    variable.assign(tf.where(where, variable - gradient * learning_rate, variable))
            total += tf.cast(losses, tf.float32)
        return total

    def epoch_blocks(self, seeds, epochs, shuffles: bool, steps_per_call: int) -> list:
        """Index blocks (steps, N, B) of one epoch, run r in the order ``GraphTrainer`` gives
        seed ``seeds[r]`` at epoch ``epochs[r]``; the last, smaller batch as its own block."""
        count = int(self.x.shape[0])
        orders = []
        for seed, epoch in zip(seeds, epochs):
            if shuffles:
                orders.append(tf.random.experimental.stateless_shuffle(
                    tf.range(count, dtype=tf.int32), seed=tf.constant([seed, epoch], tf.int64)))
            else:
                orders.append(tf.range(count, dtype=tf.int32))
        order = tf.stack(orders)  # (N, count)
        batch = self.batch_size
        full = (count // batch) * batch
        batches = tf.transpose(tf.reshape(order[:, :full], (self.size, -1, batch)), (1, 0, 2))  # (steps, N, B)
        blocks = [batches[i : i + steps_per_call] for i in range(0, int(batches.shape[0]), steps_per_call)]
        if full < count:
            blocks.append(order[None, :, full:])
        return blocks

    def train_epoch(self, seeds, epochs, *, batch_size: int, shuffle: bool = True, steps_per_call: int = 128):
        """One epoch for every row; returns each run's mean training loss (numpy, (N,))."""
        self.batch_size = int(batch_size)
        total = np.zeros(self.size)
        steps = 0
        for block in self.epoch_blocks(seeds, epochs, shuffle, steps_per_call):
            total += self._train_block(block).numpy()
            steps += int(block.shape[0])
        return total / max(steps, 1)

    # ------------------------------------------------------------------ evaluation, statistics

    def _gathered(self, rows):
        rows = tf.constant(np.asarray(rows, np.int32))
        return [tf.gather(w, rows) for w in self.weights], [tf.gather(m, rows) for m in self.masks]

    def _evaluate_python(self, weights, masks, x_batch, y_batch):
        """(each run's sum of per-sample losses, its correct top-1 predictions) on one batch."""
        n = tf.shape(weights[0])[0]
        outputs, _ = self.network.forward(weights, masks, x_batch, shared=True)
        labels_shared = tf.broadcast_to(y_batch[None], tf.concat([[n], tf.shape(y_batch)], 0))
        losses = tf.cast(self._loss(labels_shared, outputs), tf.float64)
        if len(y_batch.shape) == len(outputs.shape) - 1 and outputs.shape[-1] not in (None, 1):
            labels = tf.argmax(labels_shared, axis=-1)  # one-hot targets
        else:
            labels = tf.cast(tf.reshape(labels_shared, tf.shape(outputs)[:2]), tf.int64)
        hits = tf.equal(tf.argmax(outputs, axis=-1), labels)
        return tf.reduce_sum(losses, axis=1), tf.reduce_sum(tf.cast(hits, tf.float64), axis=1)

    def evaluate(self, rows, x, y, batch_size: int = 1024) -> list[dict]:
        """Mean loss and top-1 accuracy of each of ``rows`` on (x, y), as ``GraphTrainer.evaluate``.

        Row by row, in batches of ``batch_size`` samples starting at the same sample whatever
        the other rows: a run's numbers do not depend on how many runs are evaluated with it
        (a matrix product may round a sample's output differently when the batch is longer).
        """
        x = tf.convert_to_tensor(x)
        y = tf.convert_to_tensor(y)
        count = int(x.shape[0])
        results = []
        for row in rows:
            weights, masks = self._gathered([row])
            loss_sum = correct = 0.0
            for start in range(0, count, batch_size):
                batch_loss, batch_correct = self._evaluate(weights, masks, x[start : start + batch_size],
                                                           y[start : start + batch_size])
                loss_sum += float(batch_loss.numpy()[0])
                correct += float(batch_correct.numpy()[0])
            results.append({"loss": loss_sum / count, "accuracy": correct / count})
        return results

    def _statistics_python(self, weights, masks, x_batch):
        """Per mask layer: each run's sums of |a| and of zeros over the batch and positions, and
        the values per unit (samples × positions)."""
        _, activations = self.network.forward(weights, masks, x_batch, shared=True)
        abs_sums, zero_counts, value_counts = [], [], []
        for activation in activations:
            axes = list(range(1, len(activation.shape) - 1))  # batch and positions, per run
            activation = tf.cast(activation, tf.float32)
            value_counts.append(tf.cast(tf.reduce_prod(tf.shape(activation)[1:-1]), tf.float64))
            abs_sums.append(tf.cast(tf.reduce_sum(tf.abs(activation), axis=axes), tf.float64))
            zero_counts.append(
                tf.cast(tf.reduce_sum(tf.cast(tf.equal(activation, 0.0), tf.float32), axis=axes), tf.float64))
        return abs_sums, zero_counts, value_counts

    def statistics(self, rows, x, batch_size: int = 1024) -> list[UnitStatistics]:
        """DropNet's E(a_i) / E(f_i) and APoZ (as :func:`dropnet_tf.collect_statistics`) of each of ``rows``.

        Row by row in batches of ``batch_size`` samples, as :meth:`evaluate`: one call holds one
        run's batch (30 Conv64 runs on a shared 1024-batch of 28x28 images would need 6 GB per
        layer), and a run's scores do not depend on the runs collected with it.
        """
        x = tf.convert_to_tensor(x)
        count = int(x.shape[0])
        names = [layer.name for layer in self.network.mask_layers]
        found_per_row = []
        for row in rows:
            weights, masks = self._gathered([row])
            abs_sums = [0.0] * len(names)
            zero_counts = [0.0] * len(names)
            value_counts = [0.0] * len(names)
            for start in range(0, count, batch_size):
                found = self._statistics(weights, masks, x[start : start + batch_size])
                for i in range(len(names)):
                    abs_sums[i] = abs_sums[i] + found[0][i].numpy()[0]
                    zero_counts[i] = zero_counts[i] + found[1][i].numpy()[0]
                    value_counts[i] = value_counts[i] + float(found[2][i].numpy())
            found_per_row.append(UnitStatistics(
                mean_abs={name: abs_sums[i] / value_counts[i] for i, name in enumerate(names)},
                apoz={name: zero_counts[i] / value_counts[i] for i, name in enumerate(names)},
                num_samples=count,
            ))
        return found_per_row


def sgd_settings(optimizer) -> dict:
    """``{learning_rate, momentum, nesterov, weight_decay, weight_decay_mode}`` of a Keras SGD
    (or :class:`~dropnet_tf.engines.optimizers.CoupledSGD`) whose update a stacked trainer reproduces
    exactly; any other optimizer or option raises ValueError naming it."""
    name = type(optimizer).__name__
    if name not in ("SGD", "CoupledSGD"):
        raise ValueError(
            f"Population training reproduces keras.optimizers.SGD only (constant learning rate, momentum, "
            f"Nesterov); the runs' optimizer is {name}. Train these runs separately (population=None)."
        )
    config = optimizer.get_config()
    rate = config.get("learning_rate")
    if not isinstance(rate, (int, float, np.floating)):
        raise ValueError(
            f"Population training needs a constant SGD learning rate, got {rate!r} (a schedule). "
            "Train these runs separately (population=None)."
        )
    if getattr(optimizer, "_exclude_from_weight_decay", None) or getattr(
            optimizer, "_exclude_from_weight_decay_pattern", None) or getattr(
            optimizer, "_exclude_from_weight_decay_names", None):
        raise ValueError("Population training decays every weight; this SGD excludes some from weight decay. "
                         "Train these runs separately (population=None).")
    for option in ("clipnorm", "clipvalue", "global_clipnorm"):
        if config.get(option):
            raise ValueError(
                f"Population training does not reproduce SGD's {option}={config[option]!r}. "
                "Train these runs separately (population=None)."
            )
    if config.get("use_ema") or config.get("gradient_accumulation_steps"):
        raise ValueError("Population training does not reproduce SGD with EMA or gradient accumulation.")
    decay, mode = weight_decay_of(optimizer)
    return {"learning_rate": float(rate), "momentum": float(config.get("momentum") or 0.0),
            "nesterov": bool(config.get("nesterov")), "weight_decay": decay, "weight_decay_mode": mode}


__all__ = ["STACKABLE_ACTIVATIONS", "STACKABLE_LAYERS", "StackedNetwork", "StackedTrainer", "architecture",
           "check_stackable", "sgd_settings"]
