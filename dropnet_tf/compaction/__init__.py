"""Physically smaller models: compaction of masked models, parameter/FLOP counting, latency.

Its modules are listed, with what each holds, in the README's Layout section;
``compaction.training`` (DropNet's cycles on the compacted model) is imported from there.
"""

from dropnet_tf.compaction.compact import ChannelPlan, compact, plan_compaction
from dropnet_tf.compaction import groups  # noqa: F401  (registers add_masks(groups=True))
from dropnet_tf.compaction.counting import count_flops, count_parameters, layer_flops
from dropnet_tf.compaction.latency import (
    LatencyResult,
    compare_latency,
    export_tflite,
    measure_latency,
    tflite_available,
    tflite_bytes,
    tflite_latency,
    tflite_predict,
)

__all__ = [
    "compact",
    "plan_compaction",
    "ChannelPlan",
    "count_flops",
    "count_parameters",
    "layer_flops",
    "LatencyResult",
    "compare_latency",
    "export_tflite",
    "measure_latency",
    "tflite_available",
    "tflite_bytes",
    "tflite_latency",
    "tflite_predict",
]
