"""A read-only view of a Keras model's layer graph, from its public config.

Compaction, FLOP counting and the LayerPrune criteria all need the same questions answered:
which layers feed a layer, which layers read it, and which Dense/Conv2D produced the units a
MaskLayer masks.  ``LayerGraph`` answers them from ``Model.get_config()`` (the same public,
serialisable description :func:`dropnet_tf.add_masks` rewrites), never from Keras' private
node objects, so it works alike with Keras 3 and tf-keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dropnet_tf._keras import keras
from dropnet_tf.layers import MaskLayer
from dropnet_tf.masking import _functional_config, _output_layer_names, _ref_layer, _references

#: Name of the pseudo node that stands for a Sequential model's input.
SEQUENTIAL_INPUT = "__input__"

#: Layers that act on every channel separately, leaving the channel axis as it is: a masked
#: unit stays a unit of the same index through them.  Pooling and padding act spatially only.
CHANNELWISE_CLASSES = frozenset(
    {
        "MaskLayer",
        "BatchNormalization",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "PReLU",
        "ThresholdedReLU",
        "Dropout",
        "SpatialDropout2D",
        "GaussianDropout",
        "GaussianNoise",
        "MaxPooling2D",
        "AveragePooling2D",
        "MaxPooling1D",
        "AveragePooling1D",
        "ZeroPadding2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "Identity",
    }
)

#: Layers whose output units are new (their own filters or nodes).
PRODUCER_CLASSES = frozenset({"Dense", "Conv2D", "Conv1D"})


@dataclass
class Node:
    """One layer of the graph: its name, the layer object, and its neighbours by name."""

    name: str
    layer: object  # a keras Layer; None for a Sequential model's input pseudo node
    inbound: list[str] = field(default_factory=list)  # inputs in call order
    consumers: list[str] = field(default_factory=list)

    @property
    def class_name(self) -> str:
        return "InputLayer" if self.layer is None else type(self.layer).__name__


class LayerGraph:
    """The layers of a Sequential or functional model in topological order.

    Attributes:
        nodes: ``{layer name: Node}`` in an order where every layer follows its inputs.
        inputs / outputs: names of the input and output layers.
        sequential: whether the model was a ``keras.Sequential``.
    """

    def __init__(self, model, what: str = "LayerGraph"):
        if not model.built:
            raise ValueError(f"Model '{model.name}' is not built; give it an Input (or call model.build) first.")
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        if nested:
            raise NotImplementedError(
                f"Model '{model.name}' contains nested models {nested}; flatten it into one functional model first."
            )
        self.model = model
        self.sequential = isinstance(model, keras.Sequential)
        self.nodes: dict[str, Node] = {}
        if self.sequential:
            previous = SEQUENTIAL_INPUT
            self.nodes[previous] = Node(previous, None)
            for layer in model.layers:
                self.nodes[layer.name] = Node(layer.name, layer, [previous])
                previous = layer.name
            self.inputs, self.outputs = [SEQUENTIAL_INPUT], [previous]
        else:
            config = _functional_config(model, what)
            for entry in config["layers"]:
                name = entry["name"]
                if len(entry["inbound_nodes"]) > 1:
                    raise NotImplementedError(
                        f"Layer '{name}' is shared (called {len(entry['inbound_nodes'])} times); "
                        "only layers called once are supported."
                    )
                inbound = [_ref_layer(ref) for ref in _references(entry["inbound_nodes"])]
                self.nodes[name] = Node(name, model.get_layer(name), inbound)
            self.inputs = [
                entry["name"] for entry in config["layers"] if entry["class_name"] == "InputLayer"
            ]
            self.outputs = _ordered_output_names(config["output_layers"])
        for node in self.nodes.values():
            for source in node.inbound:
                self.nodes[source].consumers.append(node.name)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __iter__(self):
        return iter(self.nodes.values())

    def input_shape(self, name: str) -> tuple:
        """The shape (batch axis included) of the tensor the layer ``name`` reads."""
        node = self.nodes[name]
        if self.sequential and node.inbound == [SEQUENTIAL_INPUT]:
            return tuple(self.model.inputs[0].shape)
        return tuple(self.output_shape(node.inbound[0]))

    def output_shape(self, name: str) -> tuple:
        """The shape (batch axis included) of the tensor the layer ``name`` writes."""
        if name == SEQUENTIAL_INPUT:
            return tuple(self.model.inputs[0].shape)
        layer = self.nodes[name].layer
        output = layer.output
        return tuple(output.shape)

    def chain_source(self, mask_name: str) -> tuple[Node, list[Node]]:
        """The layer whose units a MaskLayer masks, and the channel-wise layers in between.

        Walks upstream from ``mask_name`` through single-input channel-wise layers
        (BatchNormalization, activations, dropout, pooling) to the Dense / Conv2D that
        created the units.  Returns ``(producer node, [nodes between, nearest the producer
        first])``.  Raises a ValueError naming the layer when the walk meets anything else
        (an Add, the model input...), since such a mask has no single producer.
        """
        node = self.nodes[mask_name]
        if not isinstance(node.layer, MaskLayer):
            raise ValueError(f"Layer '{mask_name}' is a {node.class_name}, not a MaskLayer.")
        between: list[Node] = []
        current = self.nodes[node.inbound[0]]
        while current.class_name not in PRODUCER_CLASSES:
            if current.class_name not in CHANNELWISE_CLASSES or len(current.inbound) != 1:
                raise ValueError(
                    f"MaskLayer '{mask_name}' does not follow a Dense/Conv2D through channel-wise layers only: "
                    f"the walk upstream met '{current.name}' ({current.class_name})."
                )
            between.append(current)
            current = self.nodes[current.inbound[0]]
        between.reverse()
        return current, between


def _ordered_output_names(output_layers) -> list[str]:
    """Output layer names in the model's output order, from a config's "output_layers"."""
    if isinstance(output_layers, dict):
        output_layers = list(output_layers.values())
    if output_layers and isinstance(output_layers[0], str):
        return [output_layers[0]]
    names = [ref[0] for ref in output_layers]
    if set(names) != _output_layer_names(output_layers):  # pragma: no cover - same parse, two views
        raise ValueError(f"Could not read the output layers {output_layers!r}.")
    return names


def mask_sources(model) -> dict[str, tuple[object, list[object]]]:
    """``{mask layer name: (producer layer, [channel-wise layers between])}`` for every MaskLayer.

    The producer is the Dense/Conv2D whose nodes or filters the mask covers; the list holds
    the layers between it and the mask, nearest the producer first (e.g. the
    BatchNormalization whose scale network slimming reads).  Masks that have no single
    producer (for instance one placed after an ``Add``) raise a ValueError.
    """
    graph = LayerGraph(model)
    found = {}
    for node in graph:
        if isinstance(node.layer, MaskLayer):
            producer, between = graph.chain_source(node.name)
            found[node.name] = (producer.layer, [n.layer for n in between])
    return found


__all__ = ["LayerGraph", "Node", "mask_sources", "CHANNELWISE_CLASSES", "PRODUCER_CLASSES", "SEQUENTIAL_INPUT"]
