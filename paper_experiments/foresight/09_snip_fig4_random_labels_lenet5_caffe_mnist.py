"""SNIP Fig. 4 (Section 5.6): can the network memorise random labels?  LeNet-5-Caffe on MNIST,
unpruned vs SNIP-pruned at κ̄ = 99 %, trained on true or shuffled labels (the scoring batch
always has true labels), plus the unpruned network on random labels with an L2 penalty.
The figure plots the training loss per epoch of each arm.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time

import numpy as np

from paper_experiments import kit
from paper_experiments.foresight.foresight_protocol import (
    REFERENCE, ROOT, ForesightExperiment, Quick, command, count_records, epoch_lines, grid_eta, load_tensorflow,
    parse_args, prepare_data, progress, shard_plan, snip_protocol,
)

# (arm label, method, random labels, weight decay)
ARMS = (
    ("reference, true labels", REFERENCE, False, 0.0),
    ("reference, random labels", REFERENCE, True, 0.0),
    ("reference + L2, random labels", REFERENCE, True, 5e-4),
    ("SNIP κ̄=99%, true labels", "snip", False, 0.0),
    ("SNIP κ̄=99%, random labels", "snip", True, 0.0),
)

EXPERIMENT = ForesightExperiment(
    script="09_snip_fig4_random_labels_lenet5_caffe_mnist",
    source="SNIP Fig. 4",
    title="fitting random labels",
    slug="snip_fig4",
    model="lenet5_caffe",
    dataset="mnist",
    methods=(REFERENCE, "snip"),
    compressions=(100,),
    figures=(),
    paper_seeds=(0,),
    quick=Quick(max_train=2000, max_test=1000, epochs=15, learning_rate=0.05, seeds=(0,)),
)


@command
def main(argv=None) -> dict:
    """Parse, run the five arms (resuming), draw the training-loss curves, write the summary."""
    args = parse_args(EXPERIMENT, argv)
    load_tensorflow()
    from dropnet_tf.foresight.experiment import grid_cells, run_foresight_grid
    from dropnet_tf.models.foresight import build_foresight_model
    from dropnet_tf.core.io import atomic_write_text

    data = prepare_data(EXPERIMENT, args)
    base, seeds = _protocol_and_seeds(args)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.figures, exist_ok=True)
    stem = f"{EXPERIMENT.script}_{args.dataset}_{args.scale}"
    plan = shard_plan(EXPERIMENT, args, os.path.join(args.out, f"{stem}.jsonl"))
    results = plan.results

    def build(seed, init):
        return build_foresight_model("lenet5_caffe", input_shape=data.input_shape, num_classes=data.num_classes,
                                     init=init, seed=seed)

    progress.start(results, lambda: count_records(results, seeds), total=plan.share(len(ARMS) * len(seeds)),
                   describe=f"{len(ARMS)} arms × {len(seeds)} seeds", partial_note="the run in progress starts over",
                   redraw="redrawing the figure")
    start = time.perf_counter()
    eta = grid_eta(args, plan, [cell for index, (_, method, _, _) in enumerate(ARMS)
                                for cell in grid_cells(f"snip_fig4_arm{index}", [method], [100], seeds)])
    curves = {}
    for index, (arm, method, random_labels, decay) in enumerate(ARMS):
        protocol = dataclasses.replace(base, weight_decay=decay)
        records = run_foresight_grid(
            results, f"snip_fig4_arm{index}", build, data, [method], [100], seeds, protocol,
            scoring_batch_size=100, init_for=lambda m: "glorot_uniform", random_labels=random_labels,
            extra={"arm": arm, "dataset": args.dataset, "scale": args.scale},
            log=None if args.quiet else (lambda line: print(line, flush=True)),
            callbacks=epoch_lines(args, f"snip_fig4_arm{index}"),
            order=plan.order, eta=eta, tensorboard=args.tensorboard,
        )
        if plan.shard is not None:
            continue  # a shard's part of the grid: the figure comes with --merge
        curves[arm] = np.mean([r["train_loss"] for r in records], axis=0)
    if plan.finish():
        return {"shard": str(plan.shard), "results": results}

    png = _draw(curves, data, base, seeds, args, stem)
    summary = {"script": EXPERIMENT.script, "dataset": args.dataset, "scale": args.scale, "seeds": list(seeds),
               "final_train_loss": {arm: float(loss[-1]) for arm, loss in curves.items()},
               "seconds_this_call": time.perf_counter() - start, "outputs": [os.path.relpath(png, ROOT)],
               **kit.merge_summary()}
    atomic_write_text(os.path.join(args.figures, f"{stem}.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def _protocol_and_seeds(args):
    """SNIP's training protocol at the chosen scale (and --epochs), and the seeds."""
    base = snip_protocol(args.dataset)
    quick = args.scale == "quick"
    if quick:
        base = dataclasses.replace(base, epochs=EXPERIMENT.quick.epochs, learning_rate=EXPERIMENT.quick.learning_rate,
                                   learning_rate_drops=())
    if args.epochs is not None:
        base = dataclasses.replace(base, epochs=args.epochs)
    seeds = tuple(args.seeds) if args.seeds else (EXPERIMENT.quick.seeds if quick else EXPERIMENT.paper_seeds)
    return base, seeds


def _draw(curves, data, base, seeds, args, stem) -> str:
    """The figure: mean training loss per epoch of every arm; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dropnet_tf.core.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, loss in curves.items():
        ax.plot(np.arange(1, len(loss) + 1), loss, marker="o", ms=3, label=arm)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"SNIP Fig. 4: fitting random labels, LeNet-5-Caffe ({args.dataset}, {args.scale} scale)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    caption = (f"{len(data.y_train)} training examples, SGD momentum 0.9, lr {base.learning_rate:g}, batch "
               f"{base.batch_size}, {base.epochs} epochs, seeds {list(seeds)}; SNIP scored on 100 examples with true labels. "
               f"Regenerate: python paper_experiments/foresight/{EXPERIMENT.script}.py --scale {args.scale} --dataset {args.dataset}"
               f"{kit.partial_caption()}")
    fig.text(0.01, -0.02, caption, fontsize=6, va="top", wrap=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    png = atomic_write_bytes(os.path.join(args.figures, f"{stem}_fig4.png"), buffer.getvalue())
    return png


if __name__ == "__main__":
    main()
