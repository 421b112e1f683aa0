"""The one command line of the paper scripts: scales, the dataset choices, the parser builder, data.

Every script's parser is made by :func:`build_parser`: the options all papers share
(``--scale``, ``--dataset`` with :data:`DATASET_CHOICES`, ``--seeds``, ``--out``,
SHARED = ("scale", "dataset", "seeds", "out", "figures", "data_dir", "max_train", "quiet", "verbose", "strategy",
          "shard", "merge", "allow_partial")

#: ``--strategy`` choices (dropnet_tf.core.distribute.STRATEGY_NAMES, written out: no TensorFlow here).
STRATEGIES = ("mirrored", "multiworker")
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .entry import UserError

#: The library's dataset names (dropnet_tf.data.DATASETS) and stand-ins
#: (dropnet_tf.data.standins.STANDINS), written out so that parsing needs no TensorFlow;
#: tests/test_entry_points.py checks them against the library.
DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar10_jpeg", "cifar100", "tiny_imagenet", "digits")
STANDIN_NAMES = ("fashion_mnist_rgb32",)
#: The one list of ``--dataset`` choices, for every script.
DATASET_CHOICES = DATASETS + STANDIN_NAMES

#: ``--scale`` choices: the paper's protocol, or minutes on a 2-core CPU.
SCALES = ("paper", "quick")

#: The shared options, in the order they are added.
SHARED = ("scale", "dataset", "seeds", "out", "figures", "data_dir", "max_train", "quiet", "verbose", "strategy",
          "shard", "merge", "allow_partial")

#: ``--strategy`` choices (dropnet_tf.core.distribute.STRATEGY_NAMES, written out: no TensorFlow here).
STRATEGIES = ("mirrored", "multiworker")

#: ``--verbose`` levels: no progress lines, a line per cycle or run, and also a line per epoch.
VERBOSITY = (0, 1, 2)


def shard_argument(text: str) -> tuple[int, int]:
    """``--shard I/N`` as ``(I, N)``: 0 <= I < N, I counting from 0 (see kit.sharding).

    Checked here, before TensorFlow loads, with the bounds of dropnet_tf.harness.shards.Shard
    (tests/test_shards.py checks that both refuse the same values).
    """
    parts = text.strip().split("/")
    try:
        index, count = (int(part) for part in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        index = count = None
    if index is None or count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(
            f"must be I/N with N >= 1 and 0 <= I < N (I counts from 0: with a SLURM array --array=0-(N-1), "
            f"pass $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT), got {text!r}")
    return index, count


@dataclass(frozen=True)
class Scale:
    """What every paper's scale has: a name, seeds and sample caps (None: the whole split).

    Each protocol extends it with only its paper's fields (epochs, widths, learning rates).
    """

    name: str = "paper"
    seeds: tuple = (0,)
    max_train: int | None = None
    max_val: int | None = None
    max_test: int | None = None

    def override(self, **changes) -> "Scale":
        """A copy with the given fields changed; ``None`` values (an option not given) are skipped."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# ----------------------------------------------------------------------------- the parser


@dataclass(frozen=True)
class Option:
    """One paper-specific option: ``add_argument(*flags, **kwargs)``; ``positive``: an int ≥ 1."""

    flags: tuple
    kwargs: dict = field(default_factory=dict)
    positive: bool = False

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.flags[0].lstrip("-").replace("-", "_")


def option(*flags: str, positive: bool = False, **kwargs) -> Option:
    """Declare an option the way ``add_argument`` takes it."""
    return Option(tuple(flags), kwargs, positive)


class ScriptParser(argparse.ArgumentParser):
    """The parser :func:`build_parser` makes: checks shared by every script after parsing.

    ``--seeds`` may not repeat a seed; options declared ``positive`` must be ≥ 1; each of
    ``checks`` (a function of the parsed namespace returning an error message or None)
    ends the command with that message.
    """

    def __init__(self, *args, positive: Sequence[str] = (), checks: Sequence[Callable] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.positive = tuple(positive)
        self.checks = tuple(checks)

    def shared_options(self) -> set[str]:
        return {action.dest for action in self._actions} & set(SHARED)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for name in self.positive:
            value = getattr(parsed, name, None)
            if value is not None and value < 1:
                self.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if hasattr(parsed, "verbose"):
            # --quiet is --verbose 0; both are kept in step so that scripts may read either.
            quiet = bool(getattr(parsed, "quiet", False))
            if quiet and parsed.verbose not in (None, 0):
                self.error(f"--quiet and --verbose {parsed.verbose} contradict each other; give one of them")
            parsed.verbose = 0 if quiet else (1 if parsed.verbose is None else parsed.verbose)
            if hasattr(parsed, "quiet"):
                parsed.quiet = parsed.verbose == 0
        if getattr(parsed, "merge", False) and getattr(parsed, "shard", None) is not None:
            self.error("--merge and --shard exclude each other: run the shards with --shard I/N, then merge once with "
                       "--merge")
        if getattr(parsed, "allow_partial", False) and not getattr(parsed, "merge", False):
            self.error("--allow-partial only applies to --merge")
        seeds = getattr(parsed, "seeds", None)
        if seeds is not None and len(set(seeds)) != len(seeds):
            self.error(f"--seeds has duplicates: {seeds}")
        for check in self.checks:
            message = check(parsed)
            if message:
                self.error(message)
        return parsed


def build_parser(
    description: str,
    *,
    dataset: str | None = None,
    out: str | None = None,
    figures: str | None = None,
    options: Sequence[Option] = (),
    checks: Sequence[Callable] = (),
    shared: Sequence[str] = SHARED,
    helps: dict | None = None,
    defaults: dict | None = None,
    prog: str | None = None,
    **parser_kwargs,
) -> ScriptParser:
    """The parser of one script: the ``shared`` options, then the paper's ``options``.

    ``dataset``, ``out`` and ``figures`` are the defaults of ``--dataset``, ``--out`` and
    ``--figures``; ``helps`` replaces a shared option's help text (by its dest), ``defaults``
    a shared option's default (``parser.set_defaults``).
    """
    helps = dict(helps or {})
    parser = ScriptParser(
        prog=prog or os.path.basename(sys.argv[0]),
        description=description,
        positive=("max_train",) + tuple(o.dest for o in options if o.positive),
        checks=checks,
        **parser_kwargs,
    )
    table = _shared_options(dataset, out, figures)
    for name in shared:
        flags, kwargs = table[name]
        if name in helps:
            kwargs = dict(kwargs, help=helps[name])
        parser.add_argument(*flags, **kwargs)
    for item in options:
        parser.add_argument(*item.flags, **item.kwargs)
    if defaults:
        parser.set_defaults(**defaults)
    return parser


def _shared_options(dataset: str | None, out: str | None, figures: str | None) -> dict:
    """Every shared option by its dest: ``(flags, add_argument kwargs)``, with the script's
    defaults of --dataset, --out and --figures."""
    standins = ", ".join(("fashion_mnist",) + STANDIN_NAMES)
    table = {
        "scale": (("--scale",), dict(choices=SCALES, default="paper",
                                      help="the paper's protocol (default) or the quick CPU scale")),
        "dataset": (("--dataset",), dict(
            choices=DATASET_CHOICES, default=dataset,
            help=f"dataset (default: the paper's, {dataset}); offline stand-ins: {standins}, digits; cifar10_jpeg is "
            "CIFAR-10 re-encoded as JPEG (its folder or .tar.gz in --data-dir), named so in every output")),
        "seeds": (("--seeds",), dict(type=int, nargs="+", help="override the scale's seeds")),
        "out": (("--out",), dict(default=out, help="results directory")),
        "figures": (("--figures",), dict(default=figures, help="directory for the figures, tables and summaries")),
        "data_dir": (("--data-dir",), dict(help="where the dataset files are (see dropnet_tf.load_dataset)")),
        "max_train": (("--max-train",), dict(type=int, help="cap on training samples (a stratified subset)")),
        "quiet": (("--quiet",), dict(action="store_true", help="no progress lines (--verbose 0)")),
        "verbose": (("--verbose",), dict(type=int, choices=VERBOSITY, default=None,
                                         help="0: no progress lines (as --quiet); 1 (default): a line per cycle or "
                                         "run, ending with the grid's ETA; 2: also a line per epoch")),
        "strategy": (("--strategy",), dict(
            choices=STRATEGIES, default=None,
            help="train under tf.distribute: mirrored (every device of this machine) or multiworker (the cluster in "
            "TF_CONFIG, one process per worker); default: one device")),
        "tensorboard": (("--tensorboard",), dict(metavar="DIR", default=None,
                                                 help="also write TensorBoard scalars under DIR (per epoch and per "
                                                 "cycle or run; view with: tensorboard --logdir DIR)")),
        "shard": (("--shard",), dict(
            type=shard_argument, metavar="I/N",
            help="run only the cells of the grid at positions p with p mod N = I (0 <= I < N, I from 0; SLURM: "
            "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-(N-1)) into their own results file "
            "(<results>.shard-I-of-N.jsonl); no figures: --merge draws them")),
        "merge": (("--merge",), dict(
            action="store_true",
            help="merge the --shard runs' files into the results file (refusing shards run with other options, "
            "or missing ones), then draw the figures; give the options the shards ran with")),
        "allow_partial": (("--allow-partial",), dict(
            action="store_true", help="with --merge: merge and draw even when shards are missing or unfinished")),
    }
    return table


# ----------------------------------------------------------------------------- data


def unavailable_message(error, name: str) -> str:
    """One paragraph for a script user whose dataset is not on this machine.

    The library's message speaks to Python callers (``data_dir=D``); this one names the
    scripts' ``--data-dir`` and the offline stand-ins.
    """
    from dropnet_tf.data import DATA_DIR_ENV, HOW_TO
    from dropnet_tf.data.standins import STANDIN_FOR, STANDINS

    base = error.dataset or name
    tried = "; ".join(f"{source}: {reason}" for source, reason in error.attempts)
    text = (
        f"Dataset {base!r} is not on this machine (tried {tried}). To use it, put "
        f"{HOW_TO.get(base, 'its files')}, where D is a folder of your choice, and pass --data-dir D "
        f"(or set {DATA_DIR_ENV}=D); on a machine with network access tensorflow-datasets downloads it."
    )
    standin = STANDIN_FOR.get(base)
    if name in STANDINS:
        text += f" (--dataset {name} is built from {base}.)"
    elif standin is not None:
        what = STANDINS[standin].description if standin in STANDINS else "Fashion-MNIST: 28×28×1, 10 classes"
        text += (
            f" To run offline instead, use a stand-in: --dataset {standin} ({what}; Fashion-MNIST comes with "
            "the Debian/Ubuntu package dataset-fashion-mnist, found automatically), or --dataset digits "
            "(scikit-learn's 8×8 digits, always available)."
        )
    else:
        text += " Offline stand-ins: --dataset fashion_mnist or fashion_mnist_rgb32 (where installed), digits (always)."
    return text


def load_data(name: str, data_dir=None, *, max_train=None, max_val=None, max_test=None, seed: int = 0):
    """:func:`dropnet_tf.load_dataset`, or a stand-in of :mod:`dropnet_tf.data.standins`, subset by the caps.

    A stand-in is subset *before* its conversion (see :mod:`dropnet_tf.data.standins`).  A
    dataset that is not on this machine raises :class:`UserError` with
    :func:`unavailable_message` (one paragraph, no traceback, from a script).
    """
    import dropnet_tf
    from dropnet_tf.data import standins

    try:
        if name in standins.STANDINS:
            return standins.load_standin(name, data_dir, max_train=max_train, max_val=max_val, max_test=max_test,
                                         seed=seed, load=dropnet_tf.load_dataset)
        data = dropnet_tf.load_dataset(name, data_dir=data_dir)
    except dropnet_tf.DatasetUnavailableError as error:
        raise UserError(unavailable_message(error, name)) from error
    if any(cap is not None for cap in (max_train, max_val, max_test)):
        data = data.subset(max_train, max_val, max_test, seed=seed)
    return data
