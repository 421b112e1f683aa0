"""LayerPrune supplement Fig. 1: latency reduction vs accuracy, filter pruning at several ratios vs layer pruning.

Filter pruning (weight norm, Taylor, feature maps, batch-norm scale, geometric median; global,
one-shot) removes 100, 200, 300 and 400 of ResNet-56's 1008 prunable filters (the same
fractions at other depths); layer pruning removes 1-4 residual blocks ranked by imprinting.
Every network is compacted, fine-tuned and timed (batch 64, median of repeats after warm-up):
the figure plots the measured latency reduction against test accuracy, one line per method
in ascending order of pruning.  The supplement's point: removing filters buys little latency,
removing blocks a lot.
"""

from paper_experiments.layerprune.layerprune_protocol import (
    CRITERION_LABELS, FilterArms, LayerArms, LayerPruneExperiment, command, model_label, provenance, run,
    write_outputs,
)

SCRIPT = "04_fig1_latency_vs_accuracy_resnet56"
FRACTIONS = tuple(n / 1008 for n in (100, 200, 300, 400))
BLOCKS = (1, 2, 3, 4)

EXPERIMENT = LayerPruneExperiment(
    script=SCRIPT,
    description=__doc__.splitlines()[0],
    model="resnet",
    dataset="cifar10",
    filters=FilterArms(CRITERION_LABELS, FRACTIONS, ("one_shot",), key="fraction", use_steps=False),
    layers=LayerArms(BLOCKS),
)


@command
def main(argv=None):
    return run(EXPERIMENT, outputs, argv)


def outputs(args, scale, data, records):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    base = [r for r in records if r["arm"] == "baseline"]
    base_latency = np.mean([r["latency_s"] for r in base])
    base_flops = np.mean([r["flops"] for r in base])
    rows = []
    for r in records:
        if r["arm"] == "baseline":
            continue
        method = "LayerPrune (imprinting)" if r["arm"] == "layer" else CRITERION_LABELS[r["criterion"]]
        amount = f"{r['n']} blocks" if r["arm"] == "layer" else f"{r['fraction']:.0%} filters"
        rows.append({"method": method, "amount": amount, "accuracy": r["accuracy"] * 100,
                     "latency_reduction": 100 * (1 - r.get("latency_ratio", r["latency_s"] / base_latency)),
                     "flop_reduction": 100 * (1 - r["flops"] / base_flops), "seed": r["seed"]})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(row["method"] for row in rows):
        points = [row for row in rows if row["method"] == method]
        style = dict(linewidth=2.5, color="black") if method.startswith("LayerPrune") else {}
        line, = ax.plot([p["latency_reduction"] for p in points], [p["accuracy"] for p in points], "o-", label=method, **style)
        ax.plot(points[0]["latency_reduction"], points[0]["accuracy"], "*", markersize=13, color=line.get_color())
    ax.axhline(np.mean([r["accuracy"] for r in base]) * 100, color="grey", linestyle=":", label="unpruned")
    ax.set_xlabel("latency reduction at batch 64 (%), measured on this CPU")
    ax.set_ylabel("test accuracy after fine-tuning (%)")
    ax.set_title(f"LayerPrune supp. Fig. 1, {model_label('resnet', scale)} on {args.dataset} ({args.scale} scale)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    caption = provenance(args, scale, data, SCRIPT)
    fig.text(0.0, -0.08, "Star: the smallest pruning of each method. " + caption, fontsize=6, wrap=True)
    lines = [f"# LayerPrune supplement Fig. 1 data, {model_label('resnet', scale)}", "",
             "| Method | Pruned | Accuracy (%) | Latency reduction (%) | FLOP reduction (%) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['method']} | {r['amount']} | {r['accuracy']:.2f} | {r['latency_reduction']:.1f} | {r['flop_reduction']:.1f} |" for r in rows]
    lines += ["", f"Made with: {caption}."]
    written = write_outputs(args, SCRIPT, lines, rows, figure=fig)
    plt.close(fig)
    return written


if __name__ == "__main__":
    main()
