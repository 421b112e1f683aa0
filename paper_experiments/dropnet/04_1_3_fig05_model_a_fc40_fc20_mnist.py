"""DropNet Section 4.1, Fig. 5: Model A FC40-FC20 on MNIST, the six metrics of Table 1.

Run ``python paper_experiments/dropnet/04_1_3_fig05_model_a_fc40_fc20_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_1_3",
    section="4.1",
    title="Model A: FC40-FC20",
    slug="model_a_fc40_fc20",
    model="model_a",
    model_kwargs={"widths": (40, 20)},
    dataset="mnist",
    family="mlp",
    figures=(Figure(("fig05",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum ≈ minimum_layer > random_layer > random > maximum_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
