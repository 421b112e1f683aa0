"""LayerPrune Tables 1 and 3 scripts end to end on the stand-in; Table 3 also checks that a rerun redoes nothing.

Kept apart from the other ResNet scripts' end-to-end test (test_layerprune_experiments.py),
so that the parts, each minutes long, run on different pytest-xdist workers.  Table 1 trains
its own one-epoch ResNet baseline here instead of sharing Table 2's.
"""

from __future__ import annotations

import os

import pytest
from test_layerprune_experiments import _records, _run, needs_fashion


@pytest.mark.slow
@needs_fashion
def test_table3_script_end_to_end_and_resume(tmp_path):
    # Table 3: VGG19-BN, one filter criterion (iterative, 2 steps) and layer pruning 2 and 5.
    _run("03_table3_architectures_vgg19_bn", tmp_path, "--criteria", "bn_scale", "--steps", "2")
    records = _records(tmp_path, "03_table3")
    assert [r["arm"] for r in records] == ["baseline", "filter", "layer", "layer"]
    base = [w for w in records[0]["architecture"] if w != "M"]
    assert base == [8, 8, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, 64, 64, 64, 64]
    convs = [f"block{k}_conv{i}" for k, n in enumerate((2, 2, 4, 4, 4), start=1) for i in range(1, n + 1)]
    for record, n in zip(records[2:], (2, 5)):
        widths = [w for w in record["architecture"] if w != "M"]
        assert len(record["removed"]) == n
        # a removed layer shows as 0 in its own place, every other layer keeps its width
        assert widths == [0 if name in record["removed"] else w for name, w in zip(convs, base)]
        assert record["parameters"] < records[0]["parameters"]
    assert records[2]["removed"] == records[3]["removed"][:2]  # one ranking, cut at 2 and at 5
    pruned = [w for w in records[1]["architecture"] if w != "M"]
    assert sum(base) - sum(pruned) == int(sum(base) * 500 / 5504 + 1e-9)
    assert all(0 < p <= b for p, b in zip(pruned, base))
    with open(tmp_path / "figures" / "03_table3_architectures_vgg19_bn_fashion_mnist_rgb32_quick.md") as handle:
        table = handle.read()
    assert "Layer pruning_5" in table and "Made with" in table

    # Resuming does no arm twice: nothing is trained or pruned again, no record is added.
    [results] = [p for p in os.listdir(tmp_path) if p.startswith("03_table3") and p.endswith(".jsonl")]
    before = (tmp_path / results).read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run trained or pruned again")

    with pytest.MonkeyPatch.context() as patch:
        # The protocol imports these inside its functions (so that --help needs no
        # TensorFlow): patch them where those imports find them.
        import dropnet_tf.foresight.experiment
        import dropnet_tf.layerprune

        patch.setattr(dropnet_tf.foresight.experiment, "train_and_evaluate", refuse)
        patch.setattr(dropnet_tf.layerprune, "prune_filters", refuse)
        _run("03_table3_architectures_vgg19_bn", tmp_path, "--criteria", "bn_scale", "--steps", "2")
    assert (tmp_path / results).read_bytes() == before


@pytest.mark.slow
@needs_fashion
def test_table1_script_filter_arms(tmp_path):
    _run("01_table1_iterative_vs_oneshot_resnet56", tmp_path, "--criteria", "l1_norm", "--steps", "2")
    table1 = _records(tmp_path, "01_table1")
    filters = [r for r in table1 if r["arm"] == "filter"]
    assert sorted((r["ratio"], r["schedule"]) for r in filters) == [
        (0.2, "iterative"), (0.2, "one_shot"), (0.3, "iterative"), (0.3, "one_shot")
    ]
    total = 3 * (16 + 32 + 64)
    for r in filters:
        assert r["pruned_filters"] == int(r["ratio"] * total + 1e-9)
