"""DropNet Section 4.4 / C.2 (Figs. 11, C9, C8): ResNet18 on cifar10, training and test accuracy, six metrics.

Run ``python paper_experiments/dropnet/04_4_1_fig11_figC9_figC8_resnet18_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_4_1",
    section="4.4 / C.2",
    title="ResNet18",
    slug="resnet18",
    model="resnet18",
    dataset="cifar10",
    family="deep",
    figures=(Figure(("fig11", "figC9"), "test_accuracy"), Figure(("figC8",), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer ≥ minimum > random_layer > random > maximum_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
