"""TFMOT's gradual magnitude pruning, the TensorFlow baseline of the foresight comparison.

Everything lives in :mod:`dropnet_tf.foresight.tfmot.baseline` (run it with
``TF_USE_LEGACY_KERAS=1 python -m dropnet_tf.foresight.tfmot.baseline``); the former path
``dropnet_tf.foresight.tfmot_baseline`` is an alias of that module.  Importing this package
imports neither TFMOT nor the baseline module.
"""
