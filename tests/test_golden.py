"""Same seed, same results: short runs through the public API match the recorded golden file.

``tests/golden/golden_runs.json`` was recorded by ``tests/golden/make_golden.py`` before the
package was restructured (issue 13).  Every pruning decision (masks of each DropNet cycle,
the kept weights of SNIP and SynFlow, the filters LayerPrune drops, the compacted shapes)
must match exactly; losses, accuracies and predictions to float32 round-off, since thread
scheduling may change the order of a reduction.
"""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))
from make_golden import GOLDEN, record  # noqa: E402


def _compare(expected, actual, path="golden"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(expected) == sorted(actual), f"{path}: keys {sorted(expected)} != {sorted(actual)}"
        for key in expected:
            _compare(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), f"{path}: {expected} != {actual}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            _compare(e, a, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert math.isclose(expected, actual, rel_tol=1e-5, abs_tol=2e-6), f"{path}: {expected} != {actual}"
    else:
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"


@pytest.fixture(scope="module")
def recorded():
    return record()


@pytest.fixture(scope="module")
def golden():
    with open(GOLDEN) as f:
        return json.load(f)


@pytest.mark.parametrize("part", ["iterative_prune", "prune_at_init", "prune_filters", "compact"])
def test_matches_golden_file(recorded, golden, part):
    _compare(golden[part], recorded[part], part)


def test_comparison_catches_a_changed_decision(golden):
    changed = json.loads(json.dumps(golden["prune_filters"]))
    mask = changed["l1_norm"]["conv_1_mask"]
    mask[0] = 1 - mask[0]
    with pytest.raises(AssertionError, match="conv_1_mask"):
        _compare(golden["prune_filters"], changed, "prune_filters")
