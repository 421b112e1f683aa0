"""DropNet Section 4.2, Fig. 6: Model B Conv64-Conv64 on MNIST, the six metrics of Table 1.

Run ``python paper_experiments/dropnet/04_2_1_fig06_model_b_conv64_conv64_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_2_1",
    section="4.2",
    title="Model B: Conv64-Conv64",
    slug="model_b_conv64_conv64",
    model="model_b",
    model_kwargs={"widths": (64, 64)},
    dataset="mnist",
    family="conv",
    figures=(Figure(("fig06",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer > random_layer > minimum > random > maximum_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
