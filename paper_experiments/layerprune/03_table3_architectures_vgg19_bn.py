"""LayerPrune supplement Table 3: VGG19-BN architectures after filter pruning vs layer pruning.

Filter pruning removes the supplement's 500 of VGG19's 5504 filters (the same fraction at
other widths) globally with weight norm, network slimming's batch-norm scale and Taylor;
layer pruning removes the 2 and 5 least important convolutions by imprinting (only layers
whose input and output widths match can become the identity).  The table lists each
network's widths per convolution ('M' = max-pooling, 0 = removed layer) and the test
accuracy after fine-tuning.
"""

from paper_experiments.layerprune.layerprune_protocol import (
    FilterArms, LayerArms, LayerPruneExperiment, command, model_label, provenance, run, with_zeros,  # noqa: F401
    write_outputs,
)

SCRIPT = "03_table3_architectures_vgg19_bn"
FILTER_FRACTION = 500 / 5504
CRITERIA = {"l1_norm": "Weight norm", "bn_scale": "Slimming (BN scale)", "taylor": "Taylor"}
LAYERS_REMOVED = (2, 5)

EXPERIMENT = LayerPruneExperiment(
    script=SCRIPT,
    description=__doc__.splitlines()[0],
    model="vgg19_bn",
    dataset="cifar100",
    baseline_architecture=True,
    filters=FilterArms(CRITERIA, (FILTER_FRACTION,), ("iterative",), fields=("architecture",)),
    layers=LayerArms(LAYERS_REMOVED, architecture=True),
)


@command
def main(argv=None):
    return run(EXPERIMENT, outputs, argv)


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
