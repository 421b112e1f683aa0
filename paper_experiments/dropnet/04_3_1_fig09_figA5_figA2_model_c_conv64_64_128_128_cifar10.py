"""DropNet Section 4.3 / C.1 (Fig. 9, Fig. A5, Fig. A2): Model C Conv64-Conv64-Conv128-Conv128 on CIFAR-10, training and test accuracy, six metrics.

Run ``python paper_experiments/dropnet/04_3_1_fig09_figA5_figA2_model_c_conv64_64_128_128_cifar10.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="04_3_1",
    section="4.3 / C.1",
    title="Model C: Conv64-Conv64-Conv128-Conv128",
    slug="model_c_conv64_64_128_128",
    model="model_c",
    model_kwargs={"widths": (64, 64, 128, 128)},
    dataset="cifar10",
    family="conv",
    figures=(Figure(('fig09', 'figA5'), "test_accuracy"), Figure(('figA2',), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer > minimum > random_layer > random > maximum_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
