"""Image augmentation of the DropNet supplement's Tiny ImageNet runs (Table C1), as Keras layers.

Table C1 (DropNet supplementary material, Section C.4) lists the augmentation applied to
every training sample each epoch: rotation 40°, width and height shift 0.2, zoom 0.2,
shear 0.2, horizontal flip.  The names are those of Keras' ``ImageDataGenerator``, which
the authors used; here each becomes a Keras preprocessing layer, so the augmentation runs
inside the compiled training step (see ``TrainingConfig.train_transform``) instead of in
a Python generator.

How each number is read:

* rotation 40° → ``RandomRotation((-40 / 360, 40 / 360))`` (the layer takes fractions of a full turn);
* shifts 0.2 → ``RandomTranslation((-0.2, 0.2), (-0.2, 0.2))`` (fractions of height and width);
* zoom 0.2 → ``RandomZoom((-0.2, 0.2), (-0.2, 0.2))``: in and out by up to 20% on each
  axis independently, as ``ImageDataGenerator(zoom_range=0.2)`` draws ``[0.8, 1.2]``;
* shear 0.2 → ``RandomShear(0.2, 0.2)``: up to 20% of the image either way (the layer
  reads a single number as ``(-0.2, 0.2)``).  ``ImageDataGenerator``
  read ``shear_range`` in *degrees*, so the notebooks' 0.2 sheared by at most 0.2°,
  i.e. hardly at all; the supplement states 0.2 with no unit and we follow the table's
  number as Keras' layer reads it.  Pass ``shear=0`` for the notebooks' behaviour.
  ``RandomShear`` is a Keras 3 layer; under tf-keras ``shear`` must be 0.
* flip → ``RandomFlip("horizontal")``.

Points moved in from outside the image are filled with the nearest pixel, as
``ImageDataGenerator``'s default ``fill_mode="nearest"`` does (the layers' own default is
``"reflect"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dropnet_tf.core.backend import keras

__all__ = ["TABLE_C1", "AugmentationParameters", "table_c1_augmentation", "augmentation_transform"]


@dataclass(frozen=True)
class AugmentationParameters:
    """The numbers of Table C1, in the table's own units."""

    rotation_degrees: float = 40.0
    width_shift: float = 0.2
    height_shift: float = 0.2
    zoom: float = 0.2
    shear: float = 0.2
    horizontal_flip: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


TABLE_C1 = AugmentationParameters()


def _check_range(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}.")
    return float(value)


def table_c1_augmentation(
    parameters: AugmentationParameters = TABLE_C1, seed: int | None = None, name: str = "table_c1_augmentation"
):
    """A ``keras.Sequential`` of preprocessing layers applying ``parameters`` (default Table C1).

    Active only when called with ``training=True``; at inference it passes images through
    unchanged.  Zero-valued parameters leave their layer out.
    """
    p = parameters
    rotation = _check_range("rotation_degrees", p.rotation_degrees, 0.0, 180.0)
    width = _check_range("width_shift", p.width_shift, 0.0, 1.0)
    height = _check_range("height_shift", p.height_shift, 0.0, 1.0)
    zoom = _check_range("zoom", p.zoom, 0.0, 1.0)
    shear = _check_range("shear", p.shear, 0.0, 1.0)
    layers_ = []
    fill = {"fill_mode": "nearest"}
    if rotation:
        layers_.append(keras.layers.RandomRotation((-rotation / 360.0, rotation / 360.0), seed=seed, name="rotation", **fill))
    if width or height:
        layers_.append(keras.layers.RandomTranslation((-height, height), (-width, width), seed=seed, name="shift", **fill))
    if zoom:
        layers_.append(keras.layers.RandomZoom((-zoom, zoom), (-zoom, zoom), seed=seed, name="zoom", **fill))
    if shear:
        if not hasattr(keras.layers, "RandomShear"):
            raise ValueError(
                f"shear={shear!r} needs keras.layers.RandomShear, which this Keras "
                f"({keras.__version__}) lacks; use Keras 3 or pass shear=0."
            )
        layers_.append(keras.layers.RandomShear(shear, shear, seed=seed, name="shear", **fill))
    if p.horizontal_flip:
        layers_.append(keras.layers.RandomFlip("horizontal", seed=seed, name="flip"))
    return keras.Sequential(layers_, name=name)


def augmentation_transform(augmentation):
    """``(x, y) -> (augmentation(x, training=True), y)``, for ``TrainingConfig.train_transform``."""

    def transform(x, y):
        return augmentation(x, training=True), y

    return transform
