"""Compaction: turn a model with MaskLayers into a plain, physically smaller Keras model.

DropNet promises a smaller network that "can be readily deployed" (Tan & Motani, ICML 2020,
Section 1).  A masked model is still dense: its masked units are computed and then
multiplied by zero.  :func:`compact` builds the model the masks describe: a Dense loses the
masked nodes, a Conv2D the masked filters, the next layer loses the matching input rows or
channels, BatchNormalization is sliced, and the MaskLayers disappear.

How it works (all from the model's public config and ``get_weights``; see
:mod:`dropnet_tf.core.graph`):

1. **Zero analysis.**  For every layer output, which channels (last axis) are exactly zero
   for every input: a MaskLayer zeroes its masked channels; zero-preserving channel-wise
   layers (ReLU, pooling, dropout, padding, BatchNormalization whose offset is 0) keep them
   zero; an ``Add`` output channel is zero only when it is zero in every input.
2. **Channel spaces.**  Tensors that must keep the same channel set are grouped: the input
   and output of a channel-wise layer, and all inputs and the output of an ``Add``.  A
   Dense/Conv2D starts a new space; ``Flatten`` derives its space from its input's
   (index ``s·C + c`` for spatial position ``s`` and channel ``c``, channels-last).
3. **Kept channels.**  A channel of a space is kept when some layer outside the space
   reads it as non-zero: a Dense/Conv2D reading a tensor of the space where the channel is
   not zero, a Flatten whose own readers need it, a model output, or any layer compaction
   does not understand (which pins every channel: correct, only less compact).  Model
   inputs are pinned too.

Beyond Dense/Conv2D and channel-wise layers it understands SeparableConv2D (a producer),
DepthwiseConv2D (channel-wise), ``Multiply`` (tied like an ``Add``; zero where any factor
is), a ``Reshape`` that only adds axes of size 1, Cropping, a channel ``Concatenate`` (its
output's channels are its inputs' at offsets) and Keras 3 operations with scalar constants
(``x + 3.0``).  A MaskLayer called at several places (a dependency group's, see
:mod:`dropnet_tf.compaction.groups`) is planned as one mask per call.

**Residual Add: the union.**  The kept channels of an ``Add`` are the union of the
channels its inputs keep: a channel that survives in one branch must survive in the sum,
so it is kept in every branch (an identity shortcut cannot drop channels, and aligning the
branches by removing only channels dead in *all* of them is the only exact option).  Where
a kept channel was masked in one branch, that branch must still produce zero there, so the
nearest BatchNormalization (γ = β = 0) or the producing Dense/Conv2D (its kernel column and
bias set to 0, when its activation maps 0 to 0) is zeroed on the path to the mask.  Where no
such point exists the MaskLayer is kept, sliced, and a warning says so; the outputs are
still exact.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np

from dropnet_tf.core.backend import KERAS_MAJOR, keras
from dropnet_tf.core.graph import SEQUENTIAL_INPUT, LayerGraph, functional_config, is_keras3_ref, ref_layer, references
from dropnet_tf.core.layers import MaskLayer
from dropnet_tf.core.masking import require_graph_model

# Activations (by their config name) that map 0 to 0 and act element-wise.
_ZERO_PRESERVING_ACTIVATIONS = frozenset(
    {
        "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "tanh", "swish", "silu", "gelu",
        "mish", "hard_swish", "hard_silu", "relu6", "softsign",
    }
)
# Element-wise activations with f(0) != 0: channel-wise, but a zero channel comes back non-zero.
_ELEMENTWISE_NONZERO_ACTIVATIONS = frozenset({"sigmoid", "hard_sigmoid", "softplus", "exponential"})

# SeparableConv2D: a depthwise part that reads its input channel by channel, then a 1x1
# convolution whose filters are the layer's units, so it is a producer like Conv2D.
_PRODUCERS = ("Dense", "Conv2D", "Conv1D", "SeparableConv2D")
_ZERO_PRESERVING_LAYERS = frozenset(
    {
        "Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "MaxPooling2D",
        "AveragePooling2D", "MaxPooling1D", "AveragePooling1D", "ZeroPadding2D",
        "GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
        "GlobalMaxPooling1D", "Identity", "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU",
        "Cropping1D", "Cropping2D",
    }
)
# Element-wise keras.ops with one tensor and scalar constants (``x + 3.0`` of MobileNetV3's
# hard sigmoid): channel-wise.  ``x * c`` and ``x / c`` keep a zero channel zero.
_SCALAR_OPS = frozenset({"Add", "Subtract", "Multiply", "Divide", "TrueDivide"})
_ZERO_PRESERVING_SCALAR_OPS = frozenset({"Multiply", "Divide", "TrueDivide"})


def _activation_name(layer) -> str:
    value = layer.get_config().get("activation", "linear")
    if isinstance(value, dict):  # a serialised function object
        value = value.get("config", {}).get("name", value.get("class_name", "?"))
    return str(value)


def is_operation(node) -> bool:
    """Whether ``node`` is a Keras 3 operation (``x + 3.0``, ``keras.ops.multiply``), no layer."""
    return node.layer is not None and not isinstance(node.layer, keras.layers.Layer)


def _call_constants(call) -> list | None:
    """The non-tensor arguments of a recorded Keras 3 call, or None when it is not plain scalars."""
    if not isinstance(call, dict) or call.get("kwargs"):
        return None
    constants = [arg for arg in call.get("args", []) if not is_keras3_ref(arg)]
    return constants if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in constants) else None


def _classify_operation(node) -> str:
    name = node.class_name
    if len(node.inbound) == 1 and name in _SCALAR_OPS and _call_constants(node.call) is not None:
        return "channelwise"
    if len(node.inbound) == 2 and name == "Add":
        return "add"
    if len(node.inbound) == 2 and name == "Multiply":
        return "multiply"
    return "other"


def _reshape_is_channelwise(layer) -> bool:
    """A Reshape that only adds or removes axes of size 1 around the channel axis (SE blocks'
    (batch, C) -> (batch, 1, 1, C)) keeps each channel a channel of the same index."""
    try:
        shape_in, shape_out = tuple(layer.input.shape), tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return False
    return (
        shape_in[-1] is not None and shape_in[-1] == shape_out[-1]
        and all(d == 1 for d in shape_in[1:-1]) and all(d == 1 for d in shape_out[1:-1])
    )


def _classify(node) -> str:
    """'input', 'producer', 'channelwise', 'add', 'multiply', 'concat', 'flatten' or 'other' (pins its tensors)."""
    layer, name = node.layer, node.class_name
    if node.layer is None or name == "InputLayer":
        return "input"
    if is_operation(node):
        return _classify_operation(node)
    config = layer.get_config()
    if name in _PRODUCERS:
        if config.get("groups", 1) != 1 or config.get("data_format", "channels_last") != "channels_last":
            return "other"
        if config.get("depth_multiplier", 1) != 1:
            return "other"
        return "producer"
    if name == "DepthwiseConv2D":
        # Output channel c is input channel c convolved with its own kernel: channel-wise.
        # With a depth multiplier m, input channel c makes outputs c·m ... c·m + m - 1.
        ok = config.get("depth_multiplier", 1) == 1 and config.get("data_format", "channels_last") == "channels_last"
        return "channelwise" if ok else "other"
    if name == "Reshape":
        return "channelwise" if _reshape_is_channelwise(layer) else "other"
    if name == "Multiply":
        return "multiply"
    if name == "Concatenate":
        axis = config.get("axis", -1)
        try:
            rank = len(layer.output.shape)
        except (AttributeError, ValueError):
            rank = None
        return "concat" if axis == -1 or (rank is not None and axis == rank - 1) else "other"
    if name == "MaskLayer":
        return "channelwise"
    if name == "BatchNormalization":
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        rank = len(layer.input.shape) if node.inbound != [SEQUENTIAL_INPUT] else None
        return "channelwise" if axis == -1 or (rank is not None and axis == rank - 1) else "other"
    if name == "Activation":
        activation = _activation_name(layer)
        known = _ZERO_PRESERVING_ACTIVATIONS | _ELEMENTWISE_NONZERO_ACTIVATIONS
        return "channelwise" if activation in known else "other"
    if name == "ReLU" or name in _ZERO_PRESERVING_LAYERS:
        if config.get("data_format", "channels_last") != "channels_last":
            return "other"
        return "channelwise"
    if name == "Add":
        return "add"
    if name == "Flatten":
        return "flatten" if config.get("data_format", "channels_last") == "channels_last" else "other"
    return "other"


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[root_b] = root_a


class ChannelPlan:
    """Which channels of every layer output survive compaction, and how masks are honoured.

    Attributes:
        graph: the :class:`~dropnet_tf.core.graph.LayerGraph` of the masked model.
        kind: ``{layer: 'producer' | 'channelwise' | ...}``.
        zero: ``{layer: bool array}``, channels of the layer's output that are exactly zero.
        kept: ``{layer: int array}``, channels of the layer's output kept by compaction.
        zeroed: ``{layer: int array}``, output channels of a BatchNormalization / Dense /
            Conv2D whose parameters are set so that the channel is 0 (a mask's job, where the
            channel itself must stay for a residual Add).
        kept_masks: MaskLayers that stay in the compacted model (sliced), with reasons.
    """

    def __init__(self, model, channel_multiple: int = 1):
        if isinstance(channel_multiple, bool) or not isinstance(channel_multiple, (int, np.integer)) or channel_multiple < 1:
            raise ValueError(f"channel_multiple must be a positive integer, got {channel_multiple!r}.")
        self.channel_multiple = int(channel_multiple)

        # A dependency group's one mask is one MaskLayer called at every place the group is
        # read; the plan treats each call as a mask of its own, all with the same 0/1 values.
        model = unshare_masks(model)
        self.graph = LayerGraph(model, "compact")
        self.kind = {node.name: _classify(node) for node in self.graph}
        self.channels = {node.name: int(self.graph.output_shape(node.name)[-1]) for node in self.graph}
        self._zero_analysis()
        self._spaces()
        self._kept_channels()
        self._honour_masks()

    # -- 1. zero analysis ---------------------------------------------------------------

    def _zero_analysis(self):
        self.zero: dict[str, np.ndarray] = {}
        for node in self.graph:
            name, kind, size = node.name, self.kind[node.name], self.channels[node.name]
            zero = np.zeros(size, bool)
            if kind == "channelwise":
                zero_in = self.zero[node.inbound[0]]
                if isinstance(node.layer, MaskLayer):
                    zero = zero_in | (node.layer.get_mask() == 0)
                elif node.class_name == "BatchNormalization":
                    scale, offset = _batchnorm_affine(node.layer)
                    zero = (zero_in & (offset == 0)) | ((scale == 0) & (offset == 0))
                elif self._preserves_zero(node):
                    zero = zero_in.copy()
            elif kind == "add":
                zero = np.logical_and.reduce([self.zero[source] for source in node.inbound])
            elif kind == "multiply":
                # A product is zero where any factor is (an SE gate times a masked channel).
                zero = np.logical_or.reduce([self.zero[source] for source in node.inbound])
            elif kind == "concat":
                zero = np.concatenate([self.zero[source] for source in node.inbound])
            elif kind == "flatten":
                zero_in = self.zero[node.inbound[0]]
                zero = np.tile(zero_in, size // max(1, zero_in.size))
            self.zero[name] = zero

    def _preserves_zero(self, node) -> bool:
        name = node.class_name
        if is_operation(node):
            return (
                name in _ZERO_PRESERVING_SCALAR_OPS and _call_constants(node.call) is not None
                and is_keras3_ref(node.call["args"][0])  # x * c or x / c, not c / x
            )
        if name == "Reshape":
            return True
        if name == "DepthwiseConv2D":
            config = node.layer.get_config()
            return not config.get("use_bias", True) and _activation_name(node.layer) in _ZERO_PRESERVING_ACTIVATIONS
        if name == "Activation":
            return _activation_name(node.layer) in _ZERO_PRESERVING_ACTIVATIONS
        if name == "ReLU":
            return float(node.layer.get_config().get("threshold", 0.0) or 0.0) == 0.0
        if name in _PRODUCERS:
            return _activation_name(node.layer) in _ZERO_PRESERVING_ACTIVATIONS
        return name in _ZERO_PRESERVING_LAYERS or name == "MaskLayer"

    # -- 2. channel spaces --------------------------------------------------------------

    def _spaces(self):
        self._sets = _UnionFind()
        pinned_nodes = set(self.graph.inputs) | set(self.graph.outputs)
        for node in self.graph:
            self._sets.find(node.name)
            kind = self.kind[node.name]
            if kind in ("channelwise", "add", "multiply"):
                for source in node.inbound:
                    self._sets.union(source, node.name)
            elif kind == "other":
                pinned_nodes.add(node.name)
                pinned_nodes.update(node.inbound)
            elif kind == "producer" and _activation_name(node.layer) not in (
                _ZERO_PRESERVING_ACTIVATIONS | _ELEMENTWISE_NONZERO_ACTIVATIONS
            ):
                pinned_nodes.add(node.name)  # e.g. softmax mixes its units
        # A channel Concatenate's output space is derived from its inputs' spaces (channel
        # j of input i is channel offset_i + j of the output) when nothing else writes into it:
        # only channel-wise layers may follow it in its space.  Otherwise it pins, like an
        # unknown layer.
        members: dict[str, list[str]] = {}
        for node in self.graph:
            members.setdefault(self._sets.find(node.name), []).append(node.name)
        self.concats: dict[str, str] = {}
        for node in self.graph:
            if self.kind[node.name] != "concat":
                continue
            space = self._sets.find(node.name)
            others = [n for n in members[space] if n != node.name and self.kind[n] != "channelwise"]
            if others:
                self.kind[node.name] = "other"
                pinned_nodes.add(node.name)
                pinned_nodes.update(node.inbound)
            else:
                self.concats[space] = node.name
        self.pinned = {self._sets.find(name) for name in pinned_nodes}
        # A Flatten's space is derived from its input's; anything tied to it too.
        self.derived = {
            self._sets.find(node.name): node.name for node in self.graph if self.kind[node.name] == "flatten"
        }

    def space(self, name: str) -> str:
        return self._sets.find(name)

    # -- 3. kept channels ---------------------------------------------------------------

    def _kept_channels(self):
        # In the order of their first layer, so that a Flatten's input space comes before its own.
        spaces = list(dict.fromkeys(self.space(node.name) for node in self.graph))
        size = {self.space(node.name): self.channels[node.name] for node in self.graph}
        needed = {s: np.full(size[s], s in self.pinned) for s in spaces}
        readers = []  # (space read, tensor read, reading node, first channel in a Concatenate's output)
        for node in self.graph:
            offset = 0
            for source in node.inbound:
                if self.space(source) != self.space(node.name) or self.kind[node.name] in ("producer", "flatten"):
                    readers.append((self.space(source), source, node, offset))
                offset += self.channels[source]
        changed = True
        while changed:
            changed = False
            for space, tensor, reader, offset in readers:
                kind = self.kind[reader.name]
                if kind == "producer":
                    want = ~self.zero[tensor]
                elif kind == "concat":
                    want = needed[self.space(reader.name)][offset:offset + size[space]]
                elif kind == "flatten":
                    out_space = self.space(reader.name)
                    want = needed[out_space].reshape(-1, size[space]).any(axis=0)
                else:
                    want = np.ones(size[space], bool)
                new = needed[space] | want
                if not np.array_equal(new, needed[space]):
                    needed[space], changed = new, True
        self.kept_by_space: dict[str, np.ndarray] = {}
        self.collapsed: list[str] = []
        for space in spaces:
            if space in self.derived:
                flatten = self.graph[self.derived[space]]
                source = flatten.inbound[0]
                inner = self.kept_by_space[self.space(source)]
                per_position = self.channels[source]
                positions = size[space] // per_position
                keep = (np.arange(positions)[:, None] * per_position + inner[None, :]).reshape(-1)
            elif space in self.concats:
                concat, parts, offset = self.graph[self.concats[space]], [], 0
                for source in concat.inbound:
                    parts.append(offset + self.kept_by_space[self.space(source)])
                    offset += self.channels[source]
                keep = np.concatenate(parts)
            else:
                keep = np.flatnonzero(needed[space])
                if keep.size == 0:
                    # Every unit of the space is masked: keep one (zeroed by its mask) so
                    # that the network stays connected and computes what the masked one does.
                    keep = np.array([0])
                    self.collapsed.append(space)
                keep = self._round_up(keep, size[space])
            self.kept_by_space[space] = keep
        self.kept = {node.name: self.kept_by_space[self.space(node.name)] for node in self.graph}

    def _round_up(self, keep: np.ndarray, size: int) -> np.ndarray:
        """Pad ``keep`` with masked channels up to a multiple of ``channel_multiple``.

        CPU convolution kernels (oneDNN) are vectorised over blocks of 8 or 16 channels; a
        layer of 51 filters can run slower than one of 48.  The added channels are masked
        ones, which step 4 zeroes like any kept-but-masked channel, so outputs stay exact.
        """
        multiple = self.channel_multiple
        target = min(size, -(-keep.size // multiple) * multiple)
        if multiple == 1 or keep.size >= target:
            return keep
        spare = np.setdiff1d(np.arange(size), keep)[: target - keep.size]
        return np.sort(np.concatenate([keep, spare]))

    # -- 4. masks that must still zero a kept channel -----------------------------------

    def _honour_masks(self):
        self.zeroed: dict[str, set[int]] = {}
        self.kept_masks: dict[str, str] = {}
        for node in self.graph:
            if not isinstance(node.layer, MaskLayer):
                continue
            source = node.inbound[0]
            must_zero = np.flatnonzero((node.layer.get_mask() == 0) & ~self.zero[source])
            must_zero = np.intersect1d(must_zero, self.kept[node.name])
            if must_zero.size == 0:
                continue
            point, reason = self._zeroing_point(node)
            if point is None:
                self.kept_masks[node.name] = reason
            else:
                self.zeroed.setdefault(point, set()).update(int(c) for c in must_zero)

    def _zeroing_point(self, mask_node) -> tuple[str | None, str]:
        """The layer upstream of a mask whose parameters can make a channel exactly zero."""
        current = self.graph[mask_node.inbound[0]]
        follower = mask_node
        while True:
            if current.consumers != [follower.name]:
                return None, f"'{current.name}' is also read by other layers"
            if current.class_name == "BatchNormalization" and self.kind[current.name] == "channelwise":
                config = current.layer.get_config()
                if config.get("scale", True):
                    return current.name, ""
            if self.kind[current.name] == "producer":
                if self._preserves_zero(current):
                    return current.name, ""
                return None, f"the activation of '{current.name}' does not map 0 to 0"
            if self.kind[current.name] != "channelwise" or not self._preserves_zero(current):
                return None, f"'{current.name}' ({current.class_name}) does not keep a zero channel zero"
            follower, current = current, self.graph[current.inbound[0]]


def _batchnorm_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization at inference as ``scale·x + offset`` per channel."""
    config = layer.get_config()
    weights = list(layer.get_weights())
    gamma = weights.pop(0) if config.get("scale", True) else None
    beta = weights.pop(0) if config.get("center", True) else None
    mean, variance = weights[0], weights[1]
    inv = 1.0 / np.sqrt(variance + config.get("epsilon", 1e-3))
    scale = inv if gamma is None else gamma * inv
    offset = -mean * scale + (0.0 if beta is None else beta)
    return scale, offset


def plan_compaction(model, channel_multiple: int = 1) -> ChannelPlan:
    """The :class:`ChannelPlan` :func:`compact` follows, for inspection and counting."""
    return ChannelPlan(model, channel_multiple)


def compact(model, name: str | None = None, *, channel_multiple: int = 1):
    """A new plain Keras model with every masked node and filter physically removed.

    The result has no MaskLayers (except where a mask cannot be folded into the weights; a
    warning names it), fewer units in Dense layers and fewer filters in Conv2D layers, the
    matching input rows / channels removed from the layers that consume them, sliced
    BatchNormalization, and pooling, dropout, Flatten (rows mapped for the channels-last
    spatial layout), GlobalAveragePooling and residual ``Add`` (the union of the branches'
    kept channels, see the module docstring) handled.  Its outputs equal the masked
    model's (tested to 1e-5); it saves as ``.keras`` and converts to TFLite like any plain
    model.  A Sequential model gives a Sequential model, a functional one a functional one.

    Layers it does not understand (e.g. Reshape, Concatenate, grouped convolutions) keep all
    the channels they read and write, so the result is always exact.  Subclassed and nested
    models raise a TypeError / NotImplementedError.

    Args:
        model: a built Sequential or functional model, usually with MaskLayers.
        name: name of the new model (default: ``"<model name>_compact"``).
        channel_multiple: round every shrunk layer's width up to a multiple of this (e.g. 8
            or 16), keeping masked units as exact zeros.  More FLOPs, but CPU convolution
            kernels vectorise over channel blocks, so it is often faster (see
            ``bench/bench_compaction_latency.py``).  Default 1: remove every masked unit.
    """
    require_graph_model(model, "compact")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"compact: name must be a str or None, got {name!r}.")
    plan = ChannelPlan(model, channel_multiple)
    graph = plan.graph
    for space in plan.collapsed:
        warnings.warn(
            f"Every unit of the channels written by '{space}' is masked; compaction keeps one (exactly "
            "zero) so that the network stays connected.",
            stacklevel=2,
        )
    for mask, reason in plan.kept_masks.items():
        warnings.warn(
            f"MaskLayer '{mask}' is kept (sliced) in the compacted model: {reason}, so its zeros cannot be "
            "folded into weights.",
            stacklevel=2,
        )

    new_layers: dict[str, object] = {}
    for node in graph:
        if plan.kind[node.name] == "input":
            continue
        if isinstance(node.layer, MaskLayer) and node.name not in plan.kept_masks:
            continue
        config = node.layer.get_config()
        if plan.kind[node.name] == "producer":
            key = "units" if node.class_name == "Dense" else "filters"
            config[key] = int(plan.kept[node.name].size)
        if node.class_name == "Reshape" and plan.kind[node.name] == "channelwise":
            config["target_shape"] = tuple(config["target_shape"][:-1]) + (int(plan.kept[node.name].size),)
        new_layers[node.name] = type(node.layer).from_config(config)

    new_name = name or f"{model.name}_compact"
    if graph.sequential:
        input_shape = tuple(model.inputs[0].shape[1:])
        layers = [keras.Input(shape=input_shape, dtype=model.inputs[0].dtype)]
        layers += [new_layers[node.name] for node in graph if node.name in new_layers]
        new_model = keras.Sequential(layers, name=new_name)
    else:
        new_model = _functional(plan, new_layers, new_name)

    for node in graph:
        if node.name in new_layers and not is_operation(node):
            weights = _sliced_weights(plan, node)
            if weights:
                new_layers[node.name].set_weights(weights)
    return new_model


def _functional(plan: ChannelPlan, new_layers: dict, name: str):
    """The compacted functional model: ``new_layers`` called as the masked model's graph says."""
    graph, tensors = plan.graph, {}
    for node in graph:
        if plan.kind[node.name] == "input":
            shape = tuple(node.layer.output.shape[1:])
            tensors[node.name] = keras.Input(shape=shape, name=node.name, dtype=node.layer.output.dtype)
        elif node.name not in new_layers:  # a removed MaskLayer passes its input through
            tensors[node.name] = tensors[node.inbound[0]]
        elif is_operation(node) and node.call is not None:
            # An operation keeps its constants (the 3.0 of x + 3.0): replay the recorded call.
            args = _replayed(node.call.get("args", []), lambda ref: tensors[ref_layer(ref)])
            kwargs = _replayed(node.call.get("kwargs", {}), lambda ref: tensors[ref_layer(ref)])
            tensors[node.name] = new_layers[node.name](*args, **kwargs)
        else:
            args = [tensors[source] for source in node.inbound]
            takes_list = plan.kind[node.name] == "add" or len(args) > 1
            tensors[node.name] = new_layers[node.name](args if takes_list else args[0])
    inputs = [tensors[name] for name in graph.inputs]
    outputs = [tensors[name] for name in graph.outputs]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0], name=name)


def _replayed(structure, tensor_of):
    """``structure`` (a recorded call's args or kwargs) with every Keras 3 tensor reference
    replaced by ``tensor_of(ref)``; dicts stay dicts, lists and tuples become lists.

    The rebuilds of a functional model call their layers with it: :func:`compact` looks a
    tensor up by the layer that made it, ``groups.flatten_model`` by the layer, node and
    index of its ``keras_history``.
    """
    if is_keras3_ref(structure):
        return tensor_of(structure)
    if isinstance(structure, dict):
        return {key: _replayed(value, tensor_of) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_replayed(value, tensor_of) for value in structure]
    return structure


def _sliced_weights(plan: ChannelPlan, node) -> list[np.ndarray]:
    weights = [np.array(w) for w in node.layer.get_weights()]
    kind = plan.kind[node.name]
    out = plan.kept[node.name]
    zero_positions = sorted(plan.zeroed.get(node.name, ()))
    # Where in the kept list the channels to be zeroed are.
    zero_at = np.searchsorted(out, zero_positions) if zero_positions else np.array([], int)
    if kind == "producer" and node.class_name == "SeparableConv2D":
        # [depthwise (kh, kw, C_in, 1), pointwise (1, 1, C_in, C_out), bias]: the input
        # channels leave both kernels, the units the pointwise one.
        kept_in = plan.kept[node.inbound[0]]
        pointwise = weights[1][:, :, kept_in, :][..., out]
        pointwise[..., zero_at] = 0.0
        sliced = [weights[0][:, :, kept_in, :], pointwise]
        if len(weights) > 2:
            bias = weights[2][out]
            bias[zero_at] = 0.0
            sliced.append(bias)
        return sliced
    if node.class_name == "DepthwiseConv2D" and kind == "channelwise":
        return [weights[0][:, :, out, :]] + [w[out] for w in weights[1:]]  # kernel (kh, kw, C, 1), bias
    if kind == "producer":
        kernel = weights[0][..., plan.kept[node.inbound[0]], :][..., out]
        kernel[..., zero_at] = 0.0
        sliced = [kernel]
        if len(weights) > 1:
            bias = weights[1][out]
            bias[zero_at] = 0.0
            sliced.append(bias)
        return sliced
    if isinstance(node.layer, MaskLayer):
        return [weights[0][out]]
    if node.class_name == "BatchNormalization" and kind == "channelwise":
        config = node.layer.get_config()
        sliced = [w[out] for w in weights]
        if zero_at.size:
            sliced[0][zero_at] = 0.0  # gamma (scale=True is required to be a zeroing point)
            if config.get("center", True):
                sliced[1][zero_at] = 0.0  # beta
        return sliced
    if kind == "channelwise" and weights:  # e.g. PReLU's per-channel slope
        return [w[..., out] if w.shape and w.shape[-1] == plan.channels[node.name] else w for w in weights]
    return weights

# --------------------------------------------------------- shared masks (dependency groups)


def _require_keras3(what: str) -> None:
    if KERAS_MAJOR < 3:
        raise NotImplementedError(
            f"{what} reads Keras 3's functional config (tensor references and keras.ops nodes); "
            "under tf-keras use add_masks(model) with groups=False."
        )


def _history(ref) -> tuple[str, int, int]:
    name, node, index = ref["config"]["keras_history"]
    return str(name), int(node), int(index)


def _set_history(ref, name: str, node: int, index: int) -> None:
    ref["config"]["keras_history"] = [name, node, index]


def unshare_masks(model):
    """``model`` with each call of a shared MaskLayer made a MaskLayer of its own.

    Compaction reads a graph whose layers are called once; a group's mask, called at each of
    the group's exits, becomes ``<mask>``, ``<mask>_at1``, ... with the same 0/1 values.
    Models without shared MaskLayers come back as they are.
    """
    if isinstance(model, keras.Sequential) or not any(
        isinstance(layer, MaskLayer) and len(getattr(layer, "_inbound_nodes", ())) > 1 for layer in model.layers
    ):
        return model
    _require_keras3("compact (shared MaskLayers)")
    config = functional_config(model, "compact")
    entries, new_entries, copies = config["layers"], [], {}
    taken = {entry["name"] for entry in entries}
    renamed: dict[tuple[str, int], str] = {}
    for entry in entries:
        new_entries.append(entry)
        if entry["class_name"] != "MaskLayer" or len(entry["inbound_nodes"]) <= 1:
            continue
        for node_index, node in enumerate(entry["inbound_nodes"][1:], start=1):
            name = f"{entry['name']}_at{node_index}"
            while name in taken:
                name += "_1"
            taken.add(name)
            clone = copy.deepcopy(entry)
            clone["name"] = name
            clone["config"]["name"] = name
            clone["inbound_nodes"] = [node]
            new_entries.append(clone)
            renamed[(entry["name"], node_index)] = name
            copies[name] = entry["name"]
        entry["inbound_nodes"] = entry["inbound_nodes"][:1]
    for entry in new_entries:
        for ref in references(entry["inbound_nodes"]):
            name, node, index = _history(ref)
            if (name, node) in renamed:
                _set_history(ref, renamed[(name, node)], 0, index)
    for ref in config["output_layers"] if isinstance(config["output_layers"], list) else []:
        if isinstance(ref, list) and (ref[0], ref[1]) in renamed:
            ref[0], ref[1] = renamed[(ref[0], ref[1])], 0
    config["layers"] = new_entries
    new_model = keras.Model.from_config(config, custom_objects={"MaskLayer": MaskLayer})
    for layer in getattr(model, "operations", model.layers):
        if isinstance(layer, keras.layers.Layer) and layer.get_weights():
            new_model.get_layer(layer.name).set_weights(layer.get_weights())
    for name, original in copies.items():
        new_model.get_layer(name).set_weights(model.get_layer(original).get_weights())
    return new_model



__all__ = ["compact", "plan_compaction", "ChannelPlan", "unshare_masks"]
