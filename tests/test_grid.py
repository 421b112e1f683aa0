"""dropnet_tf.harness.grid.RunGrid: key -> skip if recorded -> run -> append atomically."""

from __future__ import annotations

import pytest

from dropnet_tf.harness.grid import RunGrid
from dropnet_tf.harness.results import ResultsFile


def _cells(ran, fail_at=None):
    def make(seed):
        def run():
            if seed == fail_at:
                raise RuntimeError(f"cell {seed} failed")
            ran.append(seed)
            return {"score": seed * 10}
        return {"experiment": "e", "seed": seed}, run
    return [make(seed) for seed in range(4)]


def test_runs_missing_cells_and_skips_recorded_ones(tmp_path):
    path = tmp_path / "r.jsonl"
    ResultsFile(path).append({"experiment": "e", "seed": 1, "score": -1})
    ran = []
    records = RunGrid(path).run(_cells(ran))
    assert ran == [0, 2, 3]
    assert [r["score"] for r in records] == [0, -1, 20, 30]
    assert [(r["seed"], r["score"]) for r in ResultsFile(path).records()] == [(1, -1), (0, 0), (2, 20), (3, 30)]
    assert list(ResultsFile(path).records()[1]) == ["experiment", "seed", "score"]  # key first


def test_an_exception_keeps_earlier_cells_and_a_rerun_runs_only_what_is_missing(tmp_path):
    path = tmp_path / "r.jsonl"
    ran = []
    with pytest.raises(RuntimeError, match="cell 2 failed"):
        RunGrid(path).run(_cells(ran, fail_at=2))
    assert ran == [0, 1]
    assert [r["seed"] for r in ResultsFile(path).records()] == [0, 1]
    text = path.read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 2  # whole lines only
    ran.clear()
    RunGrid(path).run(_cells(ran))
    assert ran == [2, 3]
    assert [r["seed"] for r in ResultsFile(path).records()] == [0, 1, 2, 3]
    ran.clear()
    RunGrid(path).run(_cells(ran))
    assert ran == []


def test_continue_past_a_failing_cell(tmp_path):
    path = tmp_path / "r.jsonl"
    ran = []
    grid = RunGrid(path)
    outcomes = grid.run(_cells(ran, fail_at=1), errors="continue")
    assert ran == [0, 2, 3] and outcomes[1] is None
    assert [key["seed"] for key, _ in grid.failed] == [1]
    with pytest.raises(ValueError, match=r"errors must be one of \('raise', 'continue'\), got 'ignore'"):
        grid.run([], errors="ignore")


def test_append_is_atomic(tmp_path, monkeypatch):
    import os

    path = tmp_path / "r.jsonl"
    grid = RunGrid(path)
    grid.cell({"seed": 0}, lambda: {"score": 1})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        grid.cell({"seed": 1}, lambda: {"score": 2})
    assert path.read_bytes() == before  # the failed append left the file as it was


def test_custom_skip_timing_and_self_recording_runs(tmp_path):
    path = tmp_path / "r.jsonl"
    grid = RunGrid(path)
    record = grid.cell({"arm": "a"}, lambda: {"x": 1}, timed="seconds")
    assert list(record) == ["arm", "x", "seconds"] and record["seconds"] >= 0
    assert grid.cell({"arm": "a"}, lambda: pytest.fail("reran a recorded cell")) == grid.done({"arm": "a"})

    def appends_itself():
        grid.results.append({"arm": "b", "cycle": 0})
        return None

    assert grid.cell({"arm": "b"}, appends_itself, skip=lambda done: bool(done) and done[-1].get("finished")) is None
    assert len(grid.recorded({"arm": "b"})) == 1
    grid.cell({"arm": "b"}, lambda: {"finished": True}, skip=lambda done: bool(done) and done[-1].get("finished"))
    assert grid.done({"arm": "b"})["finished"] is True
