"""DropNet Section 7, Fig. 19: the minimum metric with pruning fractions p = 0.2, 0.3, 0.4, 0.5, 0.9, Model B: Conv64-Conv64 on mnist.

Run ``python paper_experiments/dropnet/07_2_fig19_pruning_fraction_model_b_conv64_conv64_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="07_2",
    section="7",
    title="Model B: Conv64-Conv64, pruning fraction p",
    slug="pruning_fraction_model_b_conv64_conv64",
    model="model_b",
    model_kwargs={"widths": (64, 64)},
    dataset="mnist",
    family="conv",
    metrics=("minimum",),
    fractions=(0.2, 0.3, 0.4, 0.5, 0.9),
    group_by="pruning_fraction",
    figures=(Figure(("fig19",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="smaller p is better: 0.2 ≥ 0.3 ≥ 0.4 ≥ 0.5 > 0.9",
)

if __name__ == "__main__":
    main(EXPERIMENT)
