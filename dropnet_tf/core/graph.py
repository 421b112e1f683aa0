"""A read-only view of a Keras model's layer graph, from its public config.

Compaction, FLOP counting and the LayerPrune criteria all need the same questions answered:
which layers feed a layer, which layers read it, and which Dense/Conv2D produced the units a
MaskLayer masks.  ``LayerGraph`` answers them from ``Model.get_config()`` (the same public,
serialisable description :func:`dropnet_tf.add_masks` rewrites), never from Keras' private
node objects, so it works alike with Keras 3 and tf-keras.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from dropnet_tf.core.backend import keras
from dropnet_tf.core.layers import MaskLayer

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


# ---- Editing a functional model's config (shared by masking, compaction and layerprune) ----


def functional_config(model, what: str = "add_masks") -> dict:
    try:
        config = model.get_config()
    except NotImplementedError:
        config = None
    if not isinstance(config, dict) or "layers" not in config or "input_layers" not in config:
        advice = (
            "Put MaskLayers in its call() yourself, or rebuild it with the functional API."
            if what == "add_masks" else "Rebuild it with the functional API or as a Sequential model."
        )
        raise TypeError(
            f"{what} supports Sequential and functional models; '{model.name}' "
            f"({type(model).__name__}) looks subclassed. {advice}"
        )
    return copy.deepcopy(config)


# A reference to a layer's output tensor inside a functional config: Keras 3 writes
# {"class_name": "__keras_tensor__", "config": {..., "keras_history": [name, node, index]}},
# tf-keras writes [name, node, index, kwargs].


def is_keras3_ref(obj) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


def is_legacy_ref(obj) -> bool:
    return (
        isinstance(obj, (list, tuple))
        and len(obj) == 4
        and isinstance(obj[0], str)
        and isinstance(obj[1], int)
        and isinstance(obj[2], int)
        and isinstance(obj[3], dict)
    )


def references(obj):
    """Yield every tensor reference (as a mutable object) inside an inbound-node structure."""
    if is_keras3_ref(obj) or is_legacy_ref(obj):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from references(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from references(value)


def ref_layer(ref) -> str:
    return ref["config"]["keras_history"][0] if is_keras3_ref(ref) else ref[0]


def retarget(ref, layer_name: str) -> None:
    if is_keras3_ref(ref):
        history = list(ref["config"]["keras_history"])  # may be a tuple in a live config
        history[0] = layer_name
        ref["config"]["keras_history"] = history
    else:
        ref[0] = layer_name  # tf-keras configs hold these as lists


def output_layer_names(output_layers) -> set[str]:
    """Layer names in a config's "output_layers": one [name, node, index], a list or a dict of them."""
    if isinstance(output_layers, dict):
        output_layers = list(output_layers.values())
    if output_layers and isinstance(output_layers[0], str):
        return {output_layers[0]}
    return {ref[0] for ref in output_layers}



@dataclass
class Node:
    """One layer of the graph: its name, the layer object, and its neighbours by name."""

    name: str
    layer: object  # a keras Layer; None for a Sequential model's input pseudo node
    inbound: list[str] = field(default_factory=list)  # inputs in call order
    consumers: list[str] = field(default_factory=list)
    # The call as the config records it (Keras 3: {"args", "kwargs"} with tensor references
    # and constants such as the 3.0 of ``x + 3.0``); None for Sequential models and tf-keras.
    call: object = None

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
            config = functional_config(model, what)
            # Keras 3 records ``x + 3.0`` on a symbolic tensor as an operation (keras.ops) that is
            # no layer, so model.get_layer cannot find it; model.operations holds both kinds.
            operations = {op.name: op for op in getattr(model, "operations", ())}
            for entry in config["layers"]:
                name = entry["name"]
                if len(entry["inbound_nodes"]) > 1:
                    raise NotImplementedError(
                        f"Layer '{name}' is shared (called {len(entry['inbound_nodes'])} times); "
                        "only layers called once are supported."
                    )
                inbound = [ref_layer(ref) for ref in references(entry["inbound_nodes"])]
                layer = operations[name] if name in operations else model.get_layer(name)
                call = entry["inbound_nodes"][0] if entry["inbound_nodes"] and isinstance(entry["inbound_nodes"][0], dict) else None
                self.nodes[name] = Node(name, layer, inbound, call=call)
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
    if set(names) != output_layer_names(output_layers):  # pragma: no cover - same parse, two views
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


__all__ = [
    "LayerGraph",
    "Node",
    "mask_sources",
    "CHANNELWISE_CLASSES",
    "PRODUCER_CLASSES",
    "SEQUENTIAL_INPUT",
    "functional_config",
    "is_keras3_ref",
    "is_legacy_ref",
    "references",
    "ref_layer",
    "retarget",
    "output_layer_names",
]
