"""SNIP Table 2 (Section 5.3): AlexNet-s/b, VGG-C/D/like, WRN-16-8/16-10/22-8 on CIFAR-10 and
LSTM-s/b, GRU-s/b on row-by-row MNIST (choose with --model), unpruned vs SNIP at the
paper's sparsity, with TFMOT's gradual magnitude pruning at the same sparsity."""

from paper_experiments.foresight.foresight_protocol import REFERENCE, ForesightExperiment, Quick, main

EXPERIMENT = ForesightExperiment(
    script="06_snip_table2_modern_architectures",
    source="SNIP Table 2",
    title="modern architectures, unpruned vs SNIP vs TFMOT",
    slug="snip_table2",
    model="vgg_like",
    model_choices=("alexnet_s", "alexnet_b", "vgg_c", "vgg_d", "wrn_16_8", "wrn_16_10", "wrn_22_8",
                   "lstm_s", "lstm_b", "gru_s", "gru_b"),
    dataset="cifar10",
    methods=(REFERENCE, "snip", "tfmot_gmp"),
    # r = 1 / (1 − sparsity): 90 % → 10, 95 % → 20, 97 % → 33.3 (Table 2's sparsity column).
    compressions=(33.333333333333336,),
    model_compressions=(("alexnet_s", (10,)), ("alexnet_b", (10,)), ("vgg_c", (20,)), ("vgg_d", (20,)),
                        ("wrn_16_8", (20,)), ("wrn_16_10", (20,)), ("wrn_22_8", (20,)), ("lstm_s", (20,)),
                        ("lstm_b", (20,)), ("gru_s", (20,)), ("gru_b", (20,))),
    figures=(),
    table_ratios=(),
    table_label="table2",
    paper_seeds=(0,),
    protocol="snip",
    init="glorot_uniform",
    quick=Quick(max_train=2000, max_test=1000, epochs=2, learning_rate=0.05, seeds=(0,)),
)

if __name__ == "__main__":
    main(EXPERIMENT)
