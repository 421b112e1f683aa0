"""LayerPrune supplement Figs. 2 and 3: block importance of ResNet-56 under each criterion.

For every residual block: the mean score of its filters under weight norm, batch-norm scale,
Taylor and feature maps (the filters of both convolutions of the block), the imprinting
importance, and the rank ensemble of the criteria (mean rank).  One bar chart per criterion;
the legend lists the blocks from least to most important, as the supplement's does.
(Fig. 2 is CIFAR-10, Fig. 3 CIFAR-100: choose with --dataset.)
"""

from paper_experiments.layerprune.layerprune_protocol import (
    command, baseline, model_label, provenance, scoring_data, selected, setup, write_outputs,
)

SCRIPT = "05_figs2_3_block_importance_resnet56"
CRITERIA = {"l1_norm": "Weight magnitude", "bn_scale": "Batch normalization", "taylor": "Taylor",
            "feature_maps": "Feature maps"}


@command
def main(argv=None):
    args, scale, data, runner = setup(__doc__.splitlines()[0], "cifar10", SCRIPT, argv)
    import dropnet_tf
    from dropnet_tf.layerprune import (
        block_scores_from_filter_scores, find_blocks, get_filter_criterion, imprinting_importance, masks_by_block,
        rank_ensemble,
    )

    runner.expect([{"seed": seed} for seed in scale.seeds])  # the grid, for the ETA
    for seed in scale.seeds:
        def run(seed=seed):
            # The baseline is loaded (or trained) only for an arm that runs here (not for
            # another shard's, nor after --merge).
            base = baseline("resnet", args, data, scale, seed, log=None if args.quiet else print,
                            callbacks=runner.callbacks(folder=f"baseline_training_seed{seed}"))
            x, y = scoring_data(data, scale, seed)
            blocks = find_blocks(base)
            convs = [layer.name for layer in base.layers if type(layer).__name__ == "Conv2D"]
            inside = {name for block in blocks for name in block.layers}
            masked = dropnet_tf.add_masks(base, exclude=[n.name for n in base.layers if n.name not in inside or n.name not in convs])
            masked_blocks = find_blocks(masked)
            groups = masks_by_block(masked, masked_blocks)
            importance = {}
            for criterion in selected(args, CRITERIA):
                scores = get_filter_criterion(criterion).score(masked, (x, y))
                importance[criterion] = block_scores_from_filter_scores(scores, groups)
            importance["imprinting"] = imprinting_importance(base, blocks, x, y, num_classes=data.num_classes)
            importance["ensemble"] = rank_ensemble({k: v for k, v in importance.items()})
            return {"blocks": [block.name for block in blocks], "importance": importance}
        runner.arm({"seed": seed}, run)
    if runner.finish():
        return None
    return outputs(args, scale, data, runner.records())


def outputs(args, scale, data, records):
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt

    record = records[0]
    blocks, importance = record["blocks"], record["importance"]
    labels = {k: v for k, v in CRITERIA.items() if k in importance}
    labels.update(imprinting="Imprinting", ensemble="Ensemble (mean rank)")
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (key, label) in zip(axes.ravel(), labels.items()):
        values = [importance[key][b] for b in blocks]
        ax.bar(range(len(blocks)), values, color="tab:blue")
        ax.set_xticks(range(len(blocks)))
        ax.set_xticklabels([b.replace("block", "") for b in blocks], rotation=90, fontsize=6)
        order = sorted(blocks, key=lambda b: importance[key][b])
        ax.set_title(label, fontsize=10)
        ax.text(0.01, 0.98, "least → most: " + ", ".join(b.replace("block", "") for b in order[:6]) + ", …",
                transform=ax.transAxes, fontsize=6, va="top")
    fig.suptitle(f"LayerPrune supp. Figs. 2/3: block importance, {model_label('resnet', scale)} on {args.dataset} "
                 f"({args.scale} scale)")
    caption = provenance(args, scale, data, SCRIPT)
    fig.tight_layout()
    fig.text(0.0, -0.04, "\n".join(textwrap.wrap(caption, 200)), fontsize=7)
    rows = [{"block": b, **{k: importance[k][b] for k in labels}} for b in blocks]
    written = write_outputs(args, SCRIPT, [], rows, figure=fig)
    plt.close(fig)
    print("\n".join(f"{k}: least important first: {sorted(blocks, key=lambda b: importance[k][b])[:5]}" for k in labels))
    return written


if __name__ == "__main__":
    main()
