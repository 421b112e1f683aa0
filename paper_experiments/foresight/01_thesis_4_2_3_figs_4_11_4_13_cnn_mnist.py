"""Thesis Section 4.2.3, Figs. 4.11-4.13: the Table 4.1 CNN on MNIST, every method incl. OBD,
top-1 / top-5 and compression error at r = 1 ... 64."""

from paper_experiments.foresight.foresight_protocol import THESIS_METHODS, THESIS_RATIOS, ForesightExperiment, Quick, main, REFERENCE

EXPERIMENT = ForesightExperiment(
    script="01_thesis_4_2_3_figs_4_11_4_13_cnn_mnist",
    source="Thesis 4.2.3 (Figs. 4.11-4.13)",
    title="Table 4.1 CNN, every method incl. OBD",
    slug="thesis_cnn",
    model="thesis_cnn",
    dataset="mnist",
    methods=(REFERENCE,) + THESIS_METHODS + ("obd",),
    compressions=THESIS_RATIOS,
    figures=(("fig4_11", "top1"), ("fig4_12", "top5"), ("fig4_13", "compression_error")),
    table_ratios=(32, 64),
    table_label="table_r32_r64",
    quick=Quick(max_train=5000, max_test=2000, epochs=3, learning_rate=0.05, seeds=(42,)),
)

if __name__ == "__main__":
    main(EXPERIMENT)
