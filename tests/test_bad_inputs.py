"""Bad inputs across the public API (issue 12): refused early, the value named, nothing changed.

The rule every row of the table checks: a wrong argument raises the documented exception
type *before* any training, file write or model change; the message names the value given
(and so tells the user which argument is wrong); the files under the test's folder and every
variable of the model are exactly as before the call.  The scenario tests below the table
cover resuming: a state file is only reused for the run that wrote it, and stop rules given
anew either continue a finished run or are refused.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.compaction import compact
from dropnet_tf.data import Dataset, DatasetFormatError, read_idx
from dropnet_tf.dropnet.experiment import run_experiment
from dropnet_tf.foresight import prune_at_init
from dropnet_tf.foresight.weights import add_weight_masks
from dropnet_tf.engines.config import TrainingConfig
from dropnet_tf.dropnet.iterative import iterative_prune
from dropnet_tf.dropnet.state import state_path, stop_rule_verdict
from dropnet_tf.layerprune import prune_filters
from dropnet_tf.core.masking import add_masks, set_masks
from dropnet_tf.models import model_a
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.core.io import load_npz, save_npz_atomic
from dropnet_tf.core.statistics import collect_statistics

FEATURES, CLASSES = 6, 3


def _draw(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(CLASSES, FEATURES)) * 2.0
    y = np.arange(n) % CLASSES
    return (centres[y] + rng.normal(size=(n, FEATURES))).astype("float32"), y.astype("int64")


TRAIN, VAL, TEST = _draw(48, 1), _draw(15, 2), _draw(15, 3)
DATA = (TRAIN, VAL, TEST)
FAST = TrainingConfig(max_epochs=2, patience=1, batch_size=16, jit_compile=False)  # no XLA compile: fast tests


def _model(widths=(4, 4), seed=0):
    keras.utils.set_random_seed(seed)
    return model_a(widths, input_shape=(FEATURES,), num_classes=CLASSES, seed=seed)


def _with(split, x=None, y=None):
    """DATA with one split's x or y replaced."""
    data = {"train": TRAIN, "val": VAL, "test": TEST}
    old_x, old_y = data[split]
    data[split] = (old_x if x is None else x, old_y if y is None else y)
    return (data["train"], data["val"], data["test"])


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, inputs):
        return self.dense(inputs)


def _subclassed():
    model = _Subclassed()
    model(np.zeros((1, FEATURES), "float32"))
    return model


def _idx_gz(path, damage):
    labels = np.arange(20, dtype=np.uint8) % 10
    raw = struct.pack(">BBBBI", 0, 0, 0x08, 1, len(labels)) + labels.tobytes()
    packed = bytearray(gzip.compress(raw))
    if damage == "truncated":
        packed = packed[: len(packed) // 2]
    else:  # flip bytes inside the deflate stream, keep the gzip header intact
        for i in range(12, len(packed) - 8):
            packed[i] ^= 0x5A
    path.write_bytes(bytes(packed))
    return path


def _no_build(seed):  # run_experiment must refuse before it builds any model
    raise AssertionError("build_model was called before the arguments were checked")


@dataclass
class Case:
    id: str
    call: Callable  # (model, tmp_path) -> None; the model is a fresh masked model_a
    error: type
    names: str  # must appear in the message: the value given (or the argument's name)


CASES = [
    # ---- DropNet: data entering iterative_prune ------------------------------------------
    Case("labels_above_range", lambda m, p: iterative_prune(m, _with("train", y=TRAIN[1] + 1), verbose=0,
                                                           results=p / "r.jsonl"), ValueError, "= 3"),
    Case("negative_label", lambda m, p: iterative_prune(m, _with("val", y=np.where(VAL[1] == 0, -1, VAL[1])),
                                                       verbose=0), ValueError, "= -1"),
    Case("fractional_label", lambda m, p: iterative_prune(m, _with("test", y=TEST[1] + 0.5), verbose=0),
         ValueError, "0.5"),
    Case("x_y_lengths_differ", lambda m, p: iterative_prune(m, _with("val", y=VAL[1][:-1]), verbose=0),
         ValueError, "15 samples but y has 14"),
    Case("empty_split", lambda m, p: iterative_prune(m, _with("test", x=TEST[0][:0], y=TEST[1][:0]), verbose=0),
         ValueError, "test split: x is empty"),
    Case("wrong_feature_shape", lambda m, p: iterative_prune(m, _with("train", x=np.zeros((48, 7), "float32")),
                                                            verbose=0), ValueError, "(7,)"),
    # ---- DropNet: numeric settings ----------------------------------------------------------
    Case("min_units_negative", lambda m, p: iterative_prune(m, DATA, min_units_per_layer=-1, verbose=0),
         ValueError, "-1"),
    Case("min_units_fractional", lambda m, p: iterative_prune(m, DATA, min_units_per_layer=1.5, verbose=0),
         TypeError, "1.5"),
    Case("statistics_batch_size_zero", lambda m, p: iterative_prune(
        m, DATA, training=TrainingConfig(statistics_batch_size=0), verbose=0), ValueError, "statistics_batch_size"),
    Case("patience_negative", lambda m, p: iterative_prune(m, DATA, training=TrainingConfig(patience=-1), verbose=0),
         ValueError, "patience"),
    Case("eval_batch_size_string", lambda m, p: iterative_prune(
        m, DATA, training=TrainingConfig(eval_batch_size="64"), verbose=0), TypeError, "'64'"),
    Case("jit_compile_string", lambda m, p: iterative_prune(
        m, DATA, training=TrainingConfig(jit_compile="yes"), verbose=0), ValueError, "'yes'"),
    Case("kappa_numpy_out_of_range", lambda m, p: iterative_prune(m, DATA, kappa=np.float32(1.5), verbose=0),
         ValueError, "1.5"),
    Case("min_fraction_nan", lambda m, p: iterative_prune(m, DATA, min_fraction=float("nan"), verbose=0),
         ValueError, "nan"),
    Case("max_cycles_zero", lambda m, p: iterative_prune(m, DATA, max_cycles=0, verbose=0), ValueError, "0"),
    Case("seed_string", lambda m, p: iterative_prune(m, DATA, seed="3", verbose=0), TypeError, "'3'"),
    Case("seed_float", lambda m, p: iterative_prune(m, DATA, seed=1.5, verbose=0), TypeError, "1.5"),
    # ---- DropNet: wrong types ---------------------------------------------------------------
    Case("results_int", lambda m, p: iterative_prune(m, DATA, results=123, verbose=0), TypeError, "123"),
    Case("results_directory", lambda m, p: iterative_prune(m, DATA, results=p, verbose=0), ValueError, "directory"),
    Case("training_dict", lambda m, p: iterative_prune(m, DATA, training={"batch_size": 8}, verbose=0),
         TypeError, "dict"),
    Case("optimizer_int", lambda m, p: iterative_prune(m, DATA, training=TrainingConfig(optimizer=42), verbose=0),
         TypeError, "int"),
    Case("unknown_metric", lambda m, p: iterative_prune(m, DATA, "smallest", verbose=0), ValueError, "smallest"),
    Case("data_not_three_pairs", lambda m, p: iterative_prune(m, TRAIN, verbose=0), TypeError, "data must be"),
    Case("model_not_a_model", lambda m, p: iterative_prune("model_a", DATA, verbose=0), TypeError, "str"),
    # ---- run_experiment: the whole grid is checked before any model is built -------------
    Case("experiment_metrics_string", lambda m, p: run_experiment(
        _no_build, DATA, "minimum", [0], p / "r.jsonl", "e"), TypeError, "'minimum'"),
    Case("experiment_unknown_kwarg", lambda m, p: run_experiment(
        _no_build, DATA, ["minimum"], [0], p / "r.jsonl", "e", fractoin=0.3), TypeError, "fractoin"),
    Case("experiment_late_bad_metric", lambda m, p: run_experiment(
        _no_build, DATA, ["minimum", "smallest"], [0], p / "r.jsonl", "e"), ValueError, "smallest"),
    Case("experiment_bad_init", lambda m, p: run_experiment(
        _no_build, DATA, ["minimum"], [0], p / "r.jsonl", "e", inits=["original", "zeros"]), ValueError, "zeros"),
    Case("experiment_bad_label", lambda m, p: run_experiment(
        _no_build, _with("train", y=np.where(TRAIN[1] == 2, -7, TRAIN[1])), ["minimum"], [0], p / "r.jsonl", "e"),
        ValueError, "-7"),
    Case("experiment_dataset_label_range", lambda m, p: run_experiment(
        _no_build, Dataset("toy", "test", *TRAIN, *VAL, TEST[0], TEST[1] + 5, num_classes=3), ["minimum"], [0],
        p / "r.jsonl", "e"), ValueError, "[0, 3)"),
    Case("experiment_seed_in_kwargs", lambda m, p: run_experiment(
        _no_build, DATA, ["minimum"], [0], p / "r.jsonl", "e", seed=3), TypeError, "seed"),
    Case("experiment_results_int", lambda m, p: run_experiment(_no_build, DATA, ["minimum"], [0], 7, "e"),
         TypeError, "7"),
    # ---- foresight -------------------------------------------------------------------------
    Case("prune_at_init_bad_label", lambda m, p: prune_at_init(
        _weight_masked(), "snip", 2, data=(TRAIN[0], TRAIN[1] + 3)), ValueError, "= 3"),
    Case("prune_at_init_lengths", lambda m, p: prune_at_init(
        _weight_masked(), "snip", 2, data=(TRAIN[0], TRAIN[1][:5])), ValueError, "48"),
    Case("prune_at_init_wrong_shape", lambda m, p: prune_at_init(
        _weight_masked(), "snip", 2, data=(np.zeros((4, 9), "float32"), TRAIN[1][:4])), ValueError, "(9,)"),
    Case("prune_at_init_numpy_compression", lambda m, p: prune_at_init(
        _weight_masked(), "global_magnitude", np.float32(0.5)), ValueError, "0.5"),
    Case("prune_at_init_bad_schedule", lambda m, p: prune_at_init(
        _weight_masked(), "global_magnitude", 2, schedule="cubic"), ValueError, "cubic"),
    Case("add_weight_masks_bad_type_name", lambda m, p: add_weight_masks(_plain(), layer_types=["Dens"]),
         ValueError, "'Dens'"),
    # ---- LayerPrune ------------------------------------------------------------------------
    Case("prune_filters_bad_label", lambda m, p: prune_filters(
        m, "taylor", data=(TRAIN[0], TRAIN[1] * 2), fraction=0.25), ValueError, "= 4"),
    Case("prune_filters_wrong_shape", lambda m, p: prune_filters(
        m, "mean_activation", data=(np.zeros((4, 2), "float32"), TRAIN[1][:4]), fraction=0.25), ValueError, "(2,)"),
    Case("prune_filters_batch_size_zero", lambda m, p: prune_filters(
        m, "taylor", data=(TRAIN[0], TRAIN[1]), fraction=0.25, batch_size=0), ValueError, "0"),
    Case("prune_filters_numpy_fraction", lambda m, p: prune_filters(m, "l1_norm", fraction=np.float32(1.5)),
         ValueError, "1.5"),
    # ---- masking and compaction ---------------------------------------------------------------
    Case("set_masks_list", lambda m, p: set_masks(m, [np.ones(4)]), TypeError, "list"),
    Case("set_masks_not_binary", lambda m, p: set_masks(m, {"dense_1_mask": [1, 0.5, 1, 1]}), ValueError, "0.5"),
    Case("add_masks_unknown_type_name", lambda m, p: add_masks(_plain(), layer_types=("Dens",)), ValueError,
         "'Dens'"),
    Case("add_masks_exclude_string", lambda m, p: add_masks(_plain(), exclude="dense_1"), TypeError, "'dense_1'"),
    Case("compact_subclassed", lambda m, p: compact(_subclassed()), TypeError, "compact supports"),
    Case("compact_not_a_model", lambda m, p: compact("model.keras"), TypeError, "str"),
    Case("compact_channel_multiple", lambda m, p: compact(m, channel_multiple=0), ValueError, "0"),
    # ---- statistics ---------------------------------------------------------------------------
    Case("statistics_empty", lambda m, p: collect_statistics(m, TRAIN[0][:0]), ValueError, "empty"),
    Case("statistics_wrong_shape", lambda m, p: collect_statistics(m, np.zeros((5, 3), "float32")), ValueError,
         "(3,)"),
    Case("statistics_numpy_batch_size_zero", lambda m, p: collect_statistics(m, TRAIN[0], batch_size=np.int64(0)),
         ValueError, "0"),
    # ---- data -----------------------------------------------------------------------------------
    Case("idx_gz_damaged", lambda m, p: read_idx(_idx_gz(p / "labels-idx1-ubyte.gz", "damaged")),
         DatasetFormatError, "labels-idx1-ubyte.gz"),
    Case("idx_gz_truncated", lambda m, p: read_idx(_idx_gz(p / "labels-idx1-ubyte.gz", "truncated")),
         DatasetFormatError, "download it again"),
    Case("dataset_lengths", lambda m, p: Dataset("toy", "test", *TRAIN, VAL[0], VAL[1][:3], *TEST, num_classes=3),
         ValueError, "15 samples but y_val has 3"),
    Case("subset_zero", lambda m, p: Dataset("toy", "test", *TRAIN, *VAL, *TEST, num_classes=3).subset(max_train=0),
         ValueError, "max_train"),
    # ---- results ----------------------------------------------------------------------------------
    Case("npz_truncated", lambda m, p: load_npz(_truncated_npz(p / "state.npz")), ValueError, "state.npz"),
    Case("npz_garbage", lambda m, p: load_npz(_garbage(p / "x.npz")), ValueError, "damaged or truncated"),
    Case("results_record_not_dict", lambda m, p: ResultsFile(p / "r.jsonl").append([1, 2]), TypeError, "list"),
]


def _plain():
    keras.utils.set_random_seed(0)
    return model_a((4, 4), input_shape=(FEATURES,), num_classes=CLASSES, masked=False)


def _weight_masked():
    return add_weight_masks(_plain())


def _truncated_npz(path):
    save_npz_atomic(path, a=np.arange(1000.0), b=np.ones(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(path):
    path.write_bytes(b"PK\x03\x04 not really a zip")
    return path


def _snapshot_files(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): open(os.path.join(root, name), "rb").read()
        for root, _, names in os.walk(folder)
        for name in names
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_naming_the_value_and_changing_nothing(case, tmp_path):
    model = _model()
    weights = [w.numpy().copy() for w in model.weights]
    # files a case creates as its *input* (a damaged file) are made inside the call, so
    # compare against the folder as the call leaves it when it creates them itself.
    before = _snapshot_files(tmp_path)
    with pytest.raises(case.error) as raised:
        case.call(model, tmp_path)
    assert type(raised.value) is case.error or issubclass(type(raised.value), case.error)
    assert case.names in str(raised.value), str(raised.value)
    after = _snapshot_files(tmp_path)
    created_as_input = {name for name in after if name not in before and not name.startswith(("r.jsonl", "results"))}
    assert {k: v for k, v in after.items() if k not in created_as_input} == before
    assert not any(name.endswith((".jsonl", ".state")) or ".state" in name for name in after), sorted(after)
    for variable, value in zip(model.weights, weights):
        np.testing.assert_array_equal(variable.numpy(), value)


# ----------------------------------------------------------------------- accepted inputs


def test_numpy_scalars_and_patience_zero_are_accepted():
    records = iterative_prune(
        _model(), DATA, "minimum", fraction=np.float32(0.25), kappa=np.float64(0.5), min_fraction=np.float32(0.1),
        max_cycles=np.int64(2), seed=np.int32(1), min_units_per_layer=np.int64(1), verbose=0,
        training=TrainingConfig(max_epochs=2, patience=0, batch_size=np.int64(16), jit_compile=False),
    )
    assert [sum(r["units_per_layer"].values()) for r in records] == [8, 6]
    assert records[0]["pruning_fraction"] == 0.25


def test_layer_types_accept_class_names():
    by_name = add_masks(_plain(), layer_types=("Dense",))
    by_class = add_masks(_plain(), layer_types=(keras.layers.Dense,))
    assert [layer.name for layer in by_name.layers] == [layer.name for layer in by_class.layers]
    assert "dense_1_mask" in [layer.name for layer in by_name.layers]


# ----------------------------------------------------------------------- resuming


class _Crash(Exception):
    pass


class _CrashAtTrainBegin(keras.callbacks.Callback):
    def __init__(self, at_call):
        super().__init__()
        self.at_call, self.calls = at_call, 0

    def on_train_begin(self, logs=None):
        self.calls += 1
        if self.calls == self.at_call:
            raise _Crash()


def _comparable(records):
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in records]


KEY = {"experiment": "", "metric": "minimum", "seed": 0, "init": "original"}


def test_cycle0_crash_leaves_theta0_that_only_its_own_run_may_use(tmp_path):
    results = tmp_path / "r.jsonl"
    crashing = dataclasses.replace(FAST, callbacks=[_CrashAtTrainBegin(1)])
    with pytest.raises(_Crash):
        iterative_prune(_model(), DATA, "minimum", fraction=0.25, max_cycles=2, results=results, training=crashing,
                        verbose=0)
    state = state_path(results, KEY)
    assert os.path.exists(state) and not results.exists()
    before = _snapshot_files(tmp_path)
    # another architecture: refused, naming the state file and the difference
    with pytest.raises(ValueError) as error:
        iterative_prune(_model(widths=(5, 4)), DATA, "minimum", fraction=0.25, max_cycles=2, results=results,
                        training=FAST, verbose=0)
    message = str(error.value)
    assert state in message and "no finished cycle" in message and "model" in message and "Delete" in message
    # the same architecture on other data: refused too
    with pytest.raises(ValueError, match=r"data\.train"):
        iterative_prune(_model(), _with("train", x=TRAIN[0] + 1.0), "minimum", fraction=0.25, max_cycles=2,
                        results=results, training=FAST, verbose=0)
    assert _snapshot_files(tmp_path) == before
    # the run itself resumes, from its stored θ0 even when the new model was drawn differently
    resumed = iterative_prune(_model(seed=7), DATA, "minimum", fraction=0.25, max_cycles=2, results=results,
                              training=FAST, verbose=0)
    fresh = iterative_prune(_model(), DATA, "minimum", fraction=0.25, max_cycles=2, training=FAST, verbose=0)
    assert _comparable(resumed) == _comparable(fresh)


@pytest.mark.parametrize(
    "change, where",
    [
        (dict(data=_with("train", x=TRAIN[0][::-1].copy(), y=TRAIN[1][::-1].copy())), "data.train.content_hash"),
        (dict(training=dataclasses.replace(FAST,
                                      optimizer=lambda: keras.optimizers.SGD(0.1, momentum=0.9))),
         "optimizer.config.momentum"),
        (dict(model=_model(widths=(4, 5))), "model"),
        (dict(training=dataclasses.replace(FAST, eval_batch_size=7)),
         "training.eval_batch_size"),
    ],
    ids=["data_subset", "momentum", "architecture", "eval_batch_size"],
)
def test_resuming_with_another_model_data_or_optimizer_is_refused(tmp_path, change, where):
    results = tmp_path / "r.jsonl"
    first = iterative_prune(_model(), DATA, "minimum", fraction=0.25, max_cycles=1, results=results,
                            training=FAST, verbose=0)
    assert len(first) == 1
    before = _snapshot_files(tmp_path)
    kwargs = dict(fraction=0.25, max_cycles=1, results=results, training=change.get("training", FAST), verbose=0)
    with pytest.raises(ValueError) as error:
        iterative_prune(change.get("model") or _model(), change.get("data", DATA), "minimum", **kwargs)
    message = str(error.value)
    assert where in message and str(results) in message and "first difference" in message, message
    assert _snapshot_files(tmp_path) == before


def test_lower_min_fraction_continues_a_finished_run_and_higher_is_refused(tmp_path):
    results = tmp_path / "r.jsonl"
    kwargs = dict(fraction=0.5, training=FAST, verbose=0)
    finished = iterative_prune(_model(), DATA, "minimum", min_fraction=0.6, results=results, **kwargs)
    assert [r["fraction_remaining"] for r in finished] == [1.0, 0.5] and "min_fraction" in finished[-1]["stop_reason"]
    with pytest.warns(UserWarning, match="continuing from cycle 1"):
        continued = iterative_prune(_model(), DATA, "minimum", min_fraction=0.3, results=results, **kwargs)
    uninterrupted = iterative_prune(_model(), DATA, "minimum", min_fraction=0.3, **kwargs)
    assert [r["fraction_remaining"] for r in uninterrupted] == [1.0, 0.5, 0.25]
    assert _comparable(continued) == _comparable(uninterrupted)  # cycle 1 trained again, bit for bit
    assert _comparable(ResultsFile(results).records()) == _comparable(uninterrupted)
    before = _snapshot_files(tmp_path)
    with pytest.raises(ValueError, match=r"past cycle 1.*min_fraction=0\.6"):
        iterative_prune(_model(), DATA, "minimum", min_fraction=0.6, results=results, **kwargs)
    assert _snapshot_files(tmp_path) == before


def _records(accuracies, fractions, last_reason=None):
    records = [{"cycle": i, "val_accuracy": a, "fraction_remaining": f, "stop_reason": None}
               for i, (a, f) in enumerate(zip(accuracies, fractions))]
    records[-1]["stop_reason"] = last_reason
    return records


@pytest.mark.parametrize(
    "kappa, min_fraction, verdict",
    [
        (0.9, 0.1, ("finished", None, None)),  # the stored rule still fires at cycle 2
        (0.8, 0.1, ("continue", 2, None)),  # 0.7 > 0.8·0.8 = 0.64: goes on
        (0.95, 0.1, ("refuse", 1, "val_accuracy <= kappa * a (0.7600 <= 0.95 * 0.8000)")),
        (None, 0.1, ("continue", 2, None)),
        (0.9, 0.7, ("refuse", 1, "fraction_remaining <= min_fraction (0.6000 <= 0.7)")),
    ],
)
def test_stop_rules_given_anew_decide_continue_finished_or_refuse(kappa, min_fraction, verdict):
    stored = _records([0.8, 0.76, 0.7], [1.0, 0.6, 0.4], "val_accuracy <= kappa * a (0.7000 <= 0.9 * 0.8000)")
    assert stop_rule_verdict(stored, kappa, min_fraction) == verdict


def test_a_paused_run_whose_last_cycle_now_stops_is_marked_finished(tmp_path):
    results = tmp_path / "r.jsonl"
    kwargs = dict(fraction=0.25, training=FAST, verbose=0, results=results)
    paused = iterative_prune(_model(), DATA, "minimum", min_fraction=0.1, max_cycles=2, **kwargs)
    assert paused[-1]["stop_reason"] is None and paused[-1]["fraction_remaining"] == 0.75
    done = iterative_prune(_model(), DATA, "minimum", min_fraction=0.8, **kwargs)
    assert len(done) == 2 and "min_fraction" in done[-1]["stop_reason"]
    assert ResultsFile(results).records()[-1]["stop_reason"] == done[-1]["stop_reason"]


def test_state_without_fingerprint_still_resumes_with_a_warning(tmp_path):
    results = tmp_path / "r.jsonl"
    kwargs = dict(fraction=0.25, training=FAST, verbose=0, results=results)
    iterative_prune(_model(), DATA, "minimum", max_cycles=1, **kwargs)
    path = state_path(results, KEY)
    state = load_npz(path)
    del state["fingerprint"]
    save_npz_atomic(path, **state)  # as written before fingerprints existed
    with pytest.warns(UserWarning, match="not checked"):
        resumed = iterative_prune(_model(), DATA, "minimum", max_cycles=1, **kwargs)
    assert [r["cycle"] for r in resumed] == [0, 1]
    assert "fingerprint" in load_npz(path)


def test_damaged_state_file_is_named_with_what_to_do(tmp_path):
    results = tmp_path / "r.jsonl"
    kwargs = dict(fraction=0.25, training=FAST, verbose=0, results=results)
    iterative_prune(_model(), DATA, "minimum", max_cycles=1, **kwargs)
    path = state_path(results, KEY)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    before = _snapshot_files(tmp_path)
    with pytest.raises(ValueError) as error:
        iterative_prune(_model(), DATA, "minimum", max_cycles=1, **kwargs)
    assert path in str(error.value) and "delete" in str(error.value)
    assert _snapshot_files(tmp_path) == before


def test_run_experiment_skips_finished_runs_only_while_they_match(tmp_path):
    results = tmp_path / "r.jsonl"
    built = []

    def build(seed):
        built.append(seed)
        return _model(seed=seed)

    kwargs = dict(fraction=0.5, min_fraction=0.6, training=FAST, verbose=0)
    run_experiment(build, DATA, ["minimum"], [0], results, "e", **kwargs)
    assert built == [0]
    run_experiment(build, DATA, ["minimum"], [0], results, "e", **kwargs)
    assert built == [0]  # finished and unchanged: skipped without building a model
    with pytest.raises(ValueError, match=r"data\.val"):
        run_experiment(build, _with("val", x=VAL[0] * 2), ["minimum"], [0], results, "e", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = run_experiment(build, DATA, ["minimum"], [0], results, "e", **dict(kwargs, min_fraction=0.3))
    assert [r["fraction_remaining"] for r in records] == [1.0, 0.5, 0.25] and built == [0, 0, 0]
