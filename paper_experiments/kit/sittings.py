"""How long a grid took, across every sitting and process that worked on it.

A grid of long runs is run in several sittings (interrupted and resumed) and, with
``--shard``, by several processes at once.  Each call that trains appends one line to
``sittings.jsonl`` beside the results: when it started and ended, whether it was a shard
and how many runs it trained at a time.  The summary then reports the grid's wall-clock
time as the length of the union of those intervals (time during which at least one
process worked), which is neither the sum of the sittings (two shards side by side would
count twice) nor the last call's time.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager

FILENAME = "sittings.jsonl"


def sittings_path(results_path: str) -> str:
    return os.path.join(os.path.dirname(results_path) or ".", FILENAME)


@contextmanager
def sitting(results_path: str, trained=None, **facts):
    """Time the block and append it as one sitting, even when it ends by an exception
    (Ctrl-C included): the time spent is real and the cycles it finished are saved.
    ``trained``: a callable saying whether the block saved anything; a block that did not
    (a merge, a redraw of a finished grid) is no sitting."""
    started = time.time()
    try:
        yield
    finally:
        # No early return here: a return in ``finally`` would swallow the block's exception
        # (Ctrl-C, a refused resume) and the command would end as if it had succeeded.
        if trained is None or trained():
            line = {"started": round(started, 3), "ended": round(time.time(), 3), **facts}
            os.makedirs(os.path.dirname(results_path) or ".", exist_ok=True)
            # One short line opened in append mode: concurrent shards do not interleave it.
            with open(sittings_path(results_path), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")


def read_sittings(results_path: str) -> list[dict]:
    path = sittings_path(results_path)
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a killed process: that sitting's time is unknown
            if isinstance(row, dict) and row.get("ended", 0) >= row.get("started", 1):
                rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Union wall time, summed process time, the most processes at once, the population sizes."""
    intervals = sorted((row["started"], row["ended"]) for row in rows)
    wall, end = 0.0, None
    for start, stop in intervals:
        if end is None or start > end:
            wall += stop - start
            end = stop
        elif stop > end:
            wall += stop - end
            end = stop
    events = sorted([(start, 1) for start, _ in intervals] + [(stop, -1) for _, stop in intervals],
                    key=lambda event: (event[0], event[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return {
        "sittings": len(rows),
        "wall_clock_seconds": round(wall, 1),
        "process_seconds": round(sum(stop - start for start, stop in intervals), 1),
        "most_processes_at_once": most,
        "population_sizes": sorted({str(row.get("population")) for row in rows}),
    }
