"""Tests of dropnet_tf.plotting: summaries over seeds and the figures drawn from them."""

import csv
import math
import os

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex

from dropnet_tf.plotting import (
    PALETTE,
    STANDARD_METRICS,
    fraction_xlabel,
    make_figure,
    plot_accuracy_vs_fraction,
    plot_train_and_test,
    style_for,
    summarize,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _records(metrics=("random", "minimum", "maximum_layer"), seeds=(0, 1, 2), cycles=4):
    """Deterministic records: accuracy depends on metric, seed and cycle in a known way."""
    out = []
    for m_index, metric in enumerate(metrics):
        for seed in seeds:
            for cycle in range(cycles):
                out.append(
                    {
                        "experiment": "unit",
                        "metric": metric,
                        "seed": seed,
                        "init": "original",
                        "cycle": cycle,
                        "fraction_remaining": 0.8**cycle + 0.001 * seed,
                        "train_accuracy": 1.0 - 0.01 * cycle - 0.001 * seed,
                        "test_accuracy": 0.9 - 0.05 * cycle * (m_index + 1) + 0.01 * seed,
                    }
                )
    return out


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- summarize -------------------------------------------------------------------------


def test_summarize_matches_hand_computed_statistics():
    records = [
        {"metric": "minimum", "seed": 0, "cycle": 1, "fraction_remaining": 0.50, "test_accuracy": 0.90},
        {"metric": "minimum", "seed": 1, "cycle": 1, "fraction_remaining": 0.52, "test_accuracy": 0.80},
        {"metric": "minimum", "seed": 2, "cycle": 1, "fraction_remaining": 0.48, "test_accuracy": 0.70},
        {"metric": "minimum", "seed": 0, "cycle": 0, "fraction_remaining": 1.0, "test_accuracy": 0.95},
        {"metric": "minimum", "seed": 1, "cycle": 0, "fraction_remaining": 1.0, "test_accuracy": 0.97},
        {"metric": "minimum", "seed": 2, "cycle": 0, "fraction_remaining": 1.0, "test_accuracy": 0.93},
    ]
    rows = summarize(records)
    assert [r["cycle"] for r in rows] == [0, 1]
    row0, row1 = rows
    assert set(row1) == {
        "metric", "cycle", "fraction_remaining", "test_accuracy_mean", "test_accuracy_std",
        "test_accuracy_ci95", "n",
    }
    # cycle 1: values 0.9, 0.8, 0.7 -> mean 0.8, sample std 0.1, ci95 = 1.96 * 0.1 / sqrt(3)
    assert row1["metric"] == "minimum" and row1["n"] == 3
    assert row1["fraction_remaining"] == pytest.approx(0.50)
    assert row1["test_accuracy_mean"] == pytest.approx(0.8)
    assert row1["test_accuracy_std"] == pytest.approx(0.1)
    assert row1["test_accuracy_ci95"] == pytest.approx(0.1131606528, rel=1e-9)
    # cycle 0: values 0.95, 0.97, 0.93 -> mean 0.95, sample std 0.02
    assert row0["test_accuracy_mean"] == pytest.approx(0.95)
    assert row0["test_accuracy_std"] == pytest.approx(0.02)
    assert row0["test_accuracy_ci95"] == pytest.approx(1.96 * 0.02 / math.sqrt(3))


def test_summarize_other_quantity_and_group_key():
    records = [dict(r, init=init) for init in ("original", "random") for r in _records(metrics=("minimum",))]
    rows = summarize(records, y="train_accuracy", group_by="init")
    assert [r["init"] for r in rows] == ["original"] * 4 + ["random"] * 4
    assert [r["n"] for r in rows] == [3] * 8
    assert rows[1]["train_accuracy_mean"] == pytest.approx(0.99 - 0.001)
    assert rows[1]["fraction_remaining"] == pytest.approx(0.8 + 0.001)
    assert "train_accuracy_ci95" in rows[0]
    # grouping by init across several metrics would mix runs: refused, not averaged
    with pytest.raises(ValueError, match="more than once"):
        summarize(_records(), group_by="init")


def test_summarize_orders_groups_and_cycles():
    records = _records()[::-1]  # reversed file order must not matter
    default = summarize(records)
    assert [r["metric"] for r in default][::4] == ["minimum", "random", "maximum_layer"]  # STANDARD_METRICS order
    assert [r["cycle"] for r in default[:4]] == [0, 1, 2, 3]
    custom = summarize(records, order=["maximum_layer", "random"])
    # listed groups first in the given order, unlisted ones after (never dropped)
    assert [r["metric"] for r in custom][::4] == ["maximum_layer", "random", "minimum"]


def test_summarize_single_seed_null_values_and_errors():
    records = [
        {"metric": "oracle", "seed": 0, "cycle": 0, "fraction_remaining": 1.0, "test_accuracy": 0.9},
        {"metric": "oracle", "seed": 1, "cycle": 0, "fraction_remaining": 1.0, "test_accuracy": None},
    ]
    (row,) = summarize(records)
    assert row["n"] == 1 and row["test_accuracy_std"] == 0.0 and row["test_accuracy_ci95"] == 0.0
    assert row["test_accuracy_mean"] == pytest.approx(0.9)

    with pytest.raises(ValueError, match="no record has a value"):
        summarize(records, y="test_top5_accuracy")
    duplicated = records[:1] + [dict(records[0], init="random")]
    with pytest.raises(ValueError, match="more than once"):
        summarize(duplicated)
    with pytest.raises(ValueError, match="'cycle'"):
        summarize([{"metric": "x", "fraction_remaining": 1.0, "test_accuracy": 1.0}])


# ---- styles ----------------------------------------------------------------------------


def test_palette_covers_standard_metrics_and_styles_are_consistent():
    assert set(STANDARD_METRICS) <= set(PALETTE)
    assert len({PALETTE[m] for m in STANDARD_METRICS if not m.endswith("_layer")}) == 5
    for metric in STANDARD_METRICS:
        style = style_for(metric)
        assert style["color"] == PALETTE[metric]
        assert style["linestyle"] == ("--" if metric.endswith("_layer") else "-")
    assert style_for("my_metric") == style_for("my_metric")
    assert style_for("my_metric_layer")["linestyle"] == "--"


# ---- figures ---------------------------------------------------------------------------


def test_make_figure_draws_one_line_per_group():
    backend = matplotlib.get_backend()
    records = _records()
    fig, summaries = make_figure(records, title="Digits, Model A", note="3 seeds, scikit-learn digits")
    assert matplotlib.get_backend() == backend
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one error-bar line per metric
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["minimum", "random", "maximum_layer"]

    rows = summaries["test_accuracy"]
    for container, label in zip(ax.containers, labels):
        line = container.lines[0]
        cell = [r for r in rows if r["metric"] == label]
        np.testing.assert_allclose(line.get_xdata(), [r["fraction_remaining"] for r in cell])
        np.testing.assert_allclose(line.get_ydata(), [r["test_accuracy_mean"] for r in cell])
        assert to_hex(line.get_color()) == PALETTE[label]
        assert line.get_linestyle() == ("--" if label.endswith("_layer") else "-")
        # error bars: half-height of each bar equals the 95% CI
        segments = container.lines[2][0].get_segments()
        np.testing.assert_allclose(
            [(seg[1][1] - seg[0][1]) / 2 for seg in segments], [r["test_accuracy_ci95"] for r in cell]
        )
    left, right = ax.get_xlim()
    assert left > right  # inverted: 1.0 on the left, pruning proceeds to the right
    assert ax.get_xlabel() == "Fraction of nodes/filters remaining"
    assert ax.get_ylabel() == "Test accuracy"
    texts = [t.get_text() for t in fig.texts]
    assert "Digits, Model A" in texts and "3 seeds, scikit-learn digits" in texts
    # the header sits above the axes (no overlap)
    renderer = fig.canvas.get_renderer()
    note = next(t for t in fig.texts if t.get_text().startswith("3 seeds"))
    assert note.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1


def test_plot_accuracy_vs_fraction_writes_png_and_csv(tmp_path):
    records = _records()
    out = tmp_path / "figs" / "digits_test_accuracy.png"
    returned = plot_accuracy_vs_fraction(records, out, title="t", note="n")
    assert returned == str(out)
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert out.stat().st_size > 10_000

    rows = _read_csv(tmp_path / "figs" / "digits_test_accuracy.csv")
    assert list(rows[0].keys()) == [
        "metric", "cycle", "fraction_remaining", "test_accuracy_mean", "test_accuracy_std",
        "test_accuracy_ci95", "n",
    ]
    assert len(rows) == 3 * 4
    expected = summarize(records)
    for got, want in zip(rows, expected):
        assert got["metric"] == want["metric"] and int(got["cycle"]) == want["cycle"]
        assert float(got["test_accuracy_mean"]) == pytest.approx(want["test_accuracy_mean"])
        assert float(got["test_accuracy_ci95"]) == pytest.approx(want["test_accuracy_ci95"])
        assert int(got["n"]) == 3
    assert sorted(os.listdir(tmp_path / "figs")) == ["digits_test_accuracy.csv", "digits_test_accuracy.png"]

    # explicit CSV path, another quantity
    plot_accuracy_vs_fraction(records, tmp_path / "train.png", y="train_accuracy", csv_path=tmp_path / "x.csv")
    assert "train_accuracy_mean" in _read_csv(tmp_path / "x.csv")[0]
    assert not (tmp_path / "train.csv").exists()


def test_plot_train_and_test_two_panels_and_merged_csv(tmp_path):
    records = _records(metrics=("minimum", "minimum_layer"))
    fig, _ = make_figure(records, ys=["train_accuracy", "test_accuracy"])
    assert len(fig.axes) == 2
    assert [len(ax.containers) for ax in fig.axes] == [2, 2]
    assert [ax.get_title() for ax in fig.axes] == ["Train accuracy", "Test accuracy"]

    out = plot_train_and_test(records, tmp_path / "tt.png", title="train vs test", note="2 seeds")
    with open(out, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    rows = _read_csv(tmp_path / "tt.csv")
    assert len(rows) == 2 * 4
    assert list(rows[0].keys()) == [
        "metric", "cycle", "fraction_remaining",
        "train_accuracy_mean", "train_accuracy_std", "train_accuracy_ci95", "train_accuracy_n",
        "test_accuracy_mean", "test_accuracy_std", "test_accuracy_ci95", "test_accuracy_n",
    ]
    assert [r["metric"] for r in rows] == ["minimum"] * 4 + ["minimum_layer"] * 4
    assert float(rows[1]["train_accuracy_mean"]) == pytest.approx(0.99 - 0.001)
    assert float(rows[1]["test_accuracy_mean"]) == pytest.approx(0.9 - 0.05 + 0.01)


def test_failed_png_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    out = tmp_path / "fig.png"
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".png"):
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated crash"):
        plot_accuracy_vs_fraction(_records(), out)
    assert not out.exists()
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


def test_empty_records_raise():
    with pytest.raises(ValueError):
        make_figure([])


def test_non_standard_groups_in_one_figure_get_distinct_colours():
    """Five pruning fractions (DropNet Fig. 18-20) must not share a colour."""
    records = [
        {"pruning_fraction": p, "seed": 0, "cycle": c, "fraction_remaining": 1.0 - 0.1 * c, "test_accuracy": 0.9}
        for p in (0.2, 0.3, 0.4, 0.5, 0.9)
        for c in range(2)
    ]
    fig, _ = make_figure(records, group_by="pruning_fraction")
    colours = [container.lines[0].get_color() for container in fig.axes[0].containers]
    assert len(colours) == 5 and len(set(colours)) == 5


def _bar_ends(container):
    """(low, high) of each vertical error bar of an errorbar container, in data units."""
    segments = container.lines[2][0].get_segments()
    return np.array([seg[0][1] for seg in segments]), np.array([seg[1][1] for seg in segments])


def test_confidence_intervals_are_cut_at_the_valid_range():
    # Seeds far apart near both ends: mean ± 1.96·std/√3 reaches below 0 at the last cycle
    # and above 1 at the first, for an accuracy (valid range [0, 1]).
    accuracies = {0: (1.0, 0.70, 0.0), 1: (0.70, 0.69, 0.01), 2: (1.0, 0.71, 0.30)}
    records = [
        {"metric": "minimum", "seed": seed, "cycle": cycle, "fraction_remaining": 0.8**cycle, "test_accuracy": acc,
         "epochs": [[0, 9, 1], [0, 9, 1], [6, 9, 1]][seed][cycle]}
        for seed, values in accuracies.items()
        for cycle, acc in enumerate(values)
    ]
    rows = summarize(records)
    assert rows[0]["test_accuracy_mean"] + rows[0]["test_accuracy_ci95"] > 1  # the plain interval leaves [0, 1]
    assert rows[2]["test_accuracy_mean"] - rows[2]["test_accuracy_ci95"] < 0
    fig, _ = make_figure(records)
    low, high = _bar_ends(fig.axes[0].containers[0])
    assert low.min() == 0.0 and high.max() == 1.0
    # the middle cycle's interval lies inside [0, 1] and is drawn whole, mean ± CI
    np.testing.assert_allclose([low[1], high[1]], [rows[1]["test_accuracy_mean"] - rows[1]["test_accuracy_ci95"],
                                                  rows[1]["test_accuracy_mean"] + rows[1]["test_accuracy_ci95"]])
    # a count is cut at 0 only: epochs 0, 0, 6 (mean 2 ± 3.9) reach 0 below and above 5 above
    fig, _ = make_figure(records, ys=["epochs"])
    low, high = _bar_ends(fig.axes[0].containers[0])
    assert low[0] == 0.0 and high[0] > 5


def test_x_label_says_nodes_for_an_mlp_and_filters_for_a_cnn():
    from dropnet_tf.models import model_a, model_b

    assert fraction_xlabel(model_a((8, 8), input_shape=(8, 8, 1), num_classes=10)) == "Fraction of nodes remaining"
    # Model B masks its convolutions' filters only (no hidden Dense layer, as in the paper)
    assert fraction_xlabel(model_b((4, 4), input_shape=(8, 8, 1), num_classes=10)) == "Fraction of filters remaining"
