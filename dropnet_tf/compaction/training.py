"""Compacted training: train the physically smaller network the masks describe, then write back.

DropNet (Tan & Motani, ICML 2020, Algorithm 1, step 3) trains ``f(x; m ⊙ n)``, the network
with mask ``m``.  The MaskLayer sits after the activation, so a masked unit is exactly zero
for every input, and with it:

* its incoming weights and bias get zero gradient (the mask multiplies their output by 0);
* its outgoing weights (the next layer's rows / input channels) see zero input, so they get
  zero gradient too.

An optimizer whose update is zero for a zero gradient and zero-initialised state (SGD with or
without momentum, Adam, RMSprop, ...; DropNet resets the optimizer state every cycle) therefore
never changes them: training the masked model is training :func:`~dropnet_tf.compaction.compact`'s
smaller model, up to the order of floating-point sums.  :class:`CompactedCycle` builds that
model from the masked model's current (reset) weights, trains it with the same
:class:`~dropnet_tf.engines.training.Trainer` (same seed, same sample order, same early stopping),
and scatters the trained weights back into the kept rows, columns and filters of the masked
model; the masked units keep the values they had (θ0, or the random draw).

After training, :meth:`CompactedCycle.statistics` gives the cycle's training-set pass (loss,
accuracy and the per-unit statistics DropNet scores by) from the compact model as well: an
active unit's output is the same value in both models, and a masked unit's output is exactly 0
in the masked model, so its E is 0 and its APoZ 1, which is what it is given.

Where this is not the same computation, :func:`inexact_settings` names the reason and
``TrainingConfig(compact_training=True)`` refuses it, while ``"auto"`` trains masked:

* weight decay (the decoupled decay shrinks every weight, masked ones included) and
  regularizers (``kernel_regularizer`` etc. add gradient to masked weights);
* optimizers not known to leave a zero-gradient weight alone (:data:`EXACT_OPTIMIZERS`);
* layers that draw random numbers per unit (Dropout, noise): the compact model draws fewer,
  so the draws differ (the same in distribution, not step for step);
* user callbacks (``TrainingConfig.callbacks``): they would see the compact model.

Not the same, but without effect on any output: a BatchNormalization *before* a mask updates
the moving statistics of masked channels in masked training; compacted training leaves them
at their reset values.  Masked channels are zero after the mask either way.

When compaction cannot remove every masked unit (a mask it keeps in the compact model, a
masked channel kept for a residual ``Add`` and zeroed through weights, or a layer whose units
are all masked) the masked units would be trained as zeros of a weight, not absent;
:func:`shrink_problem` says what compaction kept, ``True`` raises with it and ``"auto"`` trains
masked.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from dropnet_tf.compaction.compact import compact, plan_compaction
from dropnet_tf.core.backend import tf
from dropnet_tf.compaction.counting import count_flops
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import mask_layers
from dropnet_tf.core.statistics import UnitStatistics
from dropnet_tf.engines.statistics_pass import StatisticsPass
from dropnet_tf.engines.optimizers import weight_decay_of
from dropnet_tf.engines.training import Trainer

#: Optimizer classes whose update of a weight is exactly zero while its gradient and its slots
#: are zero (the slots start at zero every cycle): SGD (v ← μv − ηg), Adam/Adamax/Nadam
#: (m = v = 0 gives a zero step), RMSprop, Adagrad (accumulator + 0, step ηg/√a = 0).
EXACT_OPTIMIZERS = ("SGD", "Adam", "Adamax", "Nadam", "RMSprop", "Adagrad")

#: Layers that draw random numbers per unit in training.
RANDOM_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
                 "GaussianNoise", "AlphaDropout")

#: "auto" compacts a cycle only when the training multiply-accumulates it saves, over the fewest
#: epochs the cycle can run (``patience + 1`` under early stopping), exceed this: about the
#: work that building and tracing one compact model costs.  Measured on 2 shared cores
#: (bench/results/compacted_training_cpu.json): a build + trace took 9.3 s while masked
#: Model B trained at about 3e9 MACs per second (forward + backward counted as 3 forward
#: passes), i.e. about 3e10 MACs; on an idle machine both are faster, the ratio similar.
AUTO_MIN_SAVED_MACS = 3e10


class CompactTrainingError(ValueError):
    """Compacted training was asked for (``compact_training=True``) where it is not exact."""


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def inexact_settings(model, config, optimizer) -> list[str]:
    """Why compacted training would not be masked training's computation (empty: it is)."""
    reasons = []
    name = type(optimizer).__name__
    if name not in EXACT_OPTIMIZERS:
        reasons.append(f"optimizer {name} is not one of {EXACT_OPTIMIZERS}, whose step is zero for a zero gradient")
    decay, mode = weight_decay_of(optimizer)
    if decay:
        reasons.append(f"weight decay {decay!r} changes masked weights" + (" (coupled)" if mode == "coupled" else ""))
    for layer in _all_layers(model):
        try:
            layer_config = layer.get_config()
        except NotImplementedError:
            reasons.append(f"layer '{layer.name}' ({type(layer).__name__}) has no config to check")
            continue
        regularized = sorted(key for key, value in layer_config.items() if key.endswith("_regularizer") and value)
        if regularized:
            reasons.append(f"layer '{layer.name}' has {regularized}, which add gradient to masked weights")
        if type(layer).__name__ in RANDOM_LAYERS:
            reasons.append(f"layer '{layer.name}' ({type(layer).__name__}) draws a random number per unit, so the "
                           "compact model's draws differ")
    if list(config.callbacks):
        reasons.append("TrainingConfig.callbacks would see the compact model, not the masked one")
    return reasons


def shrink_problem(model) -> str | None:
    """What :func:`compact` keeps of the masked units under the current masks, or None.

    None means every masked unit is removed: no MaskLayer stays, no kept channel is zeroed
    through weights, and no layer lost all of its units.
    """
    plan = plan_compaction(model)
    kept = []
    for mask, reason in plan.kept_masks.items():
        kept.append(f"MaskLayer '{mask}' ({reason})")
    for layer, channels in plan.zeroed.items():
        kept.append(f"masked channels {sorted(int(c) for c in channels)} of '{layer}', zeroed in its weights")
    for space in plan.collapsed:
        kept.append(f"one unit of '{space}', all of whose units are masked")
    return "; ".join(kept) if kept else None


def probe_shrinkable(model) -> str | None:
    """:func:`shrink_problem` with one unit dropped per mask layer: does compaction remove masked
    units of this architecture at all?  The model's masks are restored afterwards."""
    layers = mask_layers(model)
    saved = [layer.get_mask() for layer in layers]
    try:
        for layer in layers:
            probe = np.ones(layer.units, np.float32)
            if layer.units > 1:
                probe[0] = 0.0
            layer.set_mask(probe)
        return shrink_problem(model)
    finally:
        for layer, mask in zip(layers, saved):
            layer.set_mask(mask)


def _index_maps(plan, small) -> dict:
    """``{layer name: [per weight: tuple of index arrays, one per sliced axis, or None]}``.

    Each entry says where the compact layer's weight sits in the full one: a Dense/Conv
    kernel on its last two axes (kept inputs, kept outputs), a bias and the per-channel
    weights of a channel-wise layer (BatchNormalization, PReLU) on their last axis.
    """
    maps = {}
    for layer in small.layers:
        if layer.name not in plan.kept or not layer.weights:
            continue
        node = plan.graph[layer.name]
        out = plan.kept[layer.name]
        entries = []
        for index, weight in enumerate(layer.weights):
            rank = len(weight.shape)
            if plan.kind[layer.name] == "producer" and index == 0:
                entries.append((rank - 2, (plan.kept[node.inbound[0]], out)))
            elif rank >= 1 and plan.channels[layer.name] != weight.shape[-1] and plan.kind[layer.name] != "producer":
                entries.append(None)  # not per-channel: copied whole
            elif rank >= 1:
                entries.append((rank - 1, (out,)))
            else:
                entries.append(None)
        maps[layer.name] = entries
    return maps


def _gather(value: np.ndarray, entry) -> np.ndarray:
    if entry is None:
        return value
    axis, indices = entry
    lead = (slice(None),) * axis
    return value[lead + np.ix_(*indices)] if len(indices) > 1 else value[lead + (indices[0],)]


def _scatter(value: np.ndarray, entry, part: np.ndarray) -> np.ndarray:
    if entry is None:
        return np.array(part)
    axis, indices = entry
    lead = (slice(None),) * axis
    out = np.array(value)
    if len(indices) > 1:
        out[lead + np.ix_(*indices)] = part
    else:
        out[lead + (indices[0],)] = part
    return out


def compact_config(config):
    """The config the compact model trains with: ``config``, but without XLA on a CPU under
    ``jit_compile="auto"``.

    Every cycle's compact model has new widths, so XLA would compile its training step anew
    each cycle; on the CPU that compile costs more than a cycle's steps gain from it (Model A
    300-100 at a third of its units, 3 epochs of 2000 samples, build to last evaluation, 2
    shared cores: 14.0 s and 7.5 s with XLA, 3.1 s and 1.7 s without, in two rounds).
    "auto" uses XLA on the CPU only for models without convolutions, so convolutional
    models (DropNet's B and C) train as before.  XLA
    fuses operations, which changes only the order of floating-point sums; an explicit
    ``jit_compile=True`` is kept.
    """
    if config.jit_compile == "auto" and not tf.config.list_logical_devices("GPU"):
        return dataclasses.replace(config, jit_compile=False)
    return config


def clone_optimizer(optimizer):
    """A new, unbuilt optimizer of the same class and config (fresh slots, for other variables)."""
    return type(optimizer).from_config(optimizer.get_config())


class CompactedCycle:
    """One cycle's compact model: built from the masked model as it is now, trained, written back.

    Args:
        model: the masked model, with the weights and masks this cycle starts from.
        config: the :class:`~dropnet_tf.engines.config.TrainingConfig` of the masked training.
        train: the training ``(x, y)``.
        optimizer: the masked model's optimizer (its class, config and iteration count are
            copied; its slots start at zero, as every DropNet cycle's do).

    Raises:
        CompactTrainingError: compaction keeps masked units (see :func:`shrink_problem`).
    """

    def __init__(self, model, config, train, optimizer):
        problem = shrink_problem(model)
        if problem is not None:
            raise CompactTrainingError(
                f"compact_training=True, but compact() cannot remove every masked unit of '{model.name}': it kept "
                f"{problem}. Use compact_training='auto' (trains masked there) or False."
            )
        self.model = model
        self._plan = plan = plan_compaction(model)
        self._statistics_pass = None  # built on first use, see statistics()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compact's warnings are the problems refused above
            self.small = compact(model)
        self._full = {layer.name: layer for layer in _all_layers(model)}
        self._maps = _index_maps(plan, self.small)
        # The compact model must hold exactly the gathered full weights: the maps are right.
        for layer in self.small.layers:
            for entry, weight, full in zip(self._maps.get(layer.name, ()), layer.weights,
                                           self._full[layer.name].weights if layer.name in self._full else ()):
                if not np.array_equal(_gather(full.numpy(), entry), weight.numpy()):
                    raise RuntimeError(f"Compacted weight '{weight.name}' of '{layer.name}' does not match its slice "
                                       "of the masked model.")
        self.optimizer = clone_optimizer(optimizer)
        self.trainer = Trainer(self.small, compact_config(config), train, engine="graph", optimizer=self.optimizer)
        iterations = getattr(optimizer, "iterations", None)
        if iterations is not None:
            self.optimizer.iterations.assign(iterations)  # a learning-rate schedule continues where it is

    def fit(self, validation=None, seed: int = 0, callbacks=()) -> dict:
        """Train the compact model (early stopping restores its best epoch), then write back.

        ``callbacks`` see the compact model: pass only ones that read logs, not weights."""
        history = self.trainer.fit(validation, seed=seed, callbacks=callbacks)
        self.write_back()
        return history

    def write_back(self) -> None:
        """Scatter the compact weights into the masked model's kept rows, columns and filters."""
        for layer in self.small.layers:
            if layer.name not in self._maps:
                continue
            for entry, weight, full in zip(self._maps[layer.name], layer.weights, self._full[layer.name].weights):
                full.assign(_scatter(full.numpy(), entry, weight.numpy()))

    def evaluate(self, data, batch_size: int | None = None) -> dict:
        """Loss and top-1 accuracy of the compact model (the masked model's function)."""
        return self.trainer.evaluate(data, batch_size=batch_size)

    def unit_tensors(self) -> dict | None:
        """``{mask layer of the masked model: (tensor of the compact model, unit indices)}``, or None.

        A mask layer's output is, on its active units, the output of the layer it follows
        (multiplied by 1), which the compact model computes under the same name for exactly
        the units compaction kept.  None where that does not hold for some mask layer: the
        kept units are not exactly its active ones (e.g. ``channel_multiple`` padding), or
        its source layer is not one plain layer of the compact model.
        """
        plan, found = self._plan, {}
        names = {layer.name for layer in self.small.layers}
        for layer in mask_layers(self.model):
            source = plan.graph[layer.name].inbound[0]
            while source not in names and isinstance(plan.graph[source].layer, MaskLayer):
                source = plan.graph[source].inbound[0]  # a removed mask passes its input through
            kept = np.asarray(plan.kept[layer.name])
            if source not in names or not np.array_equal(kept, np.flatnonzero(layer.get_mask() > 0)):
                return None
            try:
                tensor = self.small.get_layer(source).output
            except (AttributeError, ValueError):  # a layer called more than once has no single output
                return None
            if int(tensor.shape[-1]) != kept.size:
                return None
            found[layer.name] = (tensor, kept)
        return found

    def statistics(self, x, y, loss, batch_size: int = 1024):
        """``(scores, statistics)`` of the masked model over (x, y), from the compact model's pass.

        What :class:`~dropnet_tf.engines.statistics_pass.StatisticsPass` gives on the masked
        model (DropNet, Tan & Motani ICML 2020, Section 2: E(a_i) = (1/t) Σ_j |V(a_i | x_j)|,
        averaged over a filter's positions; APoZ), read from the compact model: the active
        units' sums come from its layers (:meth:`unit_tensors`) and are put back at their
        indices in the masked model's mask layers.  A masked unit's output is exactly 0 in
        the masked model, so its E is 0 and its APoZ 1; it gets those values here too.
        Selection never picks a masked unit (it considers active units only), but the values
        stay the masked model's, finite and exact, so the scores of every metric (and any
        scorer reading all units) are the masked path's up to the order of sums.  None when
        :meth:`unit_tensors` is None (the caller runs the masked model's pass).
        """
        units = self.unit_tensors()
        if units is None:
            return None
        if self._statistics_pass is None:
            # Run once per compact model: eagerly, without a trace (Model B, 2000 samples, CPU
            # time of the call with its trace 0.20-0.88 s, eagerly 0.13-0.81 s at 7-51 filters).
            self._statistics_pass = StatisticsPass(self.small, loss, {name: t for name, (t, _) in units.items()},
                                                   traced=False)
        scores, small = self._statistics_pass(x, y, batch_size=batch_size)
        mean_abs, apoz = {}, {}
        for layer in mask_layers(self.model):
            kept = units[layer.name][1]
            mean_abs[layer.name] = np.zeros(layer.units, np.float64)
            mean_abs[layer.name][kept] = small.mean_abs[layer.name]
            apoz[layer.name] = np.ones(layer.units, np.float64)
            apoz[layer.name][kept] = small.apoz[layer.name]
        return scores, UnitStatistics(mean_abs=mean_abs, apoz=apoz, num_samples=small.num_samples)


def saved_macs_bound(model, small, config, samples: int) -> float:
    """Training MACs compacting saves in a cycle, at least: forward + backward (3 forward passes)
    over ``samples`` for the fewest epochs the cycle runs (early stopping: ``patience + 1``)."""
    epochs = config.max_epochs
    if config.iterations is not None:
        epochs = config.iterations / max(1, math.ceil(samples / config.batch_size))
    elif config.early_stopping:
        epochs = min(epochs, config.patience + 1)
    full = count_flops(model)
    reduced = full if small is None else count_flops(small)
    return 3.0 * (full - reduced) * samples * epochs


def has_masked_units(model) -> bool:
    return any(float(np.min(layer.get_mask())) == 0.0 for layer in mask_layers(model))


def check_exact(mode, model, config, optimizer) -> str | None:
    """Once per run: why compacted training cannot be used for this model and config, or None.

    ``mode`` True raises :class:`CompactTrainingError` with the reasons (settings of
    :func:`inexact_settings`, or an architecture :func:`probe_shrinkable` finds compaction
    cannot shrink); "auto" returns them (and trains masked); False returns None.
    """
    if mode is False:
        return None
    reasons = inexact_settings(model, config, optimizer) + _unmapped_layers(model)
    try:
        problem = probe_shrinkable(model)
    except (TypeError, NotImplementedError, ValueError) as error:  # e.g. a subclassed or nested model
        reasons.append(f"compact() does not take this model ({error})")
    else:
        if problem is not None:
            reasons.append(f"compact() cannot remove masked units of this model: it kept {problem}")
    if reasons and mode is True:
        raise CompactTrainingError(
            "compact_training=True, but compacted training would not be masked training's computation: "
            + "; ".join(reasons) + ". Use compact_training='auto' (trains masked there) or False."
        )
    return "; ".join(reasons) or None


def _unmapped_layers(model) -> list[str]:
    """Layers whose compact weights :func:`_index_maps` cannot write back (and shared group masks,
    whose statistics sum over several places), so the cycle trains the masked model."""
    from dropnet_tf.core.layers import mask_outputs

    reasons = []
    kinds = sorted({type(layer).__name__ for layer in _all_layers(model)} & {"DepthwiseConv2D", "SeparableConv2D"})
    if kinds:
        reasons.append(f"compacted training does not write {kinds} weights back yet")
    if any(len(mask_outputs(layer, model)) > 1 for layer in mask_layers(model)):
        reasons.append("dependency-group masks (one MaskLayer called at several places) are trained masked")
    return reasons


def compacted_cycle(mode, model, config, train, optimizer) -> CompactedCycle | None:
    """This cycle's :class:`CompactedCycle`, or None to train the masked model.

    After :func:`check_exact` passed: False never compacts; every mode trains masked while no
    unit is masked (nothing to remove); True compacts every other cycle (and raises where
    compaction keeps masked units); "auto" compacts when compaction removes every masked unit
    and :func:`saved_macs_bound` exceeds :data:`AUTO_MIN_SAVED_MACS`.
    """
    if mode is False or not has_masked_units(model):
        return None
    samples = len(train[0])
    if mode == "auto":
        if saved_macs_bound(model, None, config, samples) < AUTO_MIN_SAVED_MACS:
            return None  # even removing everything would not pay for the build
        if shrink_problem(model) is not None:
            return None
    cycle = CompactedCycle(model, config, train, optimizer)
    if mode == "auto" and saved_macs_bound(model, cycle.small, config, samples) < AUTO_MIN_SAVED_MACS:
        return None
    return cycle


__all__ = [
    "AUTO_MIN_SAVED_MACS", "CompactTrainingError", "CompactedCycle", "EXACT_OPTIMIZERS",
    "RANDOM_LAYERS", "check_exact", "clone_optimizer", "compact_config", "compacted_cycle",
    "has_masked_units", "inexact_settings",
    "probe_shrinkable", "saved_macs_bound", "shrink_problem",
]
