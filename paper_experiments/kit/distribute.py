"""``--strategy`` of the paper scripts: one ``tf.distribute`` strategy per process (issue 16).

``--strategy mirrored`` trains on every device of this machine (``MirroredStrategy``);
``--strategy multiworker`` on the cluster that ``TF_CONFIG`` describes, one process per
worker (``MultiWorkerMirroredStrategy``).  Without the option (default) nothing changes.
The strategy is made once per process, after TensorFlow is loaded and before the first
model, as TensorFlow requires.  Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

import os

from .entry import UserError

_MADE: dict = {}


def strategy_of(args):
    """The strategy ``args.strategy`` names (None without the option), made once per process.

    Every script trains under either strategy: DropNet, foresight and LayerPrune all train
    with :class:`dropnet_tf.engines.distributed_training.DistributedTrainer` under a strategy
    (not Keras 3's ``Model.fit``, which fails under ``MultiWorkerMirroredStrategy``).
    """
    name = getattr(args, "strategy", None)
    if name is None:
        return None
    if name not in _MADE:
        from dropnet_tf.core.distribute import make_strategy

        try:
            _MADE[name] = make_strategy(name)
        except ValueError as error:
            raise UserError(f"--strategy {name}: {error}") from error
    return _MADE[name]


def worker_out(out: str, strategy) -> str:
    """``out`` for the chief (and without a strategy); ``out/worker<i>`` for worker i > 0 of a
    multi-worker run, so that two workers sharing a file system never write the same file."""
    from dropnet_tf.core.distribute import worker_index

    index = worker_index(strategy)
    return out if index == 0 else os.path.join(out, f"worker{index}")


__all__ = ["strategy_of", "worker_out"]
