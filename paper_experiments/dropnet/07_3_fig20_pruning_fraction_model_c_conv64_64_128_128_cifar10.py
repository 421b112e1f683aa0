"""DropNet Section 7, Fig. 20: the minimum metric with pruning fractions p = 0.2, 0.3, 0.4, 0.5, 0.9, Model C: Conv64-Conv64-Conv128-Conv128 on cifar10.

Run ``python paper_experiments/dropnet/07_3_fig20_pruning_fraction_model_c_conv64_64_128_128_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="07_3",
    section="7",
    title="Model C: Conv64-Conv64-Conv128-Conv128, pruning fraction p",
    slug="pruning_fraction_model_c_conv64_64_128_128",
    model="model_c",
    model_kwargs={"widths": (64, 64, 128, 128)},
    dataset="cifar10",
    family="conv",
    metrics=("minimum",),
    fractions=(0.2, 0.3, 0.4, 0.5, 0.9),
    group_by="pruning_fraction",
    figures=(Figure(("fig20",), "test_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="smaller p is better: 0.2 ≥ 0.3 ≥ 0.4 ≥ 0.5 > 0.9",
)

if __name__ == "__main__":
    main(EXPERIMENT)
