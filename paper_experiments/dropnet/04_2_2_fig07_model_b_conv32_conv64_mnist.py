"""DropNet Section 4.2, Fig. 7: Model B Conv32-Conv64 on MNIST, the six metrics of Table 1.

Run ``python paper_experiments/dropnet/04_2_2_fig07_model_b_conv32_conv64_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_2_2",
    section="4.2",
    title="Model B: Conv32-Conv64",
    slug="model_b_conv32_conv64",
    model="model_b",
    model_kwargs={"widths": (32, 64)},
    dataset="mnist",
    family="conv",
    figures=(Figure(("fig07",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum > minimum_layer > random_layer > random > maximum_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
