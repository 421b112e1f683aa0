"""The one writer of the scripts' outputs: provenance text, figures, tables, summaries.

Every file is written atomically (:mod:`dropnet_tf.harness.results`), so an interrupted script never
leaves half a PNG or table behind.  dropnet_tf is imported inside the functions.
"""

from __future__ import annotations

import io
import json
import os


def command_line(paper: str, script: str, args, options=()) -> str:
    """The command that regenerates an output, for captions and table footers.

    ``python paper_experiments/<paper>/<script>.py --scale S --dataset D``, then each of
    ``options`` whose value is set and differs from its default: ``(name, default)``
    pairs, or ``(name, default, shown)`` to print ``shown`` instead of the value
    (``("data_dir", None, "DIR")``).  Lists are written space-separated.
    """
    script = script if script.endswith(".py") else f"{script}.py"
    text = f"python paper_experiments/{paper}/{script} --scale {args.scale} --dataset {args.dataset}"
    for item in options:
        name, default = item[0], item[1]
        value = getattr(args, name, default)
        if value is None or value == default:
            continue
        if len(item) > 2:
            value = item[2]
        elif isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        text += f" --{name.replace('_', '-')} {value}"
    return text


def partial_caption() -> str:
    """After ``--merge --allow-partial`` with cells missing: a sentence for every caption and
    table footer saying how many ("" otherwise), so that a partial figure never passes as whole."""
    from .entry import progress

    report = progress.merged
    if report is None or not report.partial:
        return ""
    return f" PARTIAL merge (--allow-partial): {report.missing_text()}."


def merge_summary() -> dict:
    """After ``--merge``: the summary JSON's ``merge`` section (shards merged, cells missing); else {}."""
    from .entry import progress

    report = progress.merged
    if report is None:
        return {}
    return {"merge": {"shards": report.count, "merged": report.merged, "partial": report.partial,
                      "cells": report.cells, "missing_cells": report.missing_cells,
                      "missing": {str(index): keys for index, keys in sorted(report.lacking.items())}}}


def split_sizes(data, val: bool = True) -> str:
    """``"train/val/test"`` sample counts of a dataset (``val=False``: train/test)."""
    parts = [data.y_train, data.y_val, data.y_test] if val else [data.y_train, data.y_test]
    return "/".join(str(len(p)) for p in parts)


def save_figure(fig, path: str, dpi: int = 120) -> str:
    """A matplotlib figure as a PNG, written atomically (its folder created); returns the path."""
    from dropnet_tf.core.io import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue())


def write_markdown(path: str, lines) -> str:
    """Lines of Markdown, written atomically (its folder created); returns the path."""
    from dropnet_tf.core.io import atomic_write_text

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_json(path: str, summary: dict) -> str:
    """A summary as indented JSON, written atomically; returns the path."""
    from dropnet_tf.core.io import atomic_write_text

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


def write_csv(path: str, rows) -> str:
    """Rows (dicts) as CSV, written atomically; returns the path."""
    from dropnet_tf.harness.results import write_csv as _write_csv

    return _write_csv(path, rows)


def write_outputs(stem: str, lines, rows, figure=None, dpi: int = 120, echo: bool = True) -> list[str]:
    """``<stem>.png`` (the figure, if any), ``<stem>.md`` (the table, if any, printed too) and ``<stem>.csv``."""
    written = []
    if figure is not None:
        written.append(save_figure(figure, stem + ".png", dpi=dpi))
    if lines:
        written.append(write_markdown(stem + ".md", lines))
        if echo:
            print("\n".join(lines))
    written.append(write_csv(stem + ".csv", rows))
    return written
