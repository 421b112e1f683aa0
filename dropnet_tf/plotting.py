"""Figures of iterative-pruning results: accuracy against the fraction of units remaining.

The figures follow the paper's convention (Tan & Motani, ICML 2020, Figs. 2-5): the x axis
is the fraction of nodes/filters remaining, inverted so that pruning proceeds from left
(1.0, the unpruned network) to right; each metric is one line, the mean over seeds with
95% confidence-interval error bars.

Every figure is written together with the CSV of the numbers it was drawn from, and both
are written atomically (see :mod:`dropnet_tf.harness.results`).  Figures are built on standalone
:class:`matplotlib.figure.Figure` objects with the Agg canvas, so this module never imports
``pyplot``, never changes the user's interactive backend and leaks no global figure state.

Colours are fixed per metric name (:data:`PALETTE`) so the same metric looks the same in
every figure; layer-wise variants (``*_layer``) share their global metric's colour but are
drawn dashed with square markers, global metrics solid with round markers.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dropnet_tf.harness.results import write_csv
from dropnet_tf.core.io import atomic_write_bytes

__all__ = [
    "PALETTE",
    "STANDARD_METRICS",
    "style_for",
    "summarize",
    "make_figure",
    "fraction_xlabel",
    "valid_range",
    "plot_accuracy_vs_fraction",
    "plot_train_and_test",
]

#: Canonical metric names in the order they are listed in legends and CSVs by default.
STANDARD_METRICS = (
    "minimum",
    "maximum",
    "random",
    "minimum_layer",
    "maximum_layer",
    "random_layer",
    "apoz",
    "apoz_layer",
    "oracle",
)

#: Fixed colour per standard metric name (matplotlib's colour-blind-friendlier tab10 hues).
PALETTE = {
    "minimum": "#1f77b4",  # blue
    "maximum": "#d62728",  # red
    "random": "#ff7f0e",  # orange
    "minimum_layer": "#1f77b4",
    "maximum_layer": "#d62728",
    "random_layer": "#ff7f0e",
    "apoz": "#2ca02c",  # green
    "apoz_layer": "#2ca02c",
    "oracle": "#000000",  # black
}

# Colours for names outside PALETTE, picked by a stable hash of the name so that an unknown
# group still gets the same colour in every figure.
_FALLBACK_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

DEFAULT_XLABEL = "Fraction of nodes/filters remaining"


def fraction_xlabel(model) -> str:
    """The x label for a masked model: what its MaskLayers mask, in the paper's words.

    "Fraction of nodes remaining" when every mask follows a Dense layer (a 2-D output),
    "Fraction of filters remaining" when every mask follows a convolution, and
    :data:`DEFAULT_XLABEL` ("nodes/filters") when the model has both or no masks.
    """
    from dropnet_tf.core.masking import mask_layers

    kinds = set()
    for layer in mask_layers(model):
        try:
            rank = len(layer.output.shape)
        except (AttributeError, ValueError, RuntimeError):  # a layer never called: unknown
            return DEFAULT_XLABEL
        kinds.add("nodes" if rank == 2 else "filters")
    return f"Fraction of {kinds.pop()} remaining" if len(kinds) == 1 else DEFAULT_XLABEL


def valid_range(y: str) -> tuple[float | None, float | None]:
    """The values a plotted quantity can take: ``(low, high)``, ``None`` for unbounded.

    Accuracies and agreements (names ending in ``accuracy`` or ``similarity``, and
    ``fraction_remaining``) lie in [0, 1]; counts such as ``epochs`` and ``cycle`` are
    >= 0; anything else is unbounded.  Confidence intervals are clipped to it when drawn.
    """
    if y.endswith(("accuracy", "similarity")) or y == "fraction_remaining":
        return (0.0, 1.0)
    if y in ("epochs", "cycle", "wall_seconds"):
        return (0.0, None)
    return (None, None)


def clipped_errors(mean: np.ndarray, half_width: np.ndarray, bounds: tuple[float | None, float | None]) -> np.ndarray:
    """``(2, n)`` asymmetric error bars: mean ± half_width cut at ``bounds`` (mean itself kept)."""
    mean = np.asarray(mean, dtype=np.float64)
    half_width = np.asarray(half_width, dtype=np.float64)
    low, high = mean - half_width, mean + half_width
    if bounds[0] is not None:
        low = np.maximum(low, bounds[0])
    if bounds[1] is not None:
        high = np.minimum(high, bounds[1])
    return np.vstack([np.maximum(mean - low, 0.0), np.maximum(high - mean, 0.0)])


def style_for(name: Any, fallback_index: int | None = None) -> dict[str, Any]:
    """Line style (``color``, ``linestyle``, ``marker``) for a group name.

    Standard metrics use :data:`PALETTE`; a name ending in ``_layer`` is dashed with square
    markers, any other name solid with round markers.  Other names take a fallback colour:
    the ``fallback_index``-th (figures pass the group's position among their non-standard
    groups, so that e.g. five pruning fractions get five colours), or without it one picked
    by a stable hash of the name.
    """
    key = str(name)
    colour = PALETTE.get(key)
    if colour is None:
        index = zlib.crc32(key.encode("utf-8")) if fallback_index is None else fallback_index
        colour = _FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)]
    layer_wise = key.endswith("_layer")
    return {"color": colour, "linestyle": "--" if layer_wise else "-", "marker": "s" if layer_wise else "o"}


def _group_sort_key(value: Any, order: Sequence[Any] | None, group_by: str) -> tuple:
    """Groups listed in ``order`` first (in that order), then (only when grouping by
    ``"metric"``) standard metric names in :data:`STANDARD_METRICS` order, then the rest
    (numbers numerically, others by text)."""
    if order is not None and value in order:
        return (0, list(order).index(value), 0, 0, "")
    if group_by == "metric" and isinstance(value, str) and value in STANDARD_METRICS:
        return (1, STANDARD_METRICS.index(value), 0, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (2, 0, 0, value, "")
    return (2, 0, 1, 0, str(value))


def summarize(
    records: Iterable[Mapping[str, Any]],
    y: str = "test_accuracy",
    group_by: str = "metric",
    order: Sequence[Any] | None = None,
) -> list[dict]:
    """Mean, standard deviation and 95% CI of ``y`` over seeds, per group and cycle.

    Records are grouped by ``(record[group_by], record["cycle"])``.  Within one metric all
    seeds share the same pruning schedule, so the cycle index aligns seeds; the x value
    ``fraction_remaining`` is the mean over the seeds of the cell.  Each returned row is::

        {group_by: value, "cycle": c, "fraction_remaining": mean,
         y + "_mean": ..., y + "_std": ..., y + "_ci95": ..., "n": number of seeds}

    ``std`` is the sample standard deviation (``ddof=1``) when ``n > 1`` and 0 otherwise;
    ``ci95 = 1.96 * std / sqrt(n)`` (normal approximation; for 3 seeds a Student-t interval
    would be about 2.2 times wider).  Records whose ``y`` is missing or ``None`` (a NaN
    stored as JSON null) are left out of that cell and not counted in ``n``.

    Rows are sorted by group and then by cycle.  Groups listed in ``order`` come first, in
    that order; the others follow (never dropped): when ``group_by == "metric"``, standard
    metric names in :data:`STANDARD_METRICS` order, then any other value sorted (numbers
    numerically, the rest as text).

    Raises :class:`ValueError` if a record lacks ``group_by``, ``cycle`` or
    ``fraction_remaining``, if no record has a value for ``y``, or if one seed appears twice
    in the same cell — which means records of different runs (e.g. ``init="original"`` and
    ``init="random"``, or two experiments) were mixed: filter them first, e.g. with
    ``ResultsFile.records(init="original")``.
    """
    cells: dict[tuple[Any, Any], list[Mapping[str, Any]]] = {}
    for record in records:
        for key in (group_by, "cycle", "fraction_remaining"):
            if key not in record:
                raise ValueError(f"summarize: a record has no {key!r} key: {dict(record)!r:.200}")
        if record.get(y) is None:
            continue
        cells.setdefault((record[group_by], record["cycle"]), []).append(record)
    if not cells:
        raise ValueError(f"summarize: no record has a value for {y!r}")

    rows = []
    for (group, cycle), cell in cells.items():
        seeds = [r["seed"] for r in cell if "seed" in r]
        if len(seeds) != len(set(seeds)):
            duplicated = sorted({s for s in seeds if seeds.count(s) > 1})
            raise ValueError(
                f"summarize: seed(s) {duplicated} appear more than once for {group_by}={group!r}, "
                f"cycle={cycle}; records of different runs (experiment, init or pruning "
                "fraction) are mixed. Filter the records first."
            )
        values = np.asarray([float(r[y]) for r in cell], dtype=np.float64)
        n = len(values)
        std = float(np.std(values, ddof=1)) if n > 1 else 0.0
        rows.append(
            {
                group_by: group,
                "cycle": cycle,
                "fraction_remaining": float(np.mean([float(r["fraction_remaining"]) for r in cell])),
                f"{y}_mean": float(np.mean(values)),
                f"{y}_std": std,
                f"{y}_ci95": 1.96 * std / math.sqrt(n),
                "n": n,
            }
        )
    rows.sort(key=lambda row: (_group_sort_key(row[group_by], order, group_by), row["cycle"]))
    return rows


def _pretty(name: str) -> str:
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _default_csv_path(out_png: str | os.PathLike) -> str:
    return os.path.splitext(os.fspath(out_png))[0] + ".csv"


def make_figure(
    records: Iterable[Mapping[str, Any]],
    ys: Sequence[str] = ("test_accuracy",),
    group_by: str = "metric",
    title: str | None = None,
    note: str | None = None,
    order: Sequence[Any] | None = None,
    xlabel: str = DEFAULT_XLABEL,
    ylabel: str | None = None,
    panel_titles: Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 150,
) -> tuple[Figure, dict[str, list[dict]]]:
    """Build (but do not save) a figure with one panel per entry of ``ys``.

    Each panel has one error-bar line per group: x = mean fraction remaining (axis
    inverted, 1.0 on the left), y = mean of that quantity over seeds, error bars = 95% CI
    (see :func:`summarize`), cut at the quantity's :func:`valid_range` (an accuracy's
    interval never reaches below 0 or above 1; the CSV keeps the uncut ``ci95``).  Returns the figure (on an Agg canvas) and the summaries it
    was drawn from, keyed by quantity.  The ``i``-th panel's lines are the entries of
    ``fig.axes[i].containers`` and its legend labels are ``str(group)``.
    """
    records = list(records)
    ys = list(ys)
    if not ys:
        raise ValueError("make_figure: ys is empty")
    summaries = {y: summarize(records, y=y, group_by=group_by, order=order) for y in ys}

    n_panels = len(ys)
    if figsize is None:
        figsize = (6.4, 4.6) if n_panels == 1 else (5.2 * n_panels, 4.4)
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]

    if panel_titles is None:
        panel_titles = [_pretty(y) for y in ys] if n_panels > 1 else [None]
    for i, (ax, y) in enumerate(zip(axes, ys)):
        _draw_groups(ax, summaries[y], y, group_by)
        ax.invert_xaxis()
        ax.grid(True, alpha=0.3)
        ax.set_xlabel(xlabel)
        if ylabel is not None:
            ax.set_ylabel(ylabel)
        elif n_panels == 1 or i == 0:
            ax.set_ylabel("Accuracy" if n_panels > 1 and all(q.endswith("accuracy") for q in ys) else _pretty(y))
        if i < len(panel_titles) and panel_titles[i]:
            ax.set_title(panel_titles[i], fontsize="medium")
    axes[-1].legend(fontsize="small", title=group_by, title_fontsize="small")

    _layout_header(fig, axes, title, note)
    return fig, summaries


def _draw_groups(ax, rows: list[dict], y: str, group_by: str) -> None:
    """One error-bar line per group of ``rows`` (in their order), in the group's style."""
    groups: list[Any] = []
    for row in rows:
        if row[group_by] not in groups:
            groups.append(row[group_by])
    others = [group for group in groups if str(group) not in PALETTE]
    for group in groups:
        cell = [row for row in rows if row[group_by] == group]
        fallback = others.index(group) if group in others else None
        ax.errorbar(
            np.array([row["fraction_remaining"] for row in cell], dtype=np.float64),
            np.array([row[f"{y}_mean"] for row in cell], dtype=np.float64),
            yerr=clipped_errors(
                [row[f"{y}_mean"] for row in cell], [row[f"{y}_ci95"] for row in cell], valid_range(y)
            ),
            label=str(group),
            capsize=3,
            markersize=3.5,
            linewidth=1.4,
            elinewidth=0.9,
            **style_for(group, fallback),
        )


def _layout_header(fig: Figure, axes: Sequence[Any], title: str | None, note: str | None) -> None:
    """Place the title and the smaller note under it at the top, measure them with the
    renderer, and move the axes down so that nothing overlaps."""
    width_in, height_in = fig.get_size_inches()
    fig.subplots_adjust(left=0.1 if len(axes) == 1 else 0.07, right=0.97, bottom=0.13, wspace=0.22)
    renderer = fig.canvas.get_renderer()
    pad = 0.08 / height_in
    top = 1.0 - pad
    if title:
        text = fig.text(0.5, top, title, ha="center", va="top", fontsize="large", fontweight="bold")
        top -= text.get_window_extent(renderer).height / fig.dpi / height_in + pad / 2
    if note:
        chars = max(30, int(width_in * 72 / (7.5 * 0.52)))
        wrapped = "\n".join(textwrap.fill(p, chars) if p else "" for p in note.splitlines())
        text = fig.text(0.5, top, wrapped, ha="center", va="top", fontsize=7.5, color="0.3")
        top -= text.get_window_extent(renderer).height / fig.dpi / height_in + pad / 2
    axes_title = max(
        (ax.title.get_window_extent(renderer).height for ax in axes if ax.get_title()), default=0.0
    )
    top -= axes_title / fig.dpi / height_in + (pad if axes_title else pad / 2)
    fig.subplots_adjust(top=min(0.97, top))


def _save_png(fig: Figure, out_png: str | os.PathLike, dpi: int | None) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return atomic_write_bytes(out_png, buffer.getvalue())


def plot_accuracy_vs_fraction(
    records: Iterable[Mapping[str, Any]],
    out_png: str | os.PathLike,
    y: str = "test_accuracy",
    group_by: str = "metric",
    title: str | None = None,
    order: Sequence[Any] | None = None,
    csv_path: str | os.PathLike | None = None,
    ylabel: str | None = None,
    note: str | None = None,
    xlabel: str = DEFAULT_XLABEL,
    figsize: tuple[float, float] | None = None,
    dpi: int = 150,
) -> str:
    """Plot ``y`` against the fraction of units remaining, one line per group.

    Writes the PNG and, next to it (default: ``out_png`` with ``.csv``), the CSV of the
    :func:`summarize` rows it was drawn from; both atomically.  ``note`` is small grey text
    under the title saying how the figure was made (dataset, scale, seeds).  Returns the
    PNG path as ``str``.
    """
    fig, summaries = make_figure(
        records, ys=[y], group_by=group_by, title=title, note=note, order=order,
        xlabel=xlabel, ylabel=ylabel, figsize=figsize, dpi=dpi,
    )
    write_csv(csv_path if csv_path is not None else _default_csv_path(out_png), summaries[y])
    return _save_png(fig, out_png, dpi)


def plot_train_and_test(
    records: Iterable[Mapping[str, Any]],
    out_png: str | os.PathLike,
    group_by: str = "metric",
    title: str | None = None,
    order: Sequence[Any] | None = None,
    csv_path: str | os.PathLike | None = None,
    ylabel: str | None = None,
    note: str | None = None,
    train_key: str = "train_accuracy",
    test_key: str = "test_accuracy",
    xlabel: str = DEFAULT_XLABEL,
    figsize: tuple[float, float] | None = None,
    dpi: int = 150,
) -> str:
    """Two panels side by side: ``train_key`` (left) and ``test_key`` (right).

    Same conventions as :func:`plot_accuracy_vs_fraction`.  The CSV has one row per group
    and cycle with ``fraction_remaining`` and, for each quantity ``q``, the columns
    ``q_mean``, ``q_std``, ``q_ci95`` and ``q_n`` (number of seeds).  Returns the PNG path.
    """
    ys = [train_key, test_key]
    fig, summaries = make_figure(
        records, ys=ys, group_by=group_by, title=title, note=note, order=order,
        xlabel=xlabel, ylabel=ylabel, figsize=figsize, dpi=dpi,
    )
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for y in ys:
        for row in summaries[y]:
            out = merged.setdefault(
                (row[group_by], row["cycle"]),
                {group_by: row[group_by], "cycle": row["cycle"], "fraction_remaining": row["fraction_remaining"]},
            )
            for suffix in ("mean", "std", "ci95"):
                out[f"{y}_{suffix}"] = row[f"{y}_{suffix}"]
            out[f"{y}_n"] = row["n"]
    rows = sorted(merged.values(), key=lambda row: (_group_sort_key(row[group_by], order, group_by), row["cycle"]))
    columns = [group_by, "cycle", "fraction_remaining"] + [
        f"{y}_{suffix}" for y in ys for suffix in ("mean", "std", "ci95", "n")
    ]
    write_csv(csv_path if csv_path is not None else _default_csv_path(out_png), rows, columns=columns)
    return _save_png(fig, out_png, dpi)
