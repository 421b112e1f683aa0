"""SNIP Fig. 2 (Section 5.4): which first-layer connections of LeNet-300-100 survive SNIP when
the scoring batch holds 100 examples of one class, drawn as 28×28 images, per class and
sparsity.  No training is involved: this is SNIP's interpretability experiment.

Each image shows, per input pixel, how many of its 300 connections to the first hidden
layer are kept (bright = many).  Same initial weights for every class (seed 0, VS-X init).
"""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np

from paper_experiments.foresight.foresight_protocol import ROOT, ForesightExperiment, Quick, command, load_tensorflow, parse_args, prepare_data
from paper_experiments.kit import UserError

SPARSITIES = (10, 30, 50, 70, 90)  # κ̄ in %, Fig. 2's rows

EXPERIMENT = ForesightExperiment(
    script="07_snip_fig2_connections_lenet300_mnist",
    source="SNIP Fig. 2",
    title="surviving first-layer connections of LeNet-300-100 per class",
    slug="snip_fig2",
    model="lenet_300_100",
    dataset="mnist",
    methods=("snip",),
    compressions=tuple(100 / (100 - k) for k in SPARSITIES),
    figures=(),
    quick=Quick(max_train=5000, max_test=100, epochs=0, seeds=(0,)),
)


def connection_images(data, seed: int = 0, batch_per_class: int = 100) -> np.ndarray:
    """(sparsities, classes, height, width): kept first-layer connections per input pixel."""
    from dropnet_tf.core.backend import keras
    from dropnet_tf.foresight import get_weight_masks, prune_at_init, set_weight_masks
    from dropnet_tf.models.foresight import build_foresight_model

    height, width = data.input_shape[:2]
    images = np.zeros((len(SPARSITIES), data.num_classes, height, width), np.float32)
    rng = np.random.default_rng(seed)
    # One model for every cell: each starts from the same θ0 and all-ones masks (restored
    # below), which is what a fresh build with the same seed gives, without 50 builds.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_foresight_model("lenet_300_100", input_shape=data.input_shape, num_classes=data.num_classes,
                                  init="glorot_uniform", seed=seed)
    theta0 = model.get_weights()
    all_ones = {name: np.ones_like(mask) for name, mask in get_weight_masks(model).items()}
    for c in range(data.num_classes):
        index = np.flatnonzero(data.y_train == c)
        batch = rng.choice(index, size=min(batch_per_class, index.size), replace=False)
        for row, sparsity in enumerate(SPARSITIES):
            set_weight_masks(model, all_ones)
            model.set_weights(theta0)
            prune_at_init(model, "snip", 100 / (100 - sparsity), data=(data.x_train[batch], data.y_train[batch]), seed=seed)
            first = get_weight_masks(model)[next(iter(get_weight_masks(model)))]
            images[row, c] = first.sum(axis=1).reshape(height, width)
    return images


def draw(images, dataset: str, path: str, caption: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dropnet_tf.core.io import atomic_write_bytes

    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.95 + 0.6))
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[r, c], cmap="gray", vmin=0, vmax=max(images[r].max(), 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(c), fontsize=8)
            if c == 0:
                ax.set_ylabel(f"κ̄={SPARSITIES[r]}%", fontsize=7)
    fig.suptitle(f"SNIP Fig. 2: LeNet-300-100 first-layer connections kept, per class ({dataset})", fontsize=9)
    fig.text(0.01, 0.0, caption, fontsize=6, va="top", wrap=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


@command
def main(argv=None) -> dict:
    """No training and nothing saved until the end: an interrupted run starts over (minutes)."""
    args = parse_args(EXPERIMENT, argv)
    if args.shard is not None or args.merge:
        raise UserError(f"{EXPERIMENT.script} has no grid of runs to shard (one pass of SNIP scoring, no results "
                        "file); run it without --shard / --merge.")
    if args.tensorboard is not None:
        raise UserError(f"{EXPERIMENT.script} trains nothing (one pass of SNIP scoring), so it has no scalars for "
                        f"--tensorboard {args.tensorboard}; run it without --tensorboard.")
    load_tensorflow()
    from dropnet_tf.core.io import atomic_write_text, save_npz_atomic

    data = prepare_data(EXPERIMENT, args)
    os.makedirs(args.figures, exist_ok=True)
    start = time.perf_counter()
    seed = (args.seeds or [0])[0]
    images = connection_images(data, seed=seed)
    stem = f"{EXPERIMENT.script}_{args.dataset}_{args.scale}"
    caption = (f"SNIP on one batch of 100 training examples of each class (columns), sparsity κ̄ per row; "
               f"LeNet-300-100, VS-X (Glorot uniform) init, seed {seed}; pixel brightness = kept connections "
               f"of that input pixel (of 300). Regenerate: python paper_experiments/foresight/{EXPERIMENT.script}.py "
               f"--scale {args.scale} --dataset {args.dataset}")
    png = draw(images, args.dataset, os.path.join(args.figures, f"{stem}_fig2.png"), caption)
    npz = save_npz_atomic(os.path.join(args.figures, f"{stem}_fig2.npz"), images=images, sparsities=np.array(SPARSITIES))
    summary = {"script": EXPERIMENT.script, "dataset": args.dataset, "scale": args.scale, "seed": seed,
               "sparsities": list(SPARSITIES), "seconds_this_call": time.perf_counter() - start,
               "outputs": [os.path.relpath(p, ROOT) for p in (png, npz)]}
    atomic_write_text(os.path.join(args.figures, f"{stem}.json"), json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
