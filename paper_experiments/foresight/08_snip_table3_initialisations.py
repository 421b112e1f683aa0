"""SNIP Table 3 (Section 5.5): the effect of the initialisation SNIP scores at — RN, TN, VS-X,
VS-H — on LeNet-300-100, LeNet-5-Caffe, LSTM-s and GRU-s (choose with --model) on MNIST at
κ̄ = 90 %.  As in the paper the pruned networks are trained with Adam (lr 0.001, no weight
decay) from a VS-X initialisation in every case; only the scoring initialisation varies.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from paper_experiments import kit
from paper_experiments.foresight.foresight_protocol import (
    ROOT, ForesightExperiment, Quick, command, count_records, epoch_lines, grid_eta, load_tensorflow, parse_args,
    prepare_data, progress, shard_plan,
)

INITS = (("RN", "random_normal"), ("TN", "truncated_normal"), ("VS-X", "glorot_uniform"), ("VS-H", "he_normal"))

EXPERIMENT = ForesightExperiment(
    script="08_snip_table3_initialisations",
    source="SNIP Table 3",
    title="scoring initialisation RN / TN / VS-X / VS-H at 90 % sparsity",
    slug="snip_table3",
    model="lenet_300_100",
    model_choices=("lenet5_caffe", "lstm_s", "gru_s"),
    dataset="mnist",
    methods=("snip",),
    compressions=(10,),
    figures=(),
    paper_seeds=tuple(range(20)),
    quick=Quick(max_train=5000, max_test=2000, epochs=3, seeds=(0, 1)),
)


@command
def main(argv=None) -> dict:
    args = parse_args(EXPERIMENT, argv)
    load_tensorflow()
    from dropnet_tf.foresight.experiment import TrainingProtocol, grid_cells, run_foresight_grid
    from dropnet_tf.models.foresight import build_foresight_model
    from dropnet_tf.core.io import atomic_write_text

    data = prepare_data(EXPERIMENT, args)
    quick = args.scale == "quick"
    # The paper does not give the epochs of this experiment; 20 at paper scale is our choice.
    epochs = args.epochs if args.epochs is not None else (EXPERIMENT.quick.epochs if quick else 20)
    protocol = TrainingProtocol(epochs=epochs, learning_rate=1e-3, batch_size=100, optimizer="adam")
    seeds = tuple(args.seeds) if args.seeds else (EXPERIMENT.quick.seeds if quick else EXPERIMENT.paper_seeds)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.figures, exist_ok=True)
    stem = f"{EXPERIMENT.script}_{args.model}_{args.dataset}_{args.scale}"
    plan = shard_plan(EXPERIMENT, args, os.path.join(args.out, f"{stem}.jsonl"))
    results = plan.results
    progress.start(results, lambda: count_records(results, seeds), total=plan.share(len(INITS) * len(seeds)),
                   describe=f"{len(INITS)} scoring initialisations × {len(seeds)} seeds",
                   partial_note="the run in progress starts over", redraw="rewriting the table")
    start = time.perf_counter()
    eta = grid_eta(args, plan, [cell for short, _ in INITS for cell in grid_cells(f"snip_table3_{short}", ["snip"], [10], seeds)])
    rows = []
    for short, init in INITS:
        def build(seed, chosen_init):
            return build_foresight_model(args.model, input_shape=data.input_shape, num_classes=data.num_classes,
                                         init=chosen_init, seed=seed)

        records = run_foresight_grid(
            results, f"snip_table3_{short}", build, data, ["snip"], [10], seeds, protocol,
            scoring_batch_size=100, init_for=lambda method, init=init: init, train_init="glorot_uniform",
            extra={"model": args.model, "dataset": args.dataset, "scale": args.scale, "scoring_init": short},
            log=None if args.quiet else (lambda line: print(line, flush=True)),
            callbacks=epoch_lines(args, f"snip_table3_{short}"),
            order=plan.order, eta=eta, tensorboard=args.tensorboard,
        )
        if plan.shard is not None:
            continue  # a shard's part of the grid: the table comes with --merge
        errors = [100 * (1 - r["top1"]) for r in records]
        rows.append((short, float(np.mean(errors)), float(np.std(errors)), len(errors)))
    if plan.finish():
        return {"shard": str(plan.shard), "results": results}
    lines = [f"| Init. | {args.model} error (%) ± std | seeds |", "|---|---|---|"]
    lines += [f"| {short} | {mean:.2f} ± ({std:.2f}) | {n} |" for short, mean, std, n in rows]
    lines.append(
        f"\n{args.dataset}, {args.scale} scale: {len(data.y_train)} training / {len(data.y_test)} test examples, "
        f"Adam lr 1e-3, {epochs} epochs, SNIP at κ̄ = 90 % on 100 examples; trained from VS-X. "
        f"Regenerate: python paper_experiments/foresight/{EXPERIMENT.script}.py --model {args.model} "
        f"--scale {args.scale} --dataset {args.dataset}{kit.partial_caption()}"
    )
    table = atomic_write_text(os.path.join(args.figures, f"{stem}_table3.md"), "\n".join(lines) + "\n")
    summary = {"script": EXPERIMENT.script, "model": args.model, "dataset": args.dataset, "scale": args.scale,
               "seeds": list(seeds), "epochs": epochs, "rows": rows, "seconds_this_call": time.perf_counter() - start,
               "outputs": [os.path.relpath(table, ROOT)], **kit.merge_summary()}
    atomic_write_text(os.path.join(args.figures, f"{stem}.json"), json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
