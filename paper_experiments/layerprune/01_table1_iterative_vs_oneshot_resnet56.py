"""LayerPrune supplement Table 1 (Section 1.2, "One-shot vs iterative"), ResNet-56 on CIFAR-10/100.

Five filter criteria (weight norm, feature maps, Taylor, batch-norm scale, geometric median)
prune 20 % and 30 % of the prunable filters globally, either at once (one-shot) or in 10
steps of 10 % of the total that re-evaluate the criterion after each step, with 10
mini-batches of fine-tuning in between; every pruned network is compacted and fine-tuned
(30 epochs, SGD 1e-3) and its test accuracy reported next to the unpruned baseline.
"""

from paper_experiments.layerprune.layerprune_protocol import (
    CRITERION_LABELS, FilterArms, LayerPruneExperiment, command, model_label, provenance, run, write_outputs,
)

SCRIPT = "01_table1_iterative_vs_oneshot_resnet56"
RATIOS = (0.2, 0.3)
SCHEDULES = ("iterative", "one_shot")
#: Supplement Table 1, CIFAR-10 / ResNet-56 (baseline 93.55 %), 20 %: (iterative, one-shot).
PAPER_CIFAR10_20 = {"l1_norm": (92.35, 92.31), "feature_maps": (91.94, 91.9), "taylor": (92.88, 92.8),
                    "bn_scale": (92.79, 92.76), "geometric_median": (92.57, 92.53)}

EXPERIMENT = LayerPruneExperiment(
    script=SCRIPT,
    description=__doc__.splitlines()[0],
    model="resnet",
    dataset="cifar10",
    filters=FilterArms(CRITERION_LABELS, RATIOS, SCHEDULES, key="ratio", fields=("pruned_filters", "pruning_seconds"),
                       fractions_outer=True),
)


@command
def main(argv=None):
    return run(EXPERIMENT, outputs, argv)


def outputs(args, scale, data, records):
    import numpy as np
    mean = lambda rows: float(np.mean([r["accuracy"] for r in rows])) * 100 if rows else float("nan")  # noqa: E731
    base = mean([r for r in records if r["arm"] == "baseline"])
    lines = [f"# LayerPrune supplement Table 1: iterative vs one-shot filter pruning, {model_label('resnet', scale)}",
             "", f"Baseline accuracy {base:.2f} %. Test accuracy (%) after compaction and fine-tuning; "
             "paper: CIFAR-10 ResNet-56 at 20 % (baseline 93.55 %).", "",
             "| Pruning ratio | Criterion | Iterative | One-shot | Iterative − one-shot | Paper iterative | Paper one-shot |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    rows = []
    for ratio in RATIOS:
        for criterion, label in CRITERION_LABELS.items():
            it = mean([r for r in records if r.get("criterion") == criterion and r.get("ratio") == ratio and r["schedule"] == "iterative"])
            one = mean([r for r in records if r.get("criterion") == criterion and r.get("ratio") == ratio and r["schedule"] == "one_shot"])
            if np.isnan(it) and np.isnan(one):
                continue  # not run (--criteria)
            paper = PAPER_CIFAR10_20.get(criterion) if ratio == 0.2 else None
            lines.append(f"| {ratio:.0%} | {label} | {it:.2f} | {one:.2f} | {it - one:+.2f} | "
                         f"{paper[0] if paper else '–'} | {paper[1] if paper else '–'} |")
            rows.append({"ratio": ratio, "criterion": criterion, "iterative": it, "one_shot": one})
    lines += ["", f"Made with: {provenance(args, scale, data, SCRIPT)}."]
    return write_outputs(args, SCRIPT, lines, rows)


if __name__ == "__main__":
    main()
