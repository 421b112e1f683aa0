"""DropNet Section 4.2, Fig. 8: Model B Conv64-Conv32 on MNIST, the six metrics of Table 1.

Run ``python paper_experiments/dropnet/04_2_3_fig08_model_b_conv64_conv32_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_2_3",
    section="4.2",
    title="Model B: Conv64-Conv32",
    slug="model_b_conv64_conv32",
    model="model_b",
    model_kwargs={"widths": (64, 32)},
    dataset="mnist",
    family="conv",
    figures=(Figure(("fig08",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum > minimum_layer > random > random_layer > maximum_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
