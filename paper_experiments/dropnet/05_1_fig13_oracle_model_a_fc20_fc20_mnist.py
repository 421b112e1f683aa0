"""DropNet Section 5, Fig. 13: the greedy oracle against minimum, maximum and random_layer, dropping one unit per cycle, Model A: FC20-FC20 on MNIST; plus each metric's mask agreement with the oracle's.

Run ``python paper_experiments/dropnet/05_1_fig13_oracle_model_a_fc20_fc20_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="05_1",
    section="5",
    title="Model A: FC20-FC20, oracle comparison",
    slug="oracle_model_a_fc20_fc20",
    model="model_a",
    model_kwargs={"widths": (20, 20)},
    dataset="mnist",
    family="mlp",
    metrics=("oracle", "minimum", "maximum", "random_layer"),
    count=1,  # drop-one: the oracle tries every single unit (Section 5)
    figures=(
        Figure(("fig13",), "test_accuracy"),
        Figure(("fig13",), "oracle_similarity", caption="mask agreement with the oracle"),
        Figure(("epochs",), "epochs"),
    ),
    paper_ordering="oracle > minimum (close) > random_layer > maximum",
)

if __name__ == "__main__":
    main(EXPERIMENT)
