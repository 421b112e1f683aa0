"""Removable units of a network and their removal, for LayerPrune (Elkerdawy et al., ACCV 2020).

LayerPrune (Section 3 of the paper; supplement Sections 1.2-1.3) ranks whole residual blocks
(ResNet) or whole ``Conv -> BN -> ReLU`` layers (VGG) and removes the least important ones,
replacing each by the identity.  This module finds those units in a Keras model
(:func:`resnet_blocks`, :func:`vgg_layers`, :func:`find_blocks`) and builds the model with
some of them removed (:func:`remove_blocks`).

Everything is read from and written to the model's public config (``Model.get_config()``),
as :func:`dropnet_tf.add_masks` does, so Keras 3 and tf-keras are both supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

from dropnet_tf.core.backend import keras
from dropnet_tf.core.graph import (
    LayerGraph,
    functional_config,
    output_layer_names,
    ref_layer,
    references,
    retarget,
)
from dropnet_tf.core.layers import MaskLayer

#: Layer classes that may follow a residual ``Add`` as part of the block (``out = ReLU(add)``).
_BLOCK_ACTIVATIONS = frozenset({"ReLU", "Activation", "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU"})

#: Layer classes that belong to a VGG layer after its convolution (BN, activation, mask).
_LAYER_TAIL = _BLOCK_ACTIVATIONS | {"BatchNormalization", "MaskLayer"}

_CONV_CLASSES = frozenset({"Conv2D", "MaskedConv2D"})


@dataclass(frozen=True)
class Block:
    """One unit LayerPrune can rank and (unless ``downsampling``) replace by the identity.

    Elkerdawy et al. (ACCV 2020, Section 3) rank and remove residual blocks of ResNets and
    single layers of VGG19-BN (supplement Section 1.3); both are described by a Block.

    Attributes:
        name: the unit's name (``"block2_3"`` for a residual block, the convolution's name
            such as ``"block5_conv2"`` for a VGG layer).
        input_layer: the layer whose output the unit reads.
        output_layer: the layer whose output is the unit's output; removing the unit makes
            every reader of ``output_layer`` read ``input_layer`` instead.
        layers: every layer of the unit, in network order (``output_layer`` included).
        downsampling: True when the unit changes the tensor's shape (a stride-2 or projection
            residual block, a VGG convolution that changes the number of channels), so that it
            cannot be replaced by the identity.
    """

    name: str
    input_layer: str
    output_layer: str
    layers: tuple[str, ...] = field(default_factory=tuple)
    downsampling: bool = False

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def removable(self) -> bool:
        """Whether the unit can be replaced by the identity (``not downsampling``; LayerPrune
        only removes shape-preserving blocks and layers, supplement Section 1.3)."""
        return not self.downsampling


# --------------------------------------------------------------------------- finding units


def _order(graph: LayerGraph) -> dict[str, int]:
    return {name: index for index, name in enumerate(graph.nodes)}


def _upstream_path(graph: LayerGraph, start: str) -> list[str]:
    """``start`` and the layers above it, following single-input layers only."""
    path = [start]
    node = graph[start]
    while len(node.inbound) == 1:
        path.append(node.inbound[0])
        node = graph[node.inbound[0]]
    return path


def _downstream_tail(graph: LayerGraph, start: str, classes) -> list[str]:
    """The layers after ``start`` that each solely read the previous one and are of ``classes``."""
    tail = []
    output = start
    while True:
        users = graph[output].consumers
        if len(users) != 1 or output in graph.outputs:
            return tail
        user = graph[users[0]]
        if user.class_name not in classes or len(user.inbound) != 1:
            return tail
        output = user.name
        tail.append(output)


def _same_shape(graph: LayerGraph, a: str, b: str) -> bool:
    return tuple(graph.output_shape(a))[1:] == tuple(graph.output_shape(b))[1:]


def _residual_blocks(graph: LayerGraph) -> list[Block]:
    order = _order(graph)
    found = []
    for node in graph:
        if node.class_name != "Add" or len(node.inbound) != 2:
            continue
        path_a = _upstream_path(graph, node.inbound[0])
        path_b = _upstream_path(graph, node.inbound[1])
        in_b = {name: index for index, name in enumerate(path_b)}
        common = next(((ia, name) for ia, name in enumerate(path_a) if name in in_b), None)
        if common is None:
            continue  # two independent branches: not a residual block
        index_a, block_input = common
        branch_a, branch_b = path_a[:index_a], path_b[: in_b[block_input]]
        tail = _downstream_tail(graph, node.name, _BLOCK_ACTIVATIONS)
        layers = set(branch_a) | set(branch_b) | {node.name} | set(tail)
        output = tail[-1] if tail else node.name
        name = node.name[: -len("_add")] if node.name.endswith("_add") and len(node.name) > 4 else node.name
        projection = bool(branch_a) and bool(branch_b)
        found.append(
            Block(
                name=name,
                input_layer=block_input,
                output_layer=output,
                layers=tuple(sorted(layers, key=order.__getitem__)),
                downsampling=projection or not _same_shape(graph, block_input, output),
            )
        )
    return found


def resnet_blocks(model) -> list[Block]:
    """The residual blocks of ``model``, in network order (LayerPrune, Section 3, ResNet blocks).

    A block is found from each two-input ``Add`` whose inputs both descend (through
    single-input layers) from one layer, the block's input: the residual branch (e.g.
    ``conv1 -> bn1 -> relu1 -> conv2 -> bn2``, MaskLayers included) and the shortcut
    (nothing, or a projection ``shortcut -> shortcut_bn``).  A ReLU/Activation reading only
    the Add belongs to the block and is its output.  The block is named after the Add with a
    trailing ``"_add"`` removed, so :func:`cifar_resnet_layerprune` blocks are
    ``"block{stage}_{block}"``.  ``downsampling`` is True when the shortcut is a projection
    or the output shape differs from the input shape (stride 2).

    Raises a ValueError when the model has no such block.
    """
    graph = LayerGraph(model)
    blocks = _residual_blocks(graph)
    if not blocks:
        raise ValueError(
            f"Model '{model.name}' has no residual block (an Add of a branch and a shortcut from one layer); "
            "use vgg_layers for plain convolutional networks."
        )
    return blocks


def _conv_layers(graph: LayerGraph) -> list[Block]:
    order = _order(graph)
    found = []
    for node in graph:
        if node.class_name not in _CONV_CLASSES or len(node.inbound) != 1:
            continue
        layers = [node.name, *_downstream_tail(graph, node.name, _LAYER_TAIL)]
        output = layers[-1]
        found.append(
            Block(
                name=node.name,
                input_layer=node.inbound[0],
                output_layer=output,
                layers=tuple(sorted(layers, key=order.__getitem__)),
                downsampling=not _same_shape(graph, node.inbound[0], output),
            )
        )
    return found


def vgg_layers(model) -> list[Block]:
    """The ``Conv2D -> BN -> ReLU`` layers of a plain CNN such as :func:`vgg19_bn`, in order.

    LayerPrune (supplement Table 3) removes single layers of VGG19-BN.  Each Conv2D with one
    input is a unit together with the BatchNormalization, activation and MaskLayer layers
    that follow it one after the other (each the only reader of the previous one); it is
    named after the convolution.  Removing a layer replaces it by the identity, which is
    only possible when its input and output shapes agree (same channels, stride 1, "same"
    padding; in VGG19-BN the 512 -> 512 and 256 -> 256 layers): ``removable`` says so and
    ``downsampling`` is its negation.

    Raises a ValueError when the model has no convolution.
    """
    graph = LayerGraph(model)
    layers = _conv_layers(graph)
    if not layers:
        raise ValueError(f"Model '{model.name}' has no Conv2D layer to treat as a removable unit.")
    return layers


def find_blocks(model) -> list[Block]:
    """:func:`resnet_blocks` when ``model`` has residual blocks, else :func:`vgg_layers`.

    The units LayerPrune (Elkerdawy et al., ACCV 2020, Section 3) ranks: residual blocks in
    ResNets, single convolutional layers in VGG.
    """
    graph = LayerGraph(model)
    blocks = _residual_blocks(graph)
    if blocks:
        return blocks
    layers = _conv_layers(graph)
    if not layers:
        raise ValueError(f"Model '{model.name}' has neither residual blocks nor Conv2D layers.")
    return layers


def masks_by_block(model, blocks: Sequence[Block]) -> dict[str, list[str]]:
    """``{block name: [names of the MaskLayers inside it]}``, for LayerPrune's block criteria.

    LayerPrune (Section 3.1) scores a block by the filter scores of its own convolutions;
    with a masked model (:func:`dropnet_tf.add_masks`) those filters are the block's masks.
    """
    result = {}
    for block in blocks:
        result[block.name] = [
            name for name in block.layers if isinstance(model.get_layer(name), MaskLayer)
        ]
    return result


# --------------------------------------------------------------------------- removing units


def _resolve_names(names, blocks: Sequence[Block]) -> list[Block]:
    if isinstance(names, (str, Block)):
        names = [names]
    try:
        names = list(names)
    except TypeError:
        raise ValueError(f"names must be a block name or a list of block names, got {names!r}.") from None
    by_name = {block.name: block for block in blocks}
    chosen: list[Block] = []
    for item in names:
        name = item.name if isinstance(item, Block) else item
        if not isinstance(name, str) or name not in by_name:
            allowed = [block.name for block in blocks if block.removable]
            raise ValueError(
                f"Unknown block {name!r}; the removable blocks are {allowed}."
            )
        block = by_name[name]
        if block not in chosen:
            chosen.append(block)
    return chosen


def _check_removable(graph: LayerGraph, block: Block) -> None:
    missing = [name for name in (block.input_layer, block.output_layer, *block.layers) if name not in graph.nodes]
    if missing:
        raise ValueError(f"Block '{block.name}' names layers that are not in the model: {missing}.")
    if block.downsampling:
        raise ValueError(
            f"Block '{block.name}' is a downsampling block (it changes the shape from "
            f"{tuple(graph.output_shape(block.input_layer))[1:]} to {tuple(graph.output_shape(block.output_layer))[1:]} "
            "or has a projection shortcut) and cannot be replaced by the identity."
        )
    if not _same_shape(graph, block.input_layer, block.output_layer):
        raise ValueError(
            f"Block '{block.name}' maps shape {tuple(graph.output_shape(block.input_layer))[1:]} to "
            f"{tuple(graph.output_shape(block.output_layer))[1:]}; only shape-preserving blocks can be "
            "replaced by the identity."
        )
    inside = set(block.layers)
    if block.input_layer in inside:
        raise ValueError(f"Block '{block.name}' lists its own input layer '{block.input_layer}' among its layers.")
    if block.output_layer not in inside:
        raise ValueError(f"Block '{block.name}' does not list its output layer '{block.output_layer}' among its layers.")
    for name in block.layers:
        if name == block.output_layer:
            continue
        outside = [user for user in graph[name].consumers if user not in inside]
        if outside or name in graph.outputs:
            raise ValueError(
                f"Layer '{name}' inside block '{block.name}' is also read outside the block "
                f"({outside or 'as a model output'}); the block is not a self-contained unit."
            )


def _retarget_outputs(output_layers, replace_map):
    """Point the [name, node, index] entries of a config's output_layers at replacements."""

    def fix(entry):
        entry = list(entry)
        if entry[0] in replace_map:
            entry[0] = replace_map[entry[0]]
        return entry

    if isinstance(output_layers, dict):
        return {key: fix(value) for key, value in output_layers.items()}
    if output_layers and isinstance(output_layers[0], str):
        return fix(output_layers)
    return [fix(entry) for entry in output_layers]


def remove_blocks(model, names, *, blocks: Sequence[Block] | None = None):
    """A new model in which every named block is replaced by the identity (LayerPrune, Section 3).

    LayerPrune removes the least important residual blocks (ResNet) or layers (VGG19-BN,
    supplement Table 3) and fine-tunes the shallower network.  Here every layer that read a
    removed block's output reads the block's input instead; the block's layers, and any
    layer no longer reachable from the model outputs, are dropped; the remaining layers keep
    their weights (copied by layer name), MaskLayers outside removed blocks keep their masks
    and those inside go with their block.  The model's config is rewritten and rebuilt with
    ``from_config`` (Keras 3 and tf-keras); ``model`` itself is not changed.

    Args:
        model: a built functional model.
        names: a block name (or :class:`Block`) or a list of them.  Consecutive blocks may be
            removed together.
        blocks: the units ``names`` refer to; default :func:`find_blocks(model) <find_blocks>`.

    Raises:
        ValueError: an unknown name (the message lists the removable blocks), a downsampling
            block or one whose input and output shapes differ (the message names it).
        TypeError: ``model`` is Sequential or subclassed.
    """
    if isinstance(model, keras.Sequential):
        raise TypeError(
            f"remove_blocks rewrites functional models; '{model.name}' is Sequential. Rebuild it with "
            "the functional API (keras.Model(inputs, outputs))."
        )
    graph = LayerGraph(model, "remove_blocks")
    if blocks is None:
        blocks = find_blocks(model)
    chosen = _resolve_names(names, list(blocks))
    if not chosen:
        raise ValueError("names is empty: give at least one block to remove.")
    for block in chosen:
        _check_removable(graph, block)

    removed = set()
    replace_map: dict[str, str] = {}
    for block in chosen:
        removed.update(block.layers)
        replace_map[block.output_layer] = block.input_layer

    def resolve(name: str) -> str:
        seen = set()
        while name in replace_map:
            if name in seen:  # pragma: no cover - impossible for blocks of one acyclic graph
                raise ValueError(f"Blocks to remove form a cycle through layer '{name}'.")
            seen.add(name)
            name = replace_map[name]
        return name

    config = functional_config(model, "remove_blocks")
    entries = [entry for entry in config["layers"] if entry["name"] not in removed]
    for entry in entries:
        for ref in references(entry["inbound_nodes"]):
            source = ref_layer(ref)
            if source in replace_map:
                retarget(ref, resolve(source))
    final_map = {name: resolve(name) for name in replace_map}
    config["output_layers"] = _retarget_outputs(config["output_layers"], final_map)

    # Keep only layers the outputs still depend on (and the model inputs).
    by_name = {entry["name"]: entry for entry in entries}
    needed = set()
    stack = list(output_layer_names(config["output_layers"]))
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(ref_layer(ref) for ref in references(by_name[name]["inbound_nodes"]))
    inputs = {entry["name"] for entry in entries if entry["class_name"] == "InputLayer"}
    config["layers"] = [entry for entry in entries if entry["name"] in needed or entry["name"] in inputs]

    new_model = keras.Model.from_config(config, custom_objects={"MaskLayer": MaskLayer})
    for layer in new_model.layers:
        weights = model.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights(weights)
    return new_model


def blocks_after_removal(blocks: Sequence[Block], names) -> list[Block]:
    """``blocks`` without the named ones, rewired as in the model :func:`remove_blocks` returns.

    A block that read a removed block's output reads that block's input after the removal
    (LayerPrune's identity replacement), so its ``input_layer`` is updated; its other fields
    are unchanged.  Used by iterative LayerPrune ranking (supplement Table 2).
    """
    blocks = list(blocks)
    chosen = _resolve_names(names, blocks)
    replace_map = {block.output_layer: block.input_layer for block in chosen}
    gone = {block.name for block in chosen}
    result = []
    for block in blocks:
        if block.name in gone:
            continue
        source = block.input_layer
        while source in replace_map:
            source = replace_map[source]
        result.append(replace(block, input_layer=source))
    return result


__all__ = [
    "Block",
    "blocks_after_removal",
    "find_blocks",
    "masks_by_block",
    "remove_blocks",
    "resnet_blocks",
    "vgg_layers",
]
