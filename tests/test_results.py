"""Tests of dropnet_tf.harness.results: atomic writes, NPZ without pickle, the JSON-lines ResultsFile."""

import csv
import json
import os
import pathlib
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from dropnet_tf.harness import results as results_module
from dropnet_tf.harness.results import ResultsFile, flatten_record
from dropnet_tf.core.io import atomic_write_bytes, atomic_write_text, load_npz, save_npz_atomic, to_jsonable


def _record(metric="minimum", seed=0, cycle=0, **extra):
    record = {
        "experiment": "unit",
        "metric": metric,
        "seed": seed,
        "init": "original",
        "pruning_fraction": 0.2,
        "cycle": cycle,
        "fraction_remaining": 0.8**cycle,
        "units_per_layer": {"mask_1": 10 - cycle, "mask_2": 5},
        "fraction_remaining_per_layer": {"mask_1": (10 - cycle) / 10, "mask_2": 1.0},
        "collapsed_layers": [],
        "train_accuracy": 0.99,
        "train_loss": 0.05,
        "val_accuracy": 0.95,
        "val_loss": 0.2,
        "test_accuracy": 0.94,
        "test_loss": 0.21,
        "epochs": 12,
        "wall_seconds": 1.5,
        "stop_reason": None,
    }
    record.update(extra)
    return record


# ---- atomic writes ---------------------------------------------------------------------


def test_atomic_write_text_creates_parents_and_writes_exact_content(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"
    returned = atomic_write_text(path, "héllo\nworld\n")
    assert returned == str(path)
    assert path.read_bytes() == "héllo\nworld\n".encode("utf-8")
    atomic_write_text(path, "second")
    assert path.read_text(encoding="utf-8") == "second"
    assert sorted(os.listdir(path.parent)) == ["out.txt"]  # no temporary left behind


def test_atomic_write_bytes_preserves_permissions(tmp_path):
    path = tmp_path / "data.bin"
    atomic_write_bytes(path, b"\x00\x01")
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"\x02")
    assert path.read_bytes() == b"\x02"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_crash_during_replace_keeps_old_file_and_leaves_no_partial(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    atomic_write_text(path, "old content\n")

    def crash(src, dst):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_write_text(path, "new content that must not appear\n")
    assert path.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["results.jsonl"]


def test_crash_before_replace_of_new_file_creates_nothing(tmp_path, monkeypatch):
    path = tmp_path / "new.bin"

    def crash(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_bytes(path, b"x" * 1000)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


# ---- NPZ -------------------------------------------------------------------------------


def test_npz_round_trip_keeps_values_dtypes_and_exact_path(tmp_path):
    path = tmp_path / "sub" / "masks"  # no .npz suffix: the path must be used as given
    arrays = {
        "mask_1": np.array([1, 0, 1], dtype=np.float32),
        "scores": np.arange(12, dtype=np.float64).reshape(3, 4),
        "names": np.array(["a", "bc"]),
        "scalar": np.int64(7),
    }
    assert save_npz_atomic(path, **arrays) == str(path)
    assert path.exists() and not (tmp_path / "sub" / "masks.npz").exists()
    loaded = load_npz(path)
    assert set(loaded) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == np.asarray(value).dtype


def test_npz_refuses_object_arrays_on_save(tmp_path):
    path = tmp_path / "bad.npz"
    with pytest.raises(ValueError, match="pickle"):
        save_npz_atomic(path, ragged=np.array([[1, 2], [3]], dtype=object))
    assert not path.exists()


def test_npz_refuses_pickled_arrays_on_load(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, ok=np.ones(2), ragged=np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        load_npz(path)


# ---- JSON conversion -------------------------------------------------------------------


def test_to_jsonable_converts_numpy_and_non_finite():
    converted = to_jsonable(
        {
            "f32": np.float32(0.5),
            "i64": np.int64(3),
            "b": np.bool_(True),
            "arr": np.array([[1, 2], [3, 4]], dtype=np.int32),
            "farr": np.array([0.25, np.nan]),
            "nan": float("nan"),
            "inf": np.float64(np.inf),
            "tup": (1, np.float64(2.5)),
            "path": pathlib.Path("a/b"),
            "nested": {np.int64(1): np.float32(1.5)},
        }
    )
    assert converted == {
        "f32": 0.5,
        "i64": 3,
        "b": True,
        "arr": [[1, 2], [3, 4]],
        "farr": [0.25, None],
        "nan": None,
        "inf": None,
        "tup": [1, 2.5],
        "path": "a/b",
        "nested": {"1": 1.5},
    }
    assert type(converted["f32"]) is float and type(converted["i64"]) is int
    assert type(converted["b"]) is bool
    json.dumps(converted, allow_nan=False)  # strictly valid JSON


def test_to_jsonable_names_the_offending_key():
    with pytest.raises(TypeError, match=r"units_per_layer.*'bad'.*object"):
        to_jsonable({"units_per_layer": {"bad": object()}}, "record")


# ---- ResultsFile -----------------------------------------------------------------------


def test_missing_file_reads_as_empty(tmp_path):
    results = ResultsFile(tmp_path / "none.jsonl")
    assert results.records() == []
    assert results.records(metric="minimum") == []
    assert results.last_cycle() is None
    assert not results.exists()


def test_append_records_filters_and_last_cycle(tmp_path):
    results = ResultsFile(tmp_path / "runs" / "results.jsonl")
    written = []
    for metric in ("minimum", "random"):
        for seed in (0, 1):
            for cycle in range(3 if metric == "minimum" else 2):
                record = _record(metric, seed, cycle)
                results.append(record)
                written.append(record)

    everything = results.records()
    assert everything == written  # file order, exact values
    assert len(results) == 10
    assert [r["cycle"] for r in results.records(metric="minimum", seed=1)] == [0, 1, 2]
    assert results.records(metric="random", seed=1, cycle=1) == [_record("random", 1, 1)]
    assert results.records(metric="oracle") == []
    # numpy filter values compare like the stored plain values
    assert len(results.records(seed=np.int64(0), pruning_fraction=np.float64(0.2))) == 5
    # a filter on a key a record lacks never matches; None matches a stored null
    assert results.records(no_such_key=None) == []
    assert len(results.records(stop_reason=None)) == 10
    assert results.last_cycle() == 2
    assert results.last_cycle(metric="random") == 1
    assert results.last_cycle(metric="random", seed=5) is None

    lines = (tmp_path / "runs" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(line)["experiment"] == "unit" for line in lines)


def test_append_converts_numpy_and_writes_nan_as_null(tmp_path):
    path = tmp_path / "r.jsonl"
    results = ResultsFile(path)
    stored = results.append(
        _record(
            seed=np.int64(2),
            cycle=np.int32(1),
            test_accuracy=np.float32(0.75),
            test_loss=float("nan"),
            train_loss=np.float64(np.inf),
            units_per_layer={"mask_1": np.int64(4)},
            collapsed_layers=np.array(["mask_3"]),
        )
    )
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    (record,) = results.records()
    assert record == stored
    assert record["seed"] == 2 and type(record["seed"]) is int
    assert record["cycle"] == 1 and type(record["cycle"]) is int
    assert record["test_accuracy"] == 0.75 and type(record["test_accuracy"]) is float
    assert record["test_loss"] is None and record["train_loss"] is None
    assert record["units_per_layer"] == {"mask_1": 4}
    assert record["collapsed_layers"] == ["mask_3"]


def test_unserialisable_record_is_rejected_before_anything_is_written(tmp_path):
    path = tmp_path / "r.jsonl"
    results = ResultsFile(path)
    results.append(_record(cycle=0))
    before = path.read_bytes()
    with pytest.raises(TypeError, match="model"):
        results.append(_record(cycle=1, model=object()))
    assert path.read_bytes() == before


def test_extend_is_all_or_nothing(tmp_path):
    results = ResultsFile(tmp_path / "r.jsonl")
    results.extend([_record(cycle=0), _record(cycle=1)])
    with pytest.raises(TypeError):
        results.extend([_record(cycle=2), _record(cycle=3, bad={1.5: "float key"})])
    assert [r["cycle"] for r in results.records()] == [0, 1]


def test_crash_during_append_keeps_every_finished_record(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    results = ResultsFile(path)
    for cycle in range(3):
        results.append(_record(cycle=cycle))
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        results.append(_record(cycle=3))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [r["cycle"] for r in results.records()] == [0, 1, 2]
    assert os.listdir(tmp_path) == ["r.jsonl"]


def test_corrupt_last_line_raises_with_file_and_line_number(tmp_path):
    path = tmp_path / "r.jsonl"
    results = ResultsFile(path)
    results.append(_record(cycle=0))
    results.append(_record(cycle=1))
    # what a non-atomic writer killed mid-line would leave behind
    with open(path, "a") as f:
        f.write(json.dumps(_record(cycle=2))[:40])
    corrupt = path.read_bytes()
    with pytest.raises(ValueError, match=r"r\.jsonl: line 3 is not valid JSON"):
        results.records()
    with pytest.raises(ValueError, match="line 3"):
        results.last_cycle()
    # a corrupt file is never extended (nor silently repaired)
    with pytest.raises(ValueError, match="line 3"):
        results.append(_record(cycle=2))
    assert path.read_bytes() == corrupt


def test_non_object_line_is_rejected(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"cycle": 0}\n\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 3 holds a JSON list"):
        ResultsFile(path).records()


def test_blank_lines_and_missing_final_newline_are_tolerated(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"cycle": 0}\n\n{"cycle": 1}')  # e.g. edited by hand
    results = ResultsFile(path)
    assert results.last_cycle() == 1
    results.append({"cycle": 2})
    assert [r["cycle"] for r in results.records()] == [0, 1, 2]
    assert path.read_text().endswith('{"cycle": 2}\n')


def test_concurrent_appends_lose_nothing(tmp_path):
    results = ResultsFile(tmp_path / "r.jsonl")
    n_threads, per_thread = 6, 15

    def worker(t):
        for i in range(per_thread):
            ResultsFile(results.path).append({"thread": t, "i": i, "cycle": i})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = results.records()
    assert len(records) == n_threads * per_thread
    assert sorted((r["thread"], r["i"]) for r in records) == [
        (t, i) for t in range(n_threads) for i in range(per_thread)
    ]


def test_flatten_record_and_to_csv(tmp_path):
    results = ResultsFile(tmp_path / "r.jsonl")
    results.append(_record(cycle=0, collapsed_layers=[]))
    results.append(
        _record(
            cycle=1,
            collapsed_layers=["mask_2"],
            test_loss=float("nan"),
            units_per_layer={"mask_1": 9, "mask_2": 0, "mask_3": 1},
            oracle_similarity=0.5,
        )
    )
    assert flatten_record({"a": {"b": {"c": 1}}, "l": [1, "x"], "e": {}}) == {
        "a.b.c": 1,
        "l": '[1, "x"]',
        "e": "{}",
    }

    csv_path = tmp_path / "out" / "r.csv"
    assert results.to_csv(csv_path) == str(csv_path)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0].keys())
    # first-seen order: keys of the first record, then the new nested/extra keys of the second
    assert header[:8] == [
        "experiment", "metric", "seed", "init", "pruning_fraction", "cycle",
        "fraction_remaining", "units_per_layer.mask_1",
    ]
    assert header[8] == "units_per_layer.mask_2"
    assert "units_per_layer" not in header
    assert header[-2:] == ["units_per_layer.mask_3", "oracle_similarity"]
    assert "fraction_remaining_per_layer.mask_1" in header
    assert len(rows) == 2
    assert rows[0]["units_per_layer.mask_1"] == "10"
    assert rows[0]["units_per_layer.mask_3"] == ""  # absent in the first record
    assert rows[0]["oracle_similarity"] == ""
    assert rows[1]["units_per_layer.mask_3"] == "1"
    assert json.loads(rows[0]["collapsed_layers"]) == []
    assert json.loads(rows[1]["collapsed_layers"]) == ["mask_2"]
    assert rows[1]["test_loss"] == "" and rows[1]["stop_reason"] == ""
    assert float(rows[1]["fraction_remaining"]) == 0.8  # repr precision survives

    # explicit subset of records
    results.to_csv(tmp_path / "subset.csv", records=results.records(cycle=1))
    with open(tmp_path / "subset.csv", newline="") as f:
        subset = list(csv.DictReader(f))
    assert [r["cycle"] for r in subset] == ["1"]


def test_results_module_imports_neither_tensorflow_nor_keras():
    # results.py (harness/) and the file helpers it uses (core/io.py), loaded from their files
    # without the package (whose __init__ imports Keras for the rest of the library).
    io_file = os.path.join(os.path.dirname(os.path.dirname(results_module.__file__)), "core", "io.py")
    code = (
        "import importlib.util, sys\n"
        f"io_spec = importlib.util.spec_from_file_location('dropnet_tf.core.io', {io_file!r})\n"
        "sys.modules['dropnet_tf.core.io'] = io_module = importlib.util.module_from_spec(io_spec)\n"
        "io_spec.loader.exec_module(io_module)\n"
        f"spec = importlib.util.spec_from_file_location('results_alone', {results_module.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
