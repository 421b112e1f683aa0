"""Reading a functional model's wiring in tests (works for Keras 3 and tf-keras)."""

from __future__ import annotations


def producers(layer) -> list[str]:
    """Names of the layers whose outputs ``layer`` consumes."""
    inputs = layer.input
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    return [tensor._keras_history[0].name for tensor in inputs]


def consumers(model, name: str) -> list[str]:
    """Names of the layers that consume the output of layer ``name``."""
    return [layer.name for layer in model.layers[1:] if name in producers(layer)]
