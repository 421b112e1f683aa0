"""LayerPrune (Elkerdawy et al., ACCV 2020): models, blocks, block removal, imprinting, rankings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dropnet_tf import add_masks, get_masks, set_masks
from dropnet_tf.core.backend import keras
from dropnet_tf.models.foresight import cifar_resnet
from dropnet_tf.layerprune.blocks import (
    Block,
    blocks_after_removal,
    find_blocks,
    masks_by_block,
    remove_blocks,
    resnet_blocks,
    vgg_layers,
)
from dropnet_tf.layerprune.imprinting import imprinting_accuracies, imprinting_importance
from dropnet_tf.layerprune.layer_importance import (
    block_scores_from_filter_scores,
    iterative_block_ranking,
    rank_ensemble,
    spearman,
)
from dropnet_tf.models.layerprune import (
    VGG19_BN_CONFIG,
    cifar_resnet_layerprune,
    resnet56_layerprune,
    scaled_width,
    vgg19_bn,
)
from dropnet_tf.core.layers import MaskLayer

SMALL = (8, 8, 3)


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _randomise_batchnorm(model, rng) -> None:
    """Non-trivial BatchNorm statistics, so that inference-mode outputs are not a special case."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c), rng.uniform(0.5, 2.0, c)
            ])


def _resnet20(seed=0):
    model = cifar_resnet_layerprune(20, input_shape=SMALL, seed=seed)
    _randomise_batchnorm(model, np.random.default_rng(seed))
    return model


def _zero_residual(model, block_names) -> None:
    """Make each block's residual branch output exactly zero: bn2 gamma = beta = 0."""
    for name in block_names:
        bn = model.get_layer(f"{name}_bn2")
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([np.zeros_like(gamma), np.zeros_like(beta), mean, var])


# --------------------------------------------------------------------------- models


@pytest.mark.both_keras
def test_vgg19_bn_layers_and_parameter_count_by_hand():
    m = 1 / 16
    model = vgg19_bn(width_multiplier=m, num_classes=7, seed=1)
    widths = [scaled_width(w, m) for w in VGG19_BN_CONFIG if w != "M"]
    assert widths == [4, 4, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 32, 32, 32, 32]
    trainable, cin = 0, 3
    for w in widths:
        trainable += 9 * cin * w + 2 * w  # bias-free kernel, gamma, beta
        cin = w
    trainable += (cin + 1) * 7
    assert _trainable(model) == trainable
    assert model.count_params() == trainable + 2 * sum(widths)  # + moving mean / variance
    names = [layer.name for layer in model.layers]
    per_block = (2, 2, 4, 4, 4)
    expected = ["input"]
    for k, n in enumerate(per_block, start=1):
        for i in range(1, n + 1):
            expected += [f"block{k}_conv{i}", f"block{k}_bn{i}", f"block{k}_relu{i}"]
        expected.append(f"block{k}_pool")
    assert names == expected + ["avg_pool", "predictions"]
    assert not model.get_layer("block3_conv2").use_bias
    assert model.output_shape == (None, 7)
    with pytest.raises(ValueError, match="width_multiplier must be a positive number, got 0"):
        vgg19_bn(width_multiplier=0)
    with pytest.raises(ValueError, match="at least 32"):
        vgg19_bn(input_shape=(16, 16, 3))


def test_vgg19_bn_full_width_and_resnet56_counts():
    assert _trainable(vgg19_bn()) == 20_035_018
    resnet = resnet56_layerprune(input_shape=SMALL)
    assert _trainable(resnet) == 855_770  # SMALL input: the count does not depend on it
    assert not any(isinstance(layer, MaskLayer) for layer in resnet.layers)
    assert "block2_1_shortcut" in [layer.name for layer in resnet.layers]


@pytest.mark.both_keras
def test_cifar_resnet_layerprune_is_option_b_with_hand_count():
    model = cifar_resnet_layerprune(20, input_shape=SMALL, num_classes=10, seed=0)
    expected = 9 * 3 * 16 + 2 * 16
    cin = 16
    for f in (16, 32, 64):
        for b in range(3):
            expected += 9 * cin * f + 2 * f + 9 * f * f + 2 * f
            if cin != f:
                expected += cin * f + 2 * f  # 1x1 projection + its BN
            cin = f
    expected += 64 * 10 + 10
    assert _trainable(model) == expected
    reference = cifar_resnet(20, input_shape=SMALL, masked=False, shortcut="B")
    assert [layer.name for layer in model.layers] == [layer.name for layer in reference.layers]
    assert {type(layer).__name__ for layer in model.layers} <= {
        "InputLayer", "Conv2D", "BatchNormalization", "ReLU", "Add", "GlobalAveragePooling2D", "Dense"
    }


def test_models_train_a_few_steps():
    rng = np.random.default_rng(0)
    for model, shape in ((vgg19_bn(width_multiplier=1 / 16, seed=0), (32, 32, 3)), (_resnet20(), SMALL)):
        x = rng.normal(size=(16, *shape)).astype("float32")
        y = rng.integers(0, 10, 16)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
        before = model.get_layer("predictions").get_weights()[0].copy()
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert not np.allclose(before, model.get_layer("predictions").get_weights()[0])


# --------------------------------------------------------------------------- blocks


def test_resnet56_has_27_blocks_2_downsampling():
    blocks = resnet_blocks(resnet56_layerprune(input_shape=SMALL))
    assert [b.name for b in blocks] == [f"block{s}_{i}" for s in (1, 2, 3) for i in range(1, 10)]
    assert [b.name for b in blocks if b.downsampling] == ["block2_1", "block3_1"]
    assert blocks[0].input_layer == "conv1_relu"
    assert all(b.input_layer == a.output_layer for a, b in zip(blocks, blocks[1:]))


@pytest.mark.both_keras
def test_resnet_blocks_layers_and_masks_by_block():
    model = _resnet20()
    blocks = resnet_blocks(model)
    assert len(blocks) == 9 and [b.name for b in blocks if not b.removable] == ["block2_1", "block3_1"]
    p = "block1_2"
    assert blocks[1] == Block(
        p, "block1_1_relu", f"{p}_relu",
        tuple(f"{p}_{s}" for s in ("conv1", "bn1", "relu1", "conv2", "bn2", "add", "relu")), False,
    )
    assert {f"block2_1_shortcut", "block2_1_shortcut_bn"} <= set(blocks[3].layers)
    assert find_blocks(model) == blocks
    masked = add_masks(model)
    masked_blocks = resnet_blocks(masked)
    by_block = masks_by_block(masked, masked_blocks)
    assert sorted(by_block["block1_2"]) == ["block1_2_conv1_mask", "block1_2_conv2_mask"]
    assert sorted(by_block["block2_1"]) == ["block2_1_conv1_mask", "block2_1_conv2_mask", "block2_1_shortcut_mask"]
    with pytest.raises(ValueError, match="no residual block"):
        resnet_blocks(vgg19_bn(width_multiplier=1 / 16))


@pytest.mark.both_keras
def test_remove_blocks_equals_zeroed_residual_branch():
    model = _resnet20()
    x = np.random.default_rng(1).normal(size=(5, *SMALL)).astype("float32")
    removed = ["block1_2", "block1_3", "block3_3"]  # two consecutive, and the last block
    pruned = remove_blocks(model, removed)
    assert pruned is not model and pruned.output_shape == (None, 10)
    names = {layer.name for layer in pruned.layers}
    assert not any(n.startswith(("block1_2", "block1_3", "block3_3")) for n in names)
    assert len(model.layers) - len(pruned.layers) == 3 * 7
    # the projection of block2_1 now reads block1_1's output
    assert np.array_equal(pruned.get_layer("block2_2_conv1").get_weights()[0], model.get_layer("block2_2_conv1").get_weights()[0])
    got = pruned(x, training=False).numpy()
    _zero_residual(model, removed)  # relu(x + 0) == x because x is itself a ReLU output
    want = model(x, training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # and not trivially: removing a block with a live residual branch changes the output
    other = remove_blocks(model, ["block2_2"])(x, training=False).numpy()
    assert not np.allclose(other, want, atol=1e-4)


@pytest.mark.both_keras
def test_remove_blocks_refuses_downsampling_and_unknown():
    model = _resnet20()
    with pytest.raises(ValueError, match="block2_1.*downsampling"):
        remove_blocks(model, ["block1_2", "block2_1"])
    with pytest.raises(ValueError, match=r"Unknown block 'block9_9'.*block1_1"):
        remove_blocks(model, "block9_9")
    with pytest.raises(ValueError, match="names is empty: give at least one block to remove"):
        remove_blocks(model, [])
    custom = Block("odd", "conv1_relu", "block2_1_relu", ("block1_1_conv1", "block2_1_relu"), downsampling=False)
    with pytest.raises(ValueError, match="odd.*shape"):
        remove_blocks(model, "odd", blocks=[custom])


@pytest.mark.both_keras
def test_remove_blocks_with_masks_keeps_the_other_masks():
    model = add_masks(_resnet20())
    masks = get_masks(model)
    rng = np.random.default_rng(2)
    new = {name: (rng.random(m.shape) < 0.7).astype("float32") for name, m in masks.items()}
    set_masks(model, new)
    pruned = remove_blocks(model, "block1_2")
    kept = get_masks(pruned)
    assert set(kept) == {n for n in new if not n.startswith("block1_2_")}
    for name, value in kept.items():
        np.testing.assert_array_equal(value, new[name])
    x = rng.normal(size=(3, *SMALL)).astype("float32")
    got = pruned(x, training=False).numpy()
    _zero_residual(model, ["block1_2"])
    np.testing.assert_allclose(got, model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.both_keras
def test_vgg_layers_and_identity_layer_removal():
    model = vgg19_bn(width_multiplier=1 / 16, seed=3)
    _randomise_batchnorm(model, np.random.default_rng(3))
    layers = vgg_layers(model)
    assert len(layers) == 16 and find_blocks(model) == layers
    assert [b.name for b in layers if not b.removable] == [
        "block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1"
    ]
    unit = {b.name: b for b in layers}["block4_conv3"]
    assert unit.layers == ("block4_conv3", "block4_bn3", "block4_relu3")
    assert (unit.input_layer, unit.output_layer) == ("block4_relu2", "block4_relu3")
    # make block4_conv3 the identity: centre tap = I, BatchNorm = identity, ReLU of a ReLU output
    kernel = np.zeros((3, 3, 32, 32), "float32")
    kernel[1, 1] = np.eye(32)
    model.get_layer("block4_conv3").set_weights([kernel])
    eps = model.get_layer("block4_bn3").epsilon
    model.get_layer("block4_bn3").set_weights([np.ones(32), np.zeros(32), np.zeros(32), np.full(32, 1 - eps)])
    x = np.random.default_rng(4).normal(size=(4, 32, 32, 3)).astype("float32")
    pruned = remove_blocks(model, ["block4_conv3"])
    assert "block4_bn3" not in {layer.name for layer in pruned.layers}
    assert pruned.count_params() == model.count_params() - 9 * 32 * 32 - 4 * 32
    np.testing.assert_allclose(pruned(x, training=False).numpy(), model(x, training=False).numpy(), rtol=1e-4, atol=1e-6)
    two = remove_blocks(model, ["block5_conv1", "block5_conv2"])
    assert two(x, training=False).numpy().shape == (4, 10)
    with pytest.raises(ValueError, match="block4_conv1"):
        remove_blocks(model, "block4_conv1")


# --------------------------------------------------------------------------- imprinting


def _toy_imprinting_model():
    """b1 = identity 1x1 conv; b2 = left-minus-right difference split into ReLU(+d), ReLU(-d)."""
    inputs = keras.Input((2, 2, 1), name="input")
    b1 = keras.layers.Conv2D(1, 1, use_bias=False, name="b1_conv")
    x = b1(inputs)
    b2 = keras.layers.Conv2D(2, (1, 2), use_bias=False, name="b2_conv")
    x = keras.layers.ReLU(name="b2_relu")(b2(x))
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    model = keras.Model(inputs, outputs)
    b1.set_weights([np.ones((1, 1, 1, 1), "float32")])
    kernel = np.zeros((1, 2, 1, 2), "float32")
    kernel[0, :, 0, 0] = [1, -1]
    kernel[0, :, 0, 1] = [-1, 1]
    b2.set_weights([kernel])
    blocks = [
        Block("b1", "input", "b1_conv", ("b1_conv",)),
        Block("b2", "b1_conv", "b2_relu", ("b2_conv", "b2_relu"), downsampling=True),
    ]
    return model, blocks


def _toy_data(n, seed):
    """Class 0: columns (a, -a); class 1: (-a, a): zero spatial mean, opposite sign pattern."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    a = rng.uniform(0.5, 1.5, n).astype("float32")
    sign = np.where(y == 0, 1.0, -1.0).astype("float32")
    x = np.zeros((n, 2, 2, 1), "float32")
    x[:, :, 0, 0] = (sign * a)[:, None]
    x[:, :, 1, 0] = (-sign * a)[:, None]
    return x, y


@pytest.mark.both_keras
def test_imprinting_on_a_toy_model_with_known_answer():
    model, blocks = _toy_imprinting_model()
    x, y = _toy_data(20, 0)
    # input and b1: pooled features are exactly 0, every class ties, class 0 wins: 50 %
    np.testing.assert_array_equal(imprinting_accuracies(model, blocks, x, y, batch_size=8), [0.5, 0.5, 1.0])
    x_eval, y_eval = _toy_data(10, 1)
    y_eval = y_eval[::-1].copy()
    x_eval = x_eval[::-1].copy()
    acc = imprinting_accuracies(model, blocks, x, y, x_eval=x_eval, y_eval=y_eval, num_classes=3)
    np.testing.assert_array_equal(acc, [0.5, 0.5, 1.0])  # class 2 has no examples: never predicted
    assert imprinting_importance(model, blocks, x, keras.utils.to_categorical(y, 2)) == {"b1": 0.0, "b2": 0.5}
    with pytest.raises(ValueError, match="num_classes is 1"):
        imprinting_accuracies(model, blocks, x, y, num_classes=1)
    with pytest.raises(ValueError, match="expected 20 labels"):
        imprinting_accuracies(model, blocks, x, y[:5])
    with pytest.raises(ValueError, match="x_eval and y_eval"):
        imprinting_accuracies(model, blocks, x, y, x_eval=x)


def test_imprinting_matches_a_numpy_reference_on_resnet20():
    model = _resnet20()
    blocks = resnet_blocks(model)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(60, *SMALL)).astype("float32"), rng.integers(0, 4, 60)
    x_eval, y_eval = rng.normal(size=(40, *SMALL)).astype("float32"), rng.integers(0, 4, 40)
    got = imprinting_accuracies(model, blocks, x, y, x_eval=x_eval, y_eval=y_eval, batch_size=32)

    def normalise(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    names = ["conv1_relu"] + [b.output_layer for b in blocks]
    probe = keras.Model(model.inputs[0], [model.get_layer(name).output for name in names])
    train_maps = [np.asarray(t) for t in probe(x, training=False)]
    test_maps = [np.asarray(t) for t in probe(x_eval, training=False)]
    want = []
    for train_map, test_map in zip(train_maps, test_maps):
        train = normalise(train_map.mean(axis=(1, 2)))
        test = normalise(test_map.mean(axis=(1, 2)))
        weights = normalise(np.stack([train[y == c].mean(axis=0) for c in range(4)]))
        want.append(np.mean(np.argmax(test @ weights.T, axis=1) == y_eval))
    np.testing.assert_allclose(got, want)
    gains = imprinting_importance(model, blocks, x, y, x_eval=x_eval, y_eval=y_eval)
    np.testing.assert_allclose([gains[b.name] for b in blocks], np.diff(want), atol=1e-12)


# --------------------------------------------------------------------------- rankings


def test_spearman_against_scipy_and_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    rng = np.random.default_rng(6)
    for _ in range(20):
        a, b = rng.integers(0, 5, 12), rng.normal(size=12)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        spearman([1], [1])


def test_rank_ensemble_by_hand():
    importances = {
        "weight_norm": {"a": 0.1, "b": 0.5, "c": 0.3, "d": 0.3},  # ranks 1, 4, 2.5, 2.5
        "taylor": {"a": 9.0, "b": 1.0, "c": 2.0, "d": 3.0},  # ranks 4, 1, 2, 3
        "imprinting": {"a": -0.1, "b": 0.2, "c": 0.0, "d": 0.4},  # ranks 1, 3, 2, 4
    }
    assert rank_ensemble(importances) == pytest.approx({"a": 2.0, "b": 8 / 3, "c": 6.5 / 3, "d": 9.5 / 3})
    with pytest.raises(ValueError, match="missing \\['d'\\]"):
        rank_ensemble({"x": {"a": 1, "d": 2}, "y": {"a": 1}})
    with pytest.raises(ValueError, match="NaN"):
        rank_ensemble({"x": {"a": float("nan")}})


def test_block_scores_from_filter_scores_by_hand():
    scores = {"m1": [1.0, 3.0], "m2": [2.0, 4.0, 6.0], "m3": [5.0]}
    blocks = {"b1": ["m1", "m2"], "b2": ["m3"], "b3": []}
    assert block_scores_from_filter_scores(scores, blocks) == {"b1": 16 / 5, "b2": 5.0, "b3": float("-inf")}
    masks = {"m1": [0, 1], "m2": [1, 0, 0], "m3": [0]}
    assert block_scores_from_filter_scores(scores, blocks, masks) == {"b1": 2.5, "b2": float("-inf"), "b3": float("-inf")}
    with pytest.raises(ValueError, match="'m9'"):
        block_scores_from_filter_scores(scores, {"b": ["m9"]})
    with pytest.raises(ValueError, match="masks\\['m1'\\] has 3 entries"):
        block_scores_from_filter_scores(scores, {"b": ["m1"]}, {"m1": [1, 1, 1]})


def test_iterative_block_ranking_with_a_known_importance_function():
    model = _resnet20()
    blocks = resnet_blocks(model)
    order = [b.name for b in blocks]
    base = {"block1_1": 5, "block1_2": 1, "block1_3": 2, "block2_1": 0, "block2_2": 3,
            "block2_3": 4, "block3_1": 0, "block3_2": 6, "block3_3": 7}
    calls = []

    def importance(m, remaining):
        present = {layer.name for layer in m.layers}
        calls.append(([b.name for b in remaining], {b.name: b.input_layer for b in remaining}))
        assert all(f"{b.name}_add" in present for b in remaining)
        # a block whose predecessor was removed becomes 10 more important
        return {b.name: base[b.name] + (10 if i and f"{order[i - 1]}_add" not in present else 0)
                for i, b in ((order.index(b.name), b) for b in remaining)}

    records = iterative_block_ranking(model, blocks, importance, 3)
    assert len(calls) == 4
    assert [r["removed"] for r in records] == ["block1_2", "block2_2", "block1_1"]
    assert records[-1]["iterative_removed"] == ["block1_2", "block2_2", "block1_1"]
    assert records[-1]["one_shot_removed"] == ["block1_2", "block1_3", "block2_2"]
    assert calls[1][1]["block1_3"] == "block1_1_relu"  # rewired around the removed block
    assert calls[3][1]["block1_3"] == "conv1_relu"
    still = ["block1_1", "block1_3", "block2_2", "block2_3", "block3_2", "block3_3"]
    after = records[0]["scores"]
    assert after["block1_3"] == 12
    assert records[0]["spearman"] == pytest.approx(stats.spearmanr([base[b] for b in still], [after[b] for b in still])[0])
    final = records[-1]["model"]
    assert final(np.zeros((2, *SMALL), "float32"), training=False).shape == (2, 10)
    assert not any(layer.name.startswith(("block1_1_", "block1_2_", "block2_2_")) for layer in final.layers)
    # downsampling blocks are never removed, even with the lowest score
    assert "block2_1" not in sum((r["iterative_removed"] for r in records), [])
    # ties (here: every block scores the same) go to the block earliest in network order,
    # and a constant ranking has no rank correlation
    tied = iterative_block_ranking(model, blocks, lambda m, b: {block.name: 0.0 for block in b}, 2)
    assert [r["removed"] for r in tied] == ["block1_1", "block1_2"]
    assert tied[-1]["one_shot_removed"] == ["block1_1", "block1_2"]
    assert all(np.isnan(r["spearman"]) for r in tied)
    with pytest.raises(ValueError, match=r"n_remove must be an integer from 1 to the number of removable blocks \(7\), got 8"):
        iterative_block_ranking(model, blocks, importance, 8)
    with pytest.raises(ValueError, match=r"importance_fn gave no score to blocks \['block1_1', 'block1_2', .*'block3_3'\] at step 0"):
        iterative_block_ranking(model, blocks, lambda m, b: {}, 1)


def _numpy_imprinting_accuracy(features, y, num_classes):
    """Imprint class weights on ``features`` and classify the same examples, in plain numpy."""
    pooled = features.mean(axis=(1, 2)).astype(np.float64)
    embeddings = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    weights = np.stack([embeddings[y == c].mean(axis=0) for c in range(num_classes)])
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    return float(np.mean(np.argmax(embeddings @ weights.T, axis=1) == y))


def _hand_spearman(a, b):
    """Pearson correlation of average ranks, ranks counted directly (no sorting, no SciPy)."""
    def ranks(values):
        values = np.asarray(values, dtype=np.float64)
        return np.array([np.sum(values < v) + (np.sum(values == v) + 1) / 2 for v in values])
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def test_hand_spearman_helper_on_known_pairs():
    # d = (0, 0, 1, -1, 0): 1 - 6 * 2 / (5 * 24) = 0.9; reversed order: -1
    assert _hand_spearman([1, 2, 3, 4, 5], [10, 20, 40, 30, 50]) == pytest.approx(0.9)
    assert _hand_spearman([3, 1, 2], [0.1, 0.3, 0.2]) == pytest.approx(-1.0)


def test_iterative_ranking_with_imprinting_matches_a_reference_by_zeroed_branches():
    """Every step of imprinting-driven iterative ranking against an independent reference.

    The reference never calls the library's imprinting, removal or ranking: a removed block
    is simulated by zeroing its residual branch in the original model (relu(x + 0) = x, as in
    test_remove_blocks_equals_zeroed_residual_branch), the imprinted classifier is computed in
    numpy on a plain Keras probe of every block boundary, the least important removable block
    (ties: earliest) is picked by hand and Spearman is counted from hand-made average ranks.
    """
    seed, n_remove, classes = 9, 3, 3
    model = _resnet20(seed=seed)
    blocks = resnet_blocks(model)
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(96, *SMALL)).astype("float32"), rng.integers(0, classes, 96)
    records = iterative_block_ranking(
        model, blocks, lambda m, b: imprinting_importance(m, b, x, y, num_classes=classes), n_remove
    )

    reference = _resnet20(seed=seed)  # same weights, untouched by the library
    points = ["conv1_relu"] + [b.output_layer for b in blocks]
    probe = keras.Model(reference.inputs[0], [reference.get_layer(name).output for name in points])

    def reference_scores(removed):
        _zero_residual(reference, removed)
        maps = [np.asarray(t) for t in probe(x, training=False)]
        accuracy = {name: _numpy_imprinting_accuracy(m, y, classes) for name, m in zip(points, maps)}
        # a removed block is the identity, so a block's original input point carries the
        # accuracy of whatever feeds it after rewiring
        return {b.name: accuracy[b.output_layer] - accuracy[b.input_layer] for b in blocks if b.name not in removed}

    one_shot = reference_scores([])
    removable = [b.name for b in blocks if b.removable]
    one_shot_order = sorted(removable, key=lambda name: (one_shot[name], removable.index(name)))
    removed, scores = [], one_shot
    for step, record in enumerate(records, start=1):
        candidates = [name for name in removable if name not in removed]
        victim = min(candidates, key=lambda name: (scores[name], candidates.index(name)))
        removed.append(victim)
        scores = reference_scores(removed)
        assert record["removed"] == victim, f"step {step}"
        assert record["iterative_removed"] == removed
        assert record["one_shot_removed"] == one_shot_order[:step]
        assert set(record["scores"]) == set(scores)
        for name, value in scores.items():
            assert record["scores"][name] == pytest.approx(value, abs=1e-12), (step, name)
        still = [name for name in removable if name not in removed]
        want = _hand_spearman([one_shot[n] for n in still], [scores[n] for n in still])
        assert record["spearman"] == pytest.approx(want, abs=1e-12), f"step {step}"
    # the case is not degenerate: re-ranking changes the choice, and rho is informative
    assert removed != one_shot_order[:n_remove]
    assert len({round(r["spearman"], 6) for r in records}) == n_remove
    assert all(0 < abs(r["spearman"]) < 1 for r in records)
    final = records[-1]["model"]
    assert not any(layer.name.startswith(tuple(f"{name}_" for name in removed)) for layer in final.layers)
