"""How much the selection rule matters: exact-k (ours) vs the authors' notebooks' rule.

Draws one panel per metric of Fig. 3 (Model A FC40-FC40) with two curves, the runs of
``04_1_1_fig03_model_a_fc40_fc40_mnist.py --protocol paper`` and of the same script with
``--protocol notebook`` (the notebooks' threshold-and-quota selection, no shuffling,
last-epoch weights, no collapse guard; see ``dropnet_tf.core.selection.notebook_drop``), and
writes the seed means and 95% CIs it drew as a CSV beside the PNG.

Run both protocols first, e.g. on the real MNIST::

    python paper_experiments/dropnet/04_1_1_fig03_model_a_fc40_fc40_mnist.py --data-dir DIR --seeds 0 1 2 3 4
    python paper_experiments/dropnet/04_1_1_fig03_model_a_fc40_fc40_mnist.py --data-dir DIR --seeds 0 1 2 3 4 --protocol notebook
    python paper_experiments/dropnet/compare_selection_rules.py
"""

from __future__ import annotations

import argparse
import io
import os

from paper_experiments.kit import UserError, command, load_tensorflow

RUNS = os.path.join("runs", "dropnet", "04_1_1_model_a_fc40_fc40")
EXPERIMENT = "dropnet_04_1_1_model_a_fc40_fc40"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist", help="the dataset both runs used (default: mnist)")
    parser.add_argument("--exact", help="results.jsonl of the paper-protocol run (default: runs/dropnet/.../<dataset>_paper)")
    parser.add_argument("--notebook", help="results.jsonl of the notebook-protocol run (default: .../<dataset>_paper_notebook)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds to draw (default: those both runs finished)")
    parser.add_argument("--figures", default=os.path.join("figures", "dropnet"), help="output directory")
    return parser.parse_args(argv)


def finished_runs(records):
    """Records of runs that reached their stop rule, as {(metric, seed): [records]}."""
    runs = {}
    for record in records:
        runs.setdefault((record["metric"], record["seed"]), []).append(record)
    return {key: rs for key, rs in runs.items() if rs[-1].get("stop_reason")}


@command
def main(argv=None):
    """Parse, read both protocols' finished runs, draw a panel per metric, write the PNG and CSV."""
    args = parse_args(argv)
    load_tensorflow()  # the library imports it; quietly, as every entry point does
    import matplotlib

    matplotlib.use("Agg")
    from dropnet_tf.plotting import summarize
    from dropnet_tf.harness.results import write_csv
    from dropnet_tf.core.io import atomic_write_bytes

    seeds, arms = _arms(args)
    fig, rows = _draw(summarize(arms, group_by="arm"), args.dataset, seeds)
    stem = os.path.join(args.figures, f"04_1_1_fig03_selection_rules_model_a_fc40_fc40_{args.dataset}_paper")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    atomic_write_bytes(stem + ".png", buffer.getvalue())
    write_csv(stem + ".csv", rows)
    print(f"wrote {stem}.png and {stem}.csv ({len(seeds)} seeds)")


def _arms(args):
    """The seeds drawn and the records of both rules' finished runs of them, each with its ``arm``."""
    from dropnet_tf.harness.results import ResultsFile

    exact_path = args.exact or os.path.join(RUNS, f"{args.dataset}_paper", "results.jsonl")
    notebook_path = args.notebook or os.path.join(RUNS, f"{args.dataset}_paper_notebook", "results.jsonl")
    for path in (exact_path, notebook_path):
        if not os.path.exists(path):
            raise UserError(f"No results at {path}: run the Fig. 3 script with that protocol first (see --help).")
    exact = finished_runs(ResultsFile(exact_path).records(experiment=EXPERIMENT))
    notebook = finished_runs(ResultsFile(notebook_path).records(experiment=f"{EXPERIMENT}_notebook"))
    seeds = sorted(args.seeds or {s for _, s in exact} & {s for _, s in notebook})
    arms = []
    for rule, runs in (("exact-k (default)", exact), ("notebook rule", notebook)):
        for (metric, seed), records in runs.items():
            if seed in seeds:
                arms.extend(dict(r, arm=f"{metric}: {rule}") for r in records)
    if not arms:
        raise UserError(f"No finished runs common to both files for seeds {seeds}.")
    return seeds, arms


def _draw(summary, dataset: str, seeds):
    """A panel per paper metric, a curve with its 95% CI band per rule; the figure and the rows drawn."""
    import matplotlib.pyplot as plt

    from dropnet_tf.dropnet.metrics import PAPER_METRICS

    rows = []
    fig, axes = plt.subplots(2, 3, figsize=(12, 7), sharex=True, sharey=True)
    for ax, metric in zip(axes.ravel(), PAPER_METRICS):
        for rule, colour in (("exact-k (default)", "tab:blue"), ("notebook rule", "tab:red")):
            cells = [r for r in summary if r["arm"] == f"{metric}: {rule}"]
            if not cells:
                continue
            x = [c["fraction_remaining"] for c in cells]
            mean = [c["test_accuracy_mean"] for c in cells]
            low = [max(0.0, m - c["test_accuracy_ci95"]) for m, c in zip(mean, cells)]
            high = [min(1.0, m + c["test_accuracy_ci95"]) for m, c in zip(mean, cells)]
            ax.plot(x, mean, marker="o", markersize=3, color=colour, label=rule)
            ax.fill_between(x, low, high, color=colour, alpha=0.2)
            rows.extend(dict(c, metric=metric, rule=rule) for c in cells)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0, 0].invert_xaxis()  # once: the panels share their x axis, a second call would undo it
    for ax in axes[-1]:
        ax.set_xlabel("Fraction of nodes remaining")
    for ax in axes[:, 0]:
        ax.set_ylabel("Test accuracy")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Fig. 3 setting (Model A FC40-FC40, {dataset}): selection rule, exact-k vs the notebooks'")
    fig.text(
        0.5, 0.005,
        f"{dataset}, paper protocol (p=0.2, SGD 0.1, batch 32, ≤100 epochs, patience 5), {len(seeds)} seeds "
        f"{seeds}; notebook rule also: no shuffling, last-epoch weights, no collapse guard; mean ± 95% CI. "
        "Regenerate: python paper_experiments/dropnet/compare_selection_rules.py",
        ha="center", fontsize=7, color="grey", wrap=True,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return fig, rows

if __name__ == "__main__":
    main()
