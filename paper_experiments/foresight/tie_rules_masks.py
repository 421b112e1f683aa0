"""Thesis Fig. 4.13 without training: the masks of both tie rules for every (method, r).

The compression error depends only on the masks, so it needs no training.  For each method
of script 01 (the thesis' Table 4.1 CNN) and each r, this prunes the same initialisation
with the same scoring batch as script 01's runs would (its seed, init and 128-example
batch; :func:`dropnet_tf.foresight.experiment.run_foresight_grid` builds its runs the same
way), once with ``selection="exact"`` and once with ``"thesis"``, and writes:

- ``<stem>.csv``: method, r, each rule's kept weights, r_e and compression error, whether
  the two masks are identical (then the trained runs are identical too: same
  initialisation, same mask, same training), and how many of the method's scores (its first
  round, before any pruning) are exactly 0, above 0 and below 0: the ties the rules differ on;
- ``<stem>_fig4_13_compression_error.png``: the thesis rule's compression error (r − r_e)/r
  against r, the thesis' Fig. 4.13.

Usage: ``python paper_experiments/foresight/tie_rules_masks.py --dataset mnist --data-dir DIR``
(the same data as script 01 at ``--scale paper``; ``--methods`` / ``--compressions`` to cut).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = "01_thesis_4_2_3_figs_4_11_4_13_cnn_mnist"


def _parse(argv):
    from paper_experiments.foresight.foresight_protocol import THESIS_METHODS, THESIS_RATIOS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--methods", nargs="+", default=list(THESIS_METHODS) + ["obd"])
    parser.add_argument("--compressions", nargs="+", type=float, default=list(THESIS_RATIOS))
    parser.add_argument("--seed", type=int, default=42, help="script 01's paper seed (default: %(default)s)")
    parser.add_argument("--figures", default=os.path.join(ROOT, "figures", "foresight"))
    return parser.parse_args(argv)


def _mask_rows(args, data) -> list[dict]:
    """One row per (method, r): both rules' kept weights, r_e and error, whether the masks agree."""
    import numpy as np

    from dropnet_tf.core.backend import keras
    from dropnet_tf.foresight.experiment import scoring_batch
    from dropnet_tf.foresight.prune import prune_at_init, resolve_method
    from dropnet_tf.foresight.weights import get_weight_masks, prunable_weights
    from dropnet_tf.models.foresight import build_foresight_model
    from paper_experiments.foresight.foresight_protocol import thesis_init

    def fresh(method):
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        return build_foresight_model("thesis_cnn", init=thesis_init(method), seed=args.seed,
                                     input_shape=data.input_shape, num_classes=data.num_classes)

    rows = []
    for method in args.methods:
        scorer, _ = resolve_method(method)
        model = fresh(method)
        scores = scorer.score(model, prunable_weights(model), scoring_batch(data.x_train, data.y_train, 128, args.seed),
                              np.random.default_rng(args.seed))
        flat = np.concatenate([np.asarray(v, np.float64).ravel() for v in scores.values()])
        counts = {"scores_zero": int(np.sum(flat == 0)), "scores_positive": int(np.sum(flat > 0)),
                  "scores_negative": int(np.sum(flat < 0))}
        for compression in args.compressions:
            row = {"method": method, "compression": compression, "seed": args.seed, **counts}
            masks = {}
            for selection in ("exact", "thesis"):
                model = fresh(method)
                batch = scoring_batch(data.x_train, data.y_train, 128, args.seed)
                report = prune_at_init(model, method, compression, data=batch, seed=args.seed, selection=selection)
                masks[selection] = get_weight_masks(model)
                row.update({f"{selection}_nonzero": report.nonzero, f"{selection}_empirical_ratio": report.empirical_ratio,
                            f"{selection}_compression_error": report.compression_error})
                row["prunable"] = report.total
            row["same_masks"] = all(np.array_equal(masks["exact"][k], masks["thesis"][k]) for k in masks["exact"])
            rows.append(row)
            print(f"{method:>17s} r={compression:<4g} kept exact {row['exact_nonzero']} thesis {row['thesis_nonzero']} "
                  f"error thesis {row['thesis_compression_error']:.4f} same masks {row['same_masks']}", flush=True)
    return rows


def _draw(args, data, rows, png: str) -> None:
    """The thesis rule's compression error against r: the thesis' Fig. 4.13."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paper_experiments.foresight.foresight_protocol import label
    from paper_experiments.kit import save_figure

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for index, method in enumerate(args.methods):
        points = [(row["compression"], row["thesis_compression_error"]) for row in rows if row["method"] == method]
        ax.plot(*zip(*points), "--" if method.startswith("layer_") else "-", marker="os^vD<>pPhX*d1"[index % 14],
                ms=4, label=label(method), color=plt.cm.tab20(index % 20))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio r (keep 1/r of the prunable weights)")
    ax.set_ylabel("compression error (r − r_e) / r")
    ax.set_title(f"Thesis Fig. 4.13 with the thesis' tie rule: Table 4.1 CNN on {args.dataset}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.text(0.01, -0.02, (
        f"Masks only, no training: seed {args.seed}, script 01's initialisations and 128-example scoring batch of the "
        f"{len(data.y_train)} training examples; selection thesis (every weight tied at the threshold kept). The exact "
        "rule's error is 0 up to rounding. Regenerate: python paper_experiments/foresight/tie_rules_masks.py "
        f"--dataset {args.dataset}" + (" --data-dir DIR" if args.data_dir else "")), fontsize=7, va="top", wrap=True)
    save_figure(fig, png, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    args = _parse(argv)
    from paper_experiments.kit import load_data, load_tensorflow, write_csv, write_json

    load_tensorflow()
    data = load_data(args.dataset, data_dir=args.data_dir)
    stem = f"{SCRIPT}_thesis_cnn_{args.dataset}_paper_tie_rules_masks"
    started = time.perf_counter()
    rows = _mask_rows(args, data)
    csv_path = write_csv(os.path.join(args.figures, f"{stem}.csv"), rows)
    png = os.path.join(args.figures, f"{stem}_fig4_13_compression_error.png")
    _draw(args, data, rows, png)
    summary = {"script": "tie_rules_masks", "dataset": args.dataset, "seed": args.seed, "methods": args.methods,
               "compressions": args.compressions, "train_examples": int(len(data.y_train)),
               "differing": [[row["method"], row["compression"]] for row in rows if not row["same_masks"]],
               "seconds": time.perf_counter() - started,
               "outputs": [os.path.relpath(p, ROOT) for p in (csv_path, png)]}
    write_json(os.path.join(args.figures, f"{stem}.json"), summary)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
