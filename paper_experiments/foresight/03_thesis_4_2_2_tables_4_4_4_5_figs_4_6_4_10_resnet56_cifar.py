"""Thesis Section 4.2.2, Tables 4.4-4.5 and Figs. 4.6-4.10: ResNet-56 on CIFAR-10 (and CIFAR-100
with --dataset cifar100: Figs. 4.8-4.9), every method but OBD."""

from paper_experiments.foresight.foresight_protocol import THESIS_METHODS, THESIS_RATIOS, ForesightExperiment, Quick, main, REFERENCE

EXPERIMENT = ForesightExperiment(
    script="03_thesis_4_2_2_tables_4_4_4_5_figs_4_6_4_10_resnet56_cifar",
    source="Thesis 4.2.2 (Tables 4.4-4.5, Figs. 4.6-4.10)",
    title="ResNet-56, every method but OBD",
    slug="thesis_resnet56",
    model="resnet56",
    dataset="cifar10",
    methods=(REFERENCE,) + THESIS_METHODS,
    compressions=THESIS_RATIOS,
    figures=(("fig4_6_or_4_8", "top1"), ("fig4_7_or_4_9", "top5"), ("fig4_10", "compression_error")),
    table_ratios=(32, 64),
    table_label="tables_4_4_4_5",
    # lr 0.05 made ResNet-56 diverge (loss 5 -> 13 in two epochs); 0.01 trains, and the CIFAR scripts share it.
    quick=Quick(max_train=2000, max_test=1000, epochs=2, learning_rate=0.01, seeds=(42,)),
)

if __name__ == "__main__":
    main(EXPERIMENT)
