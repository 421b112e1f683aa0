"""DropNet Section C.1 (Fig. A7, Fig. A4): Model C Conv128-Conv128-Conv64-Conv64 on CIFAR-10, training and test accuracy, six metrics.

Run ``python paper_experiments/dropnet/04_3_4_figA7_figA4_model_c_conv128_128_64_64_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_3_4",
    section="C.1",
    title="Model C: Conv128-Conv128-Conv64-Conv64",
    slug="model_c_conv128_128_64_64",
    model="model_c",
    model_kwargs={"widths": (128, 128, 64, 64)},
    dataset="cifar10",
    family="conv",
    figures=(Figure(('figA7',), "test_accuracy"), Figure(('figA4',), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="(supplement: figures only, no ordering stated)",
)

if __name__ == "__main__":
    main(EXPERIMENT)
