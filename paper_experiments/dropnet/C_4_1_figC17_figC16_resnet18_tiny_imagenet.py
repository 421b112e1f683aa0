"""DropNet supplement Section C.4 (Figs. C17, C16): ResNet18 on Tiny ImageNet (200 classes), Table C1 augmentation, early-stopping patience 10, p = 0.5.

Run ``python paper_experiments/dropnet/C_4_1_figC17_figC16_resnet18_tiny_imagenet.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="C_4_1",
    section="C.4",
    title="ResNet18",
    slug="resnet18",
    model="resnet18",
    model_kwargs={},
    dataset="tiny_imagenet",
    family="deep",
    fractions=(0.5,),  # supplement C.4: 0.5 per cycle to shorten the runs
    patience=10,  # supplement C.4: more time to converge on the larger dataset
    augmentation=True,  # Table C1
    figures=(Figure(("figC17",), "test_accuracy"), Figure(("figC16",), "train_accuracy"), Figure(("epochs",), "epochs")),
    paper_ordering="minimum_layer best; minimum worse than on CIFAR-10",
)

if __name__ == "__main__":
    main(EXPERIMENT)
