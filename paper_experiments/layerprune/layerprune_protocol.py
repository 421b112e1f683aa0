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

import argparse
import dataclasses
import io
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "paper_experiments", "dropnet"))
from dropnet_protocol import DATASET_CHOICES, STANDINS, load_data  # noqa: E402, F401
from script_kit import UserError, command, load_tensorflow, progress  # noqa: E402, F401 (command: for the scripts)

# dropnet_tf (and TensorFlow) is imported inside the functions that use it, once the command
# line is parsed, so that --help answers at once (paper_experiments/script_kit.py).

#: dropnet_tf.layerprune.FILTER_CRITERIA's names, written out so that parsing the command
#: line needs no TensorFlow (tests/test_entry_points.py checks them).
FILTER_CRITERIA = ("bn_scale", "feature_maps", "geometric_median", "l1_norm", "l2_norm", "mean_activation", "taylor")

SCALES = ("paper", "quick")

#: The supplement's names for the filter criteria (Table 1 rows) and ours.
CRITERION_LABELS = {
    "l1_norm": "Weight Norm",
    "feature_maps": "Feature Maps",
    "taylor": "Taylor",
    "bn_scale": "Batchnorm",
    "geometric_median": "Median",
}


@dataclass(frozen=True)
class Scale:
    """One scale of the LayerPrune protocol (see the module docstring)."""

    resnet_depth: int
    vgg_width: float
    max_train: int | None
    max_test: int | None
    baseline_epochs: int
    baseline_lr: float
    baseline_drops: tuple  # epochs after which the learning rate is multiplied by 0.1
    finetune_epochs: int
    finetune_lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 5e-4
    scoring_samples: int = 2048  # training images the criteria and imprinting see
    seeds: tuple = (0,)
    latency_batch: int = 64
    latency_repeats: int = 20


SCALE = {
    "paper": Scale(resnet_depth=56, vgg_width=1.0, max_train=None, max_test=None, baseline_epochs=160,
                   baseline_lr=0.1, baseline_drops=(81, 122), finetune_epochs=30, seeds=(0,)),
    "quick": Scale(resnet_depth=20, vgg_width=0.125, max_train=2000, max_test=1000, baseline_epochs=8,
                   baseline_lr=0.05, baseline_drops=(6,), finetune_epochs=2, scoring_samples=512, seeds=(0,),
                   latency_repeats=15),
}


def parse_args(description: str, default_dataset: str, argv=None, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", choices=SCALES, default="paper", help="the supplement's protocol (default) or the quick CPU scale")
    parser.add_argument("--dataset", choices=DATASET_CHOICES, default=default_dataset,
                        help=f"dataset (paper: {default_dataset}; offline stand-in: fashion_mnist_rgb32; "
                        "cifar10_jpeg: CIFAR-10 re-encoded as JPEG, its folder or .tar.gz in --data-dir)")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the scale's seeds")
    parser.add_argument("--finetune-epochs", type=int, help="override the fine-tuning epochs")
    parser.add_argument("--baseline-epochs", type=int, help="override the baseline's training epochs")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "layerprune"), help="results directory")
    parser.add_argument("--figures", default=os.path.join(ROOT, "figures", "layerprune"), help="figure/table directory")
    parser.add_argument("--data-dir", help="where the dataset files are")
    parser.add_argument("--max-train", type=int, help="cap on training images (quick default 2000)")
    parser.add_argument("--criteria", nargs="+", choices=sorted(FILTER_CRITERIA),
                        help="only these filter criteria (default: the script's)")
    parser.add_argument("--steps", type=int, default=10,
                        help="steps of iterative filter pruning, each re-scoring the filters (supplement: 10, of 10 %% each)")
    parser.add_argument("--quiet", action="store_true")
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


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
    changes = {}
    if args.finetune_epochs is not None:
        changes["finetune_epochs"] = args.finetune_epochs
    if args.baseline_epochs is not None:
        changes["baseline_epochs"] = args.baseline_epochs
        changes["baseline_drops"] = tuple(d for d in scale.baseline_drops if d < args.baseline_epochs)
    if args.max_train is not None:
        changes["max_train"] = args.max_train
    if args.seeds:
        changes["seeds"] = tuple(args.seeds)
    return dataclasses.replace(scale, **changes)


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


def _sgd(scale: Scale, epochs: int, learning_rate: float, drops=()) -> TrainingProtocol:
    from dropnet_tf.foresight.experiment import TrainingProtocol

    return TrainingProtocol(epochs=epochs, learning_rate=learning_rate, batch_size=scale.batch_size, momentum=0.9,
                            nesterov=False, weight_decay=scale.weight_decay, learning_rate_drops=drops)


def baseline_protocol(scale: Scale, data) -> TrainingProtocol:
    """Training from scratch: SGD, momentum 0.9, ×0.1 after each of ``scale.baseline_drops`` epochs."""
    steps = int(np.ceil(len(data.x_train) / scale.batch_size))
    drops = tuple((epoch * steps, 0.1) for epoch in scale.baseline_drops)
    return _sgd(scale, scale.baseline_epochs, scale.baseline_lr, drops)


def finetune_protocol(scale: Scale) -> TrainingProtocol:
    """Supplement 1.1: fine-tuning with SGD at 1e-3."""
    return _sgd(scale, scale.finetune_epochs, scale.finetune_lr)


def test_accuracy(model, data) -> float:
    probabilities = model.predict(data.x_test, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(data.y_test).reshape(-1)))


def _save_model_atomic(model, path: str) -> None:
    from dropnet_tf._keras import KERAS_MAJOR

    temporary = f"{path}.partial.keras" if KERAS_MAJOR >= 3 else f"{path}.partial.h5"
    model.save(temporary)
    os.replace(temporary, path)


def baseline(model: str, args, data, scale: Scale, seed: int, log=print):
    """The trained baseline, loaded from ``--out`` if an earlier run saved it."""
    from dropnet_tf._keras import KERAS_MAJOR, keras
    from dropnet_tf.foresight.experiment import train_and_evaluate

    log = log or (lambda *_: None)
    suffix = "keras" if KERAS_MAJOR >= 3 else "h5"
    path = os.path.join(args.out, "baselines", f"{model}_{run_tag(args, baseline=True)}_seed{seed}.{suffix}")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        start = time.perf_counter()
        trainee = build(model, data, scale, seed)
        trained = train_and_evaluate(trainee, data, baseline_protocol(scale, data), seed=seed)
        _save_model_atomic(trainee, path)
        log(f"baseline {model} seed {seed}: test accuracy {trained['top1']:.4f} "
            f"({time.perf_counter() - start:.0f} s, saved {os.path.relpath(path, ROOT)})")
    # Always from the saved file into an uncompiled model: a fresh run and a resumed one
    # then start from the same weights, and clones carry no training state.
    net = build(model, data, scale, seed)
    net.set_weights(keras.models.load_model(path, compile=False).get_weights())
    return net


def finetune(model, data, scale: Scale, seed: int) -> float:
    """Supplement 1.1: fine-tune with SGD at 1e-3; returns the test accuracy."""
    from dropnet_tf.foresight.experiment import train_and_evaluate

    return train_and_evaluate(model, data, finetune_protocol(scale), seed=seed)["top1"]


def copy_model(model):
    from dropnet_tf._keras import keras

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
        from dropnet_tf.training import Trainer

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


class Runner:
    """Runs named arms once each, appending one JSON record per arm (resumable).

    A thin face of :class:`dropnet_tf.grid.RunGrid` over ``<out>/<name>_<tag>.jsonl``: the
    record is the arm's key, its results and ``seconds``.
    """

    def __init__(self, args, name: str):
        from dropnet_tf.grid import RunGrid

        os.makedirs(args.out, exist_ok=True)
        self.path = os.path.join(args.out, f"{name}_{run_tag(args)}.jsonl")
        self.quiet = args.quiet
        self.grid = RunGrid(self.path, log=None if self.quiet else self._show)
        self.results = self.grid.results

    @staticmethod
    def _show(record: dict) -> None:
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k not in ("masks",)}
        print(json.dumps(shown), flush=True)

    def done(self, **key) -> dict | None:
        return self.grid.done(key)

    def arm(self, key: dict, run) -> dict:
        return self.grid.cell(key, run, timed="seconds")

    def records(self) -> list[dict]:
        return self.grid.records()


def write_markdown(path: str, lines: list[str]) -> str:
    from dropnet_tf.results import atomic_write_text

    os.makedirs(os.path.dirname(path), exist_ok=True)
    return atomic_write_text(path, "\n".join(lines) + "\n")


def save_figure(fig, path: str) -> str:
    from dropnet_tf.results import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue())


def provenance(args, scale: Scale, data, script: str) -> str:
    """One line saying how a figure/table was made, for captions and table footers."""
    command = f"python paper_experiments/layerprune/{script}.py --scale {args.scale} --dataset {args.dataset}"
    for option in ("max_train", "baseline_epochs", "finetune_epochs"):
        if getattr(args, option, None) is not None:
            command += f" --{option.replace('_', '-')} {getattr(args, option)}"
    if getattr(args, "steps", 10) != 10:
        command += f" --steps {args.steps}"
    if args.seeds:
        command += " --seeds " + " ".join(map(str, args.seeds))
    return (f"{args.dataset}, {len(data.x_train)} train / {len(data.x_test)} test images, scale {args.scale} "
            f"(ResNet-{scale.resnet_depth}, VGG19-BN width ×{scale.vgg_width:g}, baseline {scale.baseline_epochs} "
            f"epochs, fine-tune {scale.finetune_epochs} epochs SGD {scale.finetune_lr:g}), seeds {list(scale.seeds)}; "
            f"latency: median of {scale.latency_repeats} calls at batch {scale.latency_batch} on this machine; `{command}`")


def setup(description: str, default_dataset: str, script: str, argv=None):
    """What every script starts with: ``(args, scale, data, runner)``.

    The command line is parsed before TensorFlow is imported (``--help`` answers at once);
    the runner reports its saved arms to :data:`script_kit.progress` for the start-up and
    Ctrl-C messages.
    """
    args = parse_args(description, default_dataset, argv)
    load_tensorflow()
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
    from dropnet_tf.results import write_csv

    stem = os.path.join(args.figures, f"{script}_{args.dataset}_{args.scale}")
    written = []
    if figure is not None:
        written.append(save_figure(figure, stem + ".png"))
    if lines:
        written.append(write_markdown(stem + ".md", lines))
        print("\n".join(lines))
    written.append(write_csv(stem + ".csv", rows))
    return written


__all__ = [name for name in dir() if not name.startswith("_")]
