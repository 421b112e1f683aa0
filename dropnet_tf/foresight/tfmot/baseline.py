"""Entry point of the tf-keras child process of the TFMOT baseline.

``TF_USE_LEGACY_KERAS=1 python -m dropnet_tf.foresight.tfmot.baseline --help`` runs
:func:`dropnet_tf.foresight.tfmot.child.main`; :func:`~dropnet_tf.foresight.tfmot.child.run_in_tf_keras`
starts its child process with this command.  The code lives in the package's other modules
(:mod:`~dropnet_tf.foresight.tfmot.schedule`, :mod:`~dropnet_tf.foresight.tfmot.pruning`,
:mod:`~dropnet_tf.foresight.tfmot.child`), and its names are imported from
:mod:`dropnet_tf.foresight.tfmot`.
"""

from __future__ import annotations

from dropnet_tf.foresight.tfmot.child import main

if __name__ == "__main__":
    main()
