"""Table C1 of the DropNet supplement as Keras preprocessing layers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dropnet_tf.core.backend import KERAS_MAJOR, keras
from dropnet_tf.dropnet.augmentation import (
    TABLE_C1,
    AugmentationParameters,
    augmentation_transform,
    table_c1_augmentation,
)

pytestmark = pytest.mark.skipif(KERAS_MAJOR < 3, reason="RandomShear is a Keras 3 layer")


def _layer(augmentation, name):
    return augmentation.get_layer(name)


def test_table_c1_numbers():
    assert TABLE_C1.rotation_degrees == 40
    assert TABLE_C1.width_shift == TABLE_C1.height_shift == 0.2
    assert TABLE_C1.zoom == 0.2 and TABLE_C1.shear == 0.2 and TABLE_C1.horizontal_flip is True


def test_layers_carry_table_c1_parameters():
    augmentation = table_c1_augmentation()
    names = [layer.name for layer in augmentation.layers]
    assert names == ["rotation", "shift", "zoom", "shear", "flip"]
    rotation = _layer(augmentation, "rotation").get_config()
    assert math.isclose(rotation["factor"][1] * 360, 40) and math.isclose(rotation["factor"][0] * 360, -40)
    shift = _layer(augmentation, "shift").get_config()
    assert tuple(shift["height_factor"]) == (-0.2, 0.2) and tuple(shift["width_factor"]) == (-0.2, 0.2)
    zoom = _layer(augmentation, "zoom").get_config()
    assert tuple(zoom["height_factor"]) == (-0.2, 0.2) and tuple(zoom["width_factor"]) == (-0.2, 0.2)
    shear = _layer(augmentation, "shear")  # the range the layer samples from, after its own parsing
    assert tuple(shear.x_factor) == (-0.2, 0.2) and tuple(shear.y_factor) == (-0.2, 0.2)
    assert _layer(augmentation, "flip").get_config()["mode"] == "horizontal"
    for name in ("rotation", "shift", "zoom", "shear"):
        assert _layer(augmentation, name).get_config()["fill_mode"] == "nearest", name


def test_only_active_in_training_and_keeps_shapes():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(4, 16, 16, 3)).astype("float32")
    augmentation = table_c1_augmentation(seed=1)
    np.testing.assert_array_equal(np.asarray(augmentation(images, training=False)), images)
    x, y = augmentation_transform(augmentation)(images, np.arange(4))
    x = np.asarray(x)
    assert x.shape == images.shape
    assert not np.allclose(x, images)
    np.testing.assert_array_equal(np.asarray(y), np.arange(4))


def test_zero_parameters_leave_layers_out_and_bad_values_are_named():
    only_flip = AugmentationParameters(0, 0, 0, 0, 0, True)
    assert [layer.name for layer in table_c1_augmentation(only_flip).layers] == ["flip"]
    with pytest.raises(ValueError, match="rotation_degrees must be a number in \\[0.0, 180.0\\], got 400"):
        table_c1_augmentation(AugmentationParameters(rotation_degrees=400))
    with pytest.raises(ValueError, match="zoom .* got 'big'"):
        table_c1_augmentation(AugmentationParameters(zoom="big"))


def test_augmentation_runs_inside_the_training_step():
    """The transform is traced into GraphTrainer's step (XLA falls back where it must)."""
    from dropnet_tf.models import model_b
    from dropnet_tf.engines.graph_trainer import GraphTrainer

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 3, 16)
    model = model_b((2, 2), input_shape=(16, 16, 3), num_classes=3, seed=0)
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    before = [w.numpy().copy() for w in model.trainable_variables]
    trainer = GraphTrainer(
        model, optimizer, "sparse_categorical_crossentropy", x, y, batch_size=8,
        train_transform=augmentation_transform(table_c1_augmentation(seed=0)),
    )
    history = trainer.fit(1, validation_data=(x, y))
    assert np.isfinite(history["loss"][0])
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_variables))


def test_the_training_transform_is_what_the_network_trains_on():
    """A transform that zeroes the images and relabels everything as class 0, given through
    TrainingConfig: with zero inputs the first kernel gets zero gradient (it must stay exactly
    θ0 under plain SGD) while biases move, and the trained network predicts class 0."""
    from dropnet_tf.dropnet.iterative import IterativePruner
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.core.masking import get_masks
    from dropnet_tf.models import model_b

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(1, 3, 64)  # no sample is labelled 0

    def zero_and_relabel(images, labels):
        return images * 0.0, labels * 0

    def kernels_after_training(transform):
        model = model_b((2, 2), input_shape=(8, 8, 1), num_classes=3, seed=0)
        config = TrainingConfig(max_epochs=3, patience=3, restore_best_weights=False, train_transform=transform)
        pruner = IterativePruner(model, ((x, y), (x, y), (x, y)), "minimum", training=config, verbose=0)
        pruner.reset(0, get_masks(model))
        kernel, output_bias = model.get_layer("conv_1").kernel, model.get_layer("predictions").bias
        before = [kernel.numpy().copy(), output_bias.numpy().copy()]
        pruner.train(0)
        return model, before, [kernel.numpy(), output_bias.numpy()]

    # (With zero inputs the first layer's ReLUs sit at 0 and pass no gradient at all; the
    # output layer's bias is what learns the new labels.)
    model, (kernel0, bias0), (kernel, bias) = kernels_after_training(zero_and_relabel)
    np.testing.assert_array_equal(kernel, kernel0)
    assert not np.array_equal(bias, bias0)
    assert np.all(np.argmax(model.predict(x, verbose=0), axis=-1) == 0)
    # without the transform the same run moves the first kernel and learns labels 1 and 2
    model, (kernel0, _), (kernel, _) = kernels_after_training(None)
    assert not np.allclose(kernel, kernel0)
    assert not np.any(np.argmax(model.predict(x, verbose=0), axis=-1) == 0)
