"""Shared protocol of the LayerPrune scripts: scales, CLI, baselines, the two kinds of pruning.

Each numbered script in this folder reproduces one table or figure of LayerPrune's
supplement (Elkerdawy et al., ACCV 2020; ``shared/papers/layerprune_supplementary.txt``).
They share what is here:

* a **baseline**: the network trained from scratch once per (model, dataset, scale, seed)
  and saved as ``.keras`` (atomically), so every script and every rerun starts from it;
* **filter pruning**: structured masks on the prunable convolutions
  (:func:`dropnet_tf.add_masks`), a criterion of :mod:`dropnet_tf.layerprune.criteria`,
  one-shot or iterative (:func:`dropnet_tf.layerprune.prune_filters`), then
  :func:`dropnet_tf.compact` so that the pruned network is physically smaller;
* **layer pruning**: blocks ranked by imprinting (or a filter criterion's block mean) and
  replaced by the identity (:func:`dropnet_tf.layerprune.remove_blocks`);
* **fine-tuning** (supplement 1.1: 30 epochs, SGD, learning rate 1e-3) and test accuracy;
* **latency**: median of repeats after warm-up (:func:`dropnet_tf.compaction.measure_latency`).

Every finished arm is one JSON line in ``--out`` (appended atomically); a rerun skips the
arms already there, so an interrupted script resumes.

Scales
------
``paper``  ResNet-56 / full-width VGG19-BN, the whole dataset, baselines trained 160 epochs
           (SGD 0.1, momentum 0.9, weight decay 5e-4, ×0.1 at epochs 81 and 122), fine-tuning
           30 epochs at 1e-3: the supplement's protocol.
``quick``  ResNet-20 / VGG19-BN at 1/8 width on 2000 training and 1000 test images, a short
           baseline and 2 fine-tuning epochs: the same arms on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from paper_experiments import kit
from paper_experiments.kit import (  # noqa: F401 (command: for the scripts)
    DATASET_CHOICES, SCALES, UserError, command, load_data, load_tensorflow, option, progress,
)

#: The repository root: the default --out and --figures are under it.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# dropnet_tf (and TensorFlow) is imported inside the functions that use it, once the command
# line is parsed, so that --help answers at once (paper_experiments/kit).

#: dropnet_tf.layerprune.FILTER_CRITERIA's names, written out so that parsing the command
#: line needs no TensorFlow (tests/test_entry_points.py checks them).
FILTER_CRITERIA = ("bn_scale", "feature_maps", "geometric_median", "l1_norm", "l2_norm", "mean_activation", "taylor")

#: The supplement's names for the filter criteria (Table 1 rows) and ours.
CRITERION_LABELS = {
    "l1_norm": "Weight Norm",
    "feature_maps": "Feature Maps",
    "taylor": "Taylor",
    "bn_scale": "Batchnorm",
    "geometric_median": "Median",
}


@dataclass(frozen=True)
class Scale(kit.Scale):
    """One scale of the LayerPrune protocol (see the module docstring): the kit's scale plus
    the supplement's widths, training schedules and latency measurement."""

    resnet_depth: int = 56
    vgg_width: float = 1.0
    baseline_epochs: int = 160
    baseline_lr: float = 0.1
    baseline_drops: tuple = (81, 122)  # epochs after which the learning rate is multiplied by 0.1
    finetune_epochs: int = 30
    finetune_lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 5e-4
    scoring_samples: int = 2048  # training images the criteria and imprinting see
    latency_batch: int = 64
    latency_repeats: int = 20


SCALE = {
    "paper": Scale(name="paper", resnet_depth=56, vgg_width=1.0, max_train=None, max_test=None, baseline_epochs=160,
                   baseline_lr=0.1, baseline_drops=(81, 122), finetune_epochs=30, seeds=(0,)),
    "quick": Scale(name="quick", resnet_depth=20, vgg_width=0.125, max_train=2000, max_test=1000, baseline_epochs=8,
                   baseline_lr=0.05, baseline_drops=(6,), finetune_epochs=2, scoring_samples=512, seeds=(0,),
                   latency_repeats=15),
}


def build_parser(description: str, default_dataset: str, extra=()):
    """The kit's parser with LayerPrune's options: epochs overrides, --criteria, --steps."""
    return kit.build_parser(
        description,
        dataset=default_dataset,
        out=os.path.join(ROOT, "runs", "layerprune"),
        figures=os.path.join(ROOT, "figures", "layerprune"),
        helps={"max_train": "cap on training images (quick default 2000)", "figures": "figure/table directory",
               "tensorboard": "also write TensorBoard scalars under DIR/<script>_<dataset>_<scale>/, one folder per "
               "arm (e.g. filter_l1_norm_iterative_ratio0.2_seed0/): its fine-tuning's epochs (loss, top1) and its "
               "table's numbers (arm/accuracy, arm/latency_ratio, ...); the baseline's training in "
               "baseline_training_seed<k>/; view with: tensorboard --logdir DIR"},
        shared=kit.SHARED + ("tensorboard",),
        options=(
            option("--finetune-epochs", type=int, help="override the fine-tuning epochs"),
            option("--baseline-epochs", type=int, help="override the baseline's training epochs"),
            option("--criteria", nargs="+", choices=sorted(FILTER_CRITERIA),
                   help="only these filter criteria (default: the script's)"),
            option("--steps", type=int, default=10,
                   help="steps of iterative filter pruning, each re-scoring the filters (supplement: 10, of 10 %% each)"),
        ) + tuple(extra),
    )


def parse_args(description: str, default_dataset: str, argv=None, extra=()):
    return build_parser(description, default_dataset, extra).parse_args(argv)


def selected(args, criteria):
    """The script's criteria (a dict name -> label, or a tuple), cut down to ``--criteria``."""
    if not args.criteria:
        return criteria
    unknown = sorted(set(args.criteria) - set(criteria))
    if unknown:
        raise SystemExit(f"--criteria {unknown}: this script compares {list(criteria)}")
    if isinstance(criteria, dict):
        return {name: label for name, label in criteria.items() if name in args.criteria}
    return tuple(name for name in criteria if name in args.criteria)


def scale_of(args) -> Scale:
    scale = SCALE[args.scale]
    drops = None
    if args.baseline_epochs is not None:
        drops = tuple(d for d in scale.baseline_drops if d < args.baseline_epochs)
    return scale.override(finetune_epochs=args.finetune_epochs, baseline_epochs=args.baseline_epochs,
                          baseline_drops=drops, max_train=args.max_train,
                          seeds=tuple(args.seeds) if args.seeds else None)


#: CLI overrides that change results, with the short form they take in file names.
_OVERRIDES = (("max_train", "n"), ("baseline_epochs", "be"), ("finetune_epochs", "fe"))


def run_tag(args, baseline: bool = False) -> str:
    """``<dataset>_<scale>``, plus every override, so runs with other settings never mix.

    ``baseline=True``: only what the baseline depends on (its data and its own training).
    """
    tag = f"{args.dataset}_{args.scale}"
    for option, short in _OVERRIDES[:2] if baseline else _OVERRIDES:
        value = getattr(args, option, None)
        if value is not None:
            tag += f"_{short}{value}"
    if not baseline and getattr(args, "steps", 10) != 10:
        tag += f"_s{args.steps}"
    return tag


def prepare_data(args, scale: Scale):
    """The dataset, cut to the scale's ``max_train`` / ``max_test`` before a stand-in converts it."""
    return load_data(args.dataset, data_dir=args.data_dir, max_train=scale.max_train, max_test=scale.max_test, seed=0)


def scoring_data(data, scale: Scale, seed: int):
    """The training images the criteria and imprinting see (one fixed random subset)."""
    rng = np.random.default_rng(seed)
    n = min(scale.scoring_samples, len(data.x_train))
    index = np.sort(rng.choice(len(data.x_train), n, replace=False))
    return data.x_train[index], data.y_train[index]


# --------------------------------------------------------------------------- models


def build(model: str, data, scale: Scale, seed: int):
    from dropnet_tf.layerprune import cifar_resnet_layerprune, vgg19_bn

    shape = tuple(data.x_train.shape[1:])
    if model == "resnet":
        return cifar_resnet_layerprune(scale.resnet_depth, input_shape=shape, num_classes=data.num_classes,
                                       seed=seed, name=f"resnet{scale.resnet_depth}")
    if model == "vgg19_bn":
        return vgg19_bn(input_shape=shape, num_classes=data.num_classes, width_multiplier=scale.vgg_width, seed=seed)
    raise ValueError(f"Unknown model {model!r}; choose 'resnet' or 'vgg19_bn'.")


def model_label(model: str, scale: Scale) -> str:
    if model == "resnet":
        return f"ResNet-{scale.resnet_depth}"
    return "VGG19-BN" if scale.vgg_width == 1.0 else f"VGG19-BN (width ×{scale.vgg_width:g})"


#: How the weight decay 5e-4 of the baseline training and of the fine-tuning acts (issue 24):
#: "decoupled", Keras' ``SGD(weight_decay=...)`` outside the momentum.  The supplement gives
#: only "SGD, momentum 0.9, weight decay 5e-4"; the authors trained in PyTorch, whose SGD
#: couples the decay (g + wd·w through the momentum, ten times stronger at momentum 0.9), so
#: "coupled" would be the faithful reading.  Every LayerPrune result here was trained
#: decoupled, and a protocol must not change its results silently, so it stays decoupled
#: until those tables are rerun; set "coupled" here to train the PyTorch way.
WEIGHT_DECAY_MODE = "decoupled"


def _sgd(scale: Scale, epochs: int, learning_rate: float, drops=()) -> TrainingProtocol:
    from dropnet_tf.foresight.experiment import TrainingProtocol

    return TrainingProtocol(epochs=epochs, learning_rate=learning_rate, batch_size=scale.batch_size, momentum=0.9,
                            nesterov=False, weight_decay=scale.weight_decay, learning_rate_drops=drops,
                            weight_decay_mode=WEIGHT_DECAY_MODE)


def baseline_protocol(scale: Scale, data) -> TrainingProtocol:
    """Training from scratch: SGD, momentum 0.9, ×0.1 after each of ``scale.baseline_drops`` epochs."""
    steps = int(np.ceil(len(data.x_train) / scale.batch_size))
    # The rate at step counter b is the old one (PiecewiseConstantDecay: step <= b), so the
    # boundary is the last step of epoch e: every step of epoch e + 1 runs at the new rate,
    # as PyTorch's MultiStepLR([81, 122]) in the supplement's setup does.
    drops = tuple((epoch * steps - 1, 0.1) for epoch in scale.baseline_drops)
    return _sgd(scale, scale.baseline_epochs, scale.baseline_lr, drops)


def finetune_protocol(scale: Scale) -> TrainingProtocol:
    """Supplement 1.1: fine-tuning with SGD at 1e-3."""
    return _sgd(scale, scale.finetune_epochs, scale.finetune_lr)


def test_accuracy(model, data) -> float:
    probabilities = model.predict(data.x_test, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(data.y_test).reshape(-1)))


def _save_model_atomic(model, path: str) -> None:
    from dropnet_tf.core.backend import KERAS_MAJOR

    # The process id in the name: shards sharing --out (issue 16) may save the same baseline at once.
    temporary = f"{path}.{os.getpid()}.partial." + ("keras" if KERAS_MAJOR >= 3 else "h5")
    model.save(temporary)
    os.replace(temporary, path)


def baseline(model: str, args, data, scale: Scale, seed: int, log=print, callbacks=()):
    """The trained baseline, loaded from ``--out`` if an earlier run saved it.

    ``callbacks``: Keras callbacks given to its training's fit, when it trains here
    (e.g. :meth:`Runner.callbacks`: a line per epoch, TensorBoard scalars)."""
    from dropnet_tf.core.backend import KERAS_MAJOR, keras
    from dropnet_tf.foresight.experiment import train_and_evaluate

    log = log or (lambda *_: None)
    suffix = "keras" if KERAS_MAJOR >= 3 else "h5"
    path = os.path.join(args.out, "baselines", f"{model}_{run_tag(args, baseline=True)}_seed{seed}.{suffix}")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        start = time.perf_counter()
        trainee = build(model, data, scale, seed)
        trained = train_and_evaluate(trainee, data, baseline_protocol(scale, data), seed=seed,
                                     strategy=kit.strategy_of(args), callbacks=callbacks)
        _save_model_atomic(trainee, path)
        log(f"baseline {model} seed {seed}: test accuracy {trained['top1']:.4f} "
            f"({time.perf_counter() - start:.0f} s, saved {os.path.relpath(path, ROOT)})")
    # Always from the saved file into an uncompiled model: a fresh run and a resumed one
    # then start from the same weights, and clones carry no training state.
    net = build(model, data, scale, seed)
    net.set_weights(keras.models.load_model(path, compile=False).get_weights())
    return net


def finetune(model, data, scale: Scale, seed: int, args=None, callbacks=()) -> float:
    """Supplement 1.1: fine-tune with SGD at 1e-3; returns the test accuracy.

    ``args``: the parsed command line, for ``--strategy`` (None: one device).
    ``callbacks``: Keras callbacks given to the fine-tuning's fit, which calls them at every
    epoch (e.g. :meth:`Runner.callbacks`)."""
    from dropnet_tf.foresight.experiment import train_and_evaluate

    strategy = kit.strategy_of(args)
    return train_and_evaluate(model, data, finetune_protocol(scale), seed=seed, strategy=strategy,
                              callbacks=callbacks)["top1"]


def copy_model(model):
    from dropnet_tf.core.backend import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


# --------------------------------------------------------------------------- the two prunings


def prunable_convolutions(model) -> list[str]:
    """The convolutions filter pruning may shrink.

    ResNet: the first convolution of each basic block (Li et al. 2017's choice for CIFAR
    ResNets, which keeps every residual sum aligned); VGG19-BN: every convolution.
    """
    names = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]
    if any(type(layer).__name__ == "Add" for layer in model.layers):  # residual: block{s}_{b}_conv1
        return [name for name in names if name.startswith("block") and name.endswith("_conv1") and name.count("_") == 2]
    return names


def with_masks(model):
    import dropnet_tf

    keep = set(prunable_convolutions(model))
    exclude = [layer.name for layer in model.layers if layer.name not in keep]
    return dropnet_tf.add_masks(model, exclude=exclude)


def filter_prune(base, criterion: str, *, fraction: float, schedule: str, data, scale: Scale, seed: int,
                 steps: int = 10, between_batches: int = 10):
    """Filter pruning as the supplement runs it; returns ``(compacted model, masks, seconds)``.

    Iterative: 10 steps of 10 % of the total, with ``between_batches`` mini-batches of
    fine-tuning at 1e-3 between steps (Molchanov et al. 2019 as the supplement follows it).
    """
    import dropnet_tf
    from dropnet_tf.layerprune import prune_filters

    masked = with_masks(copy_model(base))
    x, y = scoring_data(data, scale, seed)
    between = None
    if schedule == "iterative" and between_batches > 0:
        from dropnet_tf.engines.training import Trainer

        config = dataclasses.replace(finetune_protocol(scale).to_training_config(), max_epochs=1)
        trainer = Trainer(masked, config, (data.x_train, data.y_train), engine="keras", metrics=[])
        rng = np.random.default_rng(seed)

        def between(model, step):
            index = rng.choice(len(data.x_train), between_batches * scale.batch_size)
            # One epoch on the drawn batches, the optimizer's state kept between steps.
            trainer.fit(train=(data.x_train[index], data.y_train[index]), seed=None)

    start = time.perf_counter()
    result = prune_filters(masked, criterion, data=(x, y), fraction=fraction, scope="global", schedule=schedule,
                           steps=steps, between_steps=between, rng=seed)
    seconds = time.perf_counter() - start
    return dropnet_tf.compact(masked), result.masks, seconds


def removable_ranking(model, data, scale: Scale, seed: int) -> list[str]:
    """Removable blocks from least to most important by imprinting (LayerPrune Section 3.2)."""
    from dropnet_tf.layerprune import find_blocks, imprinting_importance

    x, y = scoring_data(data, scale, seed)
    blocks = find_blocks(model)
    importance = imprinting_importance(model, blocks, x, y, num_classes=data.num_classes)
    removable = [block for block in blocks if block.removable]
    order = sorted(range(len(removable)), key=lambda i: (importance[removable[i].name], i))
    return [removable[i].name for i in order]


def layer_prune(base, n: int, data, scale: Scale, seed: int, ranking=None):
    from dropnet_tf.layerprune import remove_blocks

    ranking = ranking or removable_ranking(base, data, scale, seed)
    return remove_blocks(base, ranking[:n]), ranking[:n]


def architecture(model) -> list:
    """Widths of the Conv2D layers in order with 'M' for poolings (supplement Table 3 style)."""
    widths = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D" and "shortcut" not in layer.name:
            widths.append(int(layer.get_config()["filters"]))
        elif kind == "MaxPooling2D" and layer.get_config().get("pool_size") != (1, 1):
            widths.append("M")
    return widths


def cost(model, scale: Scale, reference=None) -> dict:
    """Parameters, MACs and latency (batch 64, median of repeats after warm-up).

    With ``reference`` (the unpruned network) both are timed in one interleaved run
    (:func:`dropnet_tf.compaction.compare_latency`), and ``latency_ratio`` = pruned /
    unpruned is what the figures use: load changes on the machine between arms cancel out.
    """
    from dropnet_tf.compaction import compare_latency, count_flops, count_parameters, measure_latency

    found = {"parameters": int(count_parameters(model, trainable_only=True)), "flops": int(count_flops(model))}
    if reference is None:
        latency = measure_latency(model, scale.latency_batch, warmup=3, repeats=scale.latency_repeats)
        found["latency_s"] = float(latency.median_s)
        return found
    timed = compare_latency({"pruned": model, "reference": reference}, scale.latency_batch, warmup=3,
                            repeats=scale.latency_repeats)
    found["latency_s"] = float(timed["pruned"].median_s)
    found["reference_latency_s"] = float(timed["reference"].median_s)
    found["latency_ratio"] = found["latency_s"] / found["reference_latency_s"]
    return found


# --------------------------------------------------------------------------- runs and outputs


def arm_folder(key: dict) -> str:
    """An arm's folder name from its key: the text values, then ``<field><number>``, then ``seed<k>``
    (``{"arm": "filter", "criterion": "l1_norm", "ratio": 0.2, "seed": 0}`` ->
    ``filter_l1_norm_ratio0.2_seed0``)."""
    parts = []
    for name, value in key.items():
        if name == "seed":
            continue
        parts.append(value if isinstance(value, str) else f"{name}{value:g}" if isinstance(value, (int, float))
                     else f"{name}{value}")
    if "seed" in key:
        parts.append(f"seed{key['seed']}")
    return "_".join(str(part) for part in parts) or "arm"


class _KeysOnly:
    """A stand-in runner that notes each arm's key and runs nothing (:meth:`Runner.expect`'s dry pass)."""

    def __init__(self):
        self.keys = []

    def arm(self, key: dict, run):
        self.keys.append(dict(key))
        return None

    def callbacks(self, *args, **kwargs) -> list:
        return []


class Runner:
    """Runs named arms once each, appending one JSON record per arm (resumable).

    A thin face of :class:`dropnet_tf.harness.grid.RunGrid` over ``<out>/<name>_<tag>.jsonl``: the
    record is the arm's key, its results and ``seconds``.  With ``--shard I/N`` it runs one
    shard's arms into that shard's file, after ``--merge`` none (:mod:`paper_experiments.kit.sharding`);
    :meth:`finish` is then True and the script draws nothing.

    Progress (issue 16): after :meth:`expect`, each arm's line ends with the grid's
    ``run i of n (r resumed), ETA ~ h:mm for the grid`` (:class:`dropnet_tf.harness.eta.RunsETA`);
    :meth:`callbacks` are the Keras callbacks of a training inside an arm (``--verbose 2``:
    a line per epoch; ``--tensorboard DIR``: its epoch scalars), and with ``--tensorboard``
    each finished arm's numbers are written as ``arm/<field>`` scalars in its folder.
    """

    def __init__(self, args, name: str):
        from dropnet_tf.harness.grid import RunGrid
        from dropnet_tf.harness.progress import RunScalars
        from paper_experiments.kit import sharding

        os.makedirs(args.out, exist_ok=True)
        unsharded = os.path.join(args.out, f"{name}_{run_tag(args)}.jsonl")
        self.plan = sharding.plan(args, unsharded, sharding.settings_of(args, script=name))
        self.path = self.plan.results
        self.quiet = args.quiet
        self.verbose = getattr(args, "verbose", 0 if self.quiet else 1)
        #: The TensorBoard experiment folder: the results file's name, so other settings never mix.
        self.experiment = os.path.splitext(os.path.basename(unsharded))[0]
        tensorboard = getattr(args, "tensorboard", None)
        self.board = RunScalars(tensorboard) if tensorboard else None
        self.eta = None
        self.current: dict | None = None
        self.grid = RunGrid(self.path, log=self._after, order=self.plan.order)
        self.results = self.grid.results

    def expect(self, arms) -> None:
        """The grid's arms in order, for the ETA (this shard's only): a list of keys, or the
        script's own loop ``arms(runner)``, run once as a dry pass with a runner that runs no arm
        (so the order is the one that runs)."""
        from dropnet_tf.harness.eta import RunsETA

        if self.verbose < 1 or (self.plan.order is not None and not self.plan.order.run):
            return
        if callable(arms):
            collector = _KeysOnly()
            arms(collector)
            arms = collector.keys
        shard = self.plan.shard
        self.eta = RunsETA([key for position, key in enumerate(arms) if shard is None or shard.owns(position)],
                           self.results)
        self.eta.start()

    def finish(self) -> bool:
        """True for a shard (its manifest now says finished): the tables come with ``--merge``."""
        if self.board is not None:
            self.board.close()
        return self.plan.finish()

    def _after(self, record: dict) -> None:
        if self.board is not None:
            key = self.current if self.current is not None else record
            numbers = {f"arm/{name}": value for name, value in record.items()
                       if name not in key and isinstance(value, (int, float)) and not isinstance(value, bool)}
            self.board.scalars(os.path.join(self.experiment, arm_folder(key)), numbers, step=0)
        if not self.quiet:
            self._show(record, "" if self.eta is None else self.eta.after_run(record))

    @staticmethod
    def _show(record: dict, ending: str = "") -> None:
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k not in ("masks",)}
        print(json.dumps(shown) + (f" | {ending}" if ending else ""), flush=True)

    def callbacks(self, part: str | None = None, folder: str | None = None) -> list:
        """Keras callbacks of one training inside the arm running now (or of ``folder``, e.g. the
        baseline's ``baseline_training_seed0``); ``part`` names one of several trainings of an arm."""
        from dropnet_tf.harness.progress import safe_folder

        where = folder or (arm_folder(self.current) if self.current is not None else "training")
        found = []
        if self.verbose >= 2:
            from dropnet_tf.harness.progress import EpochLine

            found.append(EpochLine(f"{where} {part}" if part else where, keys=("loss", "top1")))
        if self.board is not None:
            found += self.board.epoch_callbacks(safe_folder(self.experiment, where, *([part] if part else [])))
        return found

    def done(self, **key) -> dict | None:
        return self.grid.done(key)

    def arm(self, key: dict, run) -> dict:
        self.current = dict(key)
        try:
            return self.grid.cell(key, run, timed="seconds")
        finally:
            self.current = None

    def records(self) -> list[dict]:
        return self.grid.records()


#: The options that change results, as the regenerate command names them.
_COMMAND_OPTIONS = (("max_train", None), ("baseline_epochs", None), ("finetune_epochs", None), ("steps", 10),
                    ("seeds", None))


def provenance(args, scale: Scale, data, script: str) -> str:
    """One line saying how a figure/table was made, for captions and table footers."""
    command = kit.command_line("layerprune", script, args, _COMMAND_OPTIONS)
    return (f"{args.dataset}, {len(data.x_train)} train / {len(data.x_test)} test images, scale {args.scale} "
            f"(ResNet-{scale.resnet_depth}, VGG19-BN width ×{scale.vgg_width:g}, baseline {scale.baseline_epochs} "
            f"epochs, fine-tune {scale.finetune_epochs} epochs SGD {scale.finetune_lr:g}), seeds {list(scale.seeds)}; "
            f"latency: median of {scale.latency_repeats} calls at batch {scale.latency_batch} on this machine; `{command}`"
            f"{kit.partial_caption()}")


def setup(description: str, default_dataset: str, script: str, argv=None):
    """What every script starts with: ``(args, scale, data, runner)``.

    The command line is parsed before TensorFlow is imported (``--help`` answers at once);
    the runner reports its saved arms to :data:`paper_experiments.kit.progress` for the start-up and
    Ctrl-C messages.
    """
    args = parse_args(description, default_dataset, argv)
    load_tensorflow()
    # tf.distribute's multi-worker strategy must exist before TensorFlow runs its first op
    # (loading the data does): "Collective ops must be configured at program startup".
    kit.strategy_of(args)
    scale = scale_of(args)
    data = prepare_data(args, scale)
    runner = Runner(args, script)
    progress.start(
        runner.path, lambda: len(runner.records()), unit="arms",
        partial_note=f"a trained baseline is kept in {os.path.join(args.out, 'baselines')}; the arm in progress starts over",
    )
    return args, scale, data, runner


def write_outputs(args, script: str, lines: list[str], rows: list[dict], figure=None) -> list[str]:
    """The script's Markdown table, CSV (and PNG) in ``--figures``; prints the table."""
    return kit.write_outputs(os.path.join(args.figures, f"{script}_{args.dataset}_{args.scale}"), lines, rows, figure)


# --------------------------------------------------------------------------- declared scripts


@dataclass(frozen=True)
class FilterArms:
    """The filter-pruning arms of a script: every criterion × fraction × schedule.

    ``key`` is the record field holding the fraction ("ratio", "fraction" rounded to 4
    places, or None when there is one fraction); ``fields`` the extra record fields, in
    order, before accuracy and cost ("pruned_filters", "pruning_seconds", "architecture");
    ``fractions_outer``: loop over fractions outside the criteria (Table 1) or inside;
    ``use_steps``: --steps applies (iterative schedules), else the default 10.
    """

    criteria: dict
    fractions: tuple
    schedules: tuple = ("one_shot",)
    key: str | None = None
    fields: tuple = ()
    fractions_outer: bool = False
    use_steps: bool = True


@dataclass(frozen=True)
class LayerArms:
    """The layer-pruning arms of a script: remove the ``counts`` least important blocks."""

    counts: tuple
    architecture: bool = False  # record the widths, 0 where a layer was removed


@dataclass(frozen=True)
class LayerPruneExperiment:
    """One declared script: its model, dataset and arms (a baseline arm always comes first)."""

    script: str
    description: str
    model: str  # "resnet" or "vgg19_bn"
    dataset: str
    filters: FilterArms | None = None
    layers: LayerArms | None = None
    baseline_architecture: bool = False


def with_zeros(base, pruned, removed):
    """The pruned widths aligned with the baseline's convolutions, 0 where a layer was removed."""
    widths = iter(w for w in architecture(pruned) if w != "M")
    convs = [layer.name for layer in base.layers if type(layer).__name__ == "Conv2D"]
    out = []
    for item in architecture(base):
        if item == "M":
            out.append("M")
            continue
        name = convs.pop(0)
        out.append(0 if name in removed else next(widths))
    return out


def _filter_grid(exp: LayerPruneExperiment, args):
    arms = exp.filters
    criteria = list(selected(args, arms.criteria))
    if arms.fractions_outer:
        return [(c, f, s) for f in arms.fractions for c in criteria for s in arms.schedules]
    return [(c, f, s) for c in criteria for f in arms.fractions for s in arms.schedules]


def run_arms(exp: LayerPruneExperiment, args, scale: Scale, data, runner) -> None:
    """Every arm of ``exp`` for every seed, each once (finished arms are skipped)."""
    for seed in scale.seeds:
        # Loaded (or trained) when an arm first needs it: a shard without arms of this seed,
        # or a merge, trains no baseline.
        base = lazy(lambda seed=seed: baseline(exp.model, args, data, scale, seed, log=None if args.quiet else print,
                                               callbacks=runner.callbacks(folder=f"baseline_training_seed{seed}")))

        def run_baseline():
            found = {"accuracy": test_accuracy(base(), data)}
            if exp.baseline_architecture:
                found["architecture"] = architecture(base())
            return {**found, **cost(base(), scale)}

        runner.arm({"arm": "baseline", "seed": seed}, run_baseline)
        if exp.filters is not None:
            arms = exp.filters
            for criterion, fraction, schedule in _filter_grid(exp, args):
                def run(criterion=criterion, fraction=fraction, schedule=schedule):
                    steps = {"steps": args.steps} if arms.use_steps else {}
                    model, masks, seconds = filter_prune(base(), criterion, fraction=fraction, schedule=schedule,
                                                        data=data, scale=scale, seed=seed, **steps)
                    found = {}
                    for name in arms.fields:
                        if name == "pruned_filters":
                            found[name] = int(sum((m == 0).sum() for m in masks.values()))
                        elif name == "pruning_seconds":
                            found[name] = seconds
                        elif name == "architecture":
                            found[name] = architecture(model)
                    found["accuracy"] = finetune(model, data, scale, seed, args, callbacks=runner.callbacks())
                    return {**found, **cost(model, scale, reference=base())}

                key = {"arm": "filter", "criterion": criterion}
                if len(arms.schedules) > 1:
                    key["schedule"] = schedule
                if arms.key == "ratio":
                    key["ratio"] = fraction
                elif arms.key == "fraction":
                    key["fraction"] = round(fraction, 4)
                runner.arm({**key, "seed": seed}, run)
        if exp.layers is not None:
            ranking = None
            for n in exp.layers.counts:
                def run(n=n):
                    nonlocal ranking
                    ranking = ranking or removable_ranking(base(), data, scale, seed)
                    model, removed = layer_prune(copy_model(base()), n, data, scale, seed, ranking=ranking)
                    found = {"removed": removed}
                    if exp.layers.architecture:
                        found["architecture"] = with_zeros(base(), model, removed)
                    found["accuracy"] = finetune(model, data, scale, seed, args, callbacks=runner.callbacks())
                    return {**found, **cost(model, scale, reference=base())}

                runner.arm({"arm": "layer", "n": n, "seed": seed}, run)


def run(exp: LayerPruneExperiment, outputs, argv=None):
    """A declared script's ``main``: set up, run every arm (resuming), then its ``outputs``."""
    args, scale, data, runner = setup(exp.description, exp.dataset, exp.script, argv)
    runner.expect(lambda arms: run_arms(exp, args, scale, data, arms))  # the grid, for the ETA
    run_arms(exp, args, scale, data, runner)
    if runner.finish():
        return None
    return outputs(args, scale, data, runner.records())


def lazy(make):
    """``make()`` called once, on the first call of the returned function (a baseline, a ranking)."""
    made = []

    def get():
        if not made:
            made.append(make())
        return made[0]

    return get


__all__ = [name for name in dir() if not name.startswith("_")]
