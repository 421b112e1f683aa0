"""Dependency groups: channels that layers tie together share one mask.

A unit of a Conv2D or Dense is not always a thing of its own.  Torch-Pruning (Fang et al.,
CVPR 2023, "DepGraph") calls the set of layers a channel lives in a *dependency group*:
pruning the channel means removing it from all of them at once.  In a Keras model:

- both inputs and the output of a residual ``Add`` carry the same channels, and so does
  every block of a residual stage (an identity shortcut cannot drop a channel);
- a ``DepthwiseConv2D`` (depth multiplier 1) makes output channel c from input channel c
  alone, so its input and output are one set of channels, and a ``SeparableConv2D``'s
  depthwise half reads its input the same way;
- a squeeze-and-excitation ``Multiply`` scales channel c of its target by channel c of
  the gate, which is a convolution's output: the gate's filter c lives and dies with c;
- channel-wise layers (BatchNormalization, activations, pooling, padding, cropping,
  dropout, ``Reshape`` to (1, 1, C), element-wise ``keras.ops`` with a constant such as
  MobileNetV3's ``x + 3.0``) keep each channel where it is.

These are the *channel spaces* of :class:`dropnet_tf.compaction.compact.ChannelPlan`
(a union-find over the layer graph).  A space with at least one producer (Dense, Conv2D,
SeparableConv2D) whose channels reach no model output, no model input and no layer that
mixes channels is a **group**: its units can be removed.  Layers that mix channels pin the
spaces they touch, so those channels keep no mask:

- ``Concatenate`` (DenseNet, Inception, NASNet): the output's channels come from several
  spaces at once; pinned;
- ``LayerNormalization`` over channels (ConvNeXt): its mean and variance run over all
  channels, so removing even an exactly zero channel changes every output; pinned;
- grouped convolutions (``Conv2D(groups > 1)``, ConvNeXt's depthwise convolutions) and depth
  multipliers above 1: pinned;
- any layer not named above (``CustomScaleLayer``, ``LayerScale``, ``Normalization``,
  ``Rescaling``, ...): pinned, so the result is always exact, only less small.

:func:`add_group_masks` puts **one** MaskLayer on each group, called at every place where a
layer outside the group reads it (the group's *exits*: a producer or a Flatten reading one
of its tensors).  Every reader then sees a dropped unit as exactly zero, so
:func:`dropnet_tf.compact` removes the unit from every layer of the group (the filters of
every producer, the depthwise kernels, the BatchNormalization entries, the SE gate's
filter) and from the input channels of every reader, with the same outputs.  The one
MaskLayer holds one mask variable, so ``get_masks``/``set_masks``, the statistics (summed
over every place it is called) and DropNet's selection see one unit where the channel lives
in many layers.

Nested models (ConvNeXt's stem and downsampling blocks are ``Sequential`` models inside the
functional one) are flattened first by :func:`flatten_model`, with their weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from dropnet_tf.core.backend import KERAS_MAJOR, keras
from dropnet_tf.core.graph import (
    functional_config,
    is_keras3_ref,
    output_layer_names,
    ref_layer,
    references,
)
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import register_group_masker
from dropnet_tf.compaction.compact import (
    _ELEMENTWISE_NONZERO_ACTIVATIONS,
    _ZERO_PRESERVING_ACTIVATIONS,
    ChannelPlan,
    _activation_name,
    _history,
    _replayed,
    _require_keras3,
    _set_history,
)

_ELEMENTWISE = _ZERO_PRESERVING_ACTIVATIONS | _ELEMENTWISE_NONZERO_ACTIVATIONS
_UNIT_LAYERS = frozenset({"Dense", "Conv1D", "Conv2D", "SeparableConv2D", "DepthwiseConv2D"})

# ----------------------------------------------------------------------------- helpers


# -------------------------------------------------------------------------- flattening


def flatten_model(model):
    """A functional model computing what ``model`` computes with no model nested inside.

    Keras builds some applications from nested models (ConvNeXt's stem and downsampling
    blocks are ``Sequential`` models inside the functional one).  Their layers are called
    directly in the new model, with copies of their weights; a layer whose name is already
    taken is renamed ``<nested model>_<layer>``.  A model without nested models comes back
    as it is.
    """
    if not any(isinstance(layer, keras.Model) for layer in model.layers):
        return model
    _require_keras3("flatten_model")
    if isinstance(model, keras.Sequential):
        raise NotImplementedError(
            f"flatten_model: '{model.name}' is a Sequential model holding nested models; "
            "rebuild it as a functional model first."
        )
    taken: set[str] = set()
    copies: list[tuple[object, object]] = []  # (original layer, new layer) for the weights
    inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=t.name) for t in model.inputs]
    outputs = _inline(model, inputs, taken, copies, prefix="")
    new_model = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    for original, new in copies:
        weights = original.get_weights()
        if weights:
            new.set_weights(weights)
    return new_model


def _inline(model, input_tensors, taken, copies, prefix):
    """Call fresh copies of ``model``'s layers on ``input_tensors``; returns its outputs."""
    if isinstance(model, keras.Sequential):
        tensor = input_tensors[0]
        for layer in model.layers:
            tensor = _call_copy(layer, None, [tensor], {}, taken, copies, model.name, prefix)
        return tensor
    config = functional_config(model, "flatten_model")
    by_name = {layer.name: layer for layer in getattr(model, "operations", model.layers)}
    made: dict[tuple[str, int, int], object] = {}
    input_names = [ref[0] for ref in _output_refs(config["input_layers"])]
    for name, tensor in zip(input_names, input_tensors):
        made[(name, 0, 0)] = tensor
    pending = [entry for entry in config["layers"] if entry["class_name"] != "InputLayer"]
    created: dict[str, object] = {}
    while pending:
        progressed = []
        for entry in pending:
            node_index = created.get(entry["name"] + "#count", 0)
            nodes = entry["inbound_nodes"]
            while node_index < len(nodes):
                needed = [_history(ref) for ref in references(nodes[node_index])]
                if any(key not in made for key in needed):
                    break
                args = _replayed(nodes[node_index].get("args", []), lambda ref: made[_history(ref)])
                kwargs = _replayed(nodes[node_index].get("kwargs", {}), lambda ref: made[_history(ref)])
                layer = by_name[entry["name"]]
                if isinstance(layer, keras.Model):
                    result = _inline(layer, keras.tree.flatten(args), taken, copies, prefix + layer.name + "_")
                else:
                    result = _call_copy(layer, entry, args, kwargs, taken, copies, model.name, prefix, created)
                for index, tensor in enumerate(keras.tree.flatten(result)):
                    made[(entry["name"], node_index, index)] = tensor
                node_index += 1
            created[entry["name"] + "#count"] = node_index
            if node_index < len(nodes):
                progressed.append(entry)
        if len(progressed) == len(pending):
            raise ValueError(f"flatten_model: could not order the layers of '{model.name}'.")
        pending = progressed
    outputs = [made[_history(ref)] if is_keras3_ref(ref) else made[(ref[0], ref[1], ref[2])]
               for ref in _output_refs(config["output_layers"])]
    return outputs if len(outputs) > 1 else outputs[0]


def _output_refs(output_layers):
    if isinstance(output_layers, dict):
        output_layers = list(output_layers.values())
    if output_layers and isinstance(output_layers[0], str):
        return [output_layers]
    return list(output_layers)


def _call_copy(layer, entry, args, kwargs, taken, copies, owner, prefix, created=None):
    """Call a fresh copy of ``layer`` (one copy per layer, so shared layers stay shared)."""
    key = id(layer)
    cache = created if created is not None else {}
    new = cache.get(key)
    if new is None:
        config = layer.get_config()
        name = layer.name if layer.name not in taken else f"{owner}_{layer.name}"
        while name in taken:
            name = f"{prefix}{name}_1"
        taken.add(name)
        config["name"] = name
        new = type(layer).from_config(config)
        cache[key] = new
        if isinstance(layer, keras.layers.Layer):
            copies.append((layer, new))
    if entry is None:  # Sequential: one tensor in
        return new(args[0])
    return new(*args, **kwargs)


# --------------------------------------------------------------------------- the groups


@dataclass
class DependencyGroup:
    """The channels one mask covers.

    Attributes:
        mask: name of the MaskLayer (``"<first producer>_mask"``).
        units: number of channels.
        producers: layers whose filters / nodes are the units (Dense, Conv2D, SeparableConv2D,
            an SE gate's convolution), in graph order.
        members: every layer whose output carries the channels (BatchNormalization,
            activations, DepthwiseConv2D, Add, Multiply, ...), in graph order.
        exits: layers whose output the mask is called on: where a layer outside the group
            (a producer or Flatten) reads the channels.
    """

    mask: str
    units: int
    producers: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)


@dataclass
class GroupReport:
    """:func:`dependency_groups`' answer: the groups, and the spaces left unmasked and why."""

    groups: list[DependencyGroup]
    pinned: dict[str, str]  # {first layer of the space: reason its channels keep no mask}


def dependency_groups(model, layer_types=None, exclude=()) -> GroupReport:
    """The dependency groups of a plain (unmasked) functional model, flattened if nested.

    ``layer_types`` (classes; default Dense, Conv2D and SeparableConv2D) chooses the groups
    to mask: a group is masked when one of its producers is an instance of one of them.
    ``exclude`` names producers whose groups get no mask.
    """
    _require_keras3("dependency_groups")
    plan = ChannelPlan(flatten_model(model))
    graph = plan.graph
    if layer_types is None:
        layer_types = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.SeparableConv2D)
    exclude = set(exclude)
    spaces: dict[str, list[str]] = {}
    for node in graph:
        spaces.setdefault(plan.space(node.name), []).append(node.name)
    reasons = _pin_reasons(plan)
    _pin_through_derived(plan, reasons)
    transparent = _transparent_concats(plan, spaces)
    groups, pinned = [], {}
    taken = {node.name for node in graph}
    for space, members in spaces.items():
        producers = [name for name in members if plan.kind[name] == "producer"]
        if not producers and any(graph[name].class_name in _UNIT_LAYERS for name in members):
            # Units compaction cannot remove (a grouped convolution, a depth multiplier): say why.
            pinned[members[0]] = reasons.get(space, "its channels are pinned")
            continue
        if not producers or space in plan.derived:
            continue
        if space in plan.pinned:
            pinned[members[0]] = reasons.get(space, "its channels are pinned")
            continue
        if not any(isinstance(graph[name].layer, tuple(layer_types)) for name in producers):
            continue
        if exclude & set(producers):
            pinned[members[0]] = f"excluded ({sorted(exclude & set(producers))})"
            continue
        blocked = [
            (name, reader) for name in members for reader in graph[name].consumers
            if plan.kind[reader] == "concat" and transparent[plan.space(reader)] is not True
        ]
        if blocked:
            concat = blocked[0][1]
            pinned[members[0]] = f"'{concat}' (Concatenate) reads it and {transparent[plan.space(concat)]}"
            continue
        exits = [
            name for name in members
            if any(plan.kind[reader] in ("producer", "flatten", "concat") for reader in graph[name].consumers)
        ]
        if not exits:
            continue
        mask = producers[0] + "_mask"
        while mask in taken:
            mask += "_1"
        taken.add(mask)
        groups.append(DependencyGroup(mask, int(plan.channels[producers[0]]), producers, members, exits))
    return GroupReport(groups, pinned)


def _pin_through_derived(plan, reasons) -> None:
    """A Flatten's or Concatenate's output space that is pinned pins its inputs' spaces too
    (MobileNetV3's class logits are a Conv2D whose output is flattened into the model output):
    those channels are the pinned channels, at other indices."""
    graph, changed = plan.graph, True
    derived = {space: [name] for space, name in plan.derived.items()}
    for space, name in plan.concats.items():
        derived.setdefault(space, []).append(name)
    while changed:
        changed = False
        for space, names in derived.items():
            if space not in plan.pinned:
                continue
            for name in names:
                for source in graph[name].inbound:
                    inner = plan.space(source)
                    if inner not in plan.pinned:
                        plan.pinned.add(inner)
                        reasons.setdefault(inner, f"'{name}' ({graph[name].class_name}) passes it on to: "
                                           + reasons.get(space, "pinned channels"))
                        changed = True


def _transparent_concats(plan, spaces) -> dict:
    """{space of a Concatenate: True, or why a zero input channel may not stay zero in it}.

    A unit that reaches a ``Concatenate`` is masked where the concatenation reads it; that
    removes it only when every layer reading the concatenation sees it as zero, so the
    concatenation's space must hold only zero-preserving channel-wise layers (ReLU, pooling,
    padding; not BatchNormalization, whose offset revives a zero channel, as DenseNet's
    pre-activation does) and only feed such concatenations in turn.
    """
    graph, verdict = plan.graph, {}

    def check(space):
        if space in verdict:
            return verdict[space]
        verdict[space] = "it is read again inside itself"
        result = True
        if space in plan.pinned:
            result = "its output channels are pinned (a model output or a layer compaction does not know)"
        for name in spaces[space]:
            if result is not True:
                break
            node = graph[name]
            if name == plan.concats.get(space):
                continue
            if plan.kind[name] != "channelwise" or not plan._preserves_zero(node):
                result = f"'{name}' ({node.class_name}) after it makes a zero channel non-zero"
        for name in spaces[space]:
            for reader in graph[name].consumers:
                if result is True and plan.kind[reader] == "concat" and check(plan.space(reader)) is not True:
                    result = f"'{reader}' (Concatenate) after it: {check(plan.space(reader))}"
        verdict[space] = result
        return result

    for space in plan.concats:
        check(space)
    return verdict


def _pin_reasons(plan) -> dict[str, str]:
    """{space: why it is pinned}, naming the layer and the reason."""
    graph, reasons = plan.graph, {}

    def note(space, text):
        reasons.setdefault(space, text)

    for name in graph.outputs:
        note(plan.space(name), f"it reaches the model output '{name}'")
    for name in graph.inputs:
        note(plan.space(name), f"it is the model input '{name}'")
    for node in graph:
        kind = plan.kind[node.name]
        if kind == "other":
            why = _why_other(node)
            for source in node.inbound:
                note(plan.space(source), f"'{node.name}' ({node.class_name}) reads it: {why}")
            note(plan.space(node.name), f"it is written by '{node.name}' ({node.class_name}): {why}")
        elif kind == "producer":
            activation = _activation_name(node.layer)
            if activation not in _ELEMENTWISE and node.name not in graph.outputs:
                note(plan.space(node.name), f"the activation '{activation}' of '{node.name}' mixes units")
    return reasons


_WHY = {
    "Concatenate": "a concatenation not on the channel axis, or one that an Add or Multiply reads",
    "LayerNormalization": "it normalises over all channels, so removing a channel changes every output",
    "CustomScaleLayer": "a layer compaction does not know (a weighted sum of two inputs)",
    "LayerScale": "a layer compaction does not know (per-channel scale weights)",
    "Normalization": "it normalises the model input",
    "Rescaling": "it rescales the model input",
}


def _why_other(node) -> str:
    config = node.layer.get_config() if node.layer is not None else {}
    if node.class_name in ("Conv2D", "Conv1D") and config.get("groups", 1) != 1:
        return f"a grouped convolution (groups={config.get('groups')}) ties input and output channels group-wise"
    if config.get("depth_multiplier", 1) != 1:
        return f"depth_multiplier={config.get('depth_multiplier')} makes several output channels per input channel"
    if node.class_name == "Reshape":
        return "it moves channels to other axes"
    return _WHY.get(node.class_name, "a layer compaction does not know, so it keeps all channels")


# -------------------------------------------------------------------------- rewriting


def add_group_masks(model, layer_types=None, exclude=()):
    """``model`` (flattened if nested) with one shared MaskLayer per dependency group.

    See the module docstring.  Weights are copied and every mask starts at all ones, so the
    new model computes the same function.  Sequential models have no couplings beyond
    channel-wise layers; they get the per-layer masks of ``add_masks(groups=False)``.
    """
    _require_keras3("add_masks(groups=True)")
    flat = flatten_model(model)
    report = dependency_groups(flat, layer_types, exclude)
    config = functional_config(flat)
    entries = config["layers"]
    by_name = {entry["name"]: entry for entry in entries}
    consumers: dict[str, list[dict]] = {name: [] for name in by_name}
    for entry in entries:
        for ref in references(entry["inbound_nodes"]):
            if entry not in consumers[ref_layer(ref)]:
                consumers[ref_layer(ref)].append(entry)
    outputs = output_layer_names(config["output_layers"])
    mask_entries: dict[str, dict] = {}
    insert_after: dict[str, list[dict]] = {}
    for group in report.groups:
        entry = _mask_entry(group.mask)
        for node_index, end in enumerate(group.exits):
            if end in outputs:  # pragma: no cover - such spaces are pinned
                raise ValueError(f"Group of '{group.mask}' reaches the model output '{end}'.")
            template = None
            for user in consumers[end]:
                for ref in references(user["inbound_nodes"]):
                    if ref_layer(ref) == end:
                        template = template or copy.deepcopy(ref)
                        _set_history(ref, group.mask, node_index, 0)
            entry["inbound_nodes"].append({"args": [template], "kwargs": {}})
        mask_entries[group.mask] = entry
        insert_after.setdefault(group.exits[-1], []).append(entry)
    new_entries = []
    for entry in entries:
        new_entries.append(entry)
        new_entries.extend(insert_after.get(entry["name"], []))
    config["layers"] = new_entries
    new_model = keras.Model.from_config(config, custom_objects={"MaskLayer": MaskLayer})
    for layer in flat.layers:
        weights = layer.get_weights()
        if weights:
            new_model.get_layer(layer.name).set_weights(weights)
    new_model.dependency_groups = report  # for inspection; not saved with the model
    return new_model


def _mask_entry(name: str) -> dict:
    entry = keras.saving.serialize_keras_object(MaskLayer(name=name))
    entry["name"] = name
    entry["inbound_nodes"] = []
    return entry


register_group_masker(add_group_masks)


__all__ = [
    "DependencyGroup",
    "GroupReport",
    "add_group_masks",
    "dependency_groups",
    "flatten_model",
]
