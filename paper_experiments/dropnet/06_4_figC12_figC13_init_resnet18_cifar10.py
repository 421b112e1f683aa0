"""DropNet Section C.3 (Fig. C12, Fig. C13): reset to the original initialisation vs a random re-initialisation of the pruned architecture, ResNet18 on cifar10.

Run ``python paper_experiments/dropnet/06_4_figC12_figC13_init_resnet18_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="06_4",
    section="C.3",
    title="ResNet18, original vs random init",
    slug="init_resnet18",
    model="resnet18",
    dataset="cifar10",
    family="deep",
    metrics=('minimum', 'minimum_layer'),
    inits=("original", "random"),
    group_by="init",
    figures=(Figure(("figC12",), "test_accuracy", where=(("metric", "minimum"),)), Figure(("figC13",), "test_accuracy", where=(("metric", "minimum_layer"),)), Figure(("epochs",), "epochs", where=(("metric", "minimum"),))),
    paper_ordering="similar for original and random init",
)

if __name__ == "__main__":
    main(EXPERIMENT)
