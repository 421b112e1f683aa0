"""Entry point of the tf-keras child process, and the module's former single-file home.

``TF_USE_LEGACY_KERAS=1 python -m dropnet_tf.foresight.tfmot.baseline --help`` (or through
the former path ``dropnet_tf.foresight.tfmot_baseline``, an alias of this module) runs
:func:`dropnet_tf.foresight.tfmot.child.main`; :func:`run_in_tf_keras` starts its child
process with this command.  Every name the module used to define is re-exported here, so
``from dropnet_tf.foresight.tfmot.baseline import run_in_tf_keras`` keeps working.  The code
lives in

* :mod:`~dropnet_tf.foresight.tfmot.schedule`: the PolynomialDecay steps;
* :mod:`~dropnet_tf.foresight.tfmot.pruning`: the optimizer spec and the pruning run;
* :mod:`~dropnet_tf.foresight.tfmot.child`: data and result exchange with the child process
  and its command line.
"""

from __future__ import annotations

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
    "gradual_magnitude_pruning",
    "load_data_npz",
    "make_optimizer",
    "normalise_optimizer_spec",
    "pruning_schedule_steps",
    "resolve_builder",
    "run_in_tf_keras",
    "save_data_npz",
]


if __name__ == "__main__":
    main()
