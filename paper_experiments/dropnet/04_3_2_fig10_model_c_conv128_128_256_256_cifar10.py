"""DropNet Section 4.3 (Fig. 10): Model C Conv128-Conv128-Conv256-Conv256 on CIFAR-10, training and test accuracy, six metrics.

Run ``python paper_experiments/dropnet/04_3_2_fig10_model_c_conv128_128_256_256_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_3_2",
    section="4.3",
    title="Model C: Conv128-Conv128-Conv256-Conv256",
    slug="model_c_conv128_128_256_256",
    model="model_c",
    model_kwargs={"widths": (128, 128, 256, 256)},
    dataset="cifar10",
    family="conv",
    figures=(Figure(('fig10',), "test_accuracy"), Figure(("fig10",), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer > minimum > random_layer > random > maximum_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
