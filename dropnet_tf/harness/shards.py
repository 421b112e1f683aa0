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
    the two files and the first difference.  A shard is finished only when the records (its
    file's, or an earlier merge's) hold a final record for every cell it owns, whatever its
    manifest says: a missing, empty or torn shard file is named with the cells it lacks, and
    the merge stops, writing nothing, unless ``allow_partial`` (the report then counts the
    missing cells, for the figures' captions and summaries).  It then writes the union atomically into the
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
    "any_record",
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


def any_record(records: list[dict]) -> bool:
    """The default finish rule: a cell is done once it has a record (one record per cell)."""
    return bool(records)


@dataclass
class MergeReport:
    """What :func:`merge_shards` did.

    ``lacking`` maps a shard index to the keys of its cells with no final record anywhere
    (neither in its file nor in the unsharded one); ``cells`` is the size of the grid (0
    when no shard has finished, so that the grid is unknown).
    """

    path: str
    count: int
    merged: list[int]
    missing: list[int] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    records: int = 0
    added: int = 0
    duplicates: int = 0
    state_files: int = 0
    cells: int = 0
    lacking: dict[int, list[dict]] = field(default_factory=dict)
    problems: dict[int, str] = field(default_factory=dict)

    @property
    def missing_cells(self) -> int:
        """How many cells of the grid have no final record in the merged file."""
        return sum(len(keys) for keys in self.lacking.values())

    @property
    def partial(self) -> bool:
        return bool(self.missing or self.unfinished)

    def describe(self) -> str:
        shards = ", ".join(map(str, self.merged)) if self.merged else "none"
        text = (f"Merged the records of shard(s) {shards} of {self.count} into {self.path}: "
                f"{self.records} records ({self.added} new, {self.duplicates} duplicates skipped)")
        if self.state_files:
            text += f", {self.state_files} state files copied"
        if self.partial:
            text += "; PARTIAL (--allow-partial): " + self.incomplete_text()
        return text + "."

    def missing_text(self) -> str:
        """"3 of 12 cells missing" (or that the grid is unknown), for captions and summaries."""
        if not self.cells:
            return "the grid is unknown (no shard has finished)"
        return f"{self.missing_cells} of {self.cells} cells missing"

    def incomplete_text(self) -> str:
        """Each incomplete shard, what its files say and the cells it lacks."""
        parts = []
        if self.missing:
            parts.append(f"missing shard(s) {', '.join(map(str, self.missing))} of {self.count} "
                         f"(no {os.path.basename(shard_manifest_path(self.path, self.missing[0], self.count))}"
                         + (" ..." if len(self.missing) > 1 else "") + ")")
        if self.unfinished:
            parts.append(f"unfinished shard(s) {', '.join(map(str, self.unfinished))} of {self.count}")
        details = [self.problems[index] for index in sorted(self.problems)]
        return "; ".join(parts) + ". " + self.missing_text() + (": " + "; ".join(details) if details else "")


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


def _records(path: str) -> list[dict]:
    return ResultsFile(path).records() if os.path.exists(path) else []


def _shard_records(path: str) -> tuple[list[dict], str | None]:
    """A shard's readable records and what is wrong with its file (missing, empty, torn), if anything.

    A shard's file can be torn by a job killed mid-copy; its whole lines still count, and
    the merge names the file instead of stopping at the first bad line.
    """
    name = os.path.basename(path)
    if not os.path.exists(path):
        return [], f"{name} is missing"
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    records, bad = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(number)
    if bad:
        return records, f"{name} is torn (line(s) {', '.join(map(str, bad[:5]))} not a JSON record)"
    return records, None if records else f"{name} is empty"


def _read_manifests(results: str) -> tuple[int, dict[int, dict], dict[int, str]]:
    """The count N and the manifests of the shards beside ``results``, checked against their names."""
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
    return count, manifests, manifests_at


def _check_agreement(manifests, manifests_at, settings) -> int:
    """Refuse shards whose settings or grids differ; returns the reference shard (the first finished one)."""
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
    return first


def _cell_finder(grid: list[dict]) -> Callable[[dict], int | None]:
    """``record -> grid position`` (None for no cell): the key's items, looked up by the key's field names."""
    position_of: dict[tuple, dict[str, int]] = {}
    for position, key in enumerate(grid):
        position_of.setdefault(tuple(sorted(key)), {})[json.dumps(key, sort_keys=True)] = position

    def cell_of(record) -> int | None:
        for names, positions in position_of.items():
            if all(name in record for name in names):
                found_at = positions.get(json.dumps({name: record[name] for name in names}, sort_keys=True))
                if found_at is not None:
                    return found_at
        return None

    return cell_of


@dataclass
class _Union:
    """The records of every source, cell by cell (see :func:`_gather`)."""

    cells: dict[int, tuple[str, list[dict]]] = field(default_factory=dict)
    others: list[dict] = field(default_factory=list)
    added: int = 0
    duplicates: int = 0

    def records(self) -> list[dict]:
        return self.others + [record for position in sorted(self.cells) for record in self.cells[position][1]]


def _gather(results: str, sources, grid, cell_of, refuse_foreign: str | None) -> _Union:
    """The union of ``sources`` (``(path, records)``, the unsharded file first), cell by cell.

    A cell's record lists must agree, one a prefix of the other (a shard still running has
    fewer cycles): the longest is kept, anything else is refused.  ``refuse_foreign``: the
    manifest whose grid a shard's record must belong to (None while no shard finished).
    """
    union = _Union()
    for source, records in sources:
        by_cell: dict[int, list[dict]] = {}
        for record in records:
            position = cell_of(record)
            if position is None and source != results and refuse_foreign:
                raise ValueError(f"{source} holds a record of no cell of the grid in {refuse_foreign} "
                                 f"({_short(record)}); a shard writes only its own cells' records.")
            if position is None:
                if record in union.others:
                    union.duplicates += 1
                else:
                    union.others.append(record)
                    union.added += source != results
                continue
            by_cell.setdefault(position, []).append(record)
        for position, mine in by_cell.items():
            _keep_longer(union, position, source, mine, results, grid)
    return union


def _keep_longer(union: _Union, position: int, source: str, mine: list[dict], results: str, grid) -> None:
    if position not in union.cells:
        union.cells[position] = (source, mine)
        union.added += len(mine) if source != results else 0
        return
    where, theirs = union.cells[position]
    shorter, longer = (mine, theirs) if len(mine) <= len(theirs) else (theirs, mine)
    for n, (a, b) in enumerate(zip(shorter, longer)):
        if a != b:
            first_a, first_b = (where, source) if shorter is theirs else (source, where)
            difference = describe_difference(a, b) if shorter is theirs else describe_difference(b, a)
            raise ValueError(
                f"Conflicting records of the cell {_short(grid[position])}: record {n} differs between "
                f"{first_a} and {first_b} at {difference}. "
                "The same cell was run twice with different outcomes; keep one of the files.")
    union.duplicates += len(shorter)
    if longer is mine:
        union.added += len(mine) - len(theirs)
        union.cells[position] = (source, mine)


def _cell_names(keys: list[dict], grid: list[dict], limit: int = 4) -> str:
    """The cells as ``metric=minimum seed=1``: only the fields that vary over the grid (all when none does)."""
    varying = [name for name in dict.fromkeys(n for key in grid for n in key)
               if len({json.dumps(key.get(name), sort_keys=True) for key in grid}) > 1]
    shown = []
    for key in keys[:limit]:
        names = [name for name in key if name in varying] or list(key)
        shown.append(" ".join(f"{name}={json.dumps(key[name], ensure_ascii=False)}" for name in names))
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(f"({text})" for text in shown) + more


def _assess(report: MergeReport, manifests, grid, union: _Union, file_problems, finished) -> None:
    """Fill ``report``'s missing/unfinished/lacking/problems from the records, not the manifests' word.

    A shard is finished only when it has a finished manifest and every cell it owns has a
    final record (``finished``) in the union of the files.
    """
    count = report.count
    report.missing = [index for index in range(count) if index not in manifests]
    report.cells = len(grid)
    for index in range(count):
        owned = range(index, len(grid), count)
        lacking = [grid[p] for p in owned if not (p in union.cells and finished(union.cells[p][1]))]
        notes = [] if index not in manifests or manifests[index]["complete"] else [
            "its manifest says unfinished (still running, or stopped: run the same command with "
            f"--shard {index}/{count} again to finish)"]
        notes += [file_problems[index]] if file_problems.get(index) and lacking else []
        if lacking:
            report.lacking[index] = lacking
        if index in manifests and (lacking or notes):
            report.unfinished.append(index)
        if lacking or notes or index in report.missing:
            of = f" lacks {len(lacking)} of {len(owned)} cells" if grid and lacking else ""
            cells = f": {_cell_names(lacking, grid)}" if lacking else ""
            report.problems[index] = (f"shard {index}{of}"
                                      + (f" ({'; '.join(notes)})" if notes else "") + cells)


def _plan_state_copies(results: str, count: int, indices) -> list[tuple[str, bytes, str]]:
    """The state files (DropNet's ``<results>.state/*.npz``) to copy beside the unsharded file."""
    copies = []
    target_dir = results + ".state"
    for index in indices:
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
    return copies


def merge_shards(
    results: PathLike,
    *,
    settings: Mapping[str, Any] | None = None,
    allow_partial: bool = False,
    check: Callable[[str, str], str | None] | None = None,
    finished: Callable[[list[dict]], bool] = any_record,
) -> MergeReport:
    """Merge the shard files beside ``results`` into ``results`` (see the module docstring).

    Args:
        results: the unsharded results path; the shards' files are found beside it.
        settings: the merging command's settings; refused when a shard's differ.
        allow_partial: merge even when shards are missing or unfinished (the report says
            which, and which cells lack); otherwise :class:`ShardsIncompleteError` names
            them and their cells, and nothing is written.
        check: ``(shard results path A, shard results path B) -> difference or None``, a
            method's own comparison of two shards (DropNet: the runs' fingerprints).
        finished: ``a cell's records -> bool``, whether they end in a final record
            (default: any record; DropNet: the last one has a ``stop_reason``).

    A shard counts as finished only when its records hold a final record for every cell
    it owns (a record of an earlier merge in ``results`` counts too); its manifest's
    "complete" is necessary, not sufficient.  Every check comes before the first write;
    the results file is replaced atomically.
    """
    results = os.fspath(results)
    count, manifests, manifests_at = _read_manifests(results)
    first = _check_agreement(manifests, manifests_at, settings)
    reference = manifests[first]
    if check is not None:
        for index in manifests:
            difference = None if index == first else check(shard_path(results, first, count),
                                                            shard_path(results, index, count))
            if difference:
                raise ValueError(f"Shards with different settings: {shard_path(results, first, count)} and "
                                 f"{shard_path(results, index, count)} differ at {difference}.")
    grid = reference["grid"] if reference["complete"] else []
    read = {index: _shard_records(shard_path(results, index, count)) for index in manifests}
    sources = [(results, _records(results))] + [(shard_path(results, i, count), read[i][0]) for i in manifests]
    union = _gather(results, sources, grid, _cell_finder(grid),
                    manifests_at[first] if reference["complete"] else None)
    merged = [index for index in manifests if read[index][0]]
    report = MergeReport(results, count, merged)
    _assess(report, manifests, grid, union, {index: problem for index, (_, problem) in read.items()}, finished)
    if report.partial and not allow_partial:
        raise ShardsIncompleteError(f"Not merging {results}: {report.incomplete_text()}. Nothing was written or "
                                    "drawn; use --allow-partial to merge and draw what there is.")
    copies = _plan_state_copies(results, count, manifests)
    for target, data, _ in copies:
        atomic_write_bytes(target, data)
    records = union.records()
    atomic_write_text(results, "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records))
    report.records, report.added, report.duplicates, report.state_files = (
        len(records), union.added, union.duplicates, len(copies))
    return report
