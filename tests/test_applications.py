"""compaction.groups (dependency groups) with core.masking.add_masks(groups=True), core.statistics and compact,
on every keras.applications family (issue 26 point 1) and on a hand-built model whose groups are worked out by hand.

The references are Keras' own forward passes: the masked model (a MaskLayer multiplies by 0/1,
nothing of compaction involved) against the compacted one, the plain model against the masked
one with all masks at 1, numpy means over the tensors a group's mask is called on, and the
widths of the compacted layers read from Keras.
"""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import KERAS_MAJOR, keras
from dropnet_tf.compaction import compact
from dropnet_tf.compaction.groups import dependency_groups, flatten_model
from dropnet_tf.core.masking import add_masks, get_masks, mask_layers, random_masks, set_masks
from dropnet_tf.core.statistics import collect_statistics

pytestmark = pytest.mark.skipif(KERAS_MAJOR < 3, reason="dependency groups read Keras 3 configs")

A = keras.applications

# (constructor, keyword arguments, input size, slow): the smallest member of each family at the
# smallest input it takes; the slow ones are the families whose graphs take most of a minute to
# rebuild on a busy 2-core machine, and larger members.
FAMILIES = [
    ("VGG16", {}, 32, False),
    ("MobileNet", {"alpha": 0.25}, 32, True),
    ("MobileNetV2", {"alpha": 0.35}, 32, False),
    ("MobileNetV3Small", {"alpha": 0.75}, 32, False),
    ("ConvNeXtTiny", {}, 32, False),
    ("EfficientNetB0", {}, 32, False),
    ("ResNet50", {}, 32, True),
    ("ResNet50V2", {}, 32, True),
    ("Xception", {}, 71, True),
    ("EfficientNetV2B0", {}, 32, True),
    ("DenseNet121", {}, 32, True),
    ("InceptionV3", {}, 75, True),
    ("InceptionResNetV2", {}, 75, True),
    ("NASNetMobile", {}, 32, True),
    ("MobileNetV3Large", {}, 32, True),
    ("VGG19", {}, 32, True),
    ("ResNet101", {}, 32, True),
    ("EfficientNetB1", {}, 32, True),
    ("DenseNet169", {}, 32, True),
    ("ConvNeXtSmall", {}, 32, True),
]


def _family_params():
    for name, kwargs, size, slow in FAMILIES:
        marks = [pytest.mark.slow] if slow else []
        yield pytest.param(name, kwargs, size, id=name, marks=marks)


def _build(name, kwargs, size):
    keras.utils.set_random_seed(0)
    model = getattr(A, name)(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None,
                             **kwargs)
    for layer in model.layers:
        if type(layer).__name__ == "LayerScale":
            # ConvNeXt starts its residual branches at scale 1e-6, where no mask changes the
            # output measurably; a trained network's scales are of order 1.
            layer.set_weights([np.ones_like(w) for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("name, kwargs, size", list(_family_params()))
def test_family_masks_compact_exactly_and_small(name, kwargs, size):
    model = _build(name, kwargs, size)
    x = np.random.default_rng(1).uniform(0.0, 255.0, (2, size, size, 3)).astype("float32")
    masked = add_masks(model, groups=True)
    groups = masked.dependency_groups.groups
    layers = mask_layers(masked)
    assert layers and sorted(layer.name for layer in layers) == sorted(group.mask for group in groups)
    # All ones: the masked model is the plain model's function.
    plain_out = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(masked(x)), plain_out, rtol=1e-5, atol=1e-5 * np.abs(plain_out).max())

    # The statistics of a group's one mask cover every place it is called: E|a| is the mean
    # over all its exits' tensors (masks at 1, so the tensor before each call is its output).
    widest = max(groups, key=lambda group: len(group.exits))
    statistics = collect_statistics(masked, x)
    assert sorted(statistics.mean_abs) == sorted(group.mask for group in groups)
    probe = keras.Model(masked.inputs, [masked.get_layer(exit).output for exit in widest.exits])
    tensors = probe(x)
    tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    flat = np.concatenate([np.abs(np.asarray(t, np.float64)).reshape(-1, widest.units) for t in tensors])
    # float32 activations summed in float64 in two orders: 1e-4 (a mean over one place only is off by far more)
    np.testing.assert_allclose(statistics.mean_abs[widest.mask], flat.mean(axis=0), rtol=1e-4, atol=1e-12)

    # 30 % of every group's units dropped at random: outputs equal, weights down by 20 % or more.
    masks = random_masks(masked, 0.3, seed=2)
    set_masks(masked, masks)
    reference = np.asarray(masked(x))
    assert np.abs(reference - plain_out).max() > 1e-3 * np.abs(plain_out).max()  # the masks do something
    small = compact(masked)
    assert not mask_layers(small)
    delta = np.abs(np.asarray(small(x)) - reference).max()
    assert delta <= 1e-5 * max(1.0, np.abs(reference).max()), delta
    removed = 1.0 - small.count_params() / model.count_params()
    assert removed >= 0.20, removed

    # A dropped unit left every layer of its group: each producer has as many filters / nodes
    # as the mask has ones, and a depthwise convolution in the group as many channels.
    for group in groups:
        kept = int(masks[group.mask].sum())
        for producer in group.producers:
            layer = small.get_layer(producer)
            assert (layer.units if isinstance(layer, keras.layers.Dense) else layer.filters) == kept, producer
        for member in group.members:
            layer = small.get_layer(member) if member in {l.name for l in small.layers} else None
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                assert layer.kernel.shape[2] == kept, member


def _hand_model():
    """stem -> inverted residual with SE (hard sigmoid as keras.ops) -> nested Sequential ->
    Concatenate -> head.

    Groups, worked out by hand:
      stem conv s (8) and project conv p (8): tied by Add(relu_s, bn_p).  Read from outside at
        'relu_s' (by expand conv e) and at 'res_add' (by the nested model's conv n and by the
        Concatenate, whose readers, a ReLU and conv h, keep a zero channel zero): exits
        'relu_s' and 'res_add'.
      expand conv e (16), the depthwise conv and SE expand conv g: tied by the depthwise conv and
        by Multiply; exits 'se_pool' (read by SE reduce conv r) and 'se_mul' (read by p).
      SE reduce conv r (4): exit 'se_relu' (read by g).
      nested conv n (6): exit 'n_relu', read by the Concatenate (whose readers are a relu and a
        conv, both keeping zeros zero).
      head conv h (12): read by GlobalAveragePooling then Dense: exit 'gap'.
      Dense 'logits': the model output, pinned.
    """
    inputs = keras.Input((8, 8, 3), name="x")
    s = keras.layers.Conv2D(8, 3, padding="same", name="s")(inputs)
    s = keras.layers.BatchNormalization(name="bn_s")(s)
    s = keras.layers.ReLU(name="relu_s")(s)
    e = keras.layers.Conv2D(16, 1, name="e")(s)
    e = keras.layers.BatchNormalization(name="bn_e")(e)
    e = keras.layers.ReLU(6.0, name="relu_e")(e)
    d = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(e)
    d = keras.layers.BatchNormalization(name="bn_dw")(d)
    d = keras.layers.Activation("hard_silu", name="act_dw")(d)
    q = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(d)
    q = keras.layers.Conv2D(4, 1, name="r")(q)
    q = keras.layers.ReLU(name="se_relu")(q)
    q = keras.layers.Conv2D(16, 1, name="g")(q)
    q = keras.layers.ReLU(6.0, name="hs_relu")(q + 3.0) * (1.0 / 6.0)  # keras.ops nodes
    d = keras.layers.Multiply(name="se_mul")([d, q])
    p = keras.layers.Conv2D(8, 1, name="p")(d)
    p = keras.layers.BatchNormalization(name="bn_p")(p)
    a = keras.layers.Add(name="res_add")([s, p])
    nested = keras.Sequential([keras.Input((8, 8, 8)), keras.layers.Conv2D(6, 1, name="n"),
                               keras.layers.ReLU(name="n_relu")], name="nested")
    n = nested(a)
    c = keras.layers.Concatenate(name="cat")([a, n])
    c = keras.layers.ReLU(name="relu_cat")(c)
    h = keras.layers.Conv2D(12, 1, activation="relu", name="h")(c)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = keras.layers.Dense(5, name="logits")(h)
    keras.utils.set_random_seed(3)
    model = keras.Model(inputs, outputs)
    # Non-trivial BatchNormalization statistics, so a zero channel does not stay zero through it.
    rng = np.random.default_rng(4)
    for layer in model.layers + nested.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def test_hand_built_groups_are_the_hand_worked_ones():
    model = _hand_model()
    report = dependency_groups(model)
    found = {group.mask: (group.units, group.producers, group.exits) for group in report.groups}
    assert found == {
        "s_mask": (8, ["s", "p"], ["relu_s", "res_add"]),
        "e_mask": (16, ["e", "g"], ["se_pool", "se_mul"]),
        "r_mask": (4, ["r"], ["se_relu"]),
        "n_mask": (6, ["n"], ["n_relu"]),
        "h_mask": (12, ["h"], ["gap"]),
    }
    assert report.pinned == {"logits": "it reaches the model output 'logits'"}


@pytest.mark.parametrize("seed", [0, 1])
def test_hand_built_model_compacts_exactly_and_removes_every_copy(seed):
    model = _hand_model()
    x = np.random.default_rng(5).normal(size=(3, 8, 8, 3)).astype("float32")
    masked = add_masks(model, groups=True)
    np.testing.assert_allclose(np.asarray(masked(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)
    # One mask per group, called once per exit.
    calls = {layer.name: len(layer._inbound_nodes) for layer in mask_layers(masked)}
    assert calls == {"s_mask": 2, "e_mask": 2, "r_mask": 1, "n_mask": 1, "h_mask": 1}
    masks = random_masks(masked, 0.4, seed)
    masks["s_mask"][:2] = 0.0  # some stem channels dropped in both the Add's branches and the Concatenate
    set_masks(masked, masks)
    reference = np.asarray(masked(x))
    assert np.abs(reference - np.asarray(model(x))).max() > 1e-3
    small = compact(masked)
    np.testing.assert_allclose(np.asarray(small(x)), reference, rtol=1e-5, atol=1e-5)
    kept = {name: int(mask.sum()) for name, mask in masks.items()}
    widths = {
        "s": small.get_layer("s").filters, "p": small.get_layer("p").filters,
        "e": small.get_layer("e").filters, "g": small.get_layer("g").filters,
        "dw": small.get_layer("dw").kernel.shape[2], "r": small.get_layer("r").filters,
        "n": small.get_layer("n").filters, "h": small.get_layer("h").filters,
        "cat": small.get_layer("cat").output.shape[-1],
    }
    assert widths == {
        "s": kept["s_mask"], "p": kept["s_mask"], "e": kept["e_mask"], "g": kept["e_mask"], "dw": kept["e_mask"],
        "r": kept["r_mask"], "n": kept["n_mask"], "h": kept["h_mask"], "cat": kept["s_mask"] + kept["n_mask"],
    }


def test_flatten_model_inlines_nested_models_with_their_weights():
    model = _hand_model()
    flat = flatten_model(model)
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    assert {"n", "n_relu"} <= {layer.name for layer in flat.layers}
    np.testing.assert_array_equal(flat.get_layer("n").get_weights()[0], model.get_layer("nested").get_layer("n").get_weights()[0])
    x = np.random.default_rng(6).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)


def test_groups_refuse_what_mixes_channels_with_the_layer_and_reason():
    inputs = keras.Input((6, 6, 3))
    a = keras.layers.Conv2D(4, 1, name="a")(inputs)
    b = keras.layers.LayerNormalization(name="ln")(a)
    c = keras.layers.Conv2D(8, 3, groups=2, name="grouped")(b)
    d = keras.layers.Conv2D(4, 1, name="d")(c)
    out = keras.layers.Dense(3, name="out")(keras.layers.GlobalAveragePooling2D()(d))
    report = dependency_groups(keras.Model(inputs, out))
    assert report.pinned["a"] == (
        "'ln' (LayerNormalization) reads it: it normalises over all channels, so removing a channel changes every output")
    assert report.pinned["grouped"].startswith(
        "it is written by 'grouped' (Conv2D): a grouped convolution (groups=2) ties input and output channels group-wise")
    assert [group.mask for group in report.groups] == ["d_mask"]


def test_one_dropnet_cycle_on_a_grouped_model():
    """iterative_prune's statistics, selection and training run on shared group masks, and a
    unit the cycle drops is zero at every place its group is read."""
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.dropnet.iterative import iterative_prune

    masked = add_masks(_hand_model(), groups=True)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(48, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 5, 48)
    data = ((x[:32], y[:32]), (x[32:40], y[32:40]), (x[40:], y[40:]))
    records = iterative_prune(masked, data, "minimum_layer", fraction=0.3, max_cycles=2, verbose=0,
                              training=TrainingConfig(max_epochs=1, patience=1, batch_size=8))
    assert len(records) == 2
    masks = get_masks(masked)
    for name, mask in masks.items():
        assert records[1]["units_per_layer"][name] == int(mask.sum()) < mask.size, name
    # e_mask's group is read by SE reduce conv r (through the pool) and by project conv p.
    dropped = np.flatnonzero(masks["e_mask"] == 0)
    probe = keras.Model(masked.inputs, [masked.get_layer("r").input, masked.get_layer("p").input])
    at_r, at_p = (np.asarray(t) for t in probe(x[:4]))
    assert np.all(at_r[..., dropped] == 0) and np.all(at_p[..., dropped] == 0)
    assert np.abs(at_p[..., masks["e_mask"] == 1]).max() > 0
    small = compact(masked)
    np.testing.assert_allclose(np.asarray(small(x[:4])), np.asarray(masked(x[:4])), rtol=1e-5, atol=1e-5)
    assert small.get_layer("e").filters == small.get_layer("g").filters == int(masks["e_mask"].sum())


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, size", [
    ("MobileNetV3Small", {"alpha": 0.75}, 32), ("EfficientNetB0", {}, 32), ("ConvNeXtTiny", {}, 32),
])
def test_dropnet_cycles_on_a_family(name, kwargs, size):
    """Two DropNet cycles (train, score, drop 30 % of every group, train) on a family's smallest
    member, then compact: the cycle's masks are honoured exactly."""
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.dropnet.iterative import iterative_prune

    masked = add_masks(_build(name, kwargs, size), groups=True)
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 255, (40, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, 40)
    data = ((x[:24], y[:24]), (x[24:32], y[24:32]), (x[32:], y[32:]))
    records = iterative_prune(masked, data, "minimum_layer", fraction=0.3, max_cycles=2, verbose=0,
                              training=TrainingConfig(max_epochs=1, patience=1, batch_size=8, optimizer="adam"))
    assert len(records) == 2 and records[1]["fraction_remaining"] < 0.8
    masks = get_masks(masked)
    small = compact(masked)
    reference = np.asarray(masked(x[:2]))
    assert np.abs(np.asarray(small(x[:2])) - reference).max() <= 1e-5 * max(1.0, np.abs(reference).max())
    for group in masked.dependency_groups.groups:
        for producer in group.producers:
            layer = small.get_layer(producer)
            assert (layer.units if isinstance(layer, keras.layers.Dense) else layer.filters) == masks[group.mask].sum()
