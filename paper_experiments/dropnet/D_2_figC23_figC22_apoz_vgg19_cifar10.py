"""DropNet supplement Section D (Figs. C23, C22): DropNet's minimum / minimum_layer against APoZ (Hu et al., 2016) global and layer-wise, VGG19 on CIFAR-10.

Run ``python paper_experiments/dropnet/D_2_figC23_figC22_apoz_vgg19_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="D_2",
    section="D",
    title="VGG19, DropNet vs APoZ",
    slug="apoz_vgg19",
    model="vgg19",
    dataset="cifar10",
    family="deep",
    metrics=("minimum", "minimum_layer", "apoz", "apoz_layer"),
    figures=(Figure(("figC23",), "test_accuracy"), Figure(("figC22",), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer > apoz_layer > minimum > apoz",
)

if __name__ == "__main__":
    main(EXPERIMENT)
