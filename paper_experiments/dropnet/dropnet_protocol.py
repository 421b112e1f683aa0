"""What every numbered DropNet script shares: the paper's protocol, the quick scale, the CLI.

Each script in this folder declares one :class:`Experiment` (model, dataset, metrics,
arms, the paper figures it reproduces) and calls :func:`main`.  ``main`` parses the common
options, loads the data, runs Algorithm 1 over the grid through
:func:`dropnet_tf.run_experiment` (which resumes an interrupted run and skips finished
ones), then draws the figures with their CSVs and writes a small JSON summary.

Scales:

``paper``
    DropNet Section 3.2 and supplement: 15 seeds (0-14), at most 100 epochs per cycle,
    early stopping on validation loss with patience 5 (10 for Tiny ImageNet), p = 0.2
    (0.5 for Tiny ImageNet), SGD with learning rate 0.1, batch 32, the full training set
    split 90/10 stratified (random_state 42) into train/validation, the official test set,
    pruning down to 10% of nodes/filters remaining.
``quick``
    Minutes on 2 CPU cores: fewer seeds, a stratified subset of each split and fewer
    epochs per cycle with a shorter patience (:data:`QUICK_SCALES`, by model family).
    Everything else (p, optimizer, batch, stop rule, metrics, arms) is the paper's.  The
    figure title says "quick scale" and the caption lists what changed.

Protocols (``--protocol``):

``paper`` (default)
    the library's defaults, which follow the paper: exactly floor(p·R) units per cycle,
    ties at random, every layer keeps a unit, reshuffling every epoch, the weights at
    minimum validation loss.
``notebook``
    the authors' notebooks (``protocol="notebook"`` of :func:`dropnet_tf.iterative_prune`):
    their selection rule (:func:`dropnet_tf.core.selection.notebook_drop`), no layer-collapse
    guard, no shuffling, the last epoch's weights, no XLA.  Its runs are kept apart: the
    experiment name, the default results folder, the figures and the summary end in
    ``_notebook``, so that both protocols can be drawn side by side.  Not for the oracle
    experiments, which drop one unit per cycle (the notebook rule needs a fraction).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# The shared entry-point behaviour, scale base, parser builder, data loading and writers
# (paper_experiments/kit).  TensorFlow and dropnet_tf are imported inside the functions that
# need them, after the command line is parsed, so that --help and argument errors answer at once.
from paper_experiments import kit
from paper_experiments.kit import DATASET_CHOICES, DATASETS, SCALES, UserError, command, load_data, load_tensorflow, option, progress  # noqa: F401

#: The library's names the command line offers, written out so that parsing it needs no
#: TensorFlow; tests/test_entry_points.py checks them against dropnet_tf.
PAPER_METRICS = ("minimum", "maximum", "random", "minimum_layer", "maximum_layer", "random_layer")
METRICS = PAPER_METRICS + ("apoz", "apoz_layer")  # dropnet_tf.METRICS
PROTOCOLS = ("paper", "notebook")  # dropnet_tf.PROTOCOLS

# ----------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale(kit.Scale):
    """How many seeds, samples and epochs a run uses (the kit's scale, plus epochs and patience)."""

    max_epochs: int = 100
    patience: int | None = None  # None: the experiment's own (paper) patience

    def describe(self, data=None) -> str:
        if self.name == "paper" and self.max_train is None:
            return "paper scale"
        sizes = (
            f"{len(data.y_train)}/{len(data.y_val)}/{len(data.y_test)}"
            if data is not None
            else f"≤{self.max_train}/{self.max_val}/{self.max_test}"
        )
        return (
            f"{self.name} scale: {len(self.seeds)} seeds, {sizes} train/val/test samples, "
            f"≤{self.max_epochs} epochs, patience {self.patience}"
        )


PAPER_SCALE = Scale("paper", seeds=tuple(range(15)), max_epochs=100, patience=None)

#: Quick scale per model family; the conv and deep ones are smaller because a cycle of
#: Model B costs ~0.8 ms per training sample per epoch on 2 CPU cores, Model A ~0.02 ms.
QUICK_SCALES = {
    "mlp": Scale("quick", seeds=(0, 1, 2), max_epochs=15, patience=3, max_train=5000, max_val=1000, max_test=2000),
    "conv": Scale("quick", seeds=(0, 1), max_epochs=4, patience=2, max_train=1000, max_val=500, max_test=1000),
    "deep": Scale("quick", seeds=(0, 1), max_epochs=2, patience=2, max_train=500, max_val=200, max_test=500),
}

PROTOCOL_CHOICES = PROTOCOLS


# ----------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class Figure:
    """One output figure: the paper figures it reproduces and what it plots.

    ``y`` is a record field ("test_accuracy", "train_accuracy", "epochs") or
    "oracle_similarity" (each metric's masks against the oracle's, cycle by cycle).
    ``where`` keeps only records matching all its items (e.g. one metric).
    """

    labels: tuple[str, ...]
    y: str = "test_accuracy"
    where: tuple[tuple[str, object], ...] = ()
    caption: str = ""


@dataclass(frozen=True)
class Experiment:
    """One numbered script: the model, the grid of runs and the figures."""

    script: str  # e.g. "04_1_1"
    section: str  # e.g. "4.1"
    title: str  # e.g. "Model A: FC40-FC40"
    slug: str  # e.g. "model_a_fc40_fc40"
    model: str  # a name in dropnet_tf.models.MODELS
    dataset: str  # the paper's dataset
    family: str  # "mlp", "conv" or "deep": which quick scale
    figures: tuple[Figure, ...]
    model_kwargs: dict = field(default_factory=dict)
    metrics: tuple[str, ...] = PAPER_METRICS
    inits: tuple[str, ...] = ("original",)
    fractions: tuple[float, ...] = (0.2,)
    count: int | None = None  # drop exactly this many units per cycle (the oracle comparison)
    group_by: str = "metric"  # "metric", "init" or "pruning_fraction"
    patience: int = 5
    augmentation: bool = False
    paper_ordering: str = ""

    def experiment_name(self, fraction: float | None, protocol: str = "paper") -> str:
        name = f"dropnet_{self.script}_{self.slug}"
        name = name if len(self.fractions) == 1 else f"{name}_p{fraction}"
        return name + _protocol_suffix(protocol)


def _protocol_suffix(protocol: str) -> str:
    """The name suffix of a protocol's runs: none for the paper's (names as before), "_notebook"."""
    return "" if protocol == "paper" else f"_{protocol}"


def build_parser(exp: Experiment):
    """The kit's parser with DropNet's own options: --protocol, --metrics, --max-epochs."""

    def checks(args):
        if args.metrics is not None and "oracle" in exp.metrics and "oracle" not in args.metrics:
            return "--metrics must include 'oracle' here: the other metrics are compared with it"
        if args.protocol == "notebook" and exp.count not in (None, 1):
            return (f"--protocol notebook needs a pruning fraction or drop-one, but this experiment drops {exp.count} "
                    "units per cycle")
        return None

    return kit.build_parser(
        f"DropNet (ICML 2020) Section {exp.section}: {exp.title} on {exp.dataset} "
        f"({', '.join(label for fig in exp.figures for label in fig.labels)}).",
        dataset=exp.dataset,
        out=None,
        figures="figures/dropnet",
        helps={
            "scale": "paper protocol or a quick CPU run",
            "seeds": "seeds (default: 0-14 at paper scale, fewer at quick)",
            "out": "directory of results.jsonl and the run state (default: runs/dropnet/<script>/<dataset>_<scale>)",
            "figures": "directory for the PNGs, CSVs and summary JSON",
            "max_train": "override the number of training samples (stratified subset)",
            "quiet": "no per-cycle progress lines (--verbose 0)",
            "tensorboard": "also write TensorBoard scalars under DIR: per epoch (loss, val_loss, val_accuracy) and "
            "per cycle (fraction remaining, accuracies, epochs, units left per layer), one folder per run, "
            "DIR/<experiment>/<metric>_seed<k>_<init>; view with: tensorboard --logdir DIR",
        },
        shared=kit.SHARED + ("tensorboard",),
        options=(
            option("--protocol", choices=PROTOCOL_CHOICES, default="paper",
                   help="paper: exact floor(p·R) selection, shuffling, best-validation weights, a unit kept per layer; "
                   "notebook: the authors' notebooks' selection rule, no shuffling, last-epoch weights, no collapse "
                   "guard, no XLA (results, figures and summary named *_notebook)"),
            option("--metrics", nargs="+", choices=exp.metrics, metavar="METRIC",
                   help=f"run only these of the experiment's metrics ({', '.join(exp.metrics)})"),
            option("--max-epochs", type=int, positive=True, help="override the scale's epochs per cycle"),
            option("--population", type=_population_size, metavar="N|auto",
                   help="train N runs at a time as one computation (dropnet_tf.dropnet.population; 'auto': all); "
                   "same records, up to summation order; the oracle's runs still run one by one"),
        ),
        checks=(checks,),
    )


def _population_size(text: str):
    """--population: an integer >= 1 or 'auto'."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'auto', got {text!r}")
    return value


def parse_args(exp: Experiment, argv=None):
    return build_parser(exp).parse_args(argv)


def resolve_scale(exp: Experiment, args) -> Scale:
    """The scale of ``--scale``, with ``--seeds`` / ``--max-epochs`` / ``--max-train`` applied.

    The paper's protocol cut down by ``--max-train`` or ``--max-epochs`` is no longer the
    paper's: its name (and so every output file and the default results folder) says what was
    cut, e.g. ``paper_train3000_epochs20``, so that it is never mistaken for a paper-scale run.
    """
    scale = PAPER_SCALE if args.scale == "paper" else QUICK_SCALES[exp.family]
    name = None
    if args.scale == "paper" and (args.max_train is not None or args.max_epochs is not None):
        name = "paper" + (f"_train{args.max_train}" if args.max_train is not None else "") + (
            f"_epochs{args.max_epochs}" if args.max_epochs is not None else "")
    return scale.override(name=name, seeds=tuple(args.seeds) if args.seeds is not None else None,
                          max_epochs=args.max_epochs, max_train=args.max_train)


def _figure_stem(exp: Experiment, figure: Figure, dataset: str, scale: Scale, protocol: str = "paper") -> str:
    what = figure.y if not figure.where else f"{'_'.join(str(v) for _, v in figure.where)}_{figure.y}"
    return f"{exp.script}_{'_'.join(figure.labels)}_{exp.slug}_{dataset}_{scale.name}{_protocol_suffix(protocol)}_{what}"


def _similarity_records(results_path, exp: Experiment, records: list[dict], protocol: str = "paper") -> list[dict]:
    """Agreement of each metric's masks with the oracle's, same seed and cycle (Section 5)."""
    from dropnet_tf.dropnet.state import run_masks
    from dropnet_tf.dropnet.oracle import mask_similarity

    name = exp.experiment_name(exp.fractions[0], protocol)
    rows = []
    seeds = sorted({r["seed"] for r in records if r["metric"] == "oracle"})
    for seed in seeds:
        oracle = run_masks(results_path, name, "oracle", seed)
        fraction_of = {r["cycle"]: r["fraction_remaining"] for r in records if r["metric"] == "oracle" and r["seed"] == seed}
        for metric in exp.metrics:
            if metric == "oracle":
                continue
            try:
                masks = run_masks(results_path, name, metric, seed)
            except FileNotFoundError:
                continue
            for cycle in sorted(set(masks) & set(oracle) & set(fraction_of)):
                rows.append(
                    {
                        "metric": metric,
                        "seed": seed,
                        "cycle": cycle,
                        "fraction_remaining": fraction_of[cycle],
                        "oracle_similarity": mask_similarity(masks[cycle], oracle[cycle]),
                    }
                )
    return rows


#: Fractions of units remaining at which curves are compared (every run ends at ≤10%).
ORDERING_GRID = np.linspace(0.1, 1.0, 19)


def ordering(records: list[dict], group_by: str, y: str = "test_accuracy") -> list[tuple[str, float]]:
    """Arms sorted best first by their mean accuracy between 100% and 10% of units remaining.

    Each arm's curve (seed means against the fraction remaining) is interpolated linearly
    at :data:`ORDERING_GRID` and averaged, i.e. the normalised area under the curve, so that
    arms with different pruning schedules (p = 0.2 vs 0.9, global vs layer-wise) are
    compared over the same range.  An arm is a metric, or for the init and pruning-fraction
    experiments the metric with its init or p.
    """
    import dropnet_tf

    if group_by != "metric":
        records = [dict(r, arm=f"{r['metric']}, {group_by}={r[group_by]}") for r in records]
        group_by = "arm"
    rows = dropnet_tf.plotting.summarize(records, y=y, group_by=group_by)
    curves: dict = {}
    for row in rows:
        curves.setdefault(row[group_by], []).append((row["fraction_remaining"], row[f"{y}_mean"]))
    scores = []
    for arm, points in curves.items():
        x, v = zip(*sorted(points))
        scores.append((str(arm), float(np.mean(np.interp(ORDERING_GRID, x, v)))))
    return sorted(scores, key=lambda item: -item[1])


#: Fractions of units remaining at which the results page reads every arm against the paper.
LEVELS = (0.5, 0.25, 0.1)


def accuracy_at(records: list[dict], group_by: str, fraction: float = 0.1, y: str = "test_accuracy") -> dict:
    """Each arm's ``y`` at ``fraction`` of units remaining: mean over seeds and 95% CI.

    Every seed's curve is interpolated linearly at ``fraction`` (runs stop at the first cycle
    at or below 10%, e.g. 0.107 then 0.086 for 80 units at p = 0.2), so that the paper's
    "accuracy at 10% remaining" can be compared across arms and with the paper's figures.
    """
    curves: dict = {}
    for r in records:
        arm = str(r[group_by]) if group_by == "metric" else f"{r['metric']}, {group_by}={r[group_by]}"
        curves.setdefault(arm, {}).setdefault(r["seed"], []).append((r["fraction_remaining"], r[y]))
    out = {}
    for arm, seeds in curves.items():
        values = []
        for points in seeds.values():
            x, v = zip(*sorted(points))
            if x[0] <= fraction:  # only runs that reached the fraction
                values.append(float(np.interp(fraction, x, v)))
        if values:
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            out[arm] = {"mean": float(np.mean(values)), "ci95": 1.96 * std / np.sqrt(len(values)), "n": len(values)}
    return out


def count_finished_runs(results_path: str, names: Sequence[str], metrics=None, seeds=None, inits=None) -> int:
    """Finished (metric, seed, init) runs of these experiments in the results file, of these
    metrics, seeds and inits when given.

    A run is finished when its last record has a ``stop_reason``, as
    :func:`dropnet_tf.run_experiment` decides what to skip.
    """
    if not os.path.exists(results_path):
        return 0
    from dropnet_tf.harness.results import ResultsFile

    last = {}
    for record in ResultsFile(results_path).records():
        if record.get("experiment") in names:
            last[(record["experiment"], record.get("metric"), record.get("seed"), record.get("init"))] = record
    return sum(
        1
        for (_, metric, seed, init), record in last.items()
        if record.get("stop_reason")
        and (metrics is None or metric in metrics)
        and (seeds is None or seed in seeds)
        and (inits is None or init in inits)
    )


def run_finished(records: list[dict]) -> bool:
    """Whether a run's records end in its final cycle (the merge's test of a shard's cell)."""
    return bool(records) and bool(records[-1].get("stop_reason"))


def shard_fingerprint_difference(shard_a: str, shard_b: str) -> str | None:
    """For ``--merge``: the first difference between two shards' runs beyond the command line.

    Compares the data (shapes and content hash of every split), training and optimizer
    sections of the run fingerprint in each shard's first state file
    (:func:`dropnet_tf.dropnet.state.run_fingerprint`): two machines with the same options
    but other dataset files, or another library version's defaults, are refused.
    """
    import json

    from dropnet_tf.core.io import load_npz
    from dropnet_tf.dropnet.state import first_difference

    def sections(path):
        folder = path + ".state"
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            stored = load_npz(os.path.join(folder, name)).get("fingerprint") if name.endswith(".npz") else None
            if stored is not None:
                found = json.loads(str(stored))
                return {key: found[key] for key in ("data", "training", "optimizer") if key in found}
        return None

    a, b = sections(shard_a), sections(shard_b)
    found = None if a is None or b is None else first_difference(a, b)
    return None if found is None else f"{found[0]} of the runs' fingerprints: {found[1]!r:.120} vs {found[2]!r:.120}"


def _progress_callbacks(exp: Experiment, args, scale: Scale, names: Sequence[str], results_path: str,
                        shard=None) -> list:
    """The grid's ETA on every cycle line (``--verbose`` >= 1) and ``--tensorboard DIR``'s scalars (issue 16).

    ``shard``: the ETA counts only that shard's runs (the grid's positions p ≡ I mod N).
    """
    import dropnet_tf
    from dropnet_tf.harness.progress import TensorBoardLogger
    from dropnet_tf.dropnet.progress import GridETA, grid_runs

    callbacks = []
    if args.verbose >= 1:
        runs = [run for fraction, name in zip(exp.fractions, names)  # the order the grid runs in
                for run in grid_runs(name, exp.metrics, scale.seeds, exp.inits, fraction=fraction, count=exp.count)]
        runs = [run for position, run in enumerate(runs) if shard is None or shard.owns(position)]
        guard = dropnet_tf.PROTOCOLS[args.protocol]["min_units_per_layer"]
        callbacks.append(GridETA(runs, results_path, min_fraction=0.1, min_units_per_layer=guard))
    if args.tensorboard:
        callbacks.append(TensorBoardLogger(args.tensorboard))
    return callbacks


def _run_grid(exp, args, scale, data, build, names, grid_path, training, callbacks, plan, strategy) -> None:
    """Every p of the experiment into the grid's results file (resuming)."""
    import dropnet_tf

    for fraction, name in zip(exp.fractions, names):
        dropnet_tf.run_experiment(
            build,
            data,
            metrics=exp.metrics,
            seeds=scale.seeds,
            results=grid_path,
            experiment=name,
            inits=exp.inits,
            fraction=fraction,
            count=exp.count,
            min_fraction=0.1,
            training=training,
            protocol=args.protocol,
            verbose=args.verbose,
            callbacks=callbacks,
            order=plan.order,  # one numbering over every p of this results file
            population=args.population,
            strategy=strategy,
        )


@command
def main(exp: Experiment, argv=None) -> dict:
    """Run the experiment's grid (resuming), draw its figures, write its summary; returns it.

    The steps: parse the command line, set up the grid (data, folders, shard, training),
    run it, then collect its records, draw the figures and write the summary."""
    args = parse_args(exp, argv)
    load_tensorflow()
    if args.strategy is not None and exp.augmentation:
        raise kit.UserError(f"--strategy {args.strategy}: this experiment trains with Table C1 augmentation, which "
                            "runs in the single-device graph trainer only; run it without --strategy.")
    strategy = kit.strategy_of(args)  # made before the first model, as tf.distribute requires
    scale = resolve_scale(exp, args)
    started = time.perf_counter()
    if args.metrics is not None:
        exp = dataclasses.replace(exp, metrics=tuple(m for m in exp.metrics if m in args.metrics))
    setup = _set_up(exp, args, scale, strategy)
    records_before = _start(setup)
    _run(setup)
    if setup.plan.finish():  # a shard holds part of the grid: the figures come with --merge
        return {"shard": str(setup.plan.shard), "results": setup.grid_path}
    from dropnet_tf.harness.results import ResultsFile

    store = ResultsFile(setup.results_path)
    records = [
        r
        for name in setup.names
        for r in store.records(experiment=name)
        if r["seed"] in scale.seeds and r["metric"] in exp.metrics and r["init"] in exp.inits
    ]
    written = _draw_figures(setup, records)
    summary = _summary(setup, records, len(store.records()) - records_before, written, started)
    summary_path = os.path.join(args.figures, f"{exp.script}_{exp.slug}_{args.dataset}_{scale.name}{setup.suffix}.json")
    kit.write_json(summary_path, summary)
    print(
        "ordering by mean test accuracy: "
        + " > ".join(f"{g} ({v:.3f})" for g, v in summary["ordering_by_mean_test_accuracy"]),
        flush=True,
    )
    return summary


@dataclass
class _Setup:
    """What :func:`main` set up before running the grid."""

    exp: Experiment
    args: argparse.Namespace
    scale: Scale
    strategy: object
    data: object
    suffix: str
    results_path: str
    plan: object  # kit.sharding.Plan
    patience: int
    training: object  # TrainingConfig
    build: object  # seed -> masked model
    names: list  # the experiment name of each p

    @property
    def grid_path(self) -> str:
        """The results file this process runs into: results_path, or its shard's own file."""
        return self.plan.results


def _set_up(exp: Experiment, args, scale: Scale, strategy) -> _Setup:
    """The data, the results folder, the shard plan (--shard, --merge), the training settings
    and the model builder of the grid."""
    import dropnet_tf
    from dropnet_tf.dropnet.augmentation import augmentation_transform, table_c1_augmentation
    from dropnet_tf.engines.config import TrainingConfig

    caps = {} if scale.max_train is None else dict(max_train=scale.max_train, max_val=scale.max_val, max_test=scale.max_test)
    data = load_data(args.dataset, args.data_dir, **caps, seed=0)
    suffix = _protocol_suffix(args.protocol)
    out = args.out or os.path.join(
        "runs", "dropnet", f"{exp.script}_{exp.slug}", f"{args.dataset}_{scale.name}{suffix}"
    )
    out = kit.worker_out(out, strategy)  # worker i > 0 of a multi-worker run: its own folder
    results_path = os.path.join(out, "results.jsonl")
    # --shard I/N: this process runs one shard of the grid into its own file; --merge: the
    # shards' files are merged into results_path first and nothing runs (kit.sharding).
    from paper_experiments.kit import sharding

    plan = sharding.plan(args, results_path, sharding.settings_of(args, script=exp.script),
                         check=shard_fingerprint_difference, finished=run_finished)
    patience = scale.patience if scale.patience is not None else exp.patience
    transform = augmentation_transform(table_c1_augmentation()) if exp.augmentation else None
    training = TrainingConfig(max_epochs=scale.max_epochs, patience=patience, batch_size=32, train_transform=transform)
    model_kwargs = dict(exp.model_kwargs, input_shape=data.input_shape, num_classes=data.num_classes)

    def build(seed):
        return dropnet_tf.models.build_model(exp.model, seed=seed, **model_kwargs)

    names = [exp.experiment_name(fraction, args.protocol) for fraction in exp.fractions]
    return _Setup(exp, args, scale, strategy, data, suffix, results_path, plan, patience, training, build, names)


def _start(setup: _Setup) -> int:
    """Prints what runs and starts the progress line; returns the records held before this call."""
    from dropnet_tf.harness.results import ResultsFile

    exp, args, scale, data, grid_path = setup.exp, setup.args, setup.scale, setup.data, setup.grid_path
    print(
        f"DropNet {exp.section} {exp.title} on {data!r}; {scale.describe(data)}; seeds {list(scale.seeds)}; "
        f"metrics {list(exp.metrics)}; inits {list(exp.inits)}; p {list(exp.fractions)}; protocol {args.protocol}"
        + (f"; drop {exp.count} per cycle" if exp.count else "")
        + f"; results {grid_path}",
        flush=True,
    )
    records_before = len(ResultsFile(setup.results_path).records()) if os.path.exists(setup.results_path) else 0
    grid = {"metrics": len(exp.metrics), "seeds": len(scale.seeds), "inits": len(exp.inits), "p": len(exp.fractions)}
    progress.start(
        grid_path,
        lambda: count_finished_runs(grid_path, setup.names, exp.metrics, scale.seeds, exp.inits),
        total=setup.plan.share(int(np.prod(list(grid.values())))),
        describe=" × ".join(
            f"{n} {k if n != 1 or k == 'p' else k[:-1]}" for k, n in grid.items() if n > 1 or k in ("metrics", "seeds")
        ),
        partial_note="each cycle is saved as it finishes, so the run in progress resumes after its last cycle",
    )
    return records_before


def _run(setup: _Setup) -> None:
    """Runs the grid (or this process's shard of it) as one sitting."""
    from paper_experiments.kit import sittings

    exp, args, plan = setup.exp, setup.args, setup.plan
    callbacks = _progress_callbacks(exp, args, setup.scale, setup.names, setup.grid_path, plan.shard)
    from dropnet_tf.dropnet.state import ResumeRefusedError

    # A call that trains nothing (a merge, a redraw) is no sitting of the grid's wall time.
    from dropnet_tf.harness.results import ResultsFile

    def count() -> int:
        return len(ResultsFile(setup.grid_path).records()) if os.path.exists(setup.grid_path) else 0

    before = count()
    with sittings.sitting(setup.results_path, trained=lambda: count() > before, population=args.population,
                          shard=None if plan.shard is None else str(plan.shard), pid=os.getpid()):
        try:
            _run_grid(exp, args, setup.scale, setup.data, setup.build, setup.names, setup.grid_path,
                      setup.training, callbacks, plan, setup.strategy)
        except ResumeRefusedError as error:  # a stored run of other settings: the user picks --out
            raise kit.UserError(f"{error} (With this script: use another --out.)") from error


def _figure_note(setup: _Setup) -> str:
    """The caption under every figure's title: data, seeds, protocol and how to regenerate it."""
    exp, args, scale, data = setup.exp, setup.args, setup.scale, setup.data
    return (
        f"{data.name}: {len(data.y_train)}/{len(data.y_val)}/{len(data.y_test)} train/val/test; "
        f"{len(scale.seeds)} seed{'' if len(scale.seeds) == 1 else 's'} {list(scale.seeds)}; "
        + (f"drop {exp.count} unit per cycle" if exp.count else f"p={'/'.join(str(f) for f in exp.fractions)}")
        + f"; SGD 0.1, batch 32, ≤{scale.max_epochs} epochs, early stopping patience {setup.patience}"
        + ("; Table C1 augmentation" if exp.augmentation else "")
        + (
            "; notebook protocol: the authors' selection rule, no shuffling, last-epoch weights, no collapse guard"
            if args.protocol == "notebook"
            else ""
        )
        + "; mean ± 95% CI. Regenerate: "
        + kit.command_line("dropnet", os.path.basename(sys.argv[0]), args,
                           (("protocol", "paper"), ("data_dir", None, "DIR"), ("seeds", None),
                            ("max_train", None), ("max_epochs", None), ("metrics", None)))
        + kit.partial_caption()
    )


def _draw_figures(setup: _Setup, records: list[dict]) -> list[str]:
    """Draws the experiment's figures (with their CSVs) from the grid's records; returns the PNGs written."""
    import dropnet_tf

    exp, args, scale = setup.exp, setup.args, setup.scale
    note = _figure_note(setup)
    qualifiers = ([] if scale.name == "paper" else [f"{scale.name} scale"]) + (
        [] if args.protocol == "paper" else [f"{args.protocol} protocol"]
    )
    title_suffix = f" ({', '.join(qualifiers)})" if qualifiers else ""
    xlabel = dropnet_tf.plotting.fraction_xlabel(setup.build(scale.seeds[0]))  # "nodes" for an MLP
    written = []
    for figure in exp.figures:
        chosen = [r for r in records if all(r.get(k) == v for k, v in figure.where)]
        group_by = exp.group_by
        if figure.y == "oracle_similarity":
            chosen = _similarity_records(setup.results_path, exp, chosen, args.protocol)
            ylabel = "Mask agreement with the oracle"
        else:
            ylabel = {"test_accuracy": "Test accuracy", "train_accuracy": "Training accuracy",
                      "epochs": "Epochs until early stopping"}[figure.y]
        if not chosen:
            print(f"no records for {figure.labels}; skipped", flush=True)
            continue
        stem = _figure_stem(exp, figure, args.dataset, scale, args.protocol)
        label_text = ", ".join(
            ("Fig. " + label[3:].lstrip("0")) if label.startswith("fig") else label.capitalize()
            for label in figure.labels
        )
        title = f"{label_text}: {exp.title} on {args.dataset}{(' — ' + figure.caption) if figure.caption else ''}{title_suffix}"
        png = dropnet_tf.plotting.plot_accuracy_vs_fraction(
            chosen,
            os.path.join(args.figures, stem + ".png"),
            y=figure.y,
            group_by=group_by,
            title=title,
            ylabel=ylabel,
            note=note,
            xlabel=xlabel,
            order=list(exp.fractions) if group_by == "pruning_fraction" else None,
        )
        written.append(png)
        print(f"wrote {png}", flush=True)
    return written


def _summary(setup: _Setup, records: list[dict], cycles_this_call: int, written: list[str], started: float) -> dict:
    """The JSON summary of the grid: its settings, orderings, figures and time."""
    from dropnet_tf.dropnet.augmentation import TABLE_C1
    from paper_experiments.kit import sittings

    exp, args, scale, data = setup.exp, setup.args, setup.scale, setup.data
    return {
        "script": os.path.basename(sys.argv[0]),
        "section": exp.section,
        "title": exp.title,
        "dataset": args.dataset,
        "protocol": args.protocol,
        "scale": dataclasses.asdict(scale),
        "patience": setup.patience,
        "fractions": list(exp.fractions),
        "drop_count": exp.count,
        "metrics": list(exp.metrics),
        "inits": list(exp.inits),
        "augmentation": TABLE_C1.as_dict() if exp.augmentation else None,
        "split_sizes": [len(data.y_train), len(data.y_val), len(data.y_test)],
        "cycles_run": len(records),
        "cycles_this_call": cycles_this_call,
        "compute_seconds": round(sum(r["wall_seconds"] for r in records), 1),
        "ordering_by_mean_test_accuracy": ordering(records, exp.group_by) if records else [],
        "ordering_measure": "mean test accuracy over 10%-100% of units remaining (curve interpolated)",
        "test_accuracy_at_10_percent": accuracy_at(records, exp.group_by) if records else {},
        # The levels the results page compares with the paper's curves, level for level.
        "test_accuracy_at_levels": {
            str(level): accuracy_at(records, exp.group_by, fraction=level) if records else {} for level in LEVELS
        },
        "paper_ordering": exp.paper_ordering,
        "figures": [os.path.basename(p) for p in written],
        "seconds_this_call": round(time.perf_counter() - started, 1),
        "grid_time": sittings.summarise(sittings.read_sittings(setup.results_path)),
        **kit.merge_summary(),
    }
