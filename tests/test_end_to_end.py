"""End to end on real data: Fashion-MNIST (Debian's dataset-fashion-mnist), a subset."""

from __future__ import annotations

import os

import pytest

import dropnet_tf
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.models import model_a

FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION), reason="needs Debian's dataset-fashion-mnist (CI installs it)")
def test_minimum_beats_maximum_at_the_smallest_fraction(tmp_path):
    data = dropnet_tf.load_dataset("fashion_mnist").subset(max_train=3000, max_val=600, max_test=1000, seed=0)
    records = dropnet_tf.run_experiment(
        lambda seed: model_a((20, 20), input_shape=data.input_shape, num_classes=data.num_classes, seed=seed),
        data,
        metrics=["minimum", "maximum"],
        seeds=[0],
        results=tmp_path / "results.jsonl",
        experiment="fashion_e2e",
        fraction=0.4,
        min_fraction=0.15,
        training=TrainingConfig(max_epochs=15, patience=3),
        verbose=0,
    )
    final = {r["metric"]: r for r in records if r["stop_reason"]}
    assert set(final) == {"minimum", "maximum"}
    # same schedule for both global metrics: 40 → 24 → 15 → 9 → 6 units
    assert final["minimum"]["fraction_remaining"] == final["maximum"]["fraction_remaining"] <= 0.15
    assert final["minimum"]["test_accuracy"] > final["maximum"]["test_accuracy"]
    # and the unpruned network learned the task (10 classes: chance is 0.1)
    first = [r for r in records if r["cycle"] == 0]
    assert all(r["test_accuracy"] > 0.6 for r in first)
    # the results file holds the records and a CSV can be written from it
    csv = dropnet_tf.ResultsFile(tmp_path / "results.jsonl").to_csv(tmp_path / "results.csv")
    assert open(csv).read().count("\n") == len(records) + 1
