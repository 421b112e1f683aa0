"""Cluster grids: one shard of a run grid per process, and the merge of the shards' files (issue 16).

A grid (:class:`~dropnet_tf.harness.grid.RunGrid`) is spread over machines by running it N
times, each process taking a *shard*: shard I of N runs the cells whose position p in the
grid has ``p mod N == I``.  A SLURM array job (or any scheduler's array) then runs a whole
grid with ``--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`` and ``--array=0-(N-1)``.

Grid order
    The position of a cell is the order in which the code visits it
    (:class:`CellOrder` counts every :meth:`RunGrid.cell <dropnet_tf.harness.grid.RunGrid.cell>`
    call, done or not, run or skipped), so it is the same in every process that runs the
    same grid with the same settings, whatever is already recorded.  I counts from 0:
    ``0 <= I < N``.

Files
    Each shard writes its own files beside the unsharded results path, so no two
    processes ever write one file (which locks cannot make safe on a network file system)::

        results.jsonl                          the unsharded file (written by the merge)
        results.shard-0-of-3.jsonl             shard 0's records
        results.shard-0-of-3.jsonl.state/      its run state (DropNet's NPZ files), if any
        results.shard-0-of-3.manifest.json     settings, grid keys, finished or not

    The manifest is written (atomically) when the shard starts and again when it ends
    (``"complete": true``); it holds the settings the shard ran with and the key of every
    cell of the grid in order.

Merge (:func:`merge_shards`)
    Refuses shards of different counts N, different settings (the manifests' ``settings``,
    and those of the merging command when given) or different grids (the key lists), naming
    the two files and the first difference; with missing or unfinished shards it says which
    ones and stops unless ``allow_partial``.  It then writes the union atomically into the
    unsharded file: records of a cell found in several places (the unsharded file from an
    earlier merge, or a shard) must agree, one list being a prefix of the other (a shard
    still running has fewer cycles); the longest is kept and exact duplicates are dropped,
    any other difference is refused, as is a shard's record of no cell of the grid.  Records
    are written in grid order, cell by cell, as a one-process run writes them; records of the
    unsharded file that belong to no cell of the grid keep their place in front.
    The state folders' files are copied into ``results.jsonl.state/`` (the same name with
    other bytes is refused).

Imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dropnet_tf.core.io import PathLike, atomic_write_bytes, atomic_write_text, to_jsonable
from dropnet_tf.harness.results import ResultsFile

__all__ = [
    "CellOrder",
    "MergeReport",
    "Shard",
    "ShardsIncompleteError",
    "describe_difference",
    "find_shards",
    "merge_shards",
    "read_manifest",
    "shard_manifest_path",
    "shard_path",
    "write_manifest",
]

#: Version of the manifest's layout, stored in it.
MANIFEST_VERSION = 1

_SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)\.manifest\.json$")


def _check_count(index, count) -> None:
    for name, value in (("index", index), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"shard {name} must be an int, got {value!r}.")
    if count < 1:
        raise ValueError(f"shard count N must be >= 1, got {count}.")
    if not 0 <= index < count:
        raise ValueError(
            f"shard index I must satisfy 0 <= I < N (I counts from 0), got I={index} for N={count}."
        )


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the cells at positions p with p mod count == index."""

    index: int
    count: int

    def __post_init__(self):
        _check_count(self.index, self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, position: int) -> bool:
        """Whether the cell at grid position ``position`` (0, 1, 2, ...) is this shard's."""
        return position % self.count == self.index

    def share(self, total: int) -> int:
        """How many of a grid of ``total`` cells are this shard's."""
        return len(range(self.index, total, self.count))

    def path(self, results: PathLike) -> str:
        return shard_path(results, self.index, self.count)

    def manifest_path(self, results: PathLike) -> str:
        return shard_manifest_path(results, self.index, self.count)


def _split(results: PathLike) -> tuple[str, str]:
    path = os.fspath(results)
    root, ext = os.path.splitext(path)
    return (root, ext) if ext else (path, "")


def shard_path(results: PathLike, index: int, count: int) -> str:
    """``results.jsonl`` → ``results.shard-I-of-N.jsonl`` (beside it; its state folder adds ``.state``)."""
    _check_count(index, count)
    root, ext = _split(results)
    return f"{root}.shard-{index}-of-{count}{ext}"


def shard_manifest_path(results: PathLike, index: int, count: int) -> str:
    """``results.jsonl`` → ``results.shard-I-of-N.manifest.json``."""
    _check_count(index, count)
    root, _ = _split(results)
    return f"{root}.shard-{index}-of-{count}.manifest.json"


class CellOrder:
    """The grid order, and which cells this process runs (see the module docstring).

    :meth:`take` is called by :class:`~dropnet_tf.harness.grid.RunGrid` for every cell it
    visits; share one ``CellOrder`` among the grids of one results file (a script that
    calls ``run_experiment`` once per p) so that their cells are numbered as one grid.

    Args:
        shard: run only this shard's cells (None: every cell).
        run: False runs no cell at all (after a merge: draw from what is recorded).
    """

    def __init__(self, shard: Shard | None = None, *, run: bool = True):
        if shard is not None and not isinstance(shard, Shard):
            raise TypeError(f"shard must be a Shard or None, got {shard!r}.")
        self.shard = shard
        self.run = bool(run)
        #: The key of every cell visited, in order (JSON values).
        self.keys: list[dict] = []

    def take(self, key: Mapping[str, Any]) -> bool:
        """Number the next cell; whether this process may run it."""
        position = len(self.keys)
        self.keys.append(to_jsonable(dict(key), "key"))
        return self.run and (self.shard is None or self.shard.owns(position))


# ----------------------------------------------------------------------------- manifests


def write_manifest(results: PathLike, shard: Shard, settings: Mapping[str, Any], *, keys=None,
                   complete: bool = False) -> str:
    """Write shard ``shard``'s manifest beside ``results`` atomically; returns its path."""
    manifest = {
        "version": MANIFEST_VERSION,
        "shard": shard.index,
        "of": shard.count,
        "results": os.path.basename(shard.path(results)),
        "settings": to_jsonable(dict(settings), "settings"),
        "complete": bool(complete),
        "grid": to_jsonable(list(keys or []), "keys"),
    }
    path = shard.manifest_path(results)
    return atomic_write_text(path, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def read_manifest(path: PathLike) -> dict:
    """A manifest as written by :func:`write_manifest`; a damaged one raises ValueError naming it."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a shard manifest (invalid JSON: {error.msg}).") from error
    if not isinstance(manifest, dict) or {"shard", "of", "settings", "complete", "grid"} - set(manifest):
        raise ValueError(f"{path} is not a shard manifest (it lacks shard/of/settings/complete/grid).")
    return manifest


def find_shards(results: PathLike) -> dict[int, dict[int, str]]:
    """The shard manifests beside ``results``: ``{N: {I: manifest path}}``."""
    root, _ = _split(results)
    found: dict[int, dict[int, str]] = {}
    for path in sorted(glob.glob(glob.escape(root) + ".shard-*-of-*.manifest.json")):
        match = _SHARD_NAME.search(path)
        if match and path[: match.start()] == root:
            found.setdefault(int(match.group(2)), {})[int(match.group(1))] = path
    return found


# ----------------------------------------------------------------------------- merge


class ShardsIncompleteError(ValueError):
    """Shards are missing or unfinished (see :func:`merge_shards`'s ``allow_partial``)."""


@dataclass
class MergeReport:
    """What :func:`merge_shards` did."""

    path: str
    count: int
    merged: list[int]
    missing: list[int] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    records: int = 0
    added: int = 0
    duplicates: int = 0
    state_files: int = 0

    def describe(self) -> str:
        text = (f"Merged shards {', '.join(map(str, self.merged))} of {self.count} into {self.path}: "
                f"{self.records} records ({self.added} new, {self.duplicates} duplicates skipped)")
        if self.state_files:
            text += f", {self.state_files} state files copied"
        if self.missing or self.unfinished:
            text += "; PARTIAL:" + _incomplete_text(self.count, self.missing, self.unfinished, None)
        return text + "."


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def describe_difference(a, b, where: str = "") -> str | None:
    """The first difference between two JSON values, as ``where: A vs B``, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            here = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return f"{here}: {_short(a.get(key, '<absent>'))} vs {_short(b.get(key, '<absent>'))}"
            found = describe_difference(a[key], b[key], here)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for index, (x, y) in enumerate(zip(a, b)):
            found = describe_difference(x, y, f"{where}[{index}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{where} has {len(a)} vs {len(b)} entries"
        return None
    return None if a == b else f"{where or 'value'}: {_short(a)} vs {_short(b)}"


def _incomplete_text(count, missing, unfinished, results) -> str:
    parts = []
    if missing:
        parts.append(f" missing shard(s) {', '.join(map(str, missing))} of {count}"
                     + (f" (no {os.path.basename(shard_manifest_path(results, missing[0], count))}"
                        + (" ..." if len(missing) > 1 else "") + ")" if results is not None else ""))
    if unfinished:
        parts.append(f" unfinished shard(s) {', '.join(map(str, unfinished))} of {count} "
                     "(still running, or stopped: run the same command with --shard I/N again to finish)")
    return ";".join(parts)


def _records(path: str) -> list[dict]:
    return ResultsFile(path).records() if os.path.exists(path) else []


def merge_shards(
    results: PathLike,
    *,
    settings: Mapping[str, Any] | None = None,
    allow_partial: bool = False,
    check: Callable[[str, str], str | None] | None = None,
) -> MergeReport:
    """Merge the shard files beside ``results`` into ``results`` (see the module docstring).

    Args:
        results: the unsharded results path; the shards' files are found beside it.
        settings: the merging command's settings; refused when a shard's differ.
        allow_partial: merge even when shards are missing or unfinished (the report says
            which); otherwise :class:`ShardsIncompleteError` names them and nothing is written.
        check: ``(shard results path A, shard results path B) -> difference or None``, a
            method's own comparison of two shards (DropNet: the runs' fingerprints).

    Every check comes before the first write; the results file is replaced atomically.
    """
    results = os.fspath(results)
    found = find_shards(results)
    root, _ = _split(results)
    if not found:
        raise ValueError(f"No shards to merge beside {results}: no {os.path.basename(root)}.shard-I-of-N.manifest.json "
                         f"in {os.path.dirname(os.path.abspath(results))}. Run the grid with --shard I/N first.")
    if len(found) > 1:
        (n1, s1), (n2, s2) = sorted(found.items())[:2]
        raise ValueError(
            f"Shards of different counts beside {results}: {next(iter(s1.values()))} (N={n1}) and "
            f"{next(iter(s2.values()))} (N={n2}). A grid is merged from the shards of one N; move the others away.")
    count, manifests_at = next(iter(found.items()))
    manifests = {index: read_manifest(path) for index, path in sorted(manifests_at.items())}
    for index, manifest in manifests.items():
        if (manifest["shard"], manifest["of"]) != (index, count):
            raise ValueError(f"{manifests_at[index]} says it is shard {manifest['shard']} of {manifest['of']}, "
                             f"not {index} of {count} as its name; it was renamed or copied by hand.")
    # The grid keys are written when a shard finishes: compare grids among finished shards.
    finished = [index for index, manifest in manifests.items() if manifest["complete"]]
    first = min(finished or manifests)
    reference, reference_path = manifests[first], manifests_at[first]
    if settings is not None:
        difference = describe_difference(reference["settings"], to_jsonable(dict(settings), "settings"))
        if difference:
            raise ValueError(f"{reference_path} was run with other settings than this command: {difference} "
                             "(the shard's vs this command's). Merge with the options the shards ran with.")
    for index, manifest in manifests.items():
        if index == first:
            continue
        for what in ("settings", "grid") if manifest["complete"] else ("settings",):
            difference = describe_difference(reference[what], manifest[what], "" if what == "settings" else what)
            if difference:
                raise ValueError(f"Shards with different {what}: {reference_path} and {manifests_at[index]} "
                                 f"differ at {difference}. Rerun the odd shard with the others' options.")
    missing = [index for index in range(count) if index not in manifests]
    unfinished = [index for index, manifest in manifests.items() if not manifest["complete"]]
    if (missing or unfinished) and not allow_partial:
        raise ShardsIncompleteError(
            f"Not merging {results}:" + _incomplete_text(count, missing, unfinished, results)
            + ". Nothing was written; use --allow-partial to merge and draw what there is.")
    if check is not None:
        for index in manifests:
            if index != first:
                difference = check(shard_path(results, first, count), shard_path(results, index, count))
                if difference:
                    raise ValueError(f"Shards with different settings: {shard_path(results, first, count)} and "
                                     f"{shard_path(results, index, count)} differ at {difference}.")

    # Which cell each record belongs to: its key's items, looked up by the key's field names.
    grid = reference["grid"]
    position_of = {}
    for position, key in enumerate(grid):
        position_of.setdefault(tuple(sorted(key)), {})[json.dumps(key, sort_keys=True)] = position

    def cell_of(record) -> int | None:
        for names, positions in position_of.items():
            if all(name in record for name in names):
                found_at = positions.get(json.dumps({name: record[name] for name in names}, sort_keys=True))
                if found_at is not None:
                    return found_at
        return None

    sources = [(results, _records(results))] + [
        (shard_path(results, index, count), _records(shard_path(results, index, count))) for index in manifests]
    cells: dict[int, tuple[str, list[dict]]] = {}
    others: list[dict] = []
    added = duplicates = 0
    for source, records in sources:
        by_cell: dict[int, list[dict]] = {}
        for record in records:
            position = cell_of(record)
            if position is None and source != results and reference["complete"]:
                raise ValueError(f"{source} holds a record of no cell of the grid in {reference_path} "
                                 f"({_short(record)}); a shard writes only its own cells' records.")
            if position is None:
                if record in others:
                    duplicates += 1
                else:
                    others.append(record)
                    added += source != results
                continue
            by_cell.setdefault(position, []).append(record)
        for position, mine in by_cell.items():
            if position not in cells:
                cells[position] = (source, mine)
                added += len(mine) if source != results else 0
                continue
            where, theirs = cells[position]
            shorter, longer = (mine, theirs) if len(mine) <= len(theirs) else (theirs, mine)
            for n, (a, b) in enumerate(zip(shorter, longer)):
                if a != b:
                    first_a, first_b = (where, source) if shorter is theirs else (source, where)
                    raise ValueError(
                        f"Conflicting records of the cell {_short(grid[position])}: record {n} differs between "
                        f"{first_a} and {first_b} at {describe_difference(a, b) if shorter is theirs else describe_difference(b, a)}. "
                        "The same cell was run twice with different outcomes; keep one of the files.")
            duplicates += len(shorter)
            if longer is mine:
                added += len(mine) - len(theirs)
                cells[position] = (source, mine)

    # State files (DropNet's <results>.state/*.npz): copied beside the unsharded file.
    copies = []
    target_dir = results + ".state"
    for index in manifests:
        folder = shard_path(results, index, count) + ".state"
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            source = os.path.join(folder, name)
            if not os.path.isfile(source) or name.startswith("."):
                continue
            with open(source, "rb") as f:
                data = f.read()
            target = os.path.join(target_dir, name)
            if os.path.exists(target):
                with open(target, "rb") as f:
                    if f.read() == data:
                        continue
                raise ValueError(f"State file {name} differs between {source} and {target}; "
                                 "the same run was stored twice.")
            planned = [c for c in copies if c[0] == target]
            if planned and planned[0][1] != data:
                raise ValueError(f"State file {name} differs between {planned[0][2]} and {source}; "
                                 "the same run was stored twice.")
            if not planned:
                copies.append((target, data, source))

    for target, data, _ in copies:
        atomic_write_bytes(target, data)
    merged = others + [record for position in sorted(cells) for record in cells[position][1]]
    text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in merged)
    atomic_write_text(results, text)
    return MergeReport(results, count, sorted(manifests), missing, unfinished, len(merged), added, duplicates,
                       len(copies))
