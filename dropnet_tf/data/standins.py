"""Offline stand-ins: datasets built from one that is on every machine, shaped like a paper's.

The paper experiments run offline on these when the paper's dataset is not installed:

``fashion_mnist_rgb32``
    Fashion-MNIST zero-padded to 32×32 and repeated to 3 channels: CIFAR-10-shaped
    (10 classes, 32×32×3).  Fashion-MNIST comes with the Debian/Ubuntu package
    ``dataset-fashion-mnist`` (found automatically) or tensorflow-datasets.

A stand-in is named like a dataset: :func:`load_standin` takes the name the scripts accept
with ``--dataset``, :func:`fashion_mnist_rgb32` is the same as a function.  A subset
(``max_train`` / ``max_val`` / ``max_test``) is taken *before* the conversion, so only the
kept images are converted (all of Fashion-MNIST as 32×32×3 float32 is 0.86 GB); the images
are the same as subsetting afterwards, because the subset depends only on the labels and
``seed``.

Self-contained: it uses only :mod:`dropnet_tf.data`'s public names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["STANDINS", "STANDIN_FOR", "Standin", "fashion_mnist_rgb32", "from_dataset", "load_standin", "rgb32"]


def rgb32(x: np.ndarray) -> np.ndarray:
    """28×28×1 images → 32×32×3: zero-pad 2 pixels on each side, repeat the grey channel."""
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return np.repeat(padded, 3, axis=-1)


@dataclass(frozen=True)
class Standin:
    """A stand-in: the dataset it is built from, the transform of every split's images, what it is."""

    base: str
    transform: Callable[[np.ndarray], np.ndarray]
    description: str


#: Stand-in name → how it is built.
STANDINS: dict[str, Standin] = {
    "fashion_mnist_rgb32": Standin(
        "fashion_mnist",
        rgb32,
        "Fashion-MNIST padded to 32×32 and repeated to 3 channels (a CIFAR-10-shaped "
        "offline stand-in: 10 classes, 32×32×3)",
    ),
}

#: The offline stand-in of each paper dataset (what ``make figures`` runs on).
STANDIN_FOR = {
    "mnist": "fashion_mnist",
    "cifar10": "fashion_mnist_rgb32",
    "cifar10_jpeg": "fashion_mnist_rgb32",
    "cifar100": "fashion_mnist_rgb32",
}


def from_dataset(name: str, data):
    """The stand-in ``name`` made from ``data``, an already loaded (and maybe subset) base dataset."""
    standin = STANDINS[name]
    return dataclasses.replace(
        data,
        name=name,
        x_train=standin.transform(data.x_train),
        x_val=standin.transform(data.x_val),
        x_test=standin.transform(data.x_test),
    )


def load_standin(name: str, data_dir=None, *, max_train=None, max_val=None, max_test=None, seed: int = 0,
                 load: Callable | None = None):
    """Load the stand-in ``name`` (a key of :data:`STANDINS`), subset before converting.

    ``load`` loads the base dataset (default :func:`dropnet_tf.data.load_dataset`); it raises
    :class:`dropnet_tf.data.DatasetUnavailableError` when the base is not on this machine.
    """
    if name not in STANDINS:
        raise ValueError(f"Unknown stand-in {name!r}; choose one of {sorted(STANDINS)}.")
    if load is None:
        from dropnet_tf.data import load_dataset as load
    data = load(STANDINS[name].base, data_dir=data_dir)
    if any(cap is not None for cap in (max_train, max_val, max_test)):
        data = data.subset(max_train, max_val, max_test, seed=seed)
    return from_dataset(name, data)


def fashion_mnist_rgb32(data_dir=None, *, max_train=None, max_val=None, max_test=None, seed: int = 0):
    """Fashion-MNIST as 32×32×3 (see :data:`STANDINS`)."""
    return load_standin("fashion_mnist_rgb32", data_dir, max_train=max_train, max_val=max_val, max_test=max_test,
                        seed=seed)
