"""Entry point of the tf-keras child process, and the module's former single-file home.

``TF_USE_LEGACY_KERAS=1 python -m dropnet_tf.foresight.tfmot.baseline --help`` (or through
the former path ``dropnet_tf.foresight.tfmot.baseline``, an alias of this module) runs
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

# The package re-exports every public name once; this module hands the same names on.
from dropnet_tf.foresight.tfmot import *  # noqa: F401,F403
from dropnet_tf.foresight.tfmot import OPTIMIZER_SPEC_KEYS, __all__, build_parser, main  # noqa: F401


if __name__ == "__main__":
    main()
