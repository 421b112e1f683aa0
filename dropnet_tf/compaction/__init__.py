"""Physically smaller models: compaction of masked models, parameter/FLOP counting, latency.

=================  ================================================================
``compact``        compact(model): masked units physically removed, same outputs
``counting``       count_parameters / count_flops (multiply-adds of Dense and Conv)
``latency``        measure_latency (warm-up, median of repeats), export_tflite
``training``       CompactedCycle: DropNet's cycles train the compacted model and write it
                   back (TrainingConfig(compact_training=...)); import it from there
=================  ================================================================
"""

from dropnet_tf.compaction.compact import ChannelPlan, compact, plan_compaction
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
