"""paper_experiments.kit.sittings: a grid's wall time over sittings and parallel shards."""

from __future__ import annotations

import json

import pytest

from paper_experiments.kit import sittings


def test_union_time_counts_parallel_shards_once_and_gaps_not_at_all():
    # Hand-worked: [0, 10] and [5, 15] overlap (15 s of wall clock, 2 processes at once),
    # then a pause, then [20, 25]: 20 s of wall clock, 25 s of process time.
    rows = [{"started": 5.0, "ended": 15.0, "population": 45, "shard": "1/2"},
            {"started": 0.0, "ended": 10.0, "population": 45, "shard": "0/2"},
            {"started": 20.0, "ended": 25.0, "population": "auto", "shard": None}]
    summary = sittings.summarise(rows)
    assert summary == {"sittings": 3, "wall_clock_seconds": 20.0, "process_seconds": 25.0,
                       "most_processes_at_once": 2, "population_sizes": ["45", "auto"]}
    # Back to back is one process at a time, not two.
    assert sittings.summarise([{"started": 0.0, "ended": 1.0}, {"started": 1.0, "ended": 2.0}])[
        "most_processes_at_once"] == 1


def test_a_sitting_is_recorded_even_when_interrupted_and_torn_lines_are_skipped(tmp_path):
    results = str(tmp_path / "grid" / "results.jsonl")
    with pytest.raises(KeyboardInterrupt):
        with sittings.sitting(results, population=3, shard=None):
            raise KeyboardInterrupt
    with open(sittings.sittings_path(results), "a") as handle:
        handle.write('{"started": 1, "ended"')  # a line cut by a killed process
    rows = sittings.read_sittings(results)
    assert len(rows) == 1 and rows[0]["population"] == 3 and rows[0]["ended"] >= rows[0]["started"]
    assert json.loads(open(sittings.sittings_path(results)).readline())["shard"] is None


def test_a_block_that_saved_nothing_is_no_sitting(tmp_path):
    results = str(tmp_path / "results.jsonl")
    with sittings.sitting(results, trained=lambda: False, population=None):
        pass  # a merge or a redraw
    assert sittings.read_sittings(results) == []
    with sittings.sitting(results, trained=lambda: True, population=4):
        pass
    assert [row["population"] for row in sittings.read_sittings(results)] == [4]


def test_an_exception_in_a_sitting_that_saved_nothing_still_propagates(tmp_path):
    """Ctrl-C (or a refused resume) before the first saved cycle must still end the command."""
    results = str(tmp_path / "results.jsonl")
    with pytest.raises(KeyboardInterrupt):
        with sittings.sitting(results, trained=lambda: False):
            raise KeyboardInterrupt
    with pytest.raises(ValueError, match="refused"):
        with sittings.sitting(results, trained=lambda: False):
            raise ValueError("refused")
    assert sittings.read_sittings(results) == []
