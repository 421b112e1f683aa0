"""DropNet Section 6 (Fig. 16): reset to the original initialisation vs a random re-initialisation of the pruned architecture, Model B: Conv64-Conv64 on mnist.

Run ``python paper_experiments/dropnet/06_2_fig16_init_model_b_conv64_conv64_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="06_2",
    section="6",
    title="Model B: Conv64-Conv64, original vs random init",
    slug="init_model_b_conv64_conv64",
    model="model_b",
    model_kwargs={"widths": (64, 64)},
    dataset="mnist",
    family="conv",
    metrics=('minimum',),
    inits=("original", "random"),
    group_by="init",
    figures=(Figure(('fig16',), "test_accuracy"), Figure(("epochs",), "epochs", where=(("metric", "minimum"),))),
    paper_ordering="original ≈ random until 70-80% of units are dropped",
)

if __name__ == "__main__":
    main(EXPERIMENT)
