"""dropnet_tf.harness.eta and RunScalars: the grid ETA and TensorBoard of the foresight and LayerPrune grids (issue 16)."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from dropnet_tf.core.backend import keras, tf
from dropnet_tf.harness.eta import RateEstimator, RunsETA, grid_line
from progress_helpers import EpochLogs, scalars, tiny_foresight
from script_helpers import EXPERIMENTS, load_script


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# ------------------------------------------------------------------------ the estimator and the line


def test_runs_eta_counts_a_resumed_cell_as_done_but_times_only_this_process(tmp_path):
    # A grid of three cells; the second is in the results file already (resumed).
    keys = [{"experiment": "e", "method": m, "compression": r, "seed": 0} for m, r in (("a", 2), ("b", 2), ("b", 4))]
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"experiment": "e", "method": "b", "compression": 2.0, "seed": 0, "top1": 0.5}) + "\n"
                       + json.dumps({"experiment": "other", "method": "b", "compression": 2.0, "seed": 0}) + "\n")
    clock = _Clock()
    eta = RunsETA(keys, results, clock=clock)
    assert eta.resumed == 1  # the other experiment's record is no cell of this grid
    eta.start()
    clock.now += 120.0  # cell 1 took 2 min in this process
    # done: cells 1 and 2 (resumed); left: cell 3, at 120 s a run of this process = 2 min.
    # (Counting the resumed cell in the pace would say 60 s, "0:01".)
    assert eta.after_run({**keys[0], "top1": 0.4}) == "run 1 of 3 (1 resumed), ETA ~ 0:02 for the grid"
    clock.now += 60.0
    assert eta.after_run({**keys[2], "top1": 0.3}) == "run 3 of 3 (1 resumed), ETA ~ 0:00 for the grid"
    assert eta.rate.seconds_per_unit() == pytest.approx(90.0)
    with pytest.raises(ValueError, match=r"RunsETA was given a record of no cell of its grid \(3 cells, e\.g\. "
                                         r"\{'experiment': 'e', 'method': 'a'"):
        eta.after_run({"experiment": "e", "method": "c", "compression": 2.0, "seed": 0})


def test_runs_eta_matches_keys_of_different_fields_and_numbers_of_either_type():
    # LayerPrune's arms: a baseline, filter arms and layer arms, keyed by different fields.
    keys = [{"arm": "baseline", "seed": 0}, {"arm": "filter", "criterion": "l1_norm", "fraction": 0.2, "seed": 0},
            {"arm": "layer", "n": 1, "seed": 0}]
    eta = RunsETA(keys, clock=_Clock())
    assert eta.position({"arm": "layer", "n": 1.0, "seed": 0, "accuracy": 0.5}) == 2
    assert eta.position({"arm": "filter", "criterion": "l1_norm", "fraction": 0.2, "seed": 0}) == 1
    assert eta.position({"arm": "filter", "criterion": "taylor", "fraction": 0.2, "seed": 0}) is None
    with pytest.raises(ValueError, match=r"keys has duplicate cells: \[\"\{'seed': 0.0, 'arm': 'baseline'\}\"\] repeat "
                                         r"\{'arm': 'baseline', 'seed': 0\}"):
        RunsETA([{"arm": "baseline", "seed": 0}, {"seed": 0.0, "arm": "baseline"}])
    with pytest.raises(TypeError, match=r"keys must be a list of cell keys \(mappings\), got \{'arm': 'baseline'\}"):
        RunsETA({"arm": "baseline"})


def test_grid_line_words_and_the_estimator_before_any_timing():
    assert grid_line(2, 5) == "run 2 of 5, ETA after the first run"
    assert grid_line(2, 5, 1, 61.0) == "run 2 of 5 (1 resumed), ETA ~ 0:02 for the grid"
    assert grid_line(1, 1, 0, 0.0, done="1 cycle") == "run 1 of 1, 1 cycle done, ETA ~ 0:00 for the grid"
    rate = RateEstimator(_Clock())
    assert rate.eta_seconds(3) is None  # nothing finished yet
    with pytest.raises(ValueError, match=r"units must be an integer >= 0, got -1"):
        rate.finished(-1)


# ------------------------------------------------------------------------ foresight




def test_foresight_grid_eta_and_tensorboard_of_the_runs_trained_here(tmp_path):
    from dropnet_tf.foresight.experiment import REFERENCE, TrainingProtocol, run_foresight_grid

    data, build = tiny_foresight()
    protocol = TrainingProtocol(epochs=2, learning_rate=0.05, batch_size=32)
    options = dict(scoring_batch_size=32)
    results = tmp_path / "r.jsonl"
    run_foresight_grid(results, "fs", build, data, [REFERENCE], [2, 4], [0], protocol, log=None, **options)
    lines, logs = [], EpochLogs()
    records = run_foresight_grid(results, "fs", build, data, [REFERENCE, "snip"], [2, 4], [0], protocol,
                                 log=lines.append, eta=True, tensorboard=tmp_path / "tb", callbacks=[logs], **options)
    # The reference was resumed: two runs here, each line ending with the grid's progress.
    assert len(lines) == 2
    assert re.search(r" \| run 2 of 3 \(1 resumed\), ETA ~ \d+:\d\d for the grid$", lines[0])
    assert lines[1].endswith(" | run 3 of 3 (1 resumed), ETA ~ 0:00 for the grid")
    assert " r=2 " in lines[0] and " r=4 " in lines[1]

    # One folder per run trained here, and the summary; the resumed reference trained nothing.
    assert sorted(os.listdir(tmp_path / "tb" / "fs")) == ["snip_r2_seed0", "snip_r4_seed0", "summary"]
    by_r = {float(r["compression"]): r for r in records if r["method"] == "snip"}
    for index, r in enumerate((2, 4)):
        train = scalars(tmp_path / "tb" / "fs" / f"snip_r{r}_seed0" / "train")
        seen = [entry for _, entry in logs.logs[2 * index:2 * index + 2]]  # this run's two epochs
        assert train["epoch_loss"] == pytest.approx({0: seen[0]["loss"], 1: seen[1]["loss"]}, rel=1e-6)
        assert train["epoch_top1"] == pytest.approx({0: seen[0]["top1"], 1: seen[1]["top1"]}, rel=1e-6)
        assert [train["epoch_loss"][e] for e in (0, 1)] == pytest.approx(by_r[r]["train_loss"], rel=1e-6)
    summary = scalars(tmp_path / "tb" / "fs" / "summary" / "snip_seed0")
    # step = r: each method's accuracy and empirical compression drawn against r
    for tag, field in (("summary/top1", "top1"), ("summary/top5", "top5"), ("summary/empirical_ratio", "empirical_ratio")):
        assert summary[tag] == pytest.approx({2: by_r[2.0][field], 4: by_r[4.0][field]}, rel=1e-6), tag
    assert summary["summary/empirical_ratio"][4] > 3 * summary["summary/empirical_ratio"][2] / 2  # r=4 is not r=2's


def test_foresight_grid_eta_counts_only_its_shard_s_cells(tmp_path):
    from dropnet_tf.harness.shards import CellOrder, Shard
    from dropnet_tf.foresight.experiment import REFERENCE, TrainingProtocol, run_foresight_grid

    data, build = tiny_foresight()
    lines = []
    # Cells: reference s0, reference s1, snip r2 s0, snip r2 s1; shard 1 of 2 owns positions 1 and 3.
    records = run_foresight_grid(tmp_path / "r.jsonl", "fs", build, data, [REFERENCE, "snip"], [2], [0, 1],
                                 TrainingProtocol(epochs=1, learning_rate=0.05, batch_size=32), log=lines.append,
                                 scoring_batch_size=32, eta=True, order=CellOrder(Shard(1, 2)))
    assert [(r["method"], r["seed"]) for r in records] == [(REFERENCE, 1), ("snip", 1)]
    assert re.search(r" \| run 1 of 2, ETA ~ \d+:\d\d for the grid$", lines[0])
    assert lines[1].endswith(" | run 2 of 2, ETA ~ 0:00 for the grid")
    with pytest.raises(TypeError, match=r"eta must be True, False or a dropnet_tf.harness.eta.RunsETA, got 'yes'"):
        run_foresight_grid(tmp_path / "s.jsonl", "fs", build, data, ["snip"], [2], [0],
                           TrainingProtocol(epochs=1, learning_rate=0.05), eta="yes")
    assert not (tmp_path / "s.jsonl").exists()


# ------------------------------------------------------------------------ LayerPrune


def _layerprune_runner(tmp_path, *options):
    from paper_experiments.layerprune import layerprune_protocol as lp

    args = lp.parse_args("LayerPrune test", "digits", ["--scale", "quick", "--out", str(tmp_path / "out"), *options])
    return lp, args, lp.Runner(args, "99_test")


def test_layerprune_arms_end_with_the_grid_eta_and_write_their_numbers_to_tensorboard(tmp_path, capsys):
    lp, args, runner = _layerprune_runner(tmp_path, "--tensorboard", str(tmp_path / "tb"))
    keys = [{"arm": "baseline", "seed": 0}, {"arm": "filter", "criterion": "l1_norm", "ratio": 0.2, "seed": 0},
            {"arm": "layer", "n": 1, "seed": 0}]
    runner.results.append({**keys[0], "accuracy": 0.9, "seconds": 1.0})  # done before this call
    runner.expect(keys)
    found = {"accuracy": 0.8125, "latency_ratio": 0.75, "removed": ["block1_1"]}
    for key in keys:
        runner.arm(key, lambda: dict(found))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # the baseline was resumed
    assert re.search(r"^\{\"arm\": \"filter\", .*\} \| run 2 of 3 \(1 resumed\), ETA ~ \d+:\d\d for the grid$", lines[0])
    assert lines[1].endswith(" | run 3 of 3 (1 resumed), ETA ~ 0:00 for the grid")
    assert json.loads(lines[1].split(" | ")[0])["removed"] == ["block1_1"]  # the record's line is as before
    experiment = f"99_test_{lp.run_tag(args)}"
    assert sorted(os.listdir(tmp_path / "tb" / experiment)) == ["filter_l1_norm_ratio0.2_seed0", "layer_n1_seed0"]
    records = {r["arm"]: r for r in runner.records()}
    for arm, folder in (("filter", "filter_l1_norm_ratio0.2_seed0"), ("layer", "layer_n1_seed0")):
        found = scalars(tmp_path / "tb" / experiment / folder)
        # every number of the record but its key, at step 0; lists (the removed blocks) are no scalars
        assert {tag: steps for tag, steps in found.items()} == {
            "arm/accuracy": {0: pytest.approx(0.8125)}, "arm/latency_ratio": {0: pytest.approx(0.75)},
            "arm/seconds": {0: pytest.approx(records[arm]["seconds"])}}, arm


def test_layerprune_finetune_gives_its_callbacks_every_epoch_and_verbose_2_prints_them(tmp_path, capsys):
    import dataclasses

    import dropnet_tf

    lp, args, runner = _layerprune_runner(tmp_path, "--verbose", "2", "--tensorboard", str(tmp_path / "tb"))
    data = dropnet_tf.load_dataset("digits").subset(max_train=256, seed=0)
    scale = dataclasses.replace(lp.SCALE["quick"], finetune_epochs=3, batch_size=32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(data.num_classes, activation="softmax")])
    logs = EpochLogs()
    key = {"arm": "layer", "n": 2, "seed": 0}
    runner.expect([key])
    capsys.readouterr()
    record = runner.arm(key, lambda: {"accuracy": lp.finetune(model, data, scale, 0, args,
                                                              callbacks=[logs] + runner.callbacks())})
    assert [epoch for epoch, _ in logs.logs] == [0, 1, 2]  # every epoch of the fine-tuning
    # the returned accuracy is the fine-tuned model's, by a plain numpy argmax over the test split
    predicted = np.argmax(model(data.x_test).numpy(), axis=1)
    assert record["accuracy"] == pytest.approx(float(np.mean(predicted == data.y_test)))
    out = capsys.readouterr().out.splitlines()
    epoch_lines = [line for line in out if line.startswith("layer_n2_seed0 epoch=")]
    assert len(epoch_lines) == 3
    for line, (epoch, entry) in zip(epoch_lines, logs.logs):
        assert f"epoch={epoch + 1} loss={entry['loss']:.4f} top1={entry['top1']:.4f} " in line
    train = scalars(tmp_path / "tb" / f"99_test_{lp.run_tag(args)}" / "layer_n2_seed0" / "train")
    assert train["epoch_loss"] == pytest.approx({e: entry["loss"] for e, entry in logs.logs}, rel=1e-6)
    assert logs.logs[0][1]["loss"] != pytest.approx(logs.logs[2][1]["loss"])  # it trained: the steps differ


def test_layerprune_shard_eta_counts_only_its_own_arms(tmp_path, capsys):
    lp, args, runner = _layerprune_runner(tmp_path, "--shard", "1/2")
    keys = [{"n": n, "seed": 0} for n in (1, 2, 3, 4)]  # shard 1 of 2 owns positions 1 and 3: n = 2 and 4
    runner.expect(keys)
    capsys.readouterr()
    for key in keys:
        runner.arm(key, lambda: {"accuracy": 0.5})
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line.split(" | ")[0])["n"] for line in lines] == [2, 4]
    assert re.search(r" \| run 1 of 2, ETA ~ \d+:\d\d for the grid$", lines[0])
    assert lines[1].endswith(" | run 2 of 2, ETA ~ 0:00 for the grid")


def test_foresight_tensorboard_under_a_strategy_gets_the_distributed_trainer_s_epochs(tmp_path):
    # Under strategy= the run trains with DistributedTrainer, whose epoch logs hold the loss only.
    from dropnet_tf.foresight.experiment import TrainingProtocol, run_foresight_grid

    data, build = tiny_foresight()
    records = run_foresight_grid(tmp_path / "r.jsonl", "fs", build, data, ["snip"], [2], [0],
                                 TrainingProtocol(epochs=2, learning_rate=0.05, batch_size=32), log=None,
                                 scoring_batch_size=32, tensorboard=tmp_path / "tb",
                                 strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert records[0]["train_top1"] == []  # the distributed path: no training top-1
    run_dir = tmp_path / "tb" / "fs" / "snip_r2_seed0"
    assert os.listdir(run_dir) == ["train"]  # no validation split, so no empty validation/
    assert scalars(run_dir / "train") == {"epoch_loss": pytest.approx(dict(enumerate(records[0]["train_loss"])),
                                                                       rel=1e-6)}


def test_a_foresight_script_prints_the_grid_eta_with_a_resumed_run_and_logs_to_tensorboard(tmp_path, capsys):
    script = load_script(EXPERIMENTS / "foresight" / "04_snip_table1_fig1_lenet300_mnist.py")
    common = ["--scale", "quick", "--dataset", "digits", "--methods", "snip", "--seeds", "0", "--epochs", "1",
              "--max-train", "300", "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    script.main(script.EXPERIMENT, common + ["--compressions", "2", "--quiet"])  # the run resumed below
    capsys.readouterr()
    script.main(script.EXPERIMENT, common + ["--compressions", "2", "4", "--tensorboard", str(tmp_path / "tb")])
    lines = [line for line in capsys.readouterr().out.splitlines() if " seed=0 " in line]
    assert len(lines) == 1 and " r=4 " in lines[0]
    assert lines[0].endswith(" | run 2 of 2 (1 resumed), ETA ~ 0:00 for the grid")
    experiment = tmp_path / "tb" / "snip_lenets"
    assert sorted(os.listdir(experiment)) == ["snip_r4_seed0", "summary"]  # the resumed run trained nothing here
    record = [json.loads(line) for line in open(tmp_path / "runs" / "04_snip_table1_fig1_lenet300_mnist_snip_lenets_digits_quick.jsonl")][-1]
    assert scalars(experiment / "summary" / "snip_seed0")["summary/top1"] == {4: pytest.approx(record["top1"])}
