"""DropNet Section 6 (Fig. 15): reset to the original initialisation vs a random re-initialisation of the pruned architecture, Model A: FC20-FC20 on mnist.

Run ``python paper_experiments/dropnet/06_1_fig15_init_model_a_fc20_fc20_mnist.py --help`` for the options; ``--scale quick``
finishes in minutes on a CPU, ``--scale paper`` is the paper's protocol.  Rerunning resumes.
"""

from paper_experiments.dropnet.dropnet_protocol import Experiment, Figure, main

EXPERIMENT = Experiment(
    script="06_1",
    section="6",
    title="Model A: FC20-FC20, original vs random init",
    slug="init_model_a_fc20_fc20",
    model="model_a",
    model_kwargs={"widths": (20, 20)},
    dataset="mnist",
    family="mlp",
    metrics=('minimum',),
    inits=("original", "random"),
    group_by="init",
    figures=(Figure(('fig15',), "test_accuracy"), Figure(("epochs",), "epochs", where=(("metric", "minimum"),))),
    paper_ordering="original ≈ random until 70-80% of units are dropped",
)

if __name__ == "__main__":
    main(EXPERIMENT)
