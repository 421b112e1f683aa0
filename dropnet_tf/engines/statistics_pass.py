"""Loss, accuracy and per-unit statistics of a data set from one inference pass.

DropNet's Algorithm 1 (Tan & Motani, ICML 2020, Section 2) ends every cycle by evaluating
the trained network on the training set and then scoring its units by the expected absolute
post-activation value over the same t training samples,

    E(a_i) = (1/t) Σ_j |V(a_i | x_j)|      (a filter: also averaged over its r positions),

or by APoZ (Hu et al. 2016; DropNet supplement Section 4).  Both need the same forward pass
in inference mode, so :class:`StatisticsPass` runs it once: one traced function loops over
the batches of (x, y) and adds up the per-sample losses, the correct top-1 predictions and,
for every mask layer, the sums of :func:`dropnet_tf.core.statistics.unit_sums` (Σ|a|, zero
counts, values per unit).  Sums and counts, not means of batch means, so the result is the
same as :class:`dropnet_tf.core.statistics.StatisticsCollector` and
:meth:`dropnet_tf.engines.graph_trainer.GraphTrainer.evaluate` give separately, to float round-off.

The function is traced once per dtype and per-sample shape, with the number of samples left
open, and reused by every call: weights and masks are variables, read when it runs.
"""

from __future__ import annotations

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.masking import require_mask_layers
from dropnet_tf.core.statistics import UnitStatistics, sums_by_mask, statistics_from_sums, unit_sums
from dropnet_tf.engines.loop import loss_and_correct, per_sample_loss, traced_for
from dropnet_tf.core.validation import check_int


class StatisticsPass:
    """One model's inference pass that yields loss, accuracy and :class:`UnitStatistics`.

    Args:
        model: a built model with MaskLayers and one output (the class probabilities).
        loss: the Keras loss name, function or object of the training (per-sample losses,
            without ``model.losses``, as :meth:`GraphTrainer.evaluate` reports it).
        units: ``{name: tensor of model's graph}``, the per-unit activations to reduce
            instead of the mask layers' outputs (then ``model`` needs no MaskLayers), e.g.
            a compacted model's layers that stand for the masked model's mask layers
            (:meth:`dropnet_tf.compaction.training.CompactedCycle.statistics`).
        traced: False runs the pass eagerly (the same operations, without a trace): cheaper
            for a model that is read once or twice (a compacted cycle's model).
    """

    def __init__(self, model, loss, units=None, *, traced: bool = True):
        outputs = list(model.outputs)
        if len(outputs) != 1:
            raise ValueError(
                f"StatisticsPass needs a model with one output (its predictions), got {len(outputs)} outputs."
            )
        if units is None:
            from dropnet_tf.core.layers import mask_outputs  # the calls of a shared (group) mask

            units = {layer.name: mask_outputs(layer, model) for layer in require_mask_layers(model)}
        elif not units:
            raise ValueError("StatisticsPass got units={}: name at least one tensor whose units to reduce.")
        self.layer_names = list(units)
        # A dependency group's mask is called at several places; its sums add over all of them.
        places = [value if isinstance(value, list) else [value] for value in units.values()]
        self._segments = [len(tensors) for tensors in places]
        # The model's own layers, read through one graph: the predictions and every mask
        # layer's output come out of the same forward pass.
        self._probe = keras.Model(model.inputs, outputs + [t for tensors in places for t in tensors])
        self._loss = per_sample_loss(loss)
        self._functions: dict = {}
        self._traced = bool(traced)

    def _pass_python(self, x, y, batch_size):
        """(Σ loss, Σ correct, [Σ|a|], [zero counts], [values per unit]) over all of (x, y)."""
        count = tf.shape(x)[0]
        widths = [int(output.shape[-1]) for output in self._probe.outputs[1:]]
        zero = tf.constant(0.0, tf.float64)
        initial = (
            tf.constant(0, tf.int32), zero, zero,
            [tf.zeros(width, tf.float64) for width in widths],
            [tf.zeros(width, tf.float64) for width in widths],
            [zero for _ in widths],
        )

        def body(start, loss_sum, correct, abs_sums, zero_counts, value_counts):
            stop = tf.minimum(start + batch_size, count)
            outputs = self._probe(x[start:stop], training=False)
            batch_loss, batch_correct = loss_and_correct(self._loss, y[start:stop], outputs[0])
            sums = [unit_sums(activation) for activation in outputs[1:]]
            return (
                stop, loss_sum + batch_loss, correct + batch_correct,
                [total + s[0] for total, s in zip(abs_sums, sums)],
                [total + s[1] for total, s in zip(zero_counts, sums)],
                [total + s[2] for total, s in zip(value_counts, sums)],
            )

        result = tf.while_loop(lambda start, *_: start < count, body, initial)
        return result[1:]

    def _function(self, x, y):
        return traced_for(self._functions, self._pass_python, x, y)

    def __call__(self, x, y, batch_size: int = 1024) -> tuple[dict[str, float], UnitStatistics]:
        """``({"loss": mean loss, "accuracy": top-1 accuracy}, statistics)`` over all of (x, y)."""
        batch_size = check_int("batch_size", batch_size, 1)
        x = tf.convert_to_tensor(x)
        y = tf.convert_to_tensor(y)
        count = int(x.shape[0])
        if count == 0:
            raise ValueError("StatisticsPass got no samples: x has 0 rows.")
        if int(y.shape[0]) != count:
            raise ValueError(f"StatisticsPass needs as many labels as inputs, got {int(y.shape[0])} and {count}.")
        run = self._function(x, y) if self._traced else self._pass_python
        loss_sum, correct, abs_sums, zero_counts, value_counts = run(x, y, tf.constant(int(batch_size), tf.int32))
        scores = {"loss": float(loss_sum) / count, "accuracy": float(correct) / count}
        statistics = statistics_from_sums(
            self.layer_names, sums_by_mask([s.numpy() for s in abs_sums], self._segments),
            sums_by_mask([s.numpy() for s in zero_counts], self._segments),
            sums_by_mask([float(s) for s in value_counts], self._segments), count,
        )
        return scores, statistics


__all__ = ["StatisticsPass"]
