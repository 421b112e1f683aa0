"""Thesis Section 4.2.1, Tables 4.2-4.3 and Figs. 4.1-4.5: VGG-16 on CIFAR-10 (and CIFAR-100 with
--dataset cifar100: Figs. 4.3-4.4), every method but OBD."""

from paper_experiments.foresight.foresight_protocol import THESIS_METHODS, THESIS_RATIOS, ForesightExperiment, Quick, main, REFERENCE

EXPERIMENT = ForesightExperiment(
    script="02_thesis_4_2_1_tables_4_2_4_3_figs_4_1_4_5_vgg16_cifar",
    source="Thesis 4.2.1 (Tables 4.2-4.3, Figs. 4.1-4.5)",
    title="VGG-16, every method but OBD",
    slug="thesis_vgg16",
    model="vgg16",
    dataset="cifar10",
    methods=(REFERENCE,) + THESIS_METHODS,
    compressions=THESIS_RATIOS,
    figures=(("fig4_1_or_4_3", "top1"), ("fig4_2_or_4_4", "top5"), ("fig4_5", "compression_error")),
    table_ratios=(32, 64),
    table_label="tables_4_2_4_3",
    # lr 0.05 made ResNet-56 diverge (loss 5 -> 13 in two epochs); 0.01 trains, and the CIFAR scripts share it.
    quick=Quick(max_train=2000, max_test=1000, epochs=2, learning_rate=0.01, seeds=(42,)),
)

if __name__ == "__main__":
    main(EXPERIMENT)
