"""Compacted training (dropnet_tf.compaction.training): the compact model trains what the masked one does.

The reference is always the masked model trained by the existing path (``Trainer`` on the
full model with its MaskLayers), from the same θ0, seed and sample order; the weights are
compared to a numpy snapshot of θ0, and the written-back model's outputs to the compact
model's by calling both.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.compaction import training as compact_training
from dropnet_tf.compaction.training import CompactedCycle, CompactTrainingError
from dropnet_tf.core.backend import keras
from dropnet_tf.core.masking import get_masks, set_masks
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.engines.optimizers import make_optimizer
from dropnet_tf.engines.training import Trainer
from dropnet_tf.dropnet.iterative import IterativePruner
from dropnet_tf.models import model_a, model_b, model_c

RNG = np.random.default_rng(0)


def _images(n, shape, classes=10, seed=1):
    """Class-dependent blobs plus noise: learnable in a few steps, so losses move."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes,) + shape).astype("float32")
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.normal(size=(n,) + shape).astype("float32")
    return x.astype("float32"), y.astype("int64")


SHAPES = {"A": (10, 10, 1), "B": (12, 12, 1), "C": (16, 16, 3)}


def _build(which, seed=0):
    keras.utils.set_random_seed(seed)
    shape = SHAPES[which]
    if which == "A":
        return model_a((24, 16), input_shape=shape, seed=seed)
    if which == "B":
        return model_b((16, 24), input_shape=shape, seed=seed)
    return model_c((8, 16, 16, 24), dense_units=32, input_shape=shape, mask_dense=True, seed=seed)


def _some_masks(model, seed=0):
    """About 40 % of every mask layer's units dropped, at random."""
    rng = np.random.default_rng(seed)
    masks = {}
    for name, mask in get_masks(model).items():
        mask = np.ones_like(mask)
        mask[rng.choice(mask.size, int(0.4 * mask.size), replace=False)] = 0.0
        masks[name] = mask
    return masks


class _StepLosses(keras.callbacks.Callback):
    """The loss of every training step (steps_per_call=1: one batch hook per step)."""

    def __init__(self):
        super().__init__()
        self.losses = []
        self.val_losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])

    def on_epoch_end(self, epoch, logs=None):
        self.val_losses.append(logs.get("val_loss"))


def _masked_and_compact(which, config, train, validation, seed=3):
    """(masked model after masked training, its step losses, compacted cycle after training,
    its step losses, θ0 snapshot, masks): both from the same θ0, masks and seed."""
    masked = _build(which)
    masks = _some_masks(masked)
    set_masks(masked, masks)
    theta0 = [w.numpy().copy() for w in masked.weights]
    reference = _StepLosses()
    Trainer(masked, config, train).fit(validation, callbacks=[reference], seed=seed)

    full = _build(which)
    set_masks(full, masks)
    optimizer = make_optimizer(config)
    Trainer(full, config, train, optimizer=optimizer)  # compiled and built, as IterativePruner's model is
    cycle = CompactedCycle(full, config, train, optimizer)
    compacted = _StepLosses()
    cycle.trainer.fit(validation, callbacks=[compacted], seed=seed)
    cycle.write_back()
    return masked, reference, full, cycle, compacted, theta0, masks


@pytest.mark.both_keras
@pytest.mark.parametrize("which", ["A", "B", "C"])
def test_per_step_losses_weights_and_outputs_agree(which):
    """First 20 steps: losses within 1e-6; weights afterwards within 1e-5; masked units untouched."""
    train = _images(320, SHAPES[which])
    validation = _images(64, SHAPES[which], seed=2)
    config = TrainingConfig(max_epochs=1, batch_size=16, steps_per_call=1, learning_rate=0.05, jit_compile=False)
    masked, reference, full, cycle, compacted, theta0, masks = _masked_and_compact(which, config, train, validation)
    reference, compacted = reference.losses, compacted.losses

    assert len(reference) == len(compacted) == 20
    assert np.max(np.abs(np.array(reference) - np.array(compacted))) <= 1e-6
    assert np.ptp(reference) > 1e-2  # training moved: equal losses are not two frozen models

    # The compact model is smaller: every masked unit is gone.
    widths = {layer.name: layer.get_config().get("units", layer.get_config().get("filters")) for layer in cycle.small.layers
              if type(layer).__name__ in ("Dense", "Conv2D")}
    for name, mask in masks.items():
        assert widths[name[: -len("_mask")]] == int(mask.sum())

    moved = 0
    for after_masked, after_compact, start in zip(masked.weights, full.weights, theta0):
        a, b = after_masked.numpy(), after_compact.numpy()
        assert np.max(np.abs(a - b)) <= 1e-5, after_masked.name
        # Where masked training left a weight at θ0, compacted training did too (bit for bit),
        # and vice versa: the masked units' incoming and outgoing weights.
        np.testing.assert_array_equal(a == start, b == start)
        moved += int(np.sum(b != start))
    assert moved > 0
    x = validation[0][:32]
    np.testing.assert_allclose(full(x).numpy(), cycle.small(x).numpy(), atol=1e-6)


def test_masked_units_keep_theta0_and_kept_ones_move():
    """Model B: the masked filters' kernels, biases and the next layer's input channels stay θ0."""
    train = _images(160, SHAPES["B"])
    config = TrainingConfig(max_epochs=1, batch_size=16, learning_rate=0.05, jit_compile=False, early_stopping=False)
    _, _, full, _, _, theta0, masks = _masked_and_compact("B", config, train, None)
    names = [w.path if hasattr(w, "path") else w.name for w in full.weights]
    values = dict(zip(names, (w.numpy() for w in full.weights)))
    start = dict(zip(names, theta0))
    dropped_1 = np.flatnonzero(masks["conv_1_mask"] == 0)
    kept_1 = np.flatnonzero(masks["conv_1_mask"] == 1)
    kernel_1 = next(n for n in names if "conv_1" in n and "kernel" in n)
    kernel_2 = next(n for n in names if "conv_2" in n and "kernel" in n)
    np.testing.assert_array_equal(values[kernel_1][..., dropped_1], start[kernel_1][..., dropped_1])
    np.testing.assert_array_equal(values[kernel_2][:, :, dropped_1, :], start[kernel_2][:, :, dropped_1, :])
    assert np.all(values[kernel_1][..., kept_1] != start[kernel_1][..., kept_1])


def _multi_cycle(which, compact, init="original", cycles=3, results=None, **extra):
    shape = SHAPES[which]
    data = (_images(192, shape), _images(64, shape, seed=2), _images(64, shape, seed=3))
    training = TrainingConfig(max_epochs=3, patience=1, batch_size=16, learning_rate=0.05, jit_compile=False,
                              compact_training=compact, **extra)
    model = _build(which)
    pruner = IterativePruner(model, data, "minimum", fraction=0.3, max_cycles=cycles, init=init, seed=5,
                             training=training, verbose=0, results=results)
    return pruner.run(), pruner


@pytest.mark.slow
@pytest.mark.both_keras
@pytest.mark.parametrize("which,init", [("A", "original"), ("B", "random"), ("C", "original")])
def test_multi_cycle_runs_give_the_same_masks_epochs_and_scores(which, init):
    """Three cycles of Algorithm 1, masked vs compacted: same masks and epochs; scores to round-off.

    Tolerance: the per-step losses differ by ≤ 1e-6 (test above) and the weights by ≤ 1e-5
    after a cycle; a sample's top-1 class can only flip if its two largest outputs are that
    close, so accuracies may differ by at most one sample per split (1/64 here), and the
    mean losses by 1e-4 (bench/results/compacted_training_cpu.json shows the growth per
    step on Model B).
    """
    masked, _ = _multi_cycle(which, False, init)
    compacted, _ = _multi_cycle(which, True, init)
    assert [r["compact_training"] for r in masked] == [False] * 3
    assert [r["compact_training"] for r in compacted] == [False, True, True]  # cycle 0 has nothing masked
    assert [r["units_per_layer"] for r in masked] == [r["units_per_layer"] for r in compacted]
    assert [r["epochs"] for r in masked] == [r["epochs"] for r in compacted]
    assert masked[1]["units_per_layer"] != masked[0]["units_per_layer"]
    for a, b in zip(masked, compacted):
        for split in ("train", "val", "test"):
            assert abs(a[f"{split}_accuracy"] - b[f"{split}_accuracy"]) <= 1 / 64 + 1e-12
            assert abs(a[f"{split}_loss"] - b[f"{split}_loss"]) <= 1e-4


@pytest.mark.slow
def test_the_masks_of_every_cycle_are_identical_to_masked_training():
    """Model B: the actual masks (not only counts) of the next cycle agree."""
    _, masked = _multi_cycle("B", False, cycles=3)
    _, compacted = _multi_cycle("B", True, cycles=3)
    for name, mask in get_masks(masked.model).items():
        np.testing.assert_array_equal(get_masks(compacted.model)[name], mask)


def test_early_stopping_restores_the_compact_models_best_epoch():
    """The best epoch is not the last, and the written-back weights are that epoch's (as masked)."""
    train = _images(160, SHAPES["A"])
    validation = _images(64, SHAPES["A"], seed=9)
    config = TrainingConfig(max_epochs=8, patience=2, batch_size=16, learning_rate=0.6, jit_compile=False)
    masked, reference, full, _, compacted, _, _ = _masked_and_compact("A", config, train, validation)
    losses = compacted.val_losses
    best = int(np.argmin(losses))
    assert best < len(losses) - 1  # precondition: restoring matters
    assert len(losses) == len(reference.val_losses)
    np.testing.assert_allclose(losses, reference.val_losses, atol=1e-5)
    for a, b in zip(masked.weights, full.weights):
        assert np.max(np.abs(a.numpy() - b.numpy())) <= 1e-5


# ------------------------------------------------------------------------------ settings


def test_bad_value_is_refused():
    with pytest.raises(ValueError, match=r"compact_training must be True, False or 'auto', got 'yes'"):
        IterativePruner(_build("A"), (_images(32, SHAPES["A"]),) * 3, training=TrainingConfig(compact_training="yes"),
                        verbose=0)


@pytest.mark.parametrize("extra,match", [
    ({"weight_decay": 0.01}, r"weight decay 0\.01 changes masked weights"),
    ({"optimizer": "adamw"}, r"optimizer AdamW is not one of"),
    ({"callbacks": (keras.callbacks.Callback(),)}, r"TrainingConfig\.callbacks would see the compact model"),
])
def test_inexact_settings_are_refused_under_true_and_trained_masked_under_auto(extra, match):
    data = (_images(64, SHAPES["A"]), _images(32, SHAPES["A"], seed=2), _images(32, SHAPES["A"], seed=3))
    with pytest.raises(CompactTrainingError, match=match):
        IterativePruner(_build("A"), data, training=TrainingConfig(compact_training=True, **extra), verbose=0)
    pruner = IterativePruner(_build("A"), data, training=TrainingConfig(compact_training="auto", max_epochs=1, **extra),
                             fraction=0.5, max_cycles=2, verbose=0)
    assert pruner._compact_mode is False


def test_dropout_and_regularizers_are_refused():
    inputs = keras.Input((6,))
    from dropnet_tf.core.masking import add_masks

    hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer="l2", name="h")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.Dropout(0.5, name="drop")(hidden))
    model = add_masks(keras.Model(inputs, outputs))
    x = RNG.random((32, 6)).astype("float32")
    y = RNG.integers(0, 3, 32)
    with pytest.raises(CompactTrainingError, match=r"layer 'h' has \['kernel_regularizer'\].*layer 'drop' \(Dropout\)"):
        IterativePruner(model, ((x, y),) * 3, training=TrainingConfig(compact_training=True), verbose=0)


def test_a_model_compact_cannot_shrink_is_refused_saying_what_it_kept():
    """A Reshape (which compaction does not understand) reads the masked Dense: its channels stay."""
    from dropnet_tf.core.layers import MaskLayer

    inputs = keras.Input((6,))
    h = MaskLayer(name="h_mask")(keras.layers.Dense(8, activation="relu", name="h")(inputs))
    h = keras.layers.Reshape((2, 4), name="reshape")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.Flatten(name="flat")(h))
    model = keras.Model(inputs, outputs)
    x = RNG.random((32, 6)).astype("float32")
    y = RNG.integers(0, 3, 32)
    with pytest.raises(CompactTrainingError, match=r"it kept masked channels \[0\] of 'h', zeroed in its weights"):
        IterativePruner(model, ((x, y),) * 3, training=TrainingConfig(compact_training=True), verbose=0)


def test_auto_compacts_only_where_it_pays(monkeypatch):
    """Tiny model: below AUTO_MIN_SAVED_MACS, "auto" trains masked; with the bar at 0 it compacts."""
    assert TrainingConfig().compact_training == "auto"  # the default
    records, _ = _multi_cycle("A", "auto", cycles=2)
    assert [r["compact_training"] for r in records] == [False, False]
    monkeypatch.setattr(compact_training, "AUTO_MIN_SAVED_MACS", 0.0)
    records, _ = _multi_cycle("A", "auto", cycles=2)
    assert [r["compact_training"] for r in records] == [False, True]


# ------------------------------------------------------------------------------ statistics


def _numpy_statistics(model, masks, x, y):
    """Reference: E|a|, APoZ, mean loss and accuracy from one plain call of a probe of the
    masked model (its mask layers' outputs and predictions), reduced in numpy."""
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in masks] + [model.outputs[0]])
    outputs = [np.asarray(o, np.float64) for o in probe(x)]
    mean_abs, apoz = {}, {}
    for name, a in zip(masks, outputs[:-1]):
        axes = tuple(range(a.ndim - 1))
        mean_abs[name] = np.mean(np.abs(a), axis=axes)
        apoz[name] = np.mean(a == 0.0, axis=axes)
    probabilities = outputs[-1]
    loss = float(np.mean(-np.log(probabilities[np.arange(len(y)), y])))
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y))
    values_per_unit = {name: a.size // a.shape[-1] for name, a in zip(masks, outputs[:-1])}
    return mean_abs, apoz, loss, accuracy, values_per_unit


@pytest.mark.both_keras
@pytest.mark.parametrize("which", ["B", "C"])
def test_statistics_of_the_compact_model_are_the_masked_models(which):
    """E|a| and APoZ of every active unit within 1e-5 of the masked model's, at its own index;
    masked units at E = 0 and APoZ = 1 exactly, as the masked model gives; loss and accuracy alike."""
    x, y = _images(96, SHAPES[which])
    config = TrainingConfig(max_epochs=1, batch_size=16, learning_rate=0.05, jit_compile=False)
    model = _build(which)
    masks = _some_masks(model)
    set_masks(model, masks)
    optimizer = make_optimizer(config)
    Trainer(model, config, (x, y), optimizer=optimizer)
    cycle = CompactedCycle(model, config, (x, y), optimizer)
    scores, statistics = cycle.statistics(x, y, config.loss, batch_size=40)  # 3 batches, the last short

    mean_abs, apoz, loss, accuracy, values = _numpy_statistics(model, masks, x, y)
    assert list(statistics.mean_abs) == list(masks) and statistics.num_samples == 96
    for name, mask in masks.items():
        active = np.flatnonzero(mask > 0)
        # Precondition: the kept units are not the first ones, so a scatter to positions
        # 0..k-1 (the compact model's order) would put values on masked units.
        assert not np.array_equal(active, np.arange(active.size))
        assert np.ptp(mean_abs[name][active]) > 1e-3  # distinct values: a permutation would show
        np.testing.assert_allclose(statistics.mean_abs[name][active], mean_abs[name][active], rtol=0, atol=1e-5)
        # A pre-activation within round-off of 0 may land on either side: one value per unit.
        np.testing.assert_allclose(statistics.apoz[name][active], apoz[name][active], rtol=0,
                                   atol=1.0 / values[name] + 1e-12)
        assert np.any((apoz[name][active] > 0) & (apoz[name][active] < 1))  # some ReLU zeros, not only
        np.testing.assert_array_equal(statistics.mean_abs[name][mask == 0], 0.0)
        np.testing.assert_array_equal(statistics.apoz[name][mask == 0], 1.0)
        np.testing.assert_array_equal(mean_abs[name][mask == 0], 0.0)  # what the masked model gives
        np.testing.assert_array_equal(apoz[name][mask == 0], 1.0)
    assert scores["loss"] == pytest.approx(loss, abs=1e-5)
    assert scores["accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_statistics_fall_back_to_the_masked_model_when_units_are_padded():
    """channel_multiple padding keeps masked units in the compact model: no compact statistics."""
    x, y = _images(32, SHAPES["B"])
    config = TrainingConfig(max_epochs=1, batch_size=16, jit_compile=False)
    model = _build("B")
    set_masks(model, _some_masks(model))
    optimizer = make_optimizer(config)
    Trainer(model, config, (x, y), optimizer=optimizer)
    cycle = CompactedCycle(model, config, (x, y), optimizer)
    assert cycle.unit_tensors() is not None
    cycle._plan.kept["conv_1_mask"] = np.arange(16)  # as if padded back to every unit
    assert cycle.unit_tensors() is None
    assert cycle.statistics(x, y, config.loss) is None


def test_compacted_cycles_score_from_the_compact_model_and_keep_the_masked_runs_masks(tmp_path, monkeypatch):
    """Model B, two cycles: cycle 1 takes its statistics from the compact model, and the masks
    of every cycle (and of the next one, in the state file) equal masked training's."""
    from dropnet_tf.core.io import load_npz

    used = []
    original = CompactedCycle.statistics

    def counted(self, *args, **kwargs):
        found = original(self, *args, **kwargs)
        used.append(found is not None)
        return found

    monkeypatch.setattr(CompactedCycle, "statistics", counted)
    runs = {}
    for compact in (False, True):
        runs[compact] = _multi_cycle("B", compact, cycles=2, results=str(tmp_path / f"{compact}.jsonl"))
    assert used == [True]  # cycle 0 trains masked (nothing to compact)
    records = {compact: records for compact, (records, _) in runs.items()}
    assert [r["compact_training"] for r in records[True]] == [False, True]
    states = {compact: load_npz(next((tmp_path / f"{compact}.jsonl.state").iterdir())) for compact in runs}
    keys = sorted(k for k in states[False] if k.startswith("masks_"))
    assert {k[len("masks_"):len("masks_0000")] for k in keys} == {"0000", "0001", "0002"}
    assert sorted(k for k in states[True] if k.startswith("masks_")) == keys
    for key in keys:
        np.testing.assert_array_equal(states[True][key], states[False][key], err_msg=key)
    assert not np.array_equal(states[False]["masks_0002_conv_1_mask"], states[False]["masks_0001_conv_1_mask"])
    for a, b in zip(records[False], records[True]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4
        assert abs(a["train_accuracy"] - b["train_accuracy"]) <= 1 / 192 + 1e-12


def test_the_compact_model_skips_xla_on_the_cpu_under_auto_only():
    """A dense model under jit_compile="auto" is XLA-compiled masked (no convolutions) but its
    compact model, new each cycle, is not; an explicit True is kept."""
    from dropnet_tf.core.backend import tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("on a GPU 'auto' keeps XLA for the compact model too")
    x, y = _images(32, SHAPES["A"])
    for jit, expected in (("auto", False), (True, True)):
        config = TrainingConfig(max_epochs=1, batch_size=16, jit_compile=jit)
        model = _build("A")
        set_masks(model, _some_masks(model))
        optimizer = make_optimizer(config)
        masked = Trainer(model, config, (x, y), optimizer=optimizer)
        assert masked.config.jit_compile == jit  # the masked model's config is untouched
        cycle = CompactedCycle(model, config, (x, y), optimizer)
        assert cycle.trainer.config.jit_compile is expected
