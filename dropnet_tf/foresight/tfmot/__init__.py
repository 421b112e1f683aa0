"""TFMOT's gradual magnitude pruning, the TensorFlow baseline of the foresight comparison.

* :mod:`.schedule`: :func:`pruning_schedule_steps`, the PolynomialDecay window and frequency;
* :mod:`.pruning`: :func:`gradual_magnitude_pruning` (tf-keras only), the optimizer spec
  (:func:`normalise_optimizer_spec`, :func:`make_optimizer`) and the sparsity report;
* :mod:`.child`: :func:`run_in_tf_keras`, which runs the pruning in a tf-keras child process
  from a Keras-3 program, the NPZ data exchange and the child's command line;
* :mod:`.baseline`: the child's entry point (``TF_USE_LEGACY_KERAS=1 python -m
  dropnet_tf.foresight.tfmot.baseline``), re-exporting all of the above.

Importing this package does not import TFMOT (only :func:`gradual_magnitude_pruning` does),
nor the ``baseline`` module, so that ``python -m`` can run the latter as ``__main__``.
"""

from dropnet_tf.foresight.tfmot.child import (
    build_parser,
    load_data_npz,
    main,
    resolve_builder,
    run_in_tf_keras,
    save_data_npz,
)
from dropnet_tf.foresight.tfmot.pruning import (
    DEFAULT_OPTIMIZER_SPEC,
    METHOD,
    OPTIMIZER_SPEC_KEYS,
    gradual_magnitude_pruning,
    make_optimizer,
    normalise_optimizer_spec,
)
from dropnet_tf.foresight.tfmot.schedule import DEFAULT_END_FRACTION, pruning_schedule_steps

__all__ = [
    "DEFAULT_END_FRACTION",
    "DEFAULT_OPTIMIZER_SPEC",
    "METHOD",
    "OPTIMIZER_SPEC_KEYS",
    "build_parser",
    "gradual_magnitude_pruning",
    "load_data_npz",
    "main",
    "make_optimizer",
    "normalise_optimizer_spec",
    "pruning_schedule_steps",
    "resolve_builder",
    "run_in_tf_keras",
    "save_data_npz",
]
