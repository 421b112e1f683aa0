"""Physically smaller models: compaction of masked models, parameter/FLOP counting, latency.

=================  ================================================================
``compact``        compact(model): masked units physically removed, same outputs
``counting``       count_parameters / count_flops (multiply-adds of Dense and Conv)
``latency``        measure_latency (warm-up, median of repeats), export_tflite
=================  ================================================================
"""

from dropnet_tf.compaction.compact import ChannelPlan, compact, plan_compaction

__all__ = ["compact", "plan_compaction", "ChannelPlan"]
