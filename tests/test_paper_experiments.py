"""The numbered DropNet scripts: every paper figure has one, and a script runs end to end."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dropnet_tf.dropnet.metrics import METRICS
from dropnet_tf.models import MODELS
from script_helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS_DIR = ROOT / "paper_experiments" / "dropnet"
SCRIPTS = sorted(p for p in SCRIPTS_DIR.glob("[0-9A-Z]*_*.py") if not p.name.startswith("00_"))  # 00: the demo

# Every figure of DropNet's Sections 4-7 and supplement C-D that issue 3 lists.
PAPER_FIGURES = (
    {f"fig{n:02d}" for n in range(3, 21)}
    | {f"figA{n}" for n in range(2, 8)}
    | {f"figC{n}" for n in range(8, 24)}
)


_load = load_script


@pytest.fixture(scope="module")
def experiments():
    return {path.name: _load(path).EXPERIMENT for path in SCRIPTS}


def test_every_paper_figure_has_a_script(experiments):
    covered = {label for exp in experiments.values() for fig in exp.figures for label in fig.labels}
    assert PAPER_FIGURES <= covered, sorted(PAPER_FIGURES - covered)


def test_scripts_are_consistent_with_their_names(experiments):
    numbers = set()
    for name, exp in experiments.items():
        assert name.startswith(exp.script + "_"), name
        numbers.add(exp.script)
        for fig in exp.figures:
            for label in fig.labels:
                if label.startswith("fig"):
                    assert f"_{label}_" in name, (name, label)
        assert exp.model in MODELS, name
        assert set(exp.metrics) <= set(METRICS) | {"oracle"}, name
        assert exp.family in ("mlp", "conv", "deep"), name
        assert exp.dataset in ("mnist", "cifar10", "tiny_imagenet"), name
        assert exp.dataset.replace("_", "") in name.replace("_", ""), name
        assert exp.paper_ordering, name
    assert len(numbers) == len(experiments), "two scripts share a number"


def test_section_specific_protocols(experiments):
    by_number = {exp.script: exp for exp in experiments.values()}
    for number in ("05_1", "05_2"):  # oracle: drop-one, against minimum / maximum / random_layer
        assert by_number[number].count == 1
        assert set(by_number[number].metrics) == {"oracle", "minimum", "maximum", "random_layer"}
    for number in ("07_1", "07_2", "07_3"):
        assert by_number[number].fractions == (0.2, 0.3, 0.4, 0.5, 0.9)
    for number in ("C_4_1", "C_4_2"):  # Tiny ImageNet: Table C1 augmentation, patience 10, p = 0.5
        exp = by_number[number]
        assert exp.augmentation and exp.patience == 10 and exp.fractions == (0.5,)
    assert by_number["C_4_2"].model_kwargs == {"dense_units": 1024}
    # DropNet Section 4: "early stopping ... patience of 5" everywhere else (10 for Tiny ImageNet)
    assert {n: e.patience for n, e in by_number.items() if not n.startswith("C_4")} == {
        n: 5 for n in by_number if not n.startswith("C_4")}
    for number in ("06_1", "06_2", "06_3", "06_4", "06_5"):
        assert by_number[number].inits == ("original", "random")
    for number in ("D_1", "D_2"):
        assert set(by_number[number].metrics) == {"minimum", "minimum_layer", "apoz", "apoz_layer"}


def test_rgb32_standin_pads_and_repeats():
    from dropnet_tf.data import standins

    x = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28, 1)
    out = standins.rgb32(x)
    assert out.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(out[:, 2:30, 2:30, 1], x[..., 0])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert not out[:, :2].any() and not out[:, :, 30:].any()


def _run(script: str, tmp_path: Path, *extra: str) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [
        sys.executable, str(SCRIPTS_DIR / script), "--scale", "quick", "--dataset", "digits",
        "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"), *extra,
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _main(script: str, tmp_path: Path, *extra: str) -> None:
    """The same command as :func:`_run`, through ``main()`` in this process (no second
    TensorFlow start-up): for reruns, once :func:`_run` has shown the script runs as a program."""
    path = SCRIPTS_DIR / script
    _load(path).main(_load(path).EXPERIMENT, [
        "--scale", "quick", "--dataset", "digits",
        "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"), *extra,
    ])


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_metrics_script_end_to_end_and_resume(tmp_path, experiments, capsys):
    script = "04_1_1_fig03_model_a_fc40_fc40_mnist.py"
    # The script runs all six metrics by default; two of them (one global, one layer-wise)
    # exercise the same grid, CSV and resume code at a third of the time.
    assert set(experiments[script].metrics) == set(METRICS) - {"apoz", "apoz_layer"}
    args = ("--seeds", "0", "1", "--max-epochs", "1", "--max-train", "300", "--metrics", "minimum", "minimum_layer")
    stdout = _run(script, tmp_path, *args)
    assert "minimum seed=0 init=original cycle=0 remaining=1.000 val_acc=" in stdout  # progress lines
    figures = tmp_path / "figures"
    stem = "04_1_1_fig03_model_a_fc40_fc40_digits_quick_test_accuracy"
    assert (figures / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _csv(figures / f"{stem}.csv")
    records = [json.loads(line) for line in open(tmp_path / "runs" / "results.jsonl")]
    assert len(records) == sum(1 for r in records if r["seed"] in (0, 1))
    # one CSV row per (metric, cycle), each the mean of both seeds
    assert len(rows) == len({(r["metric"], r["cycle"]) for r in records})
    assert {row["metric"] for row in rows} == {"minimum", "minimum_layer"}  # --metrics chose these
    assert all(int(row["n"]) == 2 for row in rows)
    for metric in {row["metric"] for row in rows}:
        fractions = [float(row["fraction_remaining"]) for row in rows if row["metric"] == metric]
        assert fractions[0] == 1.0 and fractions[-1] <= 0.1 and fractions == sorted(fractions, reverse=True)
    assert (figures / "04_1_1_epochs_model_a_fc40_fc40_digits_quick_epochs.png").exists()
    summary = json.loads((figures / "04_1_1_model_a_fc40_fc40_digits_quick.json").read_text())
    assert summary["cycles_run"] == len(records)
    assert summary["split_sizes"][0] == 300
    assert {metric for metric, _ in summary["ordering_by_mean_test_accuracy"]} == {"minimum", "minimum_layer"}

    # rerunning resumes: nothing is trained again, the same figure comes out
    capsys.readouterr()
    _main(script, tmp_path, *args)
    stdout = capsys.readouterr().out
    assert "already done" in stdout and "cycle=" not in stdout
    assert sum(1 for _ in open(tmp_path / "runs" / "results.jsonl")) == len(records)
    assert _csv(figures / f"{stem}.csv") == rows


@pytest.mark.slow
def test_oracle_script_draws_mask_agreement(tmp_path):
    _run(
        "05_1_fig13_oracle_model_a_fc20_fc20_mnist.py", tmp_path,
        "--seeds", "0", "--max-epochs", "1", "--max-train", "200", "--quiet",
        # a global and a layer-wise metric against the oracle (the script's third, maximum,
        # is drawn by the same code): three runs of 36 cycles instead of four
        "--metrics", "oracle", "minimum", "random_layer",
    )
    rows = _csv(tmp_path / "figures" / "05_1_fig13_oracle_model_a_fc20_fc20_digits_quick_oracle_similarity.csv")
    assert {row["metric"] for row in rows} == {"minimum", "random_layer"}
    values = {(row["metric"], int(row["cycle"])): float(row["oracle_similarity_mean"]) for row in rows}
    for metric in ("minimum", "random_layer"):
        assert values[(metric, 0)] == 1.0  # every run starts from the all-ones mask
        assert values[(metric, 1)] in (1.0, 38 / 40)  # drop-one: same unit or two differing entries
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert min(values.values()) < 1.0


def test_results_table_reads_the_quick_summaries(tmp_path):
    from paper_experiments.dropnet import quick_results_table
    summary = {
        "scale": {"seeds": [0, 1, 2], "max_epochs": 15},
        "patience": 3,
        "split_sizes": [5000, 1000, 2000],
        "seconds_this_call": 250.0,
        "compute_seconds": 240.0,
        "cycles_run": 10,
        "cycles_this_call": 4,  # resumed: the table must report the cycles' own time
        "ordering_by_mean_test_accuracy": [["minimum_layer", 0.8], ["maximum", 0.5]],
    }
    (tmp_path / "04_1_1_model_a_fc40_fc40_fashion_mnist_quick.json").write_text(json.dumps(summary))
    lines = quick_results_table.table(tmp_path).splitlines()
    row = next(line for line in lines if "04_1_1_fig03" in line)
    assert "fashion_mnist, 3 seeds, 5000/1000/2000, ≤15 epochs (patience 3)" in row
    assert "| 4 min 00 s |" in row
    assert "minimum_layer 0.800 > maximum 0.500" in row
    other = next(line for line in lines if "04_1_2_fig04" in line)
    assert "not run here" in other
    assert len(lines) == 2 + len(SCRIPTS)


@pytest.mark.slow
def test_tiny_imagenet_script_on_a_synthetic_folder(tmp_path):
    """Supplement C.4 end to end: official folder layout, Table C1 augmentation, p = 0.5, patience 10."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from test_data import _write_tiny_imagenet
    finally:
        sys.path.pop(0)
    _write_tiny_imagenet(tmp_path / "data" / "tiny-imagenet-200")
    script = "C_4_2_figC19_figC18_vgg19_tiny_imagenet.py"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [
        sys.executable, str(SCRIPTS_DIR / script), "--scale", "quick", "--data-dir", str(tmp_path / "data"),
        "--seeds", "0", "--max-epochs", "1", "--metrics", "minimum_layer",
        "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "figures" / "C_4_2_vgg19_tiny_imagenet_quick.json").read_text())
    assert summary["augmentation"] == {
        "rotation_degrees": 40.0, "width_shift": 0.2, "height_shift": 0.2, "zoom": 0.2, "shear": 0.2,
        "horizontal_flip": True,
    }
    assert summary["fractions"] == [0.5] and summary["metrics"] == ["minimum_layer"]
    assert summary["split_sizes"] == [27, 3, 6]
    records = [json.loads(line) for line in open(tmp_path / "runs" / "results.jsonl")]
    assert [r["pruning_fraction"] for r in records] == [0.5] * len(records)
    # p = 0.5 layer-wise: each cycle keeps about half, so 10% is reached in 4 cycles
    assert [round(r["fraction_remaining"], 2) for r in records][:2] == [1.0, 0.5]
    assert records[-1]["fraction_remaining"] <= 0.1 and len(records) <= 6
    assert (tmp_path / "figures" / "C_4_2_figC19_vgg19_tiny_imagenet_quick_test_accuracy.png").exists()


def test_paper_scale_is_the_paper_protocol(experiments):
    from paper_experiments.dropnet import dropnet_protocol as protocol
    tiny = next(exp for exp in experiments.values() if exp.script == "C_4_1")
    args = protocol.parse_args(tiny, [])
    scale = protocol.resolve_scale(tiny, args)
    assert args.scale == "paper" and args.dataset == "tiny_imagenet"
    assert scale.seeds == tuple(range(15)) and scale.max_epochs == 100 and scale.max_train is None
    assert scale.patience is None and tiny.patience == 10  # the experiment's own patience applies
    quick = protocol.resolve_scale(tiny, protocol.parse_args(tiny, ["--scale", "quick", "--seeds", "3", "4"]))
    assert quick.seeds == (3, 4) and quick.max_train is not None
    with pytest.raises(SystemExit):
        protocol.parse_args(tiny, ["--metrics", "oracle"])  # not one of this experiment's metrics
    oracle = next(exp for exp in experiments.values() if exp.script == "05_1")
    with pytest.raises(SystemExit):
        protocol.parse_args(oracle, ["--metrics", "minimum"])  # the oracle must stay in


def test_ordering_compares_curves_over_the_same_range():
    from paper_experiments.dropnet import dropnet_protocol as protocol

    def curve(p, points):
        return [
            {"metric": "minimum", "pruning_fraction": p, "seed": 0, "cycle": c, "fraction_remaining": f, "test_accuracy": a}
            for c, (f, a) in enumerate(points)
        ]

    # p=0.9 has three points, one below 10%; the plain mean of its points (0.717) would rank
    # it above p=0.2 (0.633), but over 10%-100% it averages 0.6.
    records = curve(0.9, [(1.0, 0.9), (0.1, 0.3), (0.01, 0.95)]) + curve(
        0.2, [(1.0, 0.9), (0.5, 0.7), (0.1, 0.3)]
    )
    ranked = protocol.ordering(records, "pruning_fraction")
    assert [arm for arm, _ in ranked] == ["minimum, pruning_fraction=0.2", "minimum, pruning_fraction=0.9"]
    # p=0.2 linear pieces 0.9→0.7 over [0.5, 1] and 0.7→0.3 over [0.1, 0.5]: mean on the grid
    grid = np.linspace(0.1, 1.0, 19)
    expected = np.mean(np.interp(grid, [0.1, 0.5, 1.0], [0.3, 0.7, 0.9]))
    assert ranked[0][1] == pytest.approx(expected)
    assert ranked[1][1] == pytest.approx(np.mean(np.interp(grid, [0.01, 0.1, 1.0], [0.95, 0.3, 0.9])))


def test_cifar_scripts_accept_cifar10_jpeg_and_name_it_in_their_outputs(experiments):
    """``--dataset cifar10_jpeg`` (CIFAR-10 as JPEG, an image folder) reaches every CIFAR-10
    script, and file names carry it rather than ``cifar10``; the foresight CIFAR protocols
    treat it as CIFAR-10."""
    from paper_experiments.dropnet import dropnet_protocol as protocol
    from paper_experiments.foresight import foresight_protocol
    cifar = [exp for exp in experiments.values() if exp.dataset == "cifar10"]
    assert cifar
    for exp in cifar:
        args = protocol.parse_args(exp, ["--dataset", "cifar10_jpeg", "--data-dir", "somewhere"])
        assert args.dataset == "cifar10_jpeg" and args.data_dir == "somewhere"
        stem = protocol._figure_stem(exp, exp.figures[0], args.dataset, protocol.PAPER_SCALE)
        assert "_cifar10_jpeg_" in stem
    assert "cifar10_jpeg" in foresight_protocol.DATASET_CHOICES
    assert foresight_protocol.thesis_protocol("cifar10_jpeg") == foresight_protocol.thesis_protocol("cifar10")
    assert foresight_protocol.snip_protocol("cifar10_jpeg") == foresight_protocol.snip_protocol("cifar10")


def test_paper_table_puts_ours_next_to_the_paper_and_the_quick_run(tmp_path):
    from paper_experiments.dropnet import quick_results_table
    paper = {
        "scale": {"seeds": [0, 1, 2, 3, 4], "max_epochs": 100},
        "patience": 5,
        "split_sizes": [54000, 6000, 10000],
        "ordering_by_mean_test_accuracy": [["minimum", 0.95], ["maximum", 0.61]],
        "test_accuracy_at_10_percent": {"minimum": {"mean": 0.9, "ci95": 0.01, "n": 5},
                                        "maximum": {"mean": 0.2, "ci95": 0.05, "n": 5}},
    }
    quick = dict(paper, ordering_by_mean_test_accuracy=[["maximum", 0.7], ["minimum", 0.6]])
    (tmp_path / "04_1_1_model_a_fc40_fc40_mnist_paper.json").write_text(json.dumps(paper))
    (tmp_path / "04_1_1_model_a_fc40_fc40_fashion_mnist_quick.json").write_text(json.dumps(quick))
    lines = quick_results_table.paper_table(tmp_path).splitlines()
    assert len(lines) == 3  # header, rule, the one script with a paper-protocol summary
    row = lines[2]
    assert "mnist, 5 seeds, 54000/6000/10000, ≤100 epochs (patience 5)" in row
    assert "| minimum 0.950 > maximum 0.610 |" in row
    assert "minimum 0.900 ± 0.010, maximum 0.200 ± 0.050" in row
    assert row.endswith("| maximum 0.700 > minimum 0.600 |")  # the quick stand-in's ordering, last


def test_paper_table_lists_a_cpu_cut_of_the_paper_scale_beside_the_full_one(tmp_path):
    """A run cut down by --max-train/--max-epochs gets its own row; one seed shows no ± (no CI)."""
    from paper_experiments.dropnet import quick_results_table
    cut = {
        "scale": {"seeds": [0], "max_epochs": 20},
        "patience": 5,
        "split_sizes": [3000, 6000, 10000],
        "ordering_by_mean_test_accuracy": [["minimum", 0.96]],
        "test_accuracy_at_10_percent": {"minimum": {"mean": 0.949, "ci95": 0.0, "n": 1}},
    }
    full = dict(cut, scale={"seeds": [0, 1], "max_epochs": 100}, split_sizes=[54000, 6000, 10000],
                test_accuracy_at_10_percent={"minimum": {"mean": 0.98, "ci95": 0.004, "n": 2}})
    (tmp_path / "04_2_1_model_b_conv64_conv64_mnist_paper.json").write_text(json.dumps(full))
    (tmp_path / "04_2_1_model_b_conv64_conv64_mnist_paper_train3000_epochs20.json").write_text(json.dumps(cut))
    # the notebook protocol's summary is another figure, not a row of this table
    (tmp_path / "04_2_1_model_b_conv64_conv64_mnist_paper_notebook.json").write_text(json.dumps(cut))
    rows = quick_results_table.paper_table(tmp_path).splitlines()[2:]
    assert len(rows) == 2
    assert "mnist, 2 seeds, 54000/6000/10000, ≤100 epochs (patience 5)" in rows[0]
    assert "| minimum 0.980 ± 0.004 |" in rows[0]
    assert "mnist, 1 seed, 3000/6000/10000, ≤20 epochs (patience 5)" in rows[1]
    assert "| minimum 0.949 |" in rows[1]


def test_accuracy_at_ten_percent_interpolates_each_seed_then_averages():
    from paper_experiments.dropnet import dropnet_protocol
    records = [
        {"metric": "minimum", "seed": 0, "fraction_remaining": f, "test_accuracy": a}
        for f, a in ((1.0, 0.9), (0.2, 0.8), (0.05, 0.4))
    ] + [
        {"metric": "minimum", "seed": 1, "fraction_remaining": f, "test_accuracy": a}
        for f, a in ((1.0, 0.9), (0.12, 0.7), (0.08, 0.5))
    ] + [{"metric": "maximum", "seed": 0, "fraction_remaining": 0.5, "test_accuracy": 0.3}]  # never reached 10%
    cells = dropnet_protocol.accuracy_at(records, "metric")
    seed0 = 0.4 + (0.8 - 0.4) * (0.10 - 0.05) / (0.2 - 0.05)  # 0.5333
    seed1 = 0.5 + (0.7 - 0.5) * (0.10 - 0.08) / (0.12 - 0.08)  # 0.6
    assert set(cells) == {"minimum"}
    assert cells["minimum"]["n"] == 2
    assert cells["minimum"]["mean"] == pytest.approx((seed0 + seed1) / 2)
    assert cells["minimum"]["ci95"] == pytest.approx(1.96 * np.std([seed0, seed1], ddof=1) / np.sqrt(2))


def test_a_section_4_grid_drops_20_percent_per_cycle_down_to_10_percent_remaining(tmp_path, monkeypatch):
    """DropNet Section 4: "p = 0.2 ... pruning down to 10% of units remaining": what the Fig. 3
    script hands the library (run_experiment replaced by a recorder: nothing trains)."""
    import dropnet_tf
    from script_helpers import EXPERIMENTS, load_script

    calls = []
    monkeypatch.setattr(dropnet_tf, "run_experiment", lambda *args, **kwargs: calls.append(kwargs) or [])
    script = load_script(EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    script.main(script.EXPERIMENT, ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--metrics", "minimum",
                                    "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"), "--quiet"])
    assert [(call["fraction"], call["min_fraction"], call["count"]) for call in calls] == [(0.2, 0.1, None)]
