"""DropNet Section 4.1, Fig. 4: Model A FC20-FC40 on MNIST, the six metrics of Table 1.

Run ``python paper_experiments/dropnet/04_1_2_fig04_model_a_fc20_fc40_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_1_2",
    section="4.1",
    title="Model A: FC20-FC40",
    slug="model_a_fc20_fc40",
    model="model_a",
    model_kwargs={"widths": (20, 40)},
    dataset="mnist",
    family="mlp",
    figures=(Figure(("fig04",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum > layer-wise and random metrics > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
