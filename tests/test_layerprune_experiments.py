"""The LayerPrune paper-experiment scripts: declarations, and each run end to end at a tiny scale."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from script_helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(ROOT, "paper_experiments", "layerprune")
SCRIPTS = sorted(name[:-3] for name in os.listdir(FOLDER) if name[:2].isdigit() and name.endswith(".py"))
FASHION = "/usr/share/datasets/fashion-mnist"
TINY = ["--scale", "quick", "--dataset", "fashion_mnist_rgb32", "--max-train", "200", "--baseline-epochs", "1",
        "--finetune-epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def protocol():
    return importlib.import_module("paper_experiments.layerprune.layerprune_protocol")


def test_one_script_per_supplement_table_and_figure(protocol):
    assert SCRIPTS == [
        "01_table1_iterative_vs_oneshot_resnet56",
        "02_table2_spearman_imprinting_resnet56",
        "03_table3_architectures_vgg19_bn",
        "04_fig1_latency_vs_accuracy_resnet56",
        "05_figs2_3_block_importance_resnet56",
    ]
    for name in SCRIPTS:
        module = importlib.import_module(f"paper_experiments.layerprune.{name}")
        assert module.SCRIPT == name
        assert "supplement" in module.__doc__.splitlines()[0]


def test_scales_follow_the_supplement(protocol):
    paper = protocol.SCALE["paper"]
    assert (paper.resnet_depth, paper.vgg_width, paper.finetune_epochs, paper.finetune_lr) == (56, 1.0, 30, 1e-3)
    assert (paper.baseline_epochs, paper.baseline_lr, paper.baseline_drops) == (160, 0.1, (81, 122))
    assert paper.max_train is None and paper.latency_batch == 64


def test_the_baseline_rate_drops_from_the_first_step_of_epochs_82_and_123(protocol):
    """Supplement: "160 epoch with initial learning rate 0.1 and decays on epoch [81, 122] by 0.1",
    as PyTorch's MultiStepLR([81, 122]) does: epochs 1-81 at 0.1, every step of epoch 82 at 0.01.
    By hand for CIFAR-10's 50 000 images at batch 128: 391 steps per epoch, so the optimizer's
    step counter is 81 · 391 − 1 = 31 670 on the last step of epoch 81 and 31 671 on the first
    of epoch 82 (and 47 701 / 47 702 around epoch 122 / 123)."""
    from types import SimpleNamespace

    optimizer = protocol.baseline_protocol(protocol.SCALE["paper"], SimpleNamespace(x_train=np.zeros((50_000, 1))))
    schedule = optimizer.make_optimizer().learning_rate
    schedule = schedule if callable(schedule) else optimizer.make_optimizer()._learning_rate
    rates = [float(schedule(step)) for step in (0, 31_670, 31_671, 47_701, 47_702)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)


def test_prunable_convolutions_are_the_first_of_each_block_in_resnets(protocol):
    from dropnet_tf.layerprune import cifar_resnet_layerprune, vgg19_bn

    resnet = cifar_resnet_layerprune(20, input_shape=(8, 8, 3))
    names = protocol.prunable_convolutions(resnet)
    assert names == [f"block{s}_{b}_conv1" for s in (1, 2, 3) for b in (1, 2, 3)]
    vgg = vgg19_bn(width_multiplier=1 / 16)
    assert len(protocol.prunable_convolutions(vgg)) == 16


def test_run_tag_keeps_runs_with_other_settings_apart(protocol):
    base = protocol.parse_args("x", "cifar10", ["--scale", "quick"])
    other = protocol.parse_args("x", "cifar10", ["--scale", "quick", "--max-train", "300", "--steps", "3"])
    assert protocol.run_tag(base) == "cifar10_quick"
    assert protocol.run_tag(other) == "cifar10_quick_n300_s3"


def test_standin_is_cut_to_the_scale_before_it_is_converted(protocol, monkeypatch):
    """prepare_data converts only the kept images, and they are the ones the subset of the
    plain dataset picks (a stand-in of the always-available digits, with a spying transform)."""
    import argparse

    import numpy as np

    import dropnet_tf
    from dropnet_tf.data import standins

    seen = []

    def transform(x):
        seen.append(len(x))
        return np.repeat(x, 2, axis=-1)

    monkeypatch.setitem(standins.STANDINS, "digits_rgb", standins.Standin("digits", transform, "digits, two channels"))
    scale = protocol.SCALE["quick"]
    scale = scale.override(max_train=300, max_test=100)
    data = protocol.prepare_data(argparse.Namespace(dataset="digits_rgb", data_dir=None), scale)
    plain = dropnet_tf.load_dataset("digits").subset(max_train=300, max_test=100, seed=0)
    assert seen == [300, len(plain.x_val), 100]
    assert data.name == "digits_rgb"
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(data, f"x_{split}"), np.repeat(getattr(plain, f"x_{split}"), 2, axis=-1))
        np.testing.assert_array_equal(getattr(data, f"y_{split}"), getattr(plain, f"y_{split}"))
    full = protocol.prepare_data(argparse.Namespace(dataset="digits_rgb", data_dir=None), protocol.SCALE["paper"])
    assert len(full.x_train) == len(dropnet_tf.load_dataset("digits").x_train) > 300


def _script(name):
    """A script's module, imported by path (it imports its protocol as ``paper_experiments.layerprune``)."""
    return load_script(os.path.join(FOLDER, f"{name}.py"))


def _run(script, out, *extra):
    """``main(argv)`` of a script in this process: TensorFlow is imported once, not per script."""
    argv = [*TINY, "--out", str(out), "--figures", str(out / "figures"), *extra]
    return _script(script).main(argv)


def test_a_script_runs_as_a_program():
    """The scripts find their protocol when run as files (the end-to-end test calls main())."""
    command = [sys.executable, os.path.join(FOLDER, f"{SCRIPTS[1]}.py"), "--help"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--max-train" in done.stdout and "Table 2" in done.stdout


def _records(out, script):
    [path] = [p for p in os.listdir(out) if p.startswith(script) and p.endswith(".jsonl")]
    with open(out / path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _fashion_found() -> bool:
    """Fashion-MNIST files where dropnet_tf.load_dataset looks ($DROPNET_DATA_DIR, system folders)."""
    from dropnet_tf.data.common import _candidate_dirs

    return bool(_candidate_dirs("fashion_mnist", None)[0])


needs_fashion = pytest.mark.skipif(
    not _fashion_found(), reason=f"no Fashion-MNIST files ({FASHION}: Debian's dataset-fashion-mnist, or $DROPNET_DATA_DIR)"
)


@pytest.mark.slow
@needs_fashion
def test_resnet_scripts_end_to_end(tmp_path, protocol):
    # Tables 1 and 3 (and the resume check) are in test_layerprune_tables_1_3_scripts.py, so that
    # the parts run on different pytest-xdist workers.
    # Table 2 (imprinting, one-shot vs iterative) and Fig. 1 (latency vs accuracy) share the ResNet baseline.
    _run("02_table2_spearman_imprinting_resnet56", tmp_path)
    table2 = _records(tmp_path, "02_table2")
    assert [r["n"] for r in table2] == [1, 2, 3, 4]
    assert all(len(r["one_shot_removed"]) == r["n"] == len(set(r["iterative_removed"])) for r in table2)
    assert not any(name in ("block2_1", "block3_1") for r in table2 for name in r["iterative_removed"])
    one_shot = table2[-1]["one_shot_removed"]
    for r in table2:  # both procedures only ever add a block; their first choice is the same
        assert r["one_shot_removed"] == one_shot[: r["n"]]
        assert r["iterative_removed"] == table2[-1]["iterative_removed"][: r["n"]]
    assert table2[0]["iterative_removed"] == one_shot[:1]

    _run("04_fig1_latency_vs_accuracy_resnet56", tmp_path, "--criteria", "l1_norm")
    fig1 = _records(tmp_path, "04_fig1")
    assert [r["arm"] for r in fig1].count("filter") == 4 and [r["arm"] for r in fig1].count("layer") == 4
    flops = [r["flops"] for r in fig1 if r["arm"] == "filter"]
    assert flops == sorted(flops, reverse=True)  # more filters pruned, fewer FLOPs
    assert os.path.getsize(tmp_path / "figures" / "04_fig1_latency_vs_accuracy_resnet56_fashion_mnist_rgb32_quick.png") > 10_000
    assert sorted(os.listdir(tmp_path / "baselines")) == [
        "resnet_fashion_mnist_rgb32_quick_n200_be1_seed0.keras"
    ]  # one ResNet baseline shared by Table 2 and Fig. 1
    assert all(0 < r["latency_ratio"] < 2 for r in fig1 if r["arm"] != "baseline")
    # Fig. 1's layer pruning ranks the same baseline by the same imprinting as Table 2's one-shot
    assert [r["removed"] for r in fig1 if r["arm"] == "layer"] == [one_shot[:n] for n in (1, 2, 3, 4)]

    _run("05_figs2_3_block_importance_resnet56", tmp_path, "--criteria", "l1_norm")
    with open(tmp_path / "figures" / "05_figs2_3_block_importance_resnet56_fashion_mnist_rgb32_quick.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 and {"l1_norm", "imprinting", "ensemble"} <= set(rows[0])
    [figs23] = _records(tmp_path, "05_figs2_3")
    importance = figs23["importance"]
    blocks = figs23["blocks"]
    assert [row["block"] for row in rows] == blocks
    for row in rows:
        for key in ("l1_norm", "imprinting", "ensemble"):
            assert float(row[key]) == pytest.approx(importance[key][row["block"]])

    def ranks(scores):  # average ranks, ties sharing the mean, counted by hand
        values = [scores[b] for b in blocks]
        return [sum(u < v for u in values) + (sum(u == v for u in values) + 1) / 2 for v in values]

    want = [(a + b) / 2 for a, b in zip(ranks(importance["l1_norm"]), ranks(importance["imprinting"]))]
    assert [importance["ensemble"][b] for b in blocks] == pytest.approx(want)
    # the same imprinting importances order the removable blocks as Table 2's one-shot did
    removable = [b for b in blocks if b not in ("block2_1", "block3_1")]
    by_imprinting = sorted(removable, key=lambda b: (importance["imprinting"][b], removable.index(b)))
    assert by_imprinting[:4] == one_shot
