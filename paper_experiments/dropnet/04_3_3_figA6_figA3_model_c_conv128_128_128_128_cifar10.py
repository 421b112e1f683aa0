"""DropNet Section C.1 (Fig. A6, Fig. A3): Model C Conv128-Conv128-Conv128-Conv128 on CIFAR-10, training and test accuracy, six metrics.

Run ``python paper_experiments/dropnet/04_3_3_figA6_figA3_model_c_conv128_128_128_128_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_3_3",
    section="C.1",
    title="Model C: Conv128-Conv128-Conv128-Conv128",
    slug="model_c_conv128_128_128_128",
    model="model_c",
    model_kwargs={"widths": (128, 128, 128, 128)},
    dataset="cifar10",
    family="conv",
    figures=(Figure(('figA6',), "test_accuracy"), Figure(('figA3',), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="(supplement: figures only, no ordering stated)",
)

if __name__ == "__main__":
    main(EXPERIMENT)
