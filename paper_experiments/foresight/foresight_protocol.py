"""Shared protocol of the foresight-pruning scripts: scales, CLI, runs, figures, tables.

Each numbered script in this folder declares a :class:`ForesightExperiment` (model,
dataset, methods, compression ratios, which paper table/figure it reproduces) and calls
:func:`main`.  Runs go through :func:`dropnet_tf.foresight.experiment.run_foresight_grid`,
so an interrupted script resumes after its last finished run.

Scales
------
``paper``  the paper's protocol: full dataset, its optimiser, epochs and seeds.
``quick``  the same grid on a stratified subset with a few epochs, for a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import numpy as np

from paper_experiments import kit
from paper_experiments.kit import DATASET_CHOICES, SCALES, command, load_data, load_tensorflow, option, progress  # noqa: F401 (command: for the scripts)

# dropnet_tf (and TensorFlow) is imported inside the functions that use it, once the command
# line is parsed, so that --help answers at once (paper_experiments/kit).

#: The repository root: the default --out and --figures are under it.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: dropnet_tf.foresight.experiment.REFERENCE, written out so that the scripts load without
#: TensorFlow (tests/test_entry_points.py checks it).
REFERENCE = "reference"

#: Thesis 4.1.3: SGD + Nesterov 0.9, batch 128, lr 1e-4; 5 / 25 / 50 epochs; seed 42.
THESIS_EPOCHS = {"mnist": 5, "cifar10": 25, "cifar100": 50}
THESIS_METHODS = (
    "global_magnitude", "global_gradient", "global_activation", "global_lap",
    "layer_magnitude", "layer_gradient", "layer_activation", "layer_lap",
    "lamp", "snip", "grasp", "synflow", "random",
)
THESIS_RATIOS = (2, 4, 8, 16, 32, 64)


def thesis_protocol(dataset: str):
    """Thesis 4.1.3: SGD, Nesterov momentum 0.9, lr 1e-4, batch 128.  No weight decay (the
    thesis gives none), so the weight-decay mode (issue 24) does not enter; it is left at
    the default, "decoupled"."""
    from dropnet_tf.foresight.experiment import TrainingProtocol

    family = "mnist" if "mnist" in dataset else ("cifar100" if dataset == "cifar100" else "cifar10")
    return TrainingProtocol(epochs=THESIS_EPOCHS[family], learning_rate=1e-4, batch_size=128, momentum=0.9, nesterov=True)


def snip_protocol(dataset: str, iterations: int | None = None, weight_decay_mode: str = "decoupled"):
    """SNIP Section 5: SGD momentum 0.9, wd 5e-4, lr 0.1 ×0.1 every 25k (MNIST) / 30k (CIFAR)
    iterations, batch 100 / 128.  The paper gives no total; we train for 4 drops' worth.

    Weight decay: "decoupled" (Keras' option, outside the momentum) by default, because it is
    what every Section 5 result here was trained with before issue 24, and a preset must not
    change its results silently.  SNIP's own code couples it (an L2 term 0.00025·Σw² over the
    masked weights and biases, so 5e-4·w passes through TF 1's MomentumOptimizer), ten times
    stronger under momentum 0.9: ``--weight-decay-mode coupled`` alone, or the ``public``
    preset, trains that way."""
    from dropnet_tf.foresight.experiment import TrainingProtocol

    mnist = "mnist" in dataset
    step = 25_000 if mnist else 30_000
    batch = 100 if mnist else 128
    drops = tuple((step * k, 0.1) for k in (1, 2, 3))
    return TrainingProtocol(epochs=_epochs_of(iterations or 4 * step, batch, dataset), learning_rate=0.1,
                            batch_size=batch, momentum=0.9, nesterov=False, weight_decay=5e-4, learning_rate_drops=drops,
                            weight_decay_mode=weight_decay_mode)


def _epochs_of(iterations: int, batch: int, dataset: str) -> int:
    """Whole epochs nearest to ``iterations`` steps of ``batch`` on SNIP's 90 % training split."""
    train_size = 54_000 if "mnist" in dataset else 45_000
    return max(1, round(iterations * batch / train_size))


def snip_code_protocol(dataset: str, weight_decay_mode: str = "decoupled"):
    """The defaults of SNIP's public code (github.com/namhoonlee/snip-public, ``main.py`` and
    ``model.py``): plain SGD (``--optimizer sgd``), constant lr 0.1, batch 100, an L2 term
    0.00025·Σw² on weights and biases (the same update as weight decay 5e-4 on plain SGD),
    10k iterations (``--train_iterations``).  The paper's Section 5 states momentum 0.9 and
    drops every 25k iterations instead; with that protocol the dense LeNet-5-Caffe diverges
    here (docs/foresight.md), so ``--snip-protocol code`` is offered as the other reading.

    Weight decay: without momentum the coupled and decoupled modes give the same update
    (``w - lr·(g + wd·w)`` either way), so the default "decoupled" is the code's own."""
    from dropnet_tf.foresight.experiment import TrainingProtocol

    return TrainingProtocol(epochs=_epochs_of(10_000, 100, dataset), learning_rate=0.1, batch_size=100, momentum=0.0,
                            nesterov=False, weight_decay=5e-4, weight_decay_mode=weight_decay_mode)


#: ``--snip-protocol``: SNIP's Section 5 as written (``paper``), its public code's defaults
#: (``code``: plain SGD, 10k iterations), or Section 5's schedule run the way the public code
#: runs everything else (``public``: every option of :data:`PUBLIC_CODE_OPTIONS` at the
#: code's value).
SNIP_PROTOCOLS = ("paper", "code", "public")

#: How SNIP's public code (namhoonlee/snip-public) runs an experiment where this library did
#: otherwise before issue 24: option → (today's value, the public code's value).  Each is a
#: command-line option of the SNIP scripts (``--weight-decay-mode``, ``--inputs``,
#: ``--weights-init``, ``--train-draw``, ``--biases``), so that each difference can be run
#: alone; ``--snip-protocol public`` sets them all.
#:
#: * ``weight_decay_mode``: ``model.py`` adds ``0.00025 * Σ w²`` over ``w_final`` (every
#:   weight *and bias*, masked) to the loss, so 5e-4·w passes through the momentum
#:   (:data:`dropnet_tf.engines.config.WEIGHT_DECAY_MODES`).
#: * ``inputs``: ``mnist.py`` divides by 255, then subtracts the mean and divides by the
#:   standard deviation of all 60k training images (two scalars, before its 10 %
#:   validation split); here "scaled" is /255 only.
#: * ``weights_init``: ``network.py``'s ``'vs'`` is ``tf.variance_scaling_initializer()`` at
#:   its defaults (scale 1, fan_in, truncated normal: LeCun normal), not Glorot; biases zero.
#: * ``train_draw``: the network holds two sets of weights, ``weights_bp`` (scored: the mask
#:   is computed on them) and ``weights_ap`` (trained under the mask), drawn independently;
#:   "fresh" scores one draw and trains another, "same" trains the scored draw.
#: * ``biases``: the mask covers every key containing 'w' or 'b', so biases are scored and
#:   selected with the weights (zero biases score |g·0| = 0 and are all removed by SNIP) and
#:   counted in n; the dense reference keeps them.
#:
#: Reporting is not an option: every SNIP-protocol record holds both numbers, the final
#: iterate's (``top1``) and the public code's (``test.py``: a checkpoint every 1,000
#: iterations, ``tf.train.Saver``'s default of the last five kept, the best test accuracy
#: of those: ``top1_best_of_last5``, with ``checkpoints``).
PUBLIC_CODE_OPTIONS = {
    "weight_decay_mode": ("decoupled", "coupled"),
    "inputs": ("scaled", "standardised"),
    "weights_init": ("glorot_uniform", "tf1_variance_scaling"),
    "train_draw": ("same", "fresh"),
    "biases": ("kept", "pruned"),
}

#: The part of an output name that says an option is at the public code's value.
PUBLIC_CODE_TOKENS = {"weight_decay_mode": "wdcoupled", "inputs": "std", "weights_init": "tf1vs",
                      "train_draw": "fresh", "biases": "biasespruned"}

#: The public code's test-time checkpoints (``--save_interval`` 1000, ``Saver`` keeps 5).
CHECKPOINT_INTERVAL, CHECKPOINTS_KEPT = 1000, 5


def snip_options(exp: ForesightExperiment, args) -> dict:
    """The value of every :data:`PUBLIC_CODE_OPTIONS` option for this command: what the
    command line sets, else the public code's under ``--snip-protocol public``, else
    today's (for ``weights_init``: the experiment's own init)."""
    preset_public = getattr(args, "snip_protocol", "paper") == "public"
    found = {}
    for name, (today, public) in _todays(exp).items():
        value = getattr(args, name, None)
        found[name] = value if value is not None else (public if preset_public else today)
    return found


def _todays(exp: ForesightExperiment) -> dict:
    """:data:`PUBLIC_CODE_OPTIONS` with this experiment's own initialisation as today's."""
    options = dict(PUBLIC_CODE_OPTIONS)
    if exp.init:
        options["weights_init"] = (exp.init, PUBLIC_CODE_OPTIONS["weights_init"][1])
    return options


def snip_suffix(exp: ForesightExperiment, args) -> str:
    """The part of the output name that says how a SNIP run differs from Section 5 as this
    library ran it before issue 24: ``_snipcode`` for the code's schedule, then one token per
    option at the public code's value (:data:`PUBLIC_CODE_TOKENS`, in the order of
    :data:`PUBLIC_CODE_OPTIONS`); Section 5's schedule with every option at the public
    code's value is ``_snippublic``, however it was asked for.  The name follows the
    combination, not the flags, so two combinations never share a results file."""
    if exp.protocol != "snip":
        return ""
    options = snip_options(exp, args)
    changed = [name for name, (today, _) in _todays(exp).items() if options[name] != today]
    if snip_schedule(args) == "paper" and len(changed) == len(PUBLIC_CODE_OPTIONS):
        return "_snippublic"
    return ("_snipcode" if snip_schedule(args) == "code" else "") + "".join(f"_{PUBLIC_CODE_TOKENS[n]}" for n in changed)


def snip_schedule(args) -> str:
    """The optimiser schedule of ``--snip-protocol``: "code", or Section 5's ("paper") for
    ``paper`` and ``public``."""
    return "code" if getattr(args, "snip_protocol", "paper") == "code" else "paper"

#: ``--selection`` (the thesis' scripts): dropnet_tf.core.selection.WEIGHT_SELECTIONS, written
#: out so that the scripts load without TensorFlow.  ``exact`` keeps round(n/r) weights, ties
#: at random; ``thesis`` keeps every weight tied at the threshold (its under-pruning, Fig. 4.13).
SELECTIONS = ("exact", "thesis")


def thesis_init(method: str) -> str:
    """Thesis 4.1.3: PyTorch's default init for every method, Xavier for SNIP only."""
    return "glorot_uniform" if method == "snip" else "pytorch_default"


@dataclass(frozen=True)
class Quick(kit.Scale):
    """The quick scale of one experiment (documented in paper_experiments/README.md):
    the kit's scale with its defaults, plus epochs and an optional learning rate."""

    name: str = "quick"
    seeds: tuple = (0, 1)
    max_train: int | None = 5000
    max_test: int | None = 2000
    epochs: int = 3
    learning_rate: float | None = None


@dataclass(frozen=True)
class ForesightExperiment:
    script: str
    source: str  # "thesis 4.2.3", "SNIP Table 1", ...
    title: str
    slug: str
    model: str
    dataset: str
    methods: tuple
    compressions: tuple
    figures: tuple  # (label, y) pairs: y in top1, top5, compression_error
    table_ratios: tuple = ()
    table_label: str = ""
    paper_seeds: tuple = (42,)
    protocol: str = "thesis"  # or "snip"
    scoring_batch: int | None = None
    quick: Quick = field(default_factory=Quick)
    method_options: tuple = ()
    random_labels: bool = False
    init: str | None = None  # fixed init for every method (SNIP experiments)
    model_choices: tuple = ()  # other models the script accepts with --model (SNIP Table 2)
    model_compressions: tuple = ()  # (model, ratios) pairs overriding `compressions` per model


def build_parser(exp: ForesightExperiment):
    """The kit's parser with the foresight options: --model, --methods, --compressions, --epochs."""

    def checks(args):
        unknown = sorted(set(args.methods or ()) - set(exp.methods))
        return f"--methods {unknown} not in this experiment's methods {list(exp.methods)}" if unknown else None

    return kit.build_parser(
        f"{exp.source}: {exp.title}",
        dataset=exp.dataset,
        out=os.path.join(ROOT, "runs", "foresight"),
        figures=os.path.join(ROOT, "figures", "foresight"),
        helps={"max_train": "cap on training examples (quick scale default from the script)",
               "figures": "figure directory",
               "tensorboard": "also write TensorBoard scalars under DIR: each run's epochs (loss, top1, top5) in "
               "DIR/<experiment>/<method>_r<r>_seed<k>/, and its top1, top5 and empirical compression against r "
               "(step = r rounded) in DIR/<experiment>/summary/<method>_seed<k>/; view with: tensorboard --logdir DIR"},
        shared=kit.SHARED + ("tensorboard",),
        options=(
            option("--model", choices=(exp.model,) + tuple(exp.model_choices), default=exp.model,
                   help="architecture (default: %(default)s)"),
            option("--methods", nargs="+", help=f"subset of {', '.join(exp.methods)}"),
            option("--compressions", type=float, nargs="+", help="override the compression ratios r"),
            option("--epochs", type=int, help="override the training epochs"),
        ) + ((option("--snip-protocol", choices=SNIP_PROTOCOLS, default="paper",
                      help="paper (default): SNIP Section 5, SGD momentum 0.9, lr 0.1 x0.1 every 25k "
                           "iterations, 100k iterations; code: the defaults of SNIP's public code, plain "
                           "SGD, constant lr 0.1, 10k iterations (outputs named ..._snipcode); public: "
                           "Section 5's schedule with every option below at the public code's value "
                           "(outputs named ..._snippublic)"),
              option("--weight-decay-mode", choices=("decoupled", "coupled"),
                     help="decoupled: Keras' SGD(weight_decay), outside the momentum (default, except under "
                          "public); coupled: g + wd*w through the momentum, as SNIP's code (name token wdcoupled)"),
              option("--inputs", choices=PUBLIC_CODE_OPTIONS["inputs"],
                     help="scaled: pixels / 255 (default, except under public); standardised: then minus the "
                          "mean and over the std of all training images, as SNIP's code (token std)"),
              option("--weights-init", choices=PUBLIC_CODE_OPTIONS["weights_init"],
                     help="glorot_uniform: Section 5's VS-X (default, except under public); "
                          "tf1_variance_scaling: SNIP's code, TF 1's variance_scaling_initializer() "
                          "(LeCun truncated normal) (token tf1vs)"),
              option("--train-draw", choices=PUBLIC_CODE_OPTIONS["train_draw"],
                     help="same: train the weights the mask was scored on (default, except under public); "
                          "fresh: score one draw, train another under the mask, as SNIP's code (token fresh)"),
              option("--biases", choices=PUBLIC_CODE_OPTIONS["biases"],
                     help="kept: biases are not pruned (default, except under public); pruned: biases are "
                          "scored, selected and counted with the weights, as SNIP's code (token biasespruned)"),
              )
             if exp.protocol == "snip" else ())
        + ((option("--selection", choices=SELECTIONS, default="exact",
                   help="how scores tied at the threshold fall: exact (default) keeps exactly round(n/r) "
                        "weights, ties at random; thesis keeps every weight tied with the last one kept "
                        "(pruned only when strictly below it), the thesis' rule behind its under-pruning of "
                        "GraSP and OBD (Fig. 4.13); outputs named ..._thesisties"),)
           if exp.protocol == "thesis" else ()),
        checks=(checks,),
    )


def parse_args(exp: ForesightExperiment, argv=None):
    return build_parser(exp).parse_args(argv)


def prepare_data(exp: ForesightExperiment, args):
    data = load_data(args.dataset, data_dir=args.data_dir)
    if args.model.startswith(("lstm", "gru")):
        # Row-by-row sequential MNIST (SNIP Section 5.3): 28 time steps of 28 pixels.
        rows = lambda x: x.reshape(len(x), x.shape[1], -1)  # noqa: E731
        data = dataclasses.replace(data, x_train=rows(data.x_train), x_val=rows(data.x_val), x_test=rows(data.x_test))
    if exp.protocol == "snip" and snip_options(exp, args)["inputs"] == "standardised":
        data = standardise(data)
    if args.scale == "quick":
        data = data.subset(max_train=args.max_train or exp.quick.max_train, max_test=exp.quick.max_test, seed=0)
    elif args.max_train:
        data = data.subset(max_train=args.max_train, seed=0)
    return data


def standardise(data):
    """SNIP's public code's inputs (``mnist.py``): pixels / 255 (as loaded), then minus one mean
    and over one standard deviation, both of every training image (all pixels of the
    official training set: the training and validation splits here, as the code computes
    them before its own validation split), applied to every split."""
    train = np.concatenate([np.asarray(data.x_train, np.float32).ravel(), np.asarray(data.x_val, np.float32).ravel()])
    mean, std = float(np.mean(train)), float(np.std(train))
    if not std > 0:
        raise ValueError(f"Cannot standardise inputs whose training images have standard deviation {std!r}.")

    def scaled(x):
        return ((np.asarray(x, np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)

    return dataclasses.replace(data, x_train=scaled(data.x_train), x_val=scaled(data.x_val),
                               x_test=scaled(data.x_test))


def resolve(exp: ForesightExperiment, args):
    """(protocol, seeds, methods, ratios) for this scale and these options."""
    if exp.protocol == "snip":
        mode = snip_options(exp, args)["weight_decay_mode"]
        code = snip_schedule(args) == "code"
        protocol = snip_code_protocol(args.dataset, mode) if code else snip_protocol(args.dataset, weight_decay_mode=mode)
        scoring = exp.scoring_batch or protocol.batch_size
    else:
        protocol = thesis_protocol(args.dataset)
        scoring = exp.scoring_batch or 128
    seeds = exp.paper_seeds
    if args.scale == "quick":
        seeds = exp.quick.seeds
        changes = {"epochs": exp.quick.epochs, "learning_rate_drops": ()}
        if exp.quick.learning_rate is not None:
            changes["learning_rate"] = exp.quick.learning_rate
        protocol = dataclasses.replace(protocol, **changes)
    if args.epochs is not None:
        protocol = dataclasses.replace(protocol, epochs=args.epochs)
    seeds = tuple(args.seeds) if args.seeds else tuple(seeds)
    methods = tuple(args.methods) if args.methods else exp.methods
    ratios = dict(exp.model_compressions).get(args.model, exp.compressions)
    ratios = tuple(args.compressions) if args.compressions else tuple(ratios)
    return protocol, seeds, methods, ratios, scoring


def label(method: str) -> str:
    from dropnet_tf.foresight import THESIS_LABELS

    return THESIS_LABELS.get(method, {REFERENCE: "Unpruned", "tfmot_gmp": "TFMOT gradual magnitude"}.get(method, method))


def stem(exp: ForesightExperiment, args) -> str:
    """The outputs' common name.  A run made another way (SNIP's code defaults or any of its
    public-code options, :func:`snip_suffix`; at paper scale fewer training examples or
    epochs) says so in its name, e.g. ``..._mnist_paper_snipcode``,
    ``..._mnist_paper_wdcoupled_std`` or ``..._paper_train5000_epochs20``, and the thesis' tie
    rule ``..._paper_thesisties``, so that it never shares a results file with, or is
    mistaken for, a run at the paper's own protocol."""
    model = "" if args.model == exp.model else f"_{args.model}"
    # The SNIP protocol and options at every scale: each changes the training (snip_suffix).
    scale = args.scale + snip_suffix(exp, args)
    if getattr(args, "selection", "exact") == "thesis":
        scale += "_thesisties"
    if args.scale == "paper":
        if args.max_train:
            scale += f"_train{args.max_train}"
        if args.epochs is not None:
            scale += f"_epochs{args.epochs}"
    return f"{exp.script}_{exp.slug}{model}_{args.dataset}_{scale}"


def summarise(records: list[dict], y: str) -> dict[str, list[tuple[float, float, float, int]]]:
    """{method: [(r, mean, std, n)]} with the unpruned reference at r = 1 for every method."""
    by = {}
    for record in records:
        if record.get("diverged"):  # stopped when its loss blew up: chance, not a result (see write_table)
            continue
        by.setdefault(record["method"], {}).setdefault(float(record["compression"]), []).append(record[y])
    reference = by.pop(REFERENCE, {})
    out = {}
    for method, points in by.items():
        merged = {**({1.0: reference[1.0]} if 1.0 in reference and y != "compression_error" else {}), **points}
        out[method] = [(r, float(np.mean(v)), float(np.std(v)), len(v)) for r, v in sorted(merged.items())]
    return out


def draw_curves(records, y: str, title: str, caption: str, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = summarise(records, y)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = "os^vD<>pPhX*d1"
    for index, (method, points) in enumerate(sorted(curves.items(), key=lambda kv: label(kv[0]))):
        r = [p[0] for p in points]
        mean = np.array([p[1] for p in points])
        std = np.array([p[2] for p in points])
        style = "--" if method.startswith("layer_") else "-"
        # tab20 gives every one of the 15 curves its own colour (the default cycle has 10).
        color = plt.cm.tab20(index % 20)
        ax.plot(r, mean, style, marker=markers[index % len(markers)], ms=4, label=label(method), color=color)
        if any(p[3] > 1 for p in points):
            low, high = mean - std, mean + std
            if y in ("top1", "top5"):  # an accuracy's band stays inside [0, 1]
                low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
            ax.fill_between(r, low, high, alpha=0.12, color=color)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio r (keep 1/r of the prunable weights)")
    ax.set_ylabel({"top1": "top-1 test accuracy", "top5": "top-5 test accuracy",
                   "compression_error": "compression error (r − r_e) / r"}.get(y, y))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if curves:  # a grid of the reference alone has no curve to label
        ax.legend(fontsize=7, ncol=2, loc="best")
    fig.text(0.01, -0.02, caption, fontsize=7, va="top", wrap=True)
    path = kit.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def write_table(exp, records, ratios, path_md: str) -> str:
    """Markdown table like thesis Tables 4.2-4.5: top-5 / top-1 (%) per method at each r."""
    lines = [f"| Method | " + " | ".join(f"r={r:g} top-5 | r={r:g} top-1 | r={r:g} r_e" for r in ratios) + " |",
             "|---|" + "---|" * (3 * len(ratios))]
    methods = []
    for record in records:
        if record["method"] not in methods and record["method"] != REFERENCE:
            methods.append(record["method"])
    for method in methods:
        cells = []
        for r in ratios:
            rows = [x for x in records if x["method"] == method and float(x["compression"]) == float(r)]
            diverged = [x for x in rows if x.get("diverged")]
            rows = [x for x in rows if not x.get("diverged")]
            if diverged and not rows:
                cells += [f"diverged ×{len(diverged)}", "–", "–"]
            elif rows:
                cells += [f"{100 * np.mean([x['top5'] for x in rows]):.2f}", f"{100 * np.mean([x['top1'] for x in rows]):.2f}",
                          f"{np.mean([x['empirical_ratio'] for x in rows]):.1f}"]
            else:
                cells += ["–", "–", "–"]
        lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
    best = [x for x in records if x.get("top1_best_of_last5") is not None and not x.get("diverged")]
    if best:
        # SNIP's public code's number (test.py): the best test top-1 of the last five
        # 1,000-iteration checkpoints, beside the final iterate's above.
        lines += ["", "Top-1 (%) of the best of the last five 1,000-iteration checkpoints (SNIP's public code's "
                      "number; the table above is the final iterate's):", "",
                  "| Method | " + " | ".join(f"r={r:g}" for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
        for method in methods:
            cells = []
            for r in ratios:
                values = [x["top1_best_of_last5"] for x in best
                          if x["method"] == method and float(x["compression"]) == float(r)]
                cells.append(f"{100 * np.mean(values):.2f}" if values else "–")
            lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
        values = [x["top1_best_of_last5"] for x in best if x["method"] == REFERENCE]
        if values:
            lines.append(f"\nUnpruned, best of the last five checkpoints: top-1 {100 * np.mean(values):.2f} %.")
    reference = [x for x in records if x["method"] == REFERENCE and not x.get("diverged")]
    diverged = sum(1 for x in records if x["method"] == REFERENCE and x.get("diverged"))
    if reference:
        lines.append(f"\nUnpruned: top-5 {100 * np.mean([x['top5'] for x in reference]):.2f} %, "
                     f"top-1 {100 * np.mean([x['top1'] for x in reference]):.2f} %"
                     + (f" ({diverged} diverged runs left out)." if diverged else "."))
    elif diverged:
        lines.append(f"\nUnpruned: diverged in all {diverged} runs (training stopped when its loss blew up).")
    return kit.write_markdown(path_md, lines)


def epoch_lines(args, experiment: str) -> list:
    """Keras callbacks of ``--verbose 2``: a line per epoch of each run's training (loss, top-1, seconds)."""
    if getattr(args, "verbose", 1) < 2:
        return []
    from dropnet_tf.harness.progress import EpochLine

    return [EpochLine(f"{experiment} epoch", keys=("loss", "top1"))]


def grid_eta(args, plan, cells):
    """The ETA of a script's whole grid (issue 16): a :class:`dropnet_tf.harness.eta.RunsETA` over
    ``cells`` (:func:`dropnet_tf.foresight.experiment.grid_cells` of every
    ``run_foresight_grid`` call on the results file, in order), this shard's only; False
    with ``--verbose 0`` or when nothing runs (``--merge``)."""
    if getattr(args, "verbose", 1) < 1 or (plan.order is not None and not plan.order.run):
        return False
    from dropnet_tf.harness.eta import RunsETA

    return RunsETA([cell for position, cell in enumerate(cells) if plan.shard is None or plan.shard.owns(position)],
                   plan.results)


def grid_size(methods, ratios, seeds) -> int:
    """Runs in a grid: the unpruned reference once per seed, every other method per r and seed."""
    return sum(1 if method == REFERENCE else len(ratios) for method in methods) * len(seeds)


def count_records(results_path: str, seeds=None, methods=None, ratios=None, **key) -> int:
    """Records in a results file matching ``key`` (each one a finished run), of these
    seeds, methods and compression ratios when given (the reference counts at any r)."""
    if not os.path.exists(results_path):
        return 0
    from dropnet_tf.harness.results import ResultsFile

    def wanted(record):
        return ((seeds is None or record.get("seed") in seeds)
                and (methods is None or record.get("method") in methods)
                and (ratios is None or record.get("method") == REFERENCE
                     or float(record.get("compression", 0)) in {float(r) for r in ratios}))

    return sum(1 for record in ResultsFile(results_path).records(**key) if wanted(record))


def shard_plan(exp: ForesightExperiment, args, results_path: str):
    """What ``--shard I/N`` / ``--merge`` make of this script's grid (:mod:`paper_experiments.kit.sharding`)."""
    from paper_experiments.kit import sharding

    settings = sharding.settings_of(args, script=exp.script)
    # The public-code options (issue 24) left unset enter no manifest, so that shards run
    # before they existed still merge with a command that does not set them.
    settings = {k: v for k, v in settings.items() if not (k in PUBLIC_CODE_OPTIONS and v is None)}
    return sharding.plan(args, results_path, settings)


@command
def main(exp: ForesightExperiment, argv=None) -> dict:
    args = parse_args(exp, argv)
    load_tensorflow()
    strategy = kit.strategy_of(args)  # made before the first model
    from dropnet_tf.foresight.experiment import grid_cells, run_foresight_grid

    protocol, seeds, methods, ratios, scoring = resolve(exp, args)
    data = prepare_data(exp, args)
    os.makedirs(args.out, exist_ok=True)
    name = stem(exp, args)
    results_path = os.path.join(args.out, f"{name}.jsonl")
    plan = shard_plan(exp, args, results_path)
    model_kwargs = {"input_shape": data.input_shape, "num_classes": data.num_classes}
    options = snip_options(exp, args) if exp.protocol == "snip" else None
    build, init_for = _model_builder(exp, args, options, model_kwargs)
    external = {}
    if "tfmot_gmp" in methods:
        external["tfmot_gmp"] = tfmot_runner(args, data, model_kwargs, protocol, name)
    experiment = exp.slug if args.model == exp.model else f"{exp.slug}_{args.model}"
    progress.start(plan.results, lambda: count_records(plan.results, seeds, methods, ratios, experiment=experiment),
                   total=plan.share(grid_size(methods, ratios, seeds)),
                   describe=f"{len(methods)} methods, r = {', '.join(f'{r:g}' for r in ratios)}, {len(seeds)} seeds",
                   partial_note="the run in progress starts over", redraw="redrawing the figures and tables")
    started = time.perf_counter()
    records = run_foresight_grid(
        plan.results, experiment, build, data, methods, ratios, seeds, protocol,
        scoring_batch_size=scoring, init_for=init_for, method_options=dict(exp.method_options),
        random_labels=exp.random_labels, external=external,
        extra={"model": args.model, "dataset": args.dataset, "scale": args.scale,
               **({"snip_protocol": args.snip_protocol, "snip_options": options} if options else {})},
        train_draw=options["train_draw"] if options else "same",
        # SNIP's code reports the best of its last five 1,000-iteration checkpoints; the
        # per-step callback needs Model.fit (one device)
        checkpoints=(CHECKPOINT_INTERVAL, CHECKPOINTS_KEPT) if options and strategy is None else None,
        log=None if args.quiet else (lambda line: print(line, flush=True)),
        callbacks=epoch_lines(args, experiment), order=plan.order,
        strategy=strategy, selection=getattr(args, "selection", "exact"),
        # issue 16: the grid's ETA on each run's line; --tensorboard DIR
        eta=grid_eta(args, plan, grid_cells(experiment, methods, ratios, seeds)), tensorboard=args.tensorboard,
    )
    if plan.finish():  # a shard holds part of the grid: the figures and tables come with --merge
        return {"shard": str(plan.shard), "results": plan.results}
    os.makedirs(args.figures, exist_ok=True)  # not before: a refused merge or a shard draws nothing
    seconds = time.perf_counter() - started
    written = outputs(exp, args, records, protocol, seeds, data, name)
    summary = {
        "script": exp.script, "source": exp.source, "model": args.model, "dataset": args.dataset,
        "scale": args.scale, "seeds": list(seeds), "methods": list(methods), "compressions": list(ratios),
        "snip_protocol": getattr(args, "snip_protocol", None), "snip_options": options,
        "selection": getattr(args, "selection", "exact"),
        "max_train": args.max_train, "epochs_override": args.epochs, **_record_totals(records),
        "protocol": protocol.as_dict(), "train_examples": int(len(data.y_train)), "test_examples": int(len(data.y_test)),
        "seconds_this_call": seconds, "outputs": written, **kit.merge_summary(),
    }
    kit.write_json(os.path.join(args.figures, f"{name}.json"), summary)
    return summary


def _model_builder(exp, args, options, model_kwargs):
    """``(build(seed, init), init_for(method))`` for the grid: SNIP's public-code options
    (biases in the pruned set, TF 1's initialiser) where they are set."""
    from dropnet_tf.models.foresight import build_foresight_model

    prune_biases = bool(options) and options["biases"] == "pruned"

    def build(seed, init):
        if prune_biases:  # SNIP's code: the biases are in the pruned set (masked like the weights)
            from dropnet_tf.foresight import add_weight_masks

            return add_weight_masks(build_foresight_model(args.model, init=init, seed=seed, masked=False,
                                                          **model_kwargs), prune_bias=True)
        return build_foresight_model(args.model, init=init, seed=seed, **model_kwargs)

    init_for = (lambda method: exp.init) if exp.init else thesis_init
    if options:
        init_for = lambda method: options["weights_init"]  # noqa: E731
    return build, init_for


def _record_totals(records) -> dict:
    return {
        "runs": len(records),
        "diverged_runs": sum(1 for record in records if record.get("diverged")),
        "compute_seconds": float(sum(r.get("train_seconds", 0) + r.get("scoring_seconds", 0) for r in records)),
    }


def tfmot_runner(args, data, model_kwargs, protocol, name):
    """The TFMOT gradual-magnitude baseline on the same data and protocol, in a tf-keras process.

    Weight decay: the baseline takes the grid's protocol as its optimizer spec, weight-decay
    mode included, so it trains the way the methods it is compared with do (decoupled under
    ``paper``, coupled under ``public`` or ``--weight-decay-mode coupled``).  Its inputs are
    the grid's (standardised with ``--inputs standardised``); its network is TFMOT's own
    build of the model (Glorot, biases not pruned), whatever ``--weights-init`` and
    ``--biases`` say: those options are about how SNIP's code prunes at initialisation."""
    from dropnet_tf.foresight.tfmot.child import run_in_tf_keras, save_data_npz

    npz = os.path.join(args.out, f"{name}_data.npz")

    def run(seed, compression):
        if not os.path.exists(npz):
            save_data_npz(npz, data)
        out_json = os.path.join(args.out, f"{name}_tfmot_r{compression:g}_seed{seed}.json")
        result = run_in_tf_keras(args.model, model_kwargs, npz, 1.0 - 1.0 / compression, protocol.epochs,
                                 out_json=out_json, optimizer=protocol, batch_size=protocol.batch_size, seed=seed)
        result["compression_error"] = (compression - result["empirical_ratio"]) / compression
        result.setdefault("collapsed_layers", [])
        return result

    return run


#: The options a caption's regenerate line repeats when set (a cut run says it is one).
CAPTION_OPTIONS = (("data_dir", None, "DIR"), ("methods", None), ("compressions", None), ("seeds", None),
                   ("epochs", None), ("max_train", None), ("snip_protocol", "paper"), ("weight_decay_mode", None),
                   ("inputs", None), ("weights_init", None), ("train_draw", None), ("biases", None),
                   ("selection", "exact"))

SELECTION_CAPTIONS = {
    "exact": "selection: exact, round(n/r) weights kept, ties at random",
    "thesis": "selection: thesis, every weight tied at the threshold kept (pruned only when strictly below it)",
}


def outputs(exp, args, records, protocol, seeds, data, name) -> list[str]:
    caption = (
        f"{exp.source}, {args.model} on {args.dataset} ({args.scale} scale: {len(data.y_train)} training / "
        f"{len(data.y_test)} test examples, {protocol.epochs} epochs, lr {protocol.learning_rate:g}, "
        f"batch {protocol.batch_size}, seeds {list(seeds)}; mean ± std over seeds; "
        f"{SELECTION_CAPTIONS[getattr(args, 'selection', 'exact')]}). "
        f"Regenerate: {kit.command_line('foresight', exp.script, args, CAPTION_OPTIONS)}{kit.partial_caption()}"
    )
    written = []
    for figure_label, y in exp.figures:
        path = os.path.join(args.figures, f"{name}_{figure_label}_{y}.png")
        rule = ", thesis tie rule" if getattr(args, "selection", "exact") == "thesis" else ""
        title = f"{exp.source}: {exp.title} on {args.dataset} ({args.scale} scale{rule})"
        written.append(draw_curves(records, y, title, caption, path))
    csv_rows = [{k: v for k, v in r.items()
                 if k not in ("per_weight_density", "train_loss", "train_top1", "protocol", "checkpoints")}
                for r in records]
    for row, record in zip(csv_rows, records):
        row["collapsed_layers"] = ";".join(row["collapsed_layers"])
        if isinstance(row.get("snip_options"), dict):  # one cell: name=value;...
            row["snip_options"] = ";".join(f"{k}={v}" for k, v in row["snip_options"].items())
        if "protocol" in record:  # how weight decay acted (issue 24), a column of its own
            row["weight_decay_mode"] = record["protocol"].get("weight_decay_mode", "decoupled")
        if record.get("train_top1"):  # underfitting or overfitting? (the last epoch's running top-1)
            row["train_top1_last_epoch"] = record["train_top1"][-1]
    written.append(kit.write_csv(os.path.join(args.figures, f"{name}.csv"), csv_rows))
    if exp.table_label:
        table_ratios = exp.table_ratios or tuple(sorted({float(r["compression"]) for r in records if r["method"] != REFERENCE}))
        written.append(write_table(exp, records, table_ratios, os.path.join(args.figures, f"{name}_{exp.table_label}.md")))
    return [os.path.relpath(p, ROOT) for p in written]
