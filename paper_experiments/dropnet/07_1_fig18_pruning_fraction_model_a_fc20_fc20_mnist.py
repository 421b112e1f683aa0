"""DropNet Section 7, Fig. 18: the minimum metric with pruning fractions p = 0.2, 0.3, 0.4, 0.5, 0.9, Model A: FC20-FC20 on mnist.

Run ``python paper_experiments/dropnet/07_1_fig18_pruning_fraction_model_a_fc20_fc20_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="07_1",
    section="7",
    title="Model A: FC20-FC20, pruning fraction p",
    slug="pruning_fraction_model_a_fc20_fc20",
    model="model_a",
    model_kwargs={"widths": (20, 20)},
    dataset="mnist",
    family="mlp",
    metrics=("minimum",),
    fractions=(0.2, 0.3, 0.4, 0.5, 0.9),
    group_by="pruning_fraction",
    figures=(Figure(("fig18",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="smaller p is better: 0.2 ≥ 0.3 ≥ 0.4 ≥ 0.5 > 0.9",
)

if __name__ == "__main__":
    main(EXPERIMENT)
