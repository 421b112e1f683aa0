"""``--shard I/N`` and ``--merge`` for every paper script: which file a grid writes, the merge first.

A script's grid runs through :class:`dropnet_tf.harness.grid.RunGrid`; :func:`plan` decides,
from the command line, what the grid does in this process (issue 16,
:mod:`dropnet_tf.harness.shards` has the file names and the rules):

* neither option: every cell, into the unsharded results file, then the figures (as before);
* ``--shard I/N``: the cells at positions p ≡ I (mod N) into ``<results>.shard-I-of-N.jsonl``
  (and its ``.state/`` folder), with a manifest of the settings; no figures, since the shard
  holds part of the grid: :meth:`Plan.finish` says so and the script returns;
* ``--merge``: the shards' files merged into the unsharded file first (refused, before any
  write, for shards run with other settings or, unless ``--allow-partial``, missing or
  unfinished ones), then no cell runs and the figures are drawn from the union exactly as an
  unsharded run draws them.

The settings a merge compares are the parsed options that change results: every option but
:data:`NOT_SETTINGS` (where files go, how verbose, the sharding itself), plus what the script
adds (its name).  Imported after the command line is parsed (it loads dropnet_tf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from dropnet_tf.harness.shards import (
    CellOrder, MergeReport, Shard, any_record, describe_difference, merge_shards, read_manifest, write_manifest,
)

from .entry import UserError, progress

#: Options that do not change what is computed, left out of the settings shards must share.
#: ``population`` only groups runs into one computation (the same records up to summation
#: order), so a shard may resume, or run beside another, with a size its memory allows.
NOT_SETTINGS = ("shard", "merge", "allow_partial", "out", "figures", "data_dir", "quiet", "verbose", "tensorboard",
                "population")


def settings_of(args, **extra) -> dict:
    """The options of ``args`` that change results, plus ``extra`` (e.g. the script's name)."""
    settings = {name: value for name, value in sorted(vars(args).items()) if name not in NOT_SETTINGS}
    return {**settings, **extra}


@dataclass
class Plan:
    """What the grid of this command does (see the module docstring)."""

    results: str  # the file the grid reads and writes: the shard's, or the unsharded one
    unsharded: str
    shard: Shard | None
    order: CellOrder | None
    settings: dict
    merged: MergeReport | None = None  # after --merge: what it merged, and what it lacks

    def share(self, total: int) -> int:
        """Of a grid of ``total`` cells, how many this command runs."""
        return total if self.shard is None else self.shard.share(total)

    def finish(self, log: Callable[[str], None] | None = print) -> bool:
        """After the grid: a shard writes its finished manifest and says what next; True
        when the script stops here (a shard draws no figures)."""
        if self.shard is None:
            return False
        write_manifest(self.unsharded, self.shard, self.settings, keys=self.order.keys, complete=True)
        if log is not None:
            log(f"Shard {self.shard} done: its runs are in {self.results}. Figures come from the whole grid: when "
                f"every shard is done, run the same command with --merge instead of --shard {self.shard}.")
        return True


def plan(args, results: str, settings: dict | None = None, *, check=None, finished=any_record,
         log: Callable[[str], None] | None = print) -> Plan:
    """The :class:`Plan` of ``args.shard`` / ``args.merge`` for the unsharded path ``results``.

    ``check``: a method's own comparison of two shards for the merge (see
    :func:`dropnet_tf.harness.shards.merge_shards`).  A bad merge or a shard file holding runs
    of other settings ends the command with a :class:`UserError` naming the files.
    ``finished``: ``a cell's records -> bool``, whether the cell is done (the merge counts
    a shard finished only when each of its cells is).  After a merge the start-up line
    (:data:`~paper_experiments.kit.entry.progress`) says what was merged, not what would run.
    """
    progress.merged = None
    settings = settings_of(args) if settings is None else settings
    chosen = getattr(args, "shard", None)
    if chosen is not None:
        shard = Shard(*chosen)
        manifest = shard.manifest_path(results)
        try:
            stored = read_manifest(manifest)
        except FileNotFoundError:
            stored = None
        except ValueError as error:
            raise UserError(str(error)) from error
        # A manifest written before an option joined NOT_SETTINGS may still hold it.
        stored_settings = None if stored is None else {
            name: value for name, value in stored["settings"].items() if name not in NOT_SETTINGS}
        if stored is not None and stored_settings != settings:
            raise UserError(f"{manifest} holds runs made with other settings "
                            f"({describe_difference(stored_settings, settings)}, "
                            f"stored vs now). Use another --out, or remove that shard's files.")
        write_manifest(results, shard, settings, complete=False)
        return Plan(shard.path(results), results, shard, CellOrder(shard), settings)
    if getattr(args, "merge", False):
        try:
            report = merge_shards(results, settings=settings, allow_partial=args.allow_partial, check=check,
                                  finished=finished)
        except ValueError as error:
            raise UserError(str(error)) from error
        if log is not None:
            log(report.describe())
        progress.merged = report
        return Plan(results, results, None, CellOrder(run=False), settings, report)
    return Plan(results, results, None, None, settings)


__all__ = ["NOT_SETTINGS", "Plan", "plan", "settings_of"]
