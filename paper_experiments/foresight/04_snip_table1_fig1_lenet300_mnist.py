"""SNIP Table 1 / Fig. 1 (Section 5.1-5.2), LeNet-300-100 on MNIST at 90-98 % sparsity:
SNIP against random, magnitude and TensorFlow's gradual magnitude pruning (TFMOT)."""

from paper_experiments.foresight.foresight_protocol import REFERENCE, ForesightExperiment, Quick, main

EXPERIMENT = ForesightExperiment(
    script="04_snip_table1_fig1_lenet300_mnist",
    source="SNIP Table 1 / Fig. 1",
    title="LeNet-300-100, sparsity 90-98 %",
    slug="snip_lenets",
    model="lenet_300_100",
    dataset="mnist",
    methods=(REFERENCE, "snip", "random", "global_magnitude", "tfmot_gmp"),
    compressions=(10, 20, 50),
    figures=(("table1_fig1", "top1"),),
    table_ratios=(10, 20, 50),
    table_label="table1",
    paper_seeds=tuple(range(20)),
    protocol="snip",
    init="glorot_uniform",
    quick=Quick(max_train=5000, max_test=2000, epochs=3, learning_rate=0.05, seeds=(0, 1)),
)

if __name__ == "__main__":
    main(EXPERIMENT)
