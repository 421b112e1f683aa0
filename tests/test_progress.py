"""dropnet_tf.harness.progress and dropnet_tf.dropnet.progress: epoch lines, cycle hooks, TensorBoard, grid ETA."""

from __future__ import annotations

import json
import math
import os
import re

import pytest

import dropnet_tf
from dropnet_tf.core.backend import keras
from dropnet_tf.harness.progress import CycleCallback, TensorBoardLogger
from dropnet_tf.dropnet.progress import GridETA, expected_cycles, grid_runs
from dropnet_tf.harness.eta import format_duration
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.models import model_a
from progress_helpers import EpochLogs, scalars, tiny_foresight
from script_helpers import EXPERIMENTS, load_script


@pytest.fixture(scope="module")
def digits():
    return dropnet_tf.load_dataset("digits")


def _build(data, widths):
    return lambda seed: model_a(widths, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed)


# ------------------------------------------------------------------------ expected cycles


def test_expected_cycles_follows_the_integer_floors_not_the_closed_form():
    # Hand-worked (module docstring): 80 units, p = 0.2: 80 64 52 42 34 28 23 19 16 13 11 9 8,
    # and 8/80 = 0.1 stops the run at cycle 12: 13 cycles, where ceil(log 0.1 / log 0.8) + 1 = 12.
    assert expected_cycles([80], fraction=0.2, min_fraction=0.1) == 13
    assert math.ceil(math.log(0.1) / math.log(0.8)) + 1 == 12
    # Layer-wise, (10, 5) at p = 0.5: 10 5 3 2 and 5 3 2 1, i.e. 15 8 5 3 (3/15 = 0.2 <= 0.3): 4 cycles;
    # globally 15 8 4 (4/15 <= 0.3): 3 cycles.
    assert expected_cycles({"a": 10, "b": 5}, fraction=0.5, min_fraction=0.3, scope="layer") == 4
    assert expected_cycles({"a": 10, "b": 5}, fraction=0.5, min_fraction=0.3, scope="global") == 3
    # drop-one (the oracle's count=1): 12 units down to 3 (<= 0.25): cycles 0..9
    assert expected_cycles([6, 6], count=1, min_fraction=0.25) == 10
    # every layer at its guard: 2 layers of 1 unit cannot be pruned, the run stops after cycle 0
    assert expected_cycles([1, 1], fraction=0.5, min_fraction=0.1) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(units_per_layer=[4], scope="layers"), r"scope must be one of \('global', 'layer'\), got 'layers'"),
        (dict(units_per_layer=[4, 0]), r"units_per_layer must be an integer >= 1, got 0"),
        (dict(units_per_layer=[], fraction=0.2), r"units_per_layer must name at least one mask layer"),
        (dict(units_per_layer=[4], fraction=1.5), r"fraction must be in \(0, 1\], got 1.5"),
    ],
)
def test_expected_cycles_refuses_bad_input(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        expected_cycles(**kwargs)


def test_expected_cycles_is_the_number_of_cycles_a_real_run_records(tmp_path, digits):
    records = dropnet_tf.run_experiment(
        _build(digits, (10, 5)), digits, metrics=["minimum", "minimum_layer"], seeds=[0],
        results=tmp_path / "r.jsonl", experiment="count", fraction=0.5, min_fraction=0.3,
        training=TrainingConfig(max_epochs=1), verbose=0,
    )
    cycles = {metric: sum(r["metric"] == metric for r in records) for metric in ("minimum", "minimum_layer")}
    # the reference is the loop itself: its records until the stop rule fired
    assert cycles == {"minimum": 3, "minimum_layer": 4}
    assert all(r["stop_reason"].startswith("fraction_remaining") for r in records if r["stop_reason"])
    units = {"a": 10, "b": 5}
    assert expected_cycles(units, fraction=0.5, min_fraction=0.3, scope="global") == cycles["minimum"]
    assert expected_cycles(units, fraction=0.5, min_fraction=0.3, scope="layer") == cycles["minimum_layer"]


# ------------------------------------------------------------------------ the grid ETA


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _record(metric, seed, cycle, stop=None):
    return {"experiment": "e", "metric": metric, "seed": seed, "init": "original", "cycle": cycle,
            "epochs": 1, "stop_reason": stop}


def test_grid_eta_counts_resumed_cycles_as_done_and_times_only_this_call(tmp_path):
    # A grid of 3 global runs on (10, 5) at p = 0.5, min_fraction 0.3: 3 cycles each (see above).
    results = tmp_path / "r.jsonl"
    with open(results, "w") as f:  # run 1 finished before this call (3 cycles), run 2 paused after 1 cycle
        for record in (_record("minimum", 0, 0), _record("minimum", 0, 1), _record("minimum", 0, 2, "done"),
                       _record("minimum", 1, 0)):
            f.write(json.dumps(record) + "\n")
    clock = _Clock()
    eta = GridETA(grid_runs("e", ["minimum"], [0, 1, 2], fraction=0.5), results, min_fraction=0.3, clock=clock)
    assert eta.resumed == 4
    eta.on_run_begin({"key": {"experiment": "e", "metric": "minimum", "seed": 1, "init": "original"},
                      "first_cycle": 1, "units_per_layer": {"a": 10, "b": 5}})
    clock.now += 90.0  # one cycle of this call took 90 s
    text = eta.on_cycle_end(_record("minimum", 1, 1))
    # done: 3 + 2 = 5 cycles; left: run 2 has 1 more, run 3 all 3 = 4 cycles × 90 s = 6 min
    assert text == "run 2 of 3, 5 cycles done (4 resumed), ETA ~ 0:06 for the grid"
    clock.now += 30.0
    text = eta.on_cycle_end(_record("minimum", 1, 2, "done"))
    # mean 60 s per cycle of this call, 3 cycles left (run 3)
    assert text == "run 2 of 3, 6 cycles done (4 resumed), ETA ~ 0:03 for the grid"
    assert eta.eta_seconds() == pytest.approx(180.0)


def test_grid_eta_refuses_a_run_outside_its_grid_and_bad_plans():
    eta = GridETA(grid_runs("e", ["minimum"], [0]), min_fraction=0.3)
    with pytest.raises(ValueError, match=r"GridETA was given a run \{'experiment': 'e', 'metric': 'maximum'"):
        eta.on_run_begin({"key": {"experiment": "e", "metric": "maximum", "seed": 0, "init": "original"},
                          "first_cycle": 0, "units_per_layer": {"a": 4}})
    with pytest.raises(ValueError, match=r"runs has duplicate keys: \[\('e', 'minimum', 0, 'original'\)\]"):
        GridETA(grid_runs("e", ["minimum"], [0]) * 2)
    with pytest.raises(ValueError, match=r"each of runs must be a mapping with the keys \['experiment', 'metric', "
                                         r"'seed', 'init'\], got \{'metric': 'minimum'\}"):
        GridETA([{"metric": "minimum"}])


def test_format_duration_rounds_minutes_up():
    assert [format_duration(s) for s in (0, 1, 60, 61, 3599, 3600, 7322)] == [
        "0:00", "0:01", "0:01", "0:02", "1:00", "1:00", "2:03"]


# ------------------------------------------------------------------------ callbacks and TensorBoard


class _Hooks(CycleCallback):
    def __init__(self):
        self.calls = []

    def on_run_begin(self, run):
        self.calls.append(("begin", run["first_cycle"], run["epochs_done"], run["expected_cycles"]))

    def on_cycle_end(self, record):
        self.calls.append(("cycle", record["cycle"]))
        return "hook says hi"

    def on_run_end(self, records, error=None):
        self.calls.append(("end", len(records), error))


@pytest.mark.both_keras
def test_verbose_2_and_tensorboard_show_the_epoch_logs_and_records_without_changing_them(tmp_path, digits, capsys):
    """Two cycles of Model A on digits, two epochs each: the lines, the scalars and the records."""
    options = dict(metric="minimum", fraction=0.5, min_fraction=0.5, seed=3, experiment="tb",
                   training=TrainingConfig(max_epochs=2, patience=5))
    keras.utils.set_random_seed(0)
    plain = dropnet_tf.iterative_prune(_build(digits, (6, 6))(0), digits, results=tmp_path / "plain.jsonl",
                                       verbose=0, **options)
    capsys.readouterr()
    logs, hooks = EpochLogs(), _Hooks()
    eta = GridETA(grid_runs("tb", ["minimum"], [3], fraction=0.5), min_fraction=0.5)
    keras.utils.set_random_seed(0)
    watched = dropnet_tf.iterative_prune(
        _build(digits, (6, 6))(0), digits, results=tmp_path / "watched.jsonl", verbose=2,
        callbacks=[logs, TensorBoardLogger(tmp_path / "tb"), hooks, eta], **options,
    )
    out = capsys.readouterr().out.splitlines()

    # The observers change nothing: the same records, wall time aside.
    assert len(plain) == len(watched) == 2
    assert [{k: v for k, v in r.items() if k != "wall_seconds"} for r in plain] == [
        {k: v for k, v in r.items() if k != "wall_seconds"} for r in watched]

    # The user's callback saw every epoch of both cycles; each cycle's epochs restart at 0 for it.
    assert [epoch for epoch, _ in logs.logs] == [0, 1, 0, 1]
    assert all(set(entry) >= {"loss", "val_loss", "val_accuracy"} for _, entry in logs.logs)

    # verbose=2: a line per epoch with the logged values, then the cycle line with the hooks' text.
    epoch_lines = [line for line in out if " epoch=" in line]
    assert len(epoch_lines) == 4
    for line, (epoch, entry) in zip(epoch_lines, logs.logs):
        assert line.startswith("[tb] minimum seed=3 init=original cycle=")
        assert f"epoch={epoch + 1} loss={entry['loss']:.4f} val_loss={entry['val_loss']:.4f} " \
               f"val_accuracy={entry['val_accuracy']:.4f} " in line
        assert re.search(r" \d+\.\ds$", line)
    cycle_lines = [line for line in out if " remaining=" in line]
    assert len(cycle_lines) == 2
    assert re.search(r"\| hook says hi \| run 1 of 1, 1 cycle done, ETA ~ \d+:\d\d for the grid$", cycle_lines[0])
    assert re.search(r"\| run 1 of 1, 2 cycles done, ETA ~ 0:00 for the grid$", cycle_lines[1])
    # the hooks were told where the run starts and how many cycles it will have (12 -> 6 units: 2)
    assert hooks.calls == [("begin", 0, 0, 2), ("cycle", 0), ("cycle", 1), ("end", 2, None)]

    # TensorBoard: <dir>/<experiment>/<metric>_seed<k>_<init>/{train,validation,cycles}
    run_dir = tmp_path / "tb" / "tb" / "minimum_seed3_original"
    assert sorted(os.listdir(run_dir)) == ["cycles", "train", "validation"]
    train, validation, cycles = (scalars(run_dir / name) for name in ("train", "validation", "cycles"))
    # epoch scalars at a step counting epochs over the whole run: cycle 1's epochs are steps 2 and 3
    assert sorted(train["epoch_loss"]) == [0, 1, 2, 3]
    expected_loss = [entry["loss"] for _, entry in logs.logs]
    assert [train["epoch_loss"][s] for s in range(4)] == pytest.approx(expected_loss, rel=1e-6)
    assert [validation["epoch_loss"][s] for s in range(4)] == pytest.approx(
        [entry["val_loss"] for _, entry in logs.logs], rel=1e-6)
    assert [validation["epoch_accuracy"][s] for s in range(4)] == pytest.approx(
        [entry["val_accuracy"] for _, entry in logs.logs], rel=1e-6)
    # per-cycle scalars at step = cycle equal the records
    for field in ("fraction_remaining", "train_accuracy", "val_accuracy", "test_accuracy", "test_loss", "epochs"):
        assert cycles[f"cycle/{field}"] == pytest.approx({r["cycle"]: r[field] for r in watched}, rel=1e-6), field
    for layer in watched[0]["units_per_layer"]:
        assert cycles[f"units/{layer}"] == {r["cycle"]: r["units_per_layer"][layer] for r in watched}
    assert cycles["cycle/fraction_remaining"] == {0: 1.0, 1: 0.5}  # the discriminating precondition: pruning happened


def test_a_resumed_run_continues_the_epoch_steps(tmp_path, digits):
    options = dict(metric="minimum", fraction=0.5, min_fraction=0.5, experiment="tb", verbose=0,
                   training=TrainingConfig(max_epochs=2, patience=5), results=tmp_path / "r.jsonl")
    first = dropnet_tf.iterative_prune(_build(digits, (6, 6))(0), digits, max_cycles=1,
                                       callbacks=[TensorBoardLogger(tmp_path / "tb")], **options)
    assert len(first) == 1 and first[0]["stop_reason"] is None  # paused after cycle 0
    hooks = _Hooks()
    records = dropnet_tf.iterative_prune(_build(digits, (6, 6))(0), digits,
                                         callbacks=[TensorBoardLogger(tmp_path / "tb"), hooks], **options)
    assert hooks.calls[0] == ("begin", 1, first[0]["epochs"], 2)
    train = scalars(tmp_path / "tb" / "tb" / "minimum_seed0_original" / "train")
    total = sum(r["epochs"] for r in records)
    assert sorted(train["epoch_loss"]) == list(range(total))  # one curve, no step written twice


def test_callbacks_are_checked_before_anything_is_built(tmp_path, digits):
    model = _build(digits, (4, 4))(0)
    with pytest.raises(TypeError, match=r"callbacks may hold keras.callbacks.Callback and "
                                        r"dropnet_tf.harness.progress.CycleCallback instances, got 'tensorboard' \(str\)"):
        dropnet_tf.iterative_prune(model, digits, callbacks=["tensorboard"])
    with pytest.raises(TypeError, match=r"callbacks must be a list of Keras callbacks and dropnet_tf CycleCallbacks, "
                                        r"got <dropnet_tf.harness.progress.TensorBoardLogger"):
        dropnet_tf.run_experiment(_build(digits, (4, 4)), digits, ["minimum"], [0], tmp_path / "r.jsonl", "x",
                                  callbacks=TensorBoardLogger(tmp_path / "tb"))
    assert os.listdir(tmp_path) == []  # neither results nor TensorBoard files
    with pytest.raises(TypeError, match=r"TensorBoardLogger log_dir must be a non-empty path, got ''"):
        TensorBoardLogger("")


def test_tensorboard_logger_needs_on_run_begin_first():
    with pytest.raises(RuntimeError, match=r"TensorBoardLogger.keras_callbacks was called before on_run_begin"):
        TensorBoardLogger("unused").keras_callbacks(0)


# ------------------------------------------------------------------------ the scripts' options


def test_scripts_take_verbose_and_keep_quiet_as_verbose_0():
    from paper_experiments.dropnet import dropnet_protocol
    from paper_experiments.foresight import foresight_protocol

    exp = _script("04_1_1_fig03_model_a_fc40_fc40_mnist.py").EXPERIMENT
    parser = dropnet_protocol.build_parser(exp)
    parse = parser.parse_args
    assert (parse([]).verbose, parse([]).quiet) == (1, False)
    assert (parse(["--quiet"]).verbose, parse(["--quiet"]).quiet) == (0, True)
    assert (parse(["--verbose", "0"]).verbose, parse(["--verbose", "0"]).quiet) == (0, True)
    assert parse(["--verbose", "2"]).verbose == 2 and parse([]).tensorboard is None
    assert parse(["--tensorboard", "tb"]).tensorboard == "tb"
    for bad in (["--quiet", "--verbose", "2"], ["--verbose", "3"]):
        with pytest.raises(SystemExit):
            parse(bad)
    # every family takes --verbose and --tensorboard, and --tensorboard is no setting a --merge compares
    from paper_experiments.kit import sharding
    from paper_experiments.layerprune import layerprune_protocol

    foresight_exp = _script("04_snip_table1_fig1_lenet300_mnist.py", "foresight").EXPERIMENT
    foresight = foresight_protocol.build_parser(foresight_exp)
    layerprune = layerprune_protocol.build_parser("LayerPrune", "cifar10")
    assert foresight.parse_args(["--verbose", "0"]).quiet is True
    for family in (parser, foresight, layerprune):
        assert family.parse_args(["--tensorboard", "tb"]).tensorboard == "tb"
        assert sharding.settings_of(family.parse_args(["--tensorboard", "tb"])) == sharding.settings_of(
            family.parse_args([]))
    # nor is DropNet's population size (how many runs train as one computation), while the
    # pruning fraction's metrics are
    assert sharding.settings_of(parse(["--population", "15"])) == sharding.settings_of(parse(["--population", "auto"]))
    assert sharding.settings_of(parse(["--metrics", "minimum"])) != sharding.settings_of(parse([]))


def _script(name, paper="dropnet"):
    return load_script(EXPERIMENTS / paper / name)


@pytest.mark.slow
def test_a_script_prints_the_grid_eta_counting_resumed_runs_and_logs_to_tensorboard(tmp_path, capsys):
    script = _script("04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    common = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--max-epochs", "1", "--max-train", "200",
              "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    script.main(script.EXPERIMENT, common + ["--metrics", "minimum", "--quiet"])  # the first run, before this call
    capsys.readouterr()
    script.main(script.EXPERIMENT, common + ["--metrics", "minimum", "minimum_layer", "--verbose", "2",
                                             "--tensorboard", str(tmp_path / "tb")])
    out = capsys.readouterr().out.splitlines()
    cycle_lines = [line for line in out if " remaining=" in line]
    # 40 + 40 units at p = 0.2 down to 10 %: 13 cycles a run (expected_cycles), the first run resumed
    assert len(cycle_lines) == 13
    assert all(" minimum_layer " in line for line in cycle_lines)
    assert re.search(r"\| run 2 of 2, 14 cycles done \(13 resumed\), ETA ~ \d+:\d\d for the grid$", cycle_lines[0])
    assert cycle_lines[-1].endswith("| run 2 of 2, 26 cycles done (13 resumed), ETA ~ 0:00 for the grid")
    assert len([line for line in out if " epoch=1 " in line]) == 13  # one epoch per cycle at --max-epochs 1
    runs = os.listdir(tmp_path / "tb" / "dropnet_04_1_1_model_a_fc40_fc40")
    assert runs == ["minimum_layer_seed0_original"]  # the resumed run trained nothing here
    cycles = scalars(tmp_path / "tb" / "dropnet_04_1_1_model_a_fc40_fc40" / runs[0] / "cycles")
    assert sorted(cycles["cycle/fraction_remaining"]) == list(range(13))
    assert cycles["cycle/fraction_remaining"][12] == pytest.approx(0.1)


# ------------------------------------------------------------------------ foresight


def test_foresight_grid_gives_keras_callbacks_to_every_run_s_training(tmp_path, capsys):
    from dropnet_tf.harness.progress import EpochLine
    from dropnet_tf.foresight.experiment import REFERENCE, TrainingProtocol, run_foresight_grid

    data, build = tiny_foresight()

    logs = EpochLogs()
    records = run_foresight_grid(tmp_path / "r.jsonl", "fs", build, data, [REFERENCE, "snip"], [2], [0],
                                 TrainingProtocol(epochs=2, learning_rate=0.05, batch_size=32), log=None,
                                 scoring_batch_size=32, callbacks=[logs, EpochLine("fs", keys=("loss", "top1"))])
    # two runs of two epochs each; the callback saw the losses the records keep
    assert [epoch for epoch, _ in logs.logs] == [0, 1, 0, 1]
    assert [entry["loss"] for _, entry in logs.logs] == pytest.approx(
        [loss for record in records for loss in record["train_loss"]], rel=1e-6)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fs epoch=")]
    assert [line.split()[1] for line in lines] == ["epoch=1", "epoch=2", "epoch=1", "epoch=2"]
    assert all(f"top1={entry['top1']:.4f}" in line for line, (_, entry) in zip(lines, logs.logs))
    with pytest.raises(TypeError, match=r"run_foresight_grid trains each run once \(no cycles\): callbacks must be "
                                        r"Keras callbacks, got \[<dropnet_tf.harness.progress.TensorBoardLogger"):
        run_foresight_grid(tmp_path / "s.jsonl", "fs", build, data, ["snip"], [2], [0],
                           TrainingProtocol(epochs=1, learning_rate=0.05),
                           log=None, callbacks=[TensorBoardLogger(tmp_path / "tb")])
    assert not (tmp_path / "s.jsonl").exists()
