"""Finding, masking and counting the prunable weights of a model.

``add_weight_masks`` turns the Dense / Conv / LSTM / GRU layers of a Sequential or
functional model into their masked twins (:mod:`dropnet_tf.core.masked_layers`),
keeping every weight.  ``prunable_weights`` lists what a scorer scores, in layer order, as
:class:`PrunableWeight` records named ``"<layer>/<weight>"``; ``get_weight_masks`` /
``set_weight_masks`` read and write the masks by those names; ``compression_report``
gives the thesis' compression numbers (Section 4.1.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.core.masked_layers import (
    MASKED_LAYER_TYPES,
    MASKED_TWINS,
    MaskedBatchNormalization,
    WeightMaskMixin,
)
from dropnet_tf.core.masking import resolve_layer_types


@dataclass(frozen=True)
class PrunableWeight:
    """One masked weight tensor: ``name`` is ``"<layer name>/<weight name>"``."""

    name: str
    layer: object
    weight_name: str
    variable: object
    mask: object

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.variable.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def _all_layers(model) -> list:
    """Every layer, nested models flattened, each once, in order."""
    seen, ordered = set(), []

    def visit(layer):
        for sub in getattr(layer, "layers", None) or []:
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            if isinstance(sub, WeightMaskMixin) or not getattr(sub, "layers", None):
                ordered.append(sub)
            else:
                visit(sub)

    visit(model)
    if not ordered and isinstance(model, WeightMaskMixin):
        ordered.append(model)
    # Subclassed models keep layers as attributes; Keras tracks them in `_flatten_layers`.
    if hasattr(model, "_flatten_layers"):
        for sub in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(sub, WeightMaskMixin) and id(sub) not in seen:
                seen.add(id(sub))
                ordered.append(sub)
    return ordered


def prunable_weights(model) -> list[PrunableWeight]:
    """The masked weights of ``model`` in layer order (built layers only).

    Raises:
        ValueError: when the model has no masked layer, naming what to do about it.
    """
    found = []
    for layer in _all_layers(model):
        if not isinstance(layer, WeightMaskMixin):
            continue
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' is not built yet; call the model on an input first.")
        for weight_name, mask in layer.weight_masks.items():
            found.append(
                PrunableWeight(
                    name=f"{layer.name}/{weight_name}",
                    layer=layer,
                    weight_name=weight_name,
                    variable=layer.masked_weight(weight_name),
                    mask=mask,
                )
            )
    if not found:
        raise ValueError(
            "The model has no weight masks. Build it with dropnet_tf.foresight masked layers "
            "(MaskedDense, MaskedConv2D, ...) or convert it with add_weight_masks(model)."
        )
    return found


def get_weight_masks(model) -> dict[str, np.ndarray]:
    """``{"<layer>/<weight>": mask}`` as float32 arrays of 0 and 1."""
    return {w.name: np.asarray(w.mask.numpy(), np.float32) for w in prunable_weights(model)}


def set_weight_masks(model, masks: Mapping[str, np.ndarray], strict: bool = True) -> None:
    """Assign masks by name and zero the pruned weights at once.

    Args:
        masks: ``{"<layer>/<weight>": array of 0/1 (or booleans)}`` with each weight's shape.
        strict: require a mask for every prunable weight (False: leave missing ones as they are).
    """
    weights = {w.name: w for w in prunable_weights(model)}
    unknown = sorted(set(masks) - set(weights))
    if unknown:
        raise KeyError(f"No prunable weight named {unknown}; the model has {sorted(weights)}.")
    missing = sorted(set(weights) - set(masks))
    if strict and missing:
        raise KeyError(f"Masks are missing for {missing} (pass strict=False to keep their current masks).")
    checked = {}
    for name, value in masks.items():
        array = np.asarray(value)
        if array.shape != weights[name].shape:
            raise ValueError(f"Mask for '{name}' has shape {array.shape}, the weight has {weights[name].shape}.")
        if array.dtype != bool and not np.all((array == 0) | (array == 1)):
            bad = array[(array != 0) & (array != 1)].ravel()[:3]
            raise ValueError(f"Mask for '{name}' must hold only 0 and 1, found {bad.tolist()}.")
        checked[name] = array.astype(np.float32)
    for name, array in checked.items():
        weight = weights[name]
        weight.mask.assign(array)
        weight.variable.assign(weight.variable * tf.cast(array, weight.variable.dtype))


def _named_layers(model) -> list:
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += _named_layers(layer)
    return found


def _masked_twin(layer):
    for base, twin in MASKED_TWINS.items():
        if type(layer) is base:
            return twin
    return None


def add_weight_masks(
    model,
    layer_types: Iterable[type] | None = None,
    exclude: Iterable[str] = (),
    prune_bias: bool = False,
    prune_batchnorm: bool = False,
):
    """A copy of a Sequential / functional model with weight masks on its prunable layers.

    Every ``Dense``, ``Conv1D``, ``Conv2D``, ``DepthwiseConv2D``, ``LSTM`` and ``GRU`` (or
    only ``layer_types``) becomes its masked twin with the same config and weights and an
    all-ones mask; ``exclude`` names layers to leave alone.  Biases are masked only with
    ``prune_bias=True`` and BatchNormalization scale/offset only with
    ``prune_batchnorm=True`` (SNIP and the thesis prune neither).  Layers that are already
    masked are kept.  Subclassed models cannot be rewritten: build them from the masked
    layers directly.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"add_weight_masks expects a keras.Model, got {type(model).__name__}.")
    is_sequential = isinstance(model, keras.Sequential)
    is_functional = getattr(model, "_is_graph_network", False) or type(model).__name__ == "Functional"
    if not (is_sequential or is_functional):
        raise TypeError(
            f"add_weight_masks can rewrite Sequential and functional models, not the subclassed "
            f"model {type(model).__name__!r}; use MaskedDense/MaskedConv2D/... inside it instead."
        )
    if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__iter__"):
        raise TypeError(f"exclude must be a list of layer names, got {exclude!r} (e.g. exclude=[{exclude!r}]).")
    exclude = set(exclude)
    allowed = resolve_layer_types(layer_types) if layer_types is not None else tuple(MASKED_TWINS)
    unknown_excluded = exclude - {layer.name for layer in _named_layers(model)}
    if unknown_excluded:
        raise ValueError(f"exclude names layers the model does not have: {sorted(unknown_excluded)}.")

    def clone(layer):
        if isinstance(layer, keras.Model):
            # A nested model is rewritten the same way; it comes back with its weights.
            return add_weight_masks(layer, allowed, exclude=exclude & {l.name for l in _named_layers(layer)}, prune_bias=prune_bias, prune_batchnorm=prune_batchnorm)
        config = layer.get_config()
        if layer.name not in exclude:
            if isinstance(layer, keras.layers.BatchNormalization) and prune_batchnorm and not isinstance(layer, WeightMaskMixin):
                return MaskedBatchNormalization.from_config(config)
            twin = _masked_twin(layer)
            if twin is not None and isinstance(layer, allowed):
                config["prune_bias"] = prune_bias
                return twin.from_config(config)
        return layer.__class__.from_config(config)

    masked = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, masked.layers):
        if isinstance(old, keras.Model):
            continue  # rewritten (weights included) by the recursive call
        values = old.get_weights()
        if not isinstance(new, WeightMaskMixin) or isinstance(old, WeightMaskMixin):
            new.set_weights(values)
            continue
        # The masked twin holds the original variables first, then one mask per pruned weight.
        new.set_weights(values + [np.ones(m.shape, np.float32) for m in new.weight_masks.values()])
    return masked


@dataclass(frozen=True)
class CompressionReport:
    """Thesis Section 4.1.4: r = 1/p of the prunable weights kept, r_e = n / n_nz.

    ``compression_error`` is (r − r_e) / r: 0 when the method pruned what it was asked,
    0.5 when (as the thesis reports for GraSP) it kept twice the weights it should have.
    """

    total: int
    nonzero: int
    target_ratio: float | None
    collapsed: tuple[str, ...]
    per_weight: dict

    @property
    def empirical_ratio(self) -> float:
        return float("inf") if self.nonzero == 0 else self.total / self.nonzero

    @property
    def compression_error(self) -> float | None:
        if self.target_ratio is None:
            return None
        return (self.target_ratio - self.empirical_ratio) / self.target_ratio

    def as_dict(self) -> dict:
        return {
            "prunable": self.total,
            "nonzero": self.nonzero,
            "target_ratio": self.target_ratio,
            "empirical_ratio": self.empirical_ratio,
            "compression_error": self.compression_error,
            "collapsed_layers": list(self.collapsed),
            "per_weight_density": dict(self.per_weight),
        }


def compression_report(model, target_ratio: float | None = None) -> CompressionReport:
    """Count the nonzero masked weights of ``model`` (masks, not values, decide).

    A weight tensor whose mask is all zero is *collapsed* (thesis Section 3.6): the layer
    passes nothing forward and the network's output no longer depends on its input.
    """
    total = nonzero = 0
    per_weight, collapsed = {}, []
    for weight in prunable_weights(model):
        mask = weight.mask.numpy()
        kept = int(np.count_nonzero(mask))
        total += mask.size
        nonzero += kept
        per_weight[weight.name] = kept / mask.size
        if kept == 0:
            collapsed.append(weight.name)
    return CompressionReport(total, nonzero, target_ratio, tuple(collapsed), per_weight)
