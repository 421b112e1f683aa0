"""LayerPrune supplement Table 3: VGG19-BN architectures after filter pruning vs layer pruning.

Filter pruning removes the supplement's 500 of VGG19's 5504 filters (the same fraction at
other widths) globally with weight norm, network slimming's batch-norm scale and Taylor;
layer pruning removes the 2 and 5 least important convolutions by imprinting (only layers
whose input and output widths match can become the identity).  The table lists each
network's widths per convolution ('M' = max-pooling, 0 = removed layer) and the test
accuracy after fine-tuning.
"""

from paper_experiments.layerprune.layerprune_protocol import (
    command, architecture, baseline, copy_model, cost, filter_prune, finetune, layer_prune, model_label, provenance,
    removable_ranking, selected, setup, test_accuracy, write_outputs,
)

SCRIPT = "03_table3_architectures_vgg19_bn"
FILTER_FRACTION = 500 / 5504
CRITERIA = {"l1_norm": "Weight norm", "bn_scale": "Slimming (BN scale)", "taylor": "Taylor"}
LAYERS_REMOVED = (2, 5)


def with_zeros(base, pruned, removed):
    """The pruned widths aligned with the baseline's convolutions, 0 where a layer was removed."""
    widths = iter(w for w in architecture(pruned) if w != "M")
    convs = [layer.name for layer in base.layers if type(layer).__name__ == "Conv2D"]
    out = []
    for item in architecture(base):
        if item == "M":
            out.append("M")
            continue
        name = convs.pop(0)
        out.append(0 if name in removed else next(widths))
    return out


@command
def main(argv=None):
    args, scale, data, runner = setup(__doc__.splitlines()[0], "cifar100", SCRIPT, argv)
    for seed in scale.seeds:
        base = baseline("vgg19_bn", args, data, scale, seed, log=None if args.quiet else print)
        runner.arm({"arm": "baseline", "seed": seed},
                   lambda: {"accuracy": test_accuracy(base, data), "architecture": architecture(base), **cost(base, scale)})
        for criterion in selected(args, CRITERIA):
            def run(criterion=criterion):
                model, _, _ = filter_prune(base, criterion, fraction=FILTER_FRACTION, schedule="iterative",
                                           data=data, scale=scale, seed=seed, steps=args.steps)
                return {"architecture": architecture(model), "accuracy": finetune(model, data, scale, seed),
                        **cost(model, scale, reference=base)}
            runner.arm({"arm": "filter", "criterion": criterion, "seed": seed}, run)
        ranking = None
        for n in LAYERS_REMOVED:
            def run(n=n):
                nonlocal ranking
                ranking = ranking or removable_ranking(base, data, scale, seed)
                model, removed = layer_prune(copy_model(base), n, data, scale, seed, ranking=ranking)
                return {"removed": removed, "architecture": with_zeros(base, model, removed),
                        "accuracy": finetune(model, data, scale, seed), **cost(model, scale, reference=base)}
            runner.arm({"arm": "layer", "n": n, "seed": seed}, run)
    return outputs(args, scale, data, runner.records())


def outputs(args, scale, data, records):
    seed = scale.seeds[0]
    rows = [r for r in records if r["seed"] == seed]
    lines = [f"# LayerPrune supplement Table 3: architectures after pruning, {model_label('vgg19_bn', scale)}", "",
             "| Method | Accuracy (%) | Latency b64 (ms) | Latency vs baseline | Parameters | Architecture |",
             "| --- | --- | --- | --- | --- | --- |"]
    table = []
    for r in rows:
        method = {"baseline": "VGG19-BN (baseline)",
                  "filter": CRITERIA.get(r.get("criterion"), r.get("criterion")),
                  "layer": f"Layer pruning_{r.get('n')}"}[r["arm"]]
        arch = "[" + ", ".join(f"'{w}'" if w == "M" else str(w) for w in r["architecture"]) + "]"
        ratio = f"{r['latency_ratio']:.2f}×" if "latency_ratio" in r else "1.00×"
        lines.append(f"| {method} | {r['accuracy'] * 100:.2f} | {r['latency_s'] * 1000:.1f} | {ratio} | {r['parameters']:,} | {arch} |")
        table.append({"method": method, "accuracy": r["accuracy"], "latency_s": r["latency_s"],
                      "parameters": r["parameters"], "architecture": arch})
    lines += ["", f"Made with: {provenance(args, scale, data, SCRIPT)}."]
    return write_outputs(args, SCRIPT, lines, table)


if __name__ == "__main__":
    main()
