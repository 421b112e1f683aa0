"""DropNet Section C.3 (Fig. C14, Fig. C15): reset to the original initialisation vs a random re-initialisation of the pruned architecture, VGG19 on cifar10.

Run ``python paper_experiments/dropnet/06_5_figC14_figC15_init_vgg19_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="06_5",
    section="C.3",
    title="VGG19, original vs random init",
    slug="init_vgg19",
    model="vgg19",
    dataset="cifar10",
    family="deep",
    metrics=('minimum', 'minimum_layer'),
    inits=("original", "random"),
    group_by="init",
    figures=(Figure(("figC14",), "test_accuracy", where=(("metric", "minimum"),)), Figure(("figC15",), "test_accuracy", where=(("metric", "minimum_layer"),)), Figure(("epochs",), "epochs", where=(("metric", "minimum"),))),
    paper_ordering="similar for original and random init",
)

if __name__ == "__main__":
    main(EXPERIMENT)
