"""DropNet Section 5, Fig. 14: the greedy oracle against minimum, maximum and random_layer, dropping one unit per cycle, Model B: Conv20-Conv20 on MNIST; plus each metric's mask agreement with the oracle's.

Run ``python paper_experiments/dropnet/05_2_fig14_oracle_model_b_conv20_conv20_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="05_2",
    section="5",
    title="Model B: Conv20-Conv20, oracle comparison",
    slug="oracle_model_b_conv20_conv20",
    model="model_b",
    model_kwargs={"widths": (20, 20)},
    dataset="mnist",
    family="conv",
    metrics=("oracle", "minimum", "maximum", "random_layer"),
    count=1,  # drop-one: the oracle tries every single unit (Section 5)
    figures=(
        Figure(("fig14",), "test_accuracy"),
        Figure(("fig14",), "oracle_similarity", caption="mask agreement with the oracle"),
        Figure(("epochs",), "epochs"),
    ),
    paper_ordering="oracle ≈ minimum ≈ random_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
