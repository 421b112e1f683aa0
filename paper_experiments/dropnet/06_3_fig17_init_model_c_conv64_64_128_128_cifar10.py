"""DropNet Section 6 (Fig. 17): reset to the original initialisation vs a random re-initialisation of the pruned architecture, Model C: Conv64-Conv64-Conv128-Conv128 on cifar10.

Run ``python paper_experiments/dropnet/06_3_fig17_init_model_c_conv64_64_128_128_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="06_3",
    section="6",
    title="Model C: Conv64-Conv64-Conv128-Conv128, original vs random init",
    slug="init_model_c_conv64_64_128_128",
    model="model_c",
    model_kwargs={"widths": (64, 64, 128, 128)},
    dataset="cifar10",
    family="conv",
    metrics=('minimum',),
    inits=("original", "random"),
    group_by="init",
    figures=(Figure(('fig17',), "test_accuracy"), Figure(("epochs",), "epochs", where=(("metric", "minimum"),))),
    paper_ordering="original ≈ random until 70-80% of units are dropped",
)

if __name__ == "__main__":
    main(EXPERIMENT)
