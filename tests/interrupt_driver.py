"""A paper script whose process sends itself SIGINT at a chosen moment (tests/test_interrupts.py).

    python tests/interrupt_driver.py MOMENT N SCRIPT ARGS...

MOMENT names a function of the library; the N-th time it is called, the process sends
itself SIGINT from inside it (as a Ctrl-C landing there would), then the function goes on,
so the KeyboardInterrupt surfaces wherever Python or TensorFlow lets it.  MOMENT:converted
and MOMENT:swallowed do to it what TensorFlow does while tracing (see ``_hook``).  MOMENT
"none" sends nothing.  Then SCRIPT's
``main`` runs with ARGS, as ``python SCRIPT ARGS`` would.
"""

from __future__ import annotations

import atexit
import os
import runpy
import signal
import sys
import time


def _hook(owner, name, count, how="raised"):
    """``how``: "raised" lets the KeyboardInterrupt go where Python raises it; "converted" and
    "swallowed" do what TensorFlow was seen doing with it (another exception while a shape was
    converted in a traced call; autograph running the function as it is after its conversion
    raised), so that the entry point's handling of both is tested in a real script."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def never_reached():
        if calls["n"] < count:  # the test asked for a moment this run does not have: say so
            sys.stderr.write(f"interrupt_driver: {name} was called {calls['n']} times, never the {count}th\n")
            os._exit(3)

    atexit.register(never_reached)

    def hooked(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] != count:
            return original(*args, **kwargs)
        if how == "raised":
            os.kill(os.getpid(), signal.SIGINT)
            return original(*args, **kwargs)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises here
        except KeyboardInterrupt:
            if how == "converted":
                raise TypeError("Exception encountered when calling Flatten.call(). Failed to convert elements "
                                "of (None, 64) to Tensor") from None
        return original(*args, **kwargs)

    setattr(owner, name, hooked)


def _targets(moment):
    """(object, attribute) of each moment; imported here, after the script's own imports."""
    if moment == "trace_train":  # Python of the graph trainer's step: runs only while tracing
        from dropnet_tf.engines.graph_trainer import GraphTrainer
        return GraphTrainer, "_train_block_python"
    if moment == "trace_flatten":  # inside a layer's call as a model is built or its step traced (the case)
        from dropnet_tf.core.backend import keras
        return keras.layers.Flatten, "call"
    if moment == "trace_evaluate":
        from dropnet_tf.engines.graph_trainer import GraphTrainer
        return GraphTrainer, "_evaluate_all_python"
    if moment == "results_write":  # a record being appended (atomically)
        import dropnet_tf.harness.results as results
        return results, "atomic_write_text"
    if moment == "state_write":  # a run's state file (the next cycle's masks)
        import dropnet_tf.core.io as io
        return io, "atomic_write_bytes"
    if moment == "keras_fit":  # foresight's Model.fit: its tf.data pipeline and traced step
        from dropnet_tf.core.backend import keras
        return keras.Model, "fit"
    if moment == "figure":
        import dropnet_tf.plotting as plotting
        return plotting, "plot_accuracy_vs_fraction"
    raise SystemExit(f"unknown moment {moment!r}")


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before the hooks import TensorFlow, as the scripts do
    moment, count, script, *args = argv
    sys.argv = [script, *args]
    if moment != "none":
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        moment, _, how = moment.partition(":")
        owner, name = _targets(moment)
        _hook(owner, name, int(count), how or "raised")
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
