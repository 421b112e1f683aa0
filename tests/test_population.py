"""Population training (dropnet_tf.dropnet.population, dropnet_tf.engines.stacked): N runs as one computation.

The reference is always N separate runs through the per-run path (``iterative_prune`` /
``GraphTrainer`` on a Keras model), with the same seeds.  Tolerances: losses agree to 1e-6
(only the order of float32 summation differs); an accuracy is a count over n samples, and
a 1e-7 change of an output can move a near-tied argmax, so it may differ by one sample, 1/n.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.core.masking import set_masks
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.engines.stacked import StackedNetwork, StackedTrainer
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.engines.graph_trainer import GraphTrainer
from dropnet_tf.dropnet import population as population_module
from dropnet_tf.dropnet.experiment import run_experiment
from dropnet_tf.dropnet.iterative import derive_seed, iterative_prune
from dropnet_tf.dropnet.population import population_prune
from dropnet_tf.models import model_a, model_b, model_c


def _data(shape, n=(160, 48, 40), classes=3, seed=1):
    rng = np.random.default_rng(seed)
    features = int(np.prod(shape))
    centres = rng.normal(size=(classes, features))

    def draw(count):
        y = rng.integers(0, classes, count)
        x = centres[y] + rng.normal(size=(count, features))
        return x.reshape((count,) + tuple(shape)).astype("float32"), y.astype("int64")

    return tuple(draw(count) for count in n)


A_DATA = _data((12,))
IMAGE_DATA = _data((8, 8, 1), n=(96, 32, 32))


def build_a(seed):
    return model_a((8, 6), input_shape=(12,), num_classes=3, seed=seed)


def build_b(seed):
    return model_b((3, 4), input_shape=(8, 8, 1), num_classes=3, seed=seed)


def build_c(seed):
    return model_c((3, 4), 6, input_shape=(8, 8, 1), num_classes=3, seed=seed, mask_dense=True)


def _separate(build, data, runs, **kwargs):
    found = {}
    for metric, seed, init in runs:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        found[(metric, seed, init)] = iterative_prune(build(seed), data, metric, seed=seed, init=init, verbose=0,
                                                      **kwargs)
    return found


def _assert_same_records(population, separate, data):
    assert sorted(key[1:] for key in population) == sorted(separate)
    for (_, metric, seed, init), records in population.items():
        reference = separate[(metric, seed, init)]
        assert [r["cycle"] for r in records] == [r["cycle"] for r in reference]
        for mine, theirs in zip(records, reference):
            where = f"{metric}/{seed}/{init} cycle {mine['cycle']}"
            assert mine["units_per_layer"] == theirs["units_per_layer"], where
            assert mine["epochs"] == theirs["epochs"], where
            assert mine["stop_reason"] == theirs["stop_reason"], where
            for split, (x, _) in zip(("train", "val", "test"), data):
                assert mine[f"{split}_loss"] == pytest.approx(theirs[f"{split}_loss"], abs=1e-6), where
                assert abs(mine[f"{split}_accuracy"] - theirs[f"{split}_accuracy"]) <= 1 / len(x) + 1e-12, where


def test_stacked_steps_equal_separate_keras_training_steps():
    """Three SGD steps (momentum 0.9) of 3 stacked Model A runs = GraphTrainer on each Keras model."""
    models = [build_a(seed) for seed in (1, 2, 3)]
    network = StackedNetwork(models[0])
    rng = np.random.default_rng(0)
    masks = []
    for model in models:
        chosen = {layer.name: (rng.random(layer.units) > 0.3).astype("float32") for layer in network.mask_layers}
        set_masks(model, chosen)
        masks.append([chosen[layer.name] for layer in network.mask_layers])
    (x, y), _, _ = A_DATA
    trainer = StackedTrainer(network, 3, x, y, "sparse_categorical_crossentropy", learning_rate=0.1, momentum=0.9,
                             jit_compile=False)
    for row, (model, mask) in enumerate(zip(models, masks)):
        weights = [w.numpy() for w in model.weights if "mask" not in w.path]
        trainer.set_row(row, weights, mask)
        trainer.set_active(row, True)
    trainer.set_active(2, False)  # a row that is not active must keep its weights
    frozen = trainer.row_weights(2)
    seeds = [derive_seed("train", seed, 0) for seed in (1, 2, 3)]
    trainer.batch_size = 16
    blocks = trainer.epoch_blocks(seeds, [0, 0, 0], True, 3)
    losses = trainer._train_block(blocks[0]).numpy()  # the first three steps
    for row, model in enumerate(models[:2]):
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        optimizer.build(model.trainable_variables)
        graph = GraphTrainer(model, optimizer, "sparse_categorical_crossentropy", x, y, batch_size=16, steps_per_call=3,
                             jit_compile=False)
        first = graph._epoch_blocks(seeds[row], 0, True)[0]
        loss, steps = graph._train_block(first)
        assert int(steps) == 3
        assert losses[row] == pytest.approx(float(loss), abs=1e-6)
        stacked = trainer.row_weights(row)
        keras_weights = [w.numpy() for w in model.weights if "mask" not in w.path]
        for mine, theirs in zip(stacked, keras_weights):
            np.testing.assert_allclose(mine, theirs, atol=1e-6)
    # discriminates: the two runs saw different data orders and start points, so their losses differ
    assert abs(losses[0] - losses[1]) > 1e-3
    for mine, before in zip(trainer.row_weights(2), frozen):
        np.testing.assert_array_equal(mine, before)


@pytest.mark.slow
def test_population_of_model_a_gives_the_records_of_separate_runs(tmp_path):
    """3 runs in 2 rows (a row is refilled): global, layer-wise and APoZ metrics, both inits."""
    runs = [("minimum", 1, "original"), ("random_layer", 2, "original"), ("apoz", 1, "random")]
    settings = dict(fraction=0.3, min_fraction=0.0, max_cycles=2,
                    training=TrainingConfig(max_epochs=4, patience=0, batch_size=16, learning_rate=1.0))
    separate = _separate(build_a, A_DATA, runs, **settings)
    found = population_prune(build_a, A_DATA, runs, population=2, results=str(tmp_path / "r.jsonl"), **settings)
    _assert_same_records(found, separate, A_DATA)
    # discriminates: early stopping ended cycles at different epochs (a large step makes the validation
    # loss rise), and the metrics dropped different units
    epochs = {r["epochs"] for records in separate.values() for r in records}
    assert len(epochs) > 1
    second = [records[1]["units_per_layer"] for records in separate.values()]
    assert second[0] != second[1] or second[0] != second[2]
    # the records are in the results file, as separate runs leave them
    assert len(ResultsFile(tmp_path / "r.jsonl").records()) == 6


@pytest.mark.parametrize("build", [build_b, build_c], ids=["model_b", "model_c"])
def test_population_of_conv_models_gives_the_records_of_separate_runs(build):
    runs = [("minimum", 3, "original"), ("maximum_layer", 4, "original")]
    settings = dict(fraction=0.3, min_fraction=0.0, max_cycles=2,
                    training=TrainingConfig(max_epochs=2, patience=1, batch_size=16))
    separate = _separate(build, IMAGE_DATA, runs, **settings)
    found = population_prune(build, IMAGE_DATA, runs, population=2, **settings)
    _assert_same_records(found, separate, IMAGE_DATA)


class _Killed(Exception):
    pass


def test_a_killed_population_resumes_every_member_after_its_last_cycle(tmp_path, monkeypatch):
    runs = [("minimum", 1, "original"), ("maximum", 2, "original")]
    # min_fraction 0.5 ends both runs at cycle 2 (14 -> 10 -> 7 units), however often they are resumed
    settings = dict(fraction=0.3, min_fraction=0.5, training=TrainingConfig(max_epochs=2, patience=5, batch_size=16))
    separate = _separate(build_a, A_DATA, runs, **settings)
    path = str(tmp_path / "r.jsonl")
    original = population_module.StackedTrainer.statistics
    calls = []

    def dies_on_the_second_call(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise _Killed()  # after cycle 0 of both runs, before cycle 1 is recorded
        return original(self, *args, **kwargs)

    monkeypatch.setattr(population_module.StackedTrainer, "statistics", dies_on_the_second_call)
    with pytest.raises(_Killed):
        population_prune(build_a, A_DATA, runs, population=2, results=path, **settings)
    stored = ResultsFile(path).records()
    assert sorted((r["metric"], r["cycle"]) for r in stored) == [("maximum", 0), ("minimum", 0)]
    monkeypatch.setattr(population_module.StackedTrainer, "statistics", original)
    found = population_prune(build_a, A_DATA, runs, population=2, results=path, **settings)
    _assert_same_records(found, separate, A_DATA)
    stored = ResultsFile(path).records()
    assert sorted((r["metric"], r["cycle"]) for r in stored) == sorted(
        (metric, cycle) for metric in ("minimum", "maximum") for cycle in range(3))


@pytest.mark.slow
def test_run_experiment_with_a_population_equals_the_default_path(tmp_path):
    settings = dict(fraction=0.3, min_fraction=0.5, training=TrainingConfig(max_epochs=2, patience=1, batch_size=16))
    grid = dict(metrics=["minimum", "random"], seeds=[1, 2])
    one_by_one = run_experiment(build_a, A_DATA, results=str(tmp_path / "a.jsonl"), experiment="e", **grid, **settings)
    together = run_experiment(build_a, A_DATA, results=str(tmp_path / "b.jsonl"), experiment="e", population="auto",
                              **grid, **settings)
    key = lambda r: (r["metric"], r["seed"], r["cycle"])  # noqa: E731
    assert sorted(map(key, together)) == sorted(map(key, one_by_one))
    theirs = {key(r): r for r in one_by_one}
    for record in together:
        assert record["units_per_layer"] == theirs[key(record)]["units_per_layer"]
        assert record["val_loss"] == pytest.approx(theirs[key(record)]["val_loss"], abs=1e-6)
    # a second call skips every finished run: nothing is appended
    before = open(tmp_path / "b.jsonl").read()
    run_experiment(build_a, A_DATA, results=str(tmp_path / "b.jsonl"), experiment="e", population=2, **grid, **settings)
    assert open(tmp_path / "b.jsonl").read() == before
    assert all(json.loads(line)["experiment"] == "e" for line in before.splitlines())
    assert os.path.isdir(str(tmp_path / "b.jsonl") + ".state")


@pytest.mark.parametrize("bad, error, match", [
    (0, ValueError, r"population must be an integer >= 1, 'auto' or None, got 0\."),
    (-2, ValueError, r"population must be an integer >= 1, 'auto' or None, got -2\."),
    ("all", ValueError, r"population must be an integer >= 1, 'auto' or None, got 'all'\."),
    (True, TypeError, r"population must be an integer >= 1, 'auto' or None, got True\."),
])
def test_bad_population_sizes_are_refused_before_any_model_is_built(tmp_path, bad, error, match):
    built = []
    with pytest.raises(error, match=match):
        run_experiment(lambda seed: built.append(seed) or build_a(seed), A_DATA, ["minimum"], [1],
                       str(tmp_path / "r.jsonl"), "e", population=bad, max_cycles=1)
    assert built == []


def test_a_population_over_different_architectures_is_refused():
    def build(seed):
        return model_a((8, 6) if seed == 1 else (8, 7), input_shape=(12,), num_classes=3, seed=seed)

    with pytest.raises(ValueError, match=r"A population trains one architecture: the run .*'seed': 2.* differs from "
                                         r".*'seed': 1.* at layer 3"):
        population_prune(build, A_DATA, [("minimum", 1, "original"), ("minimum", 2, "original")], population=2,
                         max_cycles=1, training=TrainingConfig(max_epochs=1))


def test_what_a_population_cannot_reproduce_is_refused():
    runs = [("minimum", 1, "original")]
    with pytest.raises(ValueError, match=r"statistic metrics .*; 'oracle' is not one"):
        population_prune(build_a, A_DATA, [("oracle", 1, "original")], max_cycles=1)
    with pytest.raises(ValueError, match=r"keras.optimizers.SGD only .*; the runs' optimizer is Adam"):
        population_prune(build_a, A_DATA, runs, max_cycles=1, training=TrainingConfig(max_epochs=1, optimizer="adam"))
    with pytest.raises(ValueError, match=r"TrainingConfig.iterations=5 is not supported"):
        population_prune(build_a, A_DATA, runs, max_cycles=1, training=TrainingConfig(iterations=5))

    def with_dropout(seed):
        inputs = keras.Input((12,))
        hidden = keras.layers.Dropout(0.5, name="drop")(keras.layers.Dense(4, name="d")(inputs))
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))

    from dropnet_tf.core.masking import add_masks

    with pytest.raises(ValueError, match=r"layer 'drop' of model .* is a Dropout"):
        population_prune(lambda seed: add_masks(with_dropout(seed)), A_DATA, runs, max_cycles=1,
                         training=TrainingConfig(max_epochs=1))


def test_the_dropnet_scripts_take_population(capsys):
    import importlib.util

    from paper_experiments.dropnet.dropnet_protocol import parse_args

    path = os.path.join(os.path.dirname(__file__), "..", "paper_experiments", "dropnet",
                        "04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    spec = importlib.util.spec_from_file_location("fig03_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert parse_args(script.EXPERIMENT, []).population is None  # the default path stays the default
    assert parse_args(script.EXPERIMENT, ["--population", "auto"]).population == "auto"
    assert parse_args(script.EXPERIMENT, ["--population", "6"]).population == 6
    with pytest.raises(SystemExit):
        parse_args(script.EXPERIMENT, ["--population", "0"])
    assert "must be an integer >= 1 or 'auto', got '0'" in capsys.readouterr().err


def test_only_the_stacked_trainers_own_retracing_warnings_are_dropped():
    import logging

    from dropnet_tf.engines import stacked

    assert any(isinstance(f, stacked._ExpectedRetraces) for f in logging.getLogger("tensorflow").filters)

    kept = []

    class Keep(logging.Handler):
        def emit(self, record):
            kept.append(record.getMessage())

    logger = logging.getLogger("tensorflow")
    handler = Keep()
    logger.addHandler(handler)
    try:
        advice = " triggered tf.function retracing. Tracing is expensive"
        logger.warning("5 out of the last 385 calls to <bound method StackedTrainer._statistics_python of x>" + advice)
        logger.warning("5 out of the last 6 calls to <function user_step at 0x1>" + advice)
        logger.warning("StackedTrainer.something else entirely")
    finally:
        logger.removeHandler(handler)
    assert kept == ["5 out of the last 6 calls to <function user_step at 0x1>" + advice,
                    "StackedTrainer.something else entirely"]


@pytest.mark.both_keras
@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_stacked_weight_decay_modes_match_a_hand_computed_momentum_step(mode):
    """Issue 24: the stacked trainer's SGD with weight decay, one step and then a second (momentum
    carries the first), against numpy (tests/weight_decay_reference.py), for two rows from
    different starts; sgd_settings reads the mode off the optimizer a TrainingConfig builds."""
    from weight_decay_reference import BATCH, DECAY, LEARNING_RATE, MOMENTUM, X, Y, assert_matches

    from dropnet_tf.engines.stacked import sgd_settings
    from dropnet_tf.engines.optimizers import make_optimizer

    config = TrainingConfig(learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=DECAY, weight_decay_mode=mode)
    settings = sgd_settings(make_optimizer(config))
    assert settings == {"learning_rate": pytest.approx(LEARNING_RATE), "momentum": pytest.approx(MOMENTUM),
                        "nesterov": False, "weight_decay": pytest.approx(DECAY), "weight_decay_mode": mode}
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    network = StackedNetwork(model)
    rng = np.random.default_rng(5)
    starts = [[rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=3).astype("float32")] for _ in range(2)]
    for steps in (1, 2):
        x, y = X[:steps * BATCH], Y[:steps * BATCH]
        trainer = StackedTrainer(network, 2, x, y, "sparse_categorical_crossentropy", jit_compile=False, **settings)
        for row, start in enumerate(starts):
            trainer.set_row(row, start, [])
            trainer.set_active(row, True)
        trainer.train_epoch([0, 0], [0, 0], batch_size=BATCH, shuffle=False)
        for row, (w0, b0) in enumerate(starts):
            assert_matches(trainer.row_weights(row), w0, b0, mode, steps)


def test_stacked_weight_decay_mode_error_names_the_value():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match=r"weight_decay_mode must be one of \('decoupled', 'coupled'\), got 'l2'"):
        StackedTrainer(StackedNetwork(model), 1, np.zeros((2, 6), "float32"), np.zeros(2, "int64"),
                       "sparse_categorical_crossentropy", learning_rate=0.1, weight_decay=1e-4, weight_decay_mode="l2")


def test_members_keep_no_tensor_copy_of_the_data(tmp_path, monkeypatch):
    """A member's splits as tensors were 0.22 GB of MNIST each: a 45-run population held 45
    copies (11.5 GB) and was killed for memory.  The population evaluates and collects
    statistics for its members, so no member converts its splits."""
    made = []

    class Spy(population_module.PopulationMember):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(population_module, "PopulationMember", Spy)
    runs = [("minimum", 1, "original"), ("random", 2, "original")]
    population_prune(build_a, A_DATA, runs, population=2, results=str(tmp_path / "r.jsonl"), fraction=0.3,
                     min_fraction=0.0, max_cycles=2, training=TrainingConfig(max_epochs=2, patience=0, batch_size=16))
    assert len(made) == 2 and len(ResultsFile(tmp_path / "r.jsonl").records()) == 4
    assert all(member._tensors is None for member in made)


def build_a_wide(seed):
    return model_a((20, 20), input_shape=(12,), num_classes=3, seed=seed)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["without_xla", "with_xla"])
def test_a_runs_records_do_not_depend_on_its_row_or_on_the_runs_beside_it(jit_compile):
    """The same run gives the same bits alone, in row 1 of 2, in row 3 of 5 and as the last run
    left: a grid's numbers must not depend on how its runs were laid out (the notebook
    protocol's Fig. 15 and Fig. 18 once disagreed on shared runs for this reason)."""
    target = ("minimum", 1, "original")
    others = [("maximum", 2, "original"), ("random_layer", 3, "random"), ("minimum", 4, "original"),
              ("minimum_layer", 5, "original")]
    settings = dict(fraction=0.3, min_fraction=0.0, max_cycles=3, selection="notebook", min_units_per_layer=0,
                    training=TrainingConfig(max_epochs=4, patience=1, batch_size=32, shuffle=False,
                                            restore_best_weights=False, jit_compile=jit_compile))
    layouts = {
        "alone": (1, [target]),
        "row 1 of 2": (2, [others[0], target]),
        "row 3 of 5": (5, others[:3] + [target] + others[3:]),
        "last left": (2, [target, others[0], others[1]]),
    }
    found = {}
    for name, (size, runs) in layouts.items():
        records = population_prune(build_a_wide, A_DATA, runs, population=size, **settings)
        found[name] = [{k: v for k, v in r.items() if "second" not in k and "time" not in k}
                       for r in records[("",) + target]]
    reference = found.pop("alone")
    assert len(reference) == 3  # max_cycles
    for name, records in found.items():
        assert records == reference, name
