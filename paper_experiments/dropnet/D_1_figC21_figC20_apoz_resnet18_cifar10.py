"""DropNet supplement Section D (Figs. C21, C20): DropNet's minimum / minimum_layer against APoZ (Hu et al., 2016) global and layer-wise, ResNet18 on CIFAR-10.

Run ``python paper_experiments/dropnet/D_1_figC21_figC20_apoz_resnet18_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="D_1",
    section="D",
    title="ResNet18, DropNet vs APoZ",
    slug="apoz_resnet18",
    model="resnet18",
    dataset="cifar10",
    family="deep",
    metrics=("minimum", "minimum_layer", "apoz", "apoz_layer"),
    figures=(Figure(("figC21",), "test_accuracy"), Figure(("figC20",), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer ≈ apoz_layer > minimum > apoz",
)

if __name__ == "__main__":
    main(EXPERIMENT)
