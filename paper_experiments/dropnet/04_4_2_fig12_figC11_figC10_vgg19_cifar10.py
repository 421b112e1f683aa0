"""DropNet Section 4.4 / C.2 (Figs. 12, C11, C10): VGG19 on cifar10, training and test accuracy, six metrics.

Run ``python paper_experiments/dropnet/04_4_2_fig12_figC11_figC10_vgg19_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_4_2",
    section="4.4 / C.2",
    title="VGG19",
    slug="vgg19",
    model="vgg19",
    dataset="cifar10",
    family="deep",
    figures=(Figure(("fig12", "figC11"), "test_accuracy"), Figure(("figC10",), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer > random_layer > random > maximum_layer > minimum > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
