"""LayerPrune supplement Table 2: one-shot vs iterative layer pruning ranked by imprinting, ResNet-56.

One-shot ranks the removable residual blocks once by imprinting importance (the accuracy a
block adds to an imprinted nearest-class-mean classifier) and removes the N least important;
iterative removes one block, re-ranks on the pruned network and repeats.  For N = 1..4:
test accuracy of both after fine-tuning, and the Spearman rank correlation between the
one-shot ranking and the iterative re-ranking of the blocks still present.
"""

from paper_experiments.layerprune.layerprune_protocol import (
    command, baseline, copy_model, finetune, lazy, model_label, provenance, scoring_data, setup, write_outputs,
)

SCRIPT = "02_table2_spearman_imprinting_resnet56"
N_PRUNED = (1, 2, 3, 4)
#: Supplement Table 2, CIFAR-10 ResNet-56 (93.55 %): N -> (one-shot, iterative, Spearman).
PAPER_CIFAR10 = {1: (93.32, 93.32, 0.99), 2: (93.28, 93.31, 0.97), 3: (93.17, 93.15, 0.96), 4: (93.10, 93.03, 0.96)}


@command
def main(argv=None):
    args, scale, data, runner = setup(__doc__.splitlines()[0], "cifar10", SCRIPT, argv)
    from dropnet_tf.layerprune import find_blocks, imprinting_importance, iterative_block_ranking, remove_blocks

    runner.expect([{"n": n, "seed": seed} for seed in scale.seeds for n in N_PRUNED])  # the grid, for the ETA
    for seed in scale.seeds:
        # The baseline and the rankings are made when an arm first needs them, and every arm
        # is visited whatever is done, so that the grid order (--shard) never depends on it.
        base = lazy(lambda seed=seed: baseline("resnet", args, data, scale, seed, log=None if args.quiet else print,
                                               callbacks=runner.callbacks(folder=f"baseline_training_seed{seed}")))

        def ranking(seed=seed, base=base):
            x, y = scoring_data(data, scale, seed)

            def importance(model, blocks):
                return imprinting_importance(model, blocks, x, y, num_classes=data.num_classes)

            steps = iterative_block_ranking(base(), find_blocks(base()), importance, max(N_PRUNED))
            return {step["n_removed"]: step for step in steps}

        steps = lazy(ranking)
        for n in N_PRUNED:
            def run(n=n, base=base, steps=steps, seed=seed):
                step = steps()[n]
                one_shot = remove_blocks(base(), step["one_shot_removed"])
                iterative = copy_model(step["model"])
                return {"one_shot_removed": step["one_shot_removed"], "iterative_removed": step["iterative_removed"],
                        "spearman": step["spearman"],
                        "one_shot_accuracy": finetune(one_shot, data, scale, seed, args,
                                                      callbacks=runner.callbacks("one_shot")),
                        "iterative_accuracy": finetune(iterative, data, scale, seed, args,
                                                       callbacks=runner.callbacks("iterative"))}
            runner.arm({"n": n, "seed": seed}, run)
    if runner.finish():
        return None
    return outputs(args, scale, data, runner.records())


def outputs(args, scale, data, records):
    import numpy as np
    lines = [f"# LayerPrune supplement Table 2: imprinting, one-shot vs iterative, {model_label('resnet', scale)}", "",
             "| N pruned | One-shot (%) | Iterative (%) | Spearman | Paper one-shot | Paper iterative | Paper Spearman |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    rows = []
    for n in N_PRUNED:
        found = [r for r in records if r["n"] == n]
        if not found:
            continue
        one = np.mean([r["one_shot_accuracy"] for r in found]) * 100
        it = np.mean([r["iterative_accuracy"] for r in found]) * 100
        rho = np.nanmean([r["spearman"] for r in found])
        paper = PAPER_CIFAR10[n]
        lines.append(f"| {n} | {one:.2f} | {it:.2f} | {rho:.2f} | {paper[0]} | {paper[1]} | {paper[2]} |")
        rows.append({"n": n, "one_shot": one, "iterative": it, "spearman": rho,
                     "one_shot_removed": " ".join(found[0]["one_shot_removed"]),
                     "iterative_removed": " ".join(found[0]["iterative_removed"])})
    lines += ["", "Blocks removed (seed 0): " + "; ".join(
        f"N={r['n']}: one-shot {r['one_shot_removed']}, iterative {r['iterative_removed']}" for r in rows),
        "", f"Made with: {provenance(args, scale, data, SCRIPT)}."]
    return write_outputs(args, SCRIPT, lines, rows)


if __name__ == "__main__":
    main()
