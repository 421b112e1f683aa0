"""The DropNet results tables, and the DropNet entry point of the results pages.

Reads every numbered script's ``EXPERIMENT`` and the JSON summaries its runs left in
``figures/dropnet/`` and builds two tables:

- ``table``: the quick runs on the offline stand-ins (``<script>_<slug>_<stand-in>_quick.json``);
- ``paper_table``: the paper-protocol runs on the papers' own data
  (``<script>_<slug>_<dataset>_paper.json``, e.g. real MNIST from ``--data-dir``), side by
  side with the paper's stated ordering and the quick stand-in's.

Run as a script, it writes ``figures/dropnet/RESULTS.md`` through
``paper_experiments/results_pages.py`` (which also writes the foresight and LayerPrune pages).
``make figures`` runs it last; run it by hand after a single script.  Scripts without a
summary are listed as not run here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: The papers' own data as the scripts name it on the real files (``cifar10_jpeg`` is the
#: JPEG copy of CIFAR-10, never called ``cifar10``).
REAL_DATA_FOR = {"mnist": "mnist", "cifar10": "cifar10_jpeg", "tiny_imagenet": "tiny_imagenet"}

#: The offline stand-in each paper dataset is run on at quick scale here.
STANDIN_FOR = {"mnist": "fashion_mnist", "cifar10": "fashion_mnist_rgb32", "tiny_imagenet": "tiny_imagenet"}


def load_experiments():
    experiments = []
    for path in sorted(HERE.glob("[0-9A-Z]*_*.py")):
        if path.name.startswith("00_"):
            continue
        spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        experiments.append((path.name, module.EXPERIMENT))
    return experiments


def _figures_text(exp) -> str:
    labels = [label for fig in exp.figures for label in fig.labels if label.startswith("fig")]
    unique = list(dict.fromkeys(labels))
    return ", ".join(label[3:].lstrip("0") for label in unique)


def _wall(summary: dict) -> str:
    seconds = summary["seconds_this_call"]
    fresh = summary.get("cycles_this_call", summary["cycles_run"]) == summary["cycles_run"]
    if not fresh:  # resumed or redrawn: the cycles' own time is the honest number
        seconds = summary["compute_seconds"]
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _ordering(summary: dict) -> str:
    parts = []
    for arm, value in summary["ordering_by_mean_test_accuracy"]:
        arm = arm.replace("minimum, ", "").replace("pruning_fraction=", "p=").replace("init=", "")
        parts.append(f"{arm} {value:.3f}")
    return " > ".join(parts)


def _run_description(summary: dict, dataset: str) -> str:
    """"<data>, N seeds, train/val/test, ≤E epochs (patience P)" from a script's summary."""
    scale = summary["scale"]
    sizes = "/".join(str(n) for n in summary["split_sizes"])
    seeds = len(scale["seeds"])
    return f"{dataset}, {seeds} seed{'s' if seeds != 1 else ''}, {sizes}, ≤{scale['max_epochs']} epochs (patience {summary['patience']})"


def table(figures_dir: Path) -> str:
    rows = [
        "| § | paper figs | script | quick run here: data, seeds, samples, epochs | wall time (2 CPU cores) "
        "| observed ordering, quick (mean test accuracy over 10-100% remaining) | paper's ordering |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, exp in load_experiments():
        dataset = STANDIN_FOR[exp.dataset]
        path = figures_dir / f"{exp.script}_{exp.slug}_{dataset}_quick.json"
        if path.exists():
            summary = json.loads(path.read_text())
            quick = _run_description(summary, dataset)
            wall, observed = _wall(summary), _ordering(summary)
        else:
            quick, wall, observed = "not run here (see below)", "–", "–"
        rows.append(
            f"| {exp.section} | {_figures_text(exp)} | `{name}` | {quick} | {wall} | {observed} | {exp.paper_ordering} |"
        )
    return "\n".join(rows)


def _at_ten_percent(summary: dict) -> str:
    parts = []
    for arm, cell in summary.get("test_accuracy_at_10_percent", {}).items():
        arm = arm.replace("minimum, ", "").replace("pruning_fraction=", "p=").replace("init=", "")
        # one seed has no interval: say so rather than print ± 0.000
        spread = f" ± {cell['ci95']:.3f}" if cell.get("n", 2) > 1 else ""
        parts.append(f"{arm} {cell['mean']:.3f}{spread}")
    return ", ".join(parts) or "–"


def paper_table(figures_dir: Path) -> str:
    """Paper-protocol runs on the real data: ours next to the paper's ordering and the quick run."""
    rows = [
        "| § | paper figs | real data, seeds, train/val/test, epochs | ours: ordering (mean test accuracy over "
        "10-100% remaining) | ours: test accuracy at 10% remaining (mean ± 95% CI) | paper's ordering "
        "| quick stand-in's ordering |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, exp in load_experiments():
        dataset = REAL_DATA_FOR[exp.dataset]
        # the full protocol (``_paper``) and CPU-sized cuts of it (``_paper_train3000_epochs20``)
        stem = f"{exp.script}_{exp.slug}_{dataset}_paper"
        paths = [p for p in sorted(figures_dir.glob(f"{stem}*.json"))
                 if p.stem == stem or re.fullmatch(r"(_train\d+)?(_epochs\d+)?", p.stem[len(stem):])]
        quick_path = figures_dir / f"{exp.script}_{exp.slug}_{STANDIN_FOR[exp.dataset]}_quick.json"
        quick = _ordering(json.loads(quick_path.read_text())) if quick_path.exists() else "–"
        for path in paths:
            summary = json.loads(path.read_text())
            ours = _run_description(summary, dataset)
            if path.stem != stem:  # a cut: fewer training examples and/or epochs than the paper
                ours += f" — **cut** ({path.stem[len(stem) + 1:].replace('_', ', ')})"
            rows.append(
                f"| {exp.section} | {_figures_text(exp)} | {ours} | {_ordering(summary)} | "
                f"{_at_ten_percent(summary)} | {exp.paper_ordering} | {quick} |"
            )
    if len(rows) == 2:
        rows.append("| – | – | no paper-protocol run yet | – | – | – | – |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", default=str(ROOT / "figures" / "dropnet"))
    parser.add_argument("--out", help="default: <figures>/RESULTS.md")
    args = parser.parse_args(argv)
    from paper_experiments import results_pages

    print(f"wrote {results_pages.write('dropnet', Path(args.figures), args.out)}")


if __name__ == "__main__":
    main()
