"""Putting MaskLayers into a model, and reading and writing their masks.

``add_masks`` rewrites the model's *config* (the public, serialisable description of the
graph that ``Model.get_config`` returns) rather than walking Keras' private node objects,
then rebuilds the model with ``from_config`` and copies the weights by layer name.  Both the
Keras 3 and the tf-keras config formats are handled; they differ only in how an inbound
tensor is referenced.
"""

from __future__ import annotations

import copy
from typing import Iterable, Mapping

import numpy as np

from dropnet_tf.core.backend import KERAS_MAJOR, keras
from dropnet_tf.core.graph import functional_config, is_keras3_ref, output_layer_names, ref_layer, references, retarget
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.validation import check_mapping

#: Layer types after which ``add_masks`` puts a mask by default (paper: nodes and filters).
DEFAULT_MASKED_TYPES = (keras.layers.Dense, keras.layers.Conv2D)

# Layers that act unit-wise on a Dense/Conv2D output without mixing units.  The mask goes
# after them so that it sits on the post-activation value (DropNet Section 2) and a masked
# unit is exactly zero downstream: BatchNormalization's shift would otherwise revive it.
_POST_ACTIVATION_CLASSES = frozenset(
    {"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU"}
)


def mask_layers(model) -> list[MaskLayer]:
    """All MaskLayers of ``model`` in layer order, looking inside nested models too."""
    found: list[MaskLayer] = []
    for layer in model.layers:
        if isinstance(layer, MaskLayer):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(mask_layers(layer))
    return found


def require_mask_layers(model) -> list[MaskLayer]:
    """``mask_layers(model)``, raising a helpful error when there are none."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a Keras model with MaskLayers, got {type(model).__name__}.")
    layers = mask_layers(model)
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no MaskLayer. Call dropnet_tf.add_masks(model) first, or "
            "build it with a dropnet_tf.models builder (masked=True)."
        )
    return layers


def get_masks(model) -> dict[str, np.ndarray]:
    """The masks of every MaskLayer, as ``{mask layer name: float32 array of 0/1}``."""
    return {layer.name: layer.get_mask() for layer in mask_layers(model)}


def set_masks(model, masks: Mapping[str, Iterable[float]]) -> None:
    """Assign masks in place, by mask-layer name.  A subset of the layers may be given.

    Every value is validated (known layer, shape ``(units,)``, only 0 and 1) before any
    mask is assigned, so a bad dict leaves the model untouched.
    """
    check_mapping("masks", masks, "a dict {mask layer name: 0/1 array} (see get_masks)")
    by_name = {layer.name: layer for layer in mask_layers(model)}
    unknown = sorted(set(masks) - set(by_name))
    if unknown:
        raise ValueError(
            f"Unknown mask layer name(s) {unknown}; the model's mask layers are {sorted(by_name)}."
        )
    checked = {name: by_name[name].validated_mask(value) for name, value in masks.items()}
    for name, array in checked.items():
        by_name[name].mask.assign(array)


# --------------------------------------------------------------------------- add_masks


#: What ``add_masks(groups=True)`` calls: :func:`dropnet_tf.compaction.groups.add_group_masks`,
#: which builds on compaction's channel spaces and registers itself here when imported
#: (``import dropnet_tf`` imports it), so that the primitives import nothing above them.
_GROUP_MASKERS: list = []


def random_masks(model, fraction: float, seed) -> dict[str, np.ndarray]:
    """Masks dropping round(fraction · units) units of every mask layer, chosen at random
    (a layer-wise random pruning, e.g. to try compaction on a model); not set on the model."""
    rng = np.random.default_rng(seed)
    masks = {}
    for layer in mask_layers(model):
        mask = np.ones(layer.units, np.float32)
        mask[rng.permutation(layer.units)[: int(round(fraction * layer.units))]] = 0.0
        masks[layer.name] = mask
    return masks


def register_group_masker(function) -> None:
    """Make ``function(model, layer_types, exclude)`` what ``add_masks(groups=True)`` calls."""
    _GROUP_MASKERS[:] = [function]


def group_masker():
    """The registered group masker (see :func:`register_group_masker`)."""
    if not _GROUP_MASKERS:
        raise RuntimeError("add_masks(groups=True) needs dropnet_tf.compaction.groups; import dropnet_tf first.")
    return _GROUP_MASKERS[0]


def add_masks(model, layer_types=DEFAULT_MASKED_TYPES, exclude: Iterable[str] = (), *, groups: bool = False):
    """Return a copy of ``model`` with a MaskLayer after every hidden Dense and Conv2D.

    The mask goes where the post-activation value is: after the layer's own activation,
    and after any BatchNormalization / Activation layers that directly (and solely) follow
    it, so a masked node or filter is exactly zero for everything downstream.  The output
    layer (whose post-activation value is a model output) gets no mask.  Weights are copied
    and every mask starts at all ones, so the new model computes the same function.

    Works for Sequential and functional models, including branching and residual graphs.
    Subclassed models have no graph to rewrite and raise a TypeError.

    Args:
        model: a built Sequential or functional Keras model without MaskLayers.
        layer_types: layer classes to mask (default Dense and Conv2D), or their names
            (``"Dense"``, ``"Conv2D"``: classes of ``keras.layers``).
        exclude: names of layers not to mask (a list; a single name as a str is refused).
        groups: True puts one mask on each *dependency group* instead: the channels that
            residual Adds, depthwise and separable convolutions and squeeze-and-excitation
            Multiplys tie together, called at every place the group is read, so that a
            dropped unit leaves every layer it lives in (keras.applications models; nested
            models are flattened).  See :mod:`dropnet_tf.compaction.groups`.  A group is masked when one of
            its producers is of ``layer_types`` (Conv2D includes SeparableConv2D). Keras 3 only.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"add_masks expects a Keras model, got {type(model).__name__}.")
    layer_types = resolve_layer_types(layer_types)
    if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__iter__"):
        raise TypeError(f"exclude must be a list of layer names, got {exclude!r} (e.g. exclude=[{exclude!r}]).")
    if mask_layers(model):
        raise ValueError(f"Model '{model.name}' already has MaskLayers; add_masks expects a plain model.")
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built; give it an Input (or call model.build) before add_masks."
        )
    if not isinstance(groups, bool):
        raise TypeError(f"groups must be True or False, got {groups!r}.")
    if groups and not isinstance(model, keras.Sequential):
        add_group_masks = group_masker()  # compaction.groups: it builds on compaction's channel spaces
        require_graph_model(model, "add_masks")
        # A SeparableConv2D's units are the filters of its 1x1 convolution: Conv2D names it too.
        if keras.layers.Conv2D in layer_types:
            layer_types = tuple(layer_types) + (keras.layers.SeparableConv2D,)
        return add_group_masks(model, layer_types, exclude)
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise NotImplementedError(
            f"add_masks does not look inside nested models {nested}; build the model flat, or "
            "call add_masks(model, groups=True), which flattens them."
        )
    exclude = set(exclude)
    unknown = exclude - {layer.name for layer in model.layers}
    if unknown:
        raise ValueError(f"exclude names layers that are not in the model: {sorted(unknown)}.")
    targets = {
        layer.name
        for layer in model.layers
        if isinstance(layer, tuple(layer_types)) and layer.name not in exclude
    }
    if isinstance(model, keras.Sequential):
        new_model = _add_masks_sequential(model, targets)
    else:
        config = functional_config(model)
        new_config = _add_masks_functional_config(config, targets)
        new_model = keras.Model.from_config(new_config, custom_objects={"MaskLayer": MaskLayer})
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            new_model.get_layer(layer.name).set_weights(weights)
    return new_model


def resolve_layer_types(layer_types) -> tuple:
    """``layer_types`` as a tuple of layer classes; names are looked up in ``keras.layers``."""
    if isinstance(layer_types, (str, type)):
        layer_types = (layer_types,)
    if not hasattr(layer_types, "__iter__"):
        raise TypeError(f"layer_types must be layer classes or their names, got {layer_types!r}.")
    resolved = []
    for entry in layer_types:
        if isinstance(entry, str):
            found = getattr(keras.layers, entry, None)
            if not (isinstance(found, type) and issubclass(found, keras.layers.Layer)):
                raise ValueError(
                    f"layer_types: {entry!r} is not a layer class of keras.layers; give a class such as "
                    "keras.layers.Dense or a name such as 'Dense' or 'Conv2D'."
                )
            entry = found
        if not (isinstance(entry, type) and issubclass(entry, keras.layers.Layer)):
            raise TypeError(f"layer_types must be layer classes or their names, got {entry!r}.")
        resolved.append(entry)
    if not resolved:
        raise ValueError("layer_types is empty; give at least one layer class, e.g. (keras.layers.Dense,).")
    return tuple(resolved)


def require_graph_model(model, what: str) -> None:
    """Raise a TypeError naming ``what`` unless ``model`` is a Sequential or functional Keras model."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what} expects a Keras model, got {type(model).__name__}.")
    if not isinstance(model, keras.Sequential):
        functional_config(model, what)


def _mask_layer_config(name: str) -> dict:
    serialize = keras.saving.serialize_keras_object if KERAS_MAJOR >= 3 else keras.utils.serialize_keras_object
    return serialize(MaskLayer(name=name))


def _unique_name(base: str, taken: set[str]) -> str:
    name, index = base, 1
    while name in taken:
        index += 1
        name = f"{base}_{index}"
    taken.add(name)
    return name


def _add_masks_sequential(model, targets: set[str]):
    layers = list(model.layers)
    taken = {layer.name for layer in layers}
    config = copy.deepcopy(model.get_config())
    entries = config["layers"]
    # Sequential configs may start with an InputLayer entry that model.layers omits.
    offset = len(entries) - len(layers)
    insert_after: dict[int, str] = {}
    for index, layer in enumerate(layers):
        if layer.name not in targets:
            continue
        end = index
        while end + 1 < len(layers) and type(layers[end + 1]).__name__ in _POST_ACTIVATION_CLASSES:
            end += 1
        if end == len(layers) - 1:
            continue  # the output layer
        insert_after[end] = _unique_name(f"{layer.name}_mask", taken)
    new_entries = entries[:offset]
    for index, entry in enumerate(entries[offset:]):
        new_entries.append(entry)
        if index in insert_after:
            new_entries.append(_mask_layer_config(insert_after[index]))
    config["layers"] = new_entries
    return keras.Sequential.from_config(config, custom_objects={"MaskLayer": MaskLayer})


def _add_masks_functional_config(config: dict, targets: set[str]) -> dict:
    entries = config["layers"]
    by_name = {entry["name"]: entry for entry in entries}
    consumers: dict[str, list[dict]] = {name: [] for name in by_name}
    for entry in entries:
        for ref in references(entry["inbound_nodes"]):
            consumers[ref_layer(ref)].append(entry)
    output_names = output_layer_names(config["output_layers"])

    def single_node(name):
        return len(by_name[name]["inbound_nodes"]) == 1

    taken = set(by_name)
    mask_for_end: dict[str, str] = {}
    for name in [entry["name"] for entry in entries if entry["name"] in targets]:
        if not single_node(name):
            raise NotImplementedError(
                f"Layer '{name}' is shared (called {len(by_name[name]['inbound_nodes'])} times); "
                "add_masks only masks layers that are called once."
            )
        end = name
        while True:
            users = consumers[end]
            if len(users) != 1 or end in output_names:
                break
            user = users[0]
            if user["class_name"] not in _POST_ACTIVATION_CLASSES or not single_node(user["name"]):
                break
            end = user["name"]
        if end in output_names:
            continue  # the output layer's post-activation value is the model's output
        mask_for_end[end] = _unique_name(f"{name}_mask", taken)

    new_entries = []
    for entry in entries:
        new_entries.append(entry)
        end = entry["name"]
        if end not in mask_for_end:
            continue
        mask_name = mask_for_end[end]
        # The mask reads the end layer's output: reuse one existing reference to it (it
        # carries the tensor's shape and dtype in Keras 3) and point consumers at the mask.
        template = None
        for user in consumers[end]:
            for ref in references(user["inbound_nodes"]):
                if ref_layer(ref) == end:
                    if template is None:
                        template = copy.deepcopy(ref)
                    retarget(ref, mask_name)
        mask_entry = _mask_layer_config(mask_name)
        mask_entry["name"] = mask_name
        if is_keras3_ref(template):
            mask_entry["inbound_nodes"] = [{"args": [template], "kwargs": {}}]
        else:
            template[3] = {}
            mask_entry["inbound_nodes"] = [[template]]
        new_entries.append(mask_entry)
    config["layers"] = new_entries
    return config
