"""Demo: DropNet's Algorithm 1 on scikit-learn's embedded digits, all six metrics of Table 1.

Model A (FC40-FC40, DropNet Fig. 2) on the 8×8 digits, 3 seeds, p = 0.2, SGD 0.1, early
stopping on validation loss, down to 10% of nodes remaining: 18 runs (6 metrics × 3 seeds)
of 13 cycles each (the unpruned network and 12 prunings).  Runs offline on 2 CPU cores;
docs/dropnet.md (section "make demo") gives the measured times.  Rerunning resumes, skips
finished runs and, when all are done, only redraws the figure.

Writes ``<out>/results.jsonl`` (every cycle), and under ``--figures`` the PNG and CSV of
test accuracy vs fraction of nodes remaining (mean over seeds, 95% CI error bars).
"""

from __future__ import annotations

import argparse
import os
import time

from paper_experiments.dropnet.dropnet_protocol import METRICS, PAPER_METRICS, count_finished_runs
from paper_experiments.kit import build_parser, command, load_tensorflow, option, progress

EXPERIMENT = "demo_digits_model_a_fc40_fc40"


@command
def main(argv=None):
    parser = build_parser(
        __doc__, formatter_class=argparse.RawDescriptionHelpFormatter, shared=("seeds", "out", "figures"),
        out="runs/demo", figures="figures", defaults={"seeds": [0, 1, 2]},
        helps={"out": "directory for results.jsonl and run state", "figures": "directory for the PNG and CSV",
               "seeds": None},
        options=(
            option("--metrics", nargs="+", default=list(PAPER_METRICS), choices=sorted(METRICS)),
            option("--max-epochs", type=int, default=25, help="epochs per cycle before early stopping"),
        ),
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    load_tensorflow()
    import dropnet_tf
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.models import model_a

    data = dropnet_tf.load_dataset("digits")
    results = os.path.join(args.out, "results.jsonl")
    runs = len(args.metrics) * len(args.seeds)
    # ⌊0.2·R⌋ of the R remaining nodes per cycle until at most 10% (8 of 80) remain: the
    # rounding down makes it 12 prunings (40→32→26→21→17→14→12→10→8→7→6→5→4 per layer).
    cycles = 13
    progress.start(
        results,
        lambda: count_finished_runs(results, [EXPERIMENT], args.metrics, args.seeds),
        total=runs,
        describe=f"{len(args.metrics)} metrics × {len(args.seeds)} seeds, {cycles} cycles of ≤{args.max_epochs} "
        "epochs each",
        partial_note="each cycle is saved as it finishes, so the run in progress resumes after its last cycle",
        redraw="redrawing the figure",
    )
    records = dropnet_tf.run_experiment(
        lambda seed: model_a((40, 40), input_shape=data.input_shape, num_classes=data.num_classes, seed=seed),
        data,
        metrics=args.metrics,
        seeds=args.seeds,
        results=results,
        experiment=EXPERIMENT,
        fraction=0.2,
        min_fraction=0.1,
        training=TrainingConfig(max_epochs=args.max_epochs, patience=5, batch_size=32),
    )
    records = [r for r in records if r["metric"] in args.metrics and r["seed"] in args.seeds]
    png = dropnet_tf.plotting.plot_accuracy_vs_fraction(
        records,
        os.path.join(args.figures, f"{EXPERIMENT}_test_accuracy.png"),
        title="DropNet demo: Model A FC40-FC40 on digits (8×8)",
        note=(
            f"sklearn digits 1293/144/360 split, seeds {args.seeds}, p=0.2, SGD 0.1, batch 32, "
            f"≤{args.max_epochs} epochs, early stopping patience 5; mean ± 95% CI. "
            "Regenerate: make demo"
        ),
        xlabel="Fraction of nodes remaining",  # Model A: Dense layers only
        order=args.metrics,
    )
    print(f"wrote {png} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
