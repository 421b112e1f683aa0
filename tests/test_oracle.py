"""The greedy oracle (DropNet Section 5): batched candidate scores equal one evaluation each."""

from __future__ import annotations

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.core.masking import add_masks, get_masks, set_masks
from dropnet_tf.dropnet.oracle import mask_similarity, oracle_scores, oracle_scores_naive


def _trained_conv_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    model = add_masks(keras.Model(inputs, outputs))
    rng = np.random.default_rng(0)
    x_data = rng.random((150, 6, 6, 1)).astype("float32")
    y_data = rng.integers(0, 3, 150)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x_data, y_data, epochs=2, batch_size=16, verbose=0)
    return model, x_data, y_data


@pytest.mark.both_keras
def test_batched_scores_equal_one_evaluate_per_candidate():
    model, x, y = _trained_conv_model()
    masks = get_masks(model)
    masks["hidden_mask"][[1, 3]] = 0.0
    set_masks(model, masks)
    # a small max_rows forces several candidate chunks and a ragged last data batch
    batched = oracle_scores(model, x, y, batch_size=64, max_rows=192)
    naive = oracle_scores_naive(model, x, y)
    for name in masks:
        active = masks[name] > 0
        np.testing.assert_allclose(batched[name][active], naive[name][active], rtol=1e-5, atol=1e-6)
        assert np.all(np.isinf(batched[name][~active]))
    # scoring leaves the model's masks as they were
    for name, mask in get_masks(model).items():
        np.testing.assert_array_equal(mask, masks[name])
    # and the scores are not all equal: removing different units changes the loss differently
    assert np.ptp(batched["conv_mask"]) > 0


def test_mask_similarity():  # numpy on masks: not flavour-dependent, so not both_keras
    a = {"l1": np.array([1, 1, 0, 0]), "l2": np.array([1, 0])}
    b = {"l1": np.array([1, 0, 0, 1]), "l2": np.array([1, 0])}
    assert mask_similarity(a, b) == pytest.approx(4 / 6)
    assert mask_similarity(a, a) == 1.0
