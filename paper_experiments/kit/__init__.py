"""The script kit: what every paper-experiment script shares.

* :mod:`.entry`: start-up (quiet TensorFlow logging, ``--help`` before TensorFlow loads),
  Ctrl-C with a resume message (exit 130), :class:`UserError` as one paragraph (exit 1),
  :data:`progress`.
* :mod:`.cli`: the one :class:`Scale` base, the one :data:`DATASET_CHOICES` list, the one
  parser builder (:func:`build_parser`, papers add :func:`option` items) and
  :func:`load_data` (the library's datasets and :mod:`dropnet_tf.data.standins`).
* :mod:`.distribute`: ``--strategy``: the ``tf.distribute`` strategy of this process
  (:func:`strategy_of`) and each worker's output folder (:func:`worker_out`).
* :mod:`.outputs`: provenance (:func:`command_line`), atomic figure, Markdown, CSV and
  JSON writers.
* :mod:`.sharding`: what ``--shard I/N`` and ``--merge`` make of a script's grid (imported
  by the protocols after parsing: it loads dropnet_tf).

Scripts run as files (``python paper_experiments/<paper>/<script>.py``) import it as
``paper_experiments.kit``: the project's install (``pip install -e .``, ``make install``)
exposes the ``paper_experiments`` package.  Nothing here imports TensorFlow.
"""

from .cli import (
    DATASET_CHOICES, DATASETS, SCALES, SHARED, STANDIN_NAMES, STRATEGIES, VERBOSITY, Option, Scale, ScriptParser, build_parser,
    load_data, option, unavailable_message,
)
from .distribute import strategy_of, worker_out
from .entry import (
    INTERRUPTED, QUIET_LEVEL, Progress, UserError, command, load_tensorflow, paragraph, progress,
    quiet_tensorflow_logging,
)
from .outputs import (
    command_line, merge_summary, partial_caption, save_figure, split_sizes, write_csv, write_json, write_markdown, write_outputs,
)

__all__ = [
    "DATASETS", "DATASET_CHOICES", "INTERRUPTED", "QUIET_LEVEL", "SCALES", "SHARED", "STANDIN_NAMES", "STRATEGIES", "VERBOSITY",
    "Option", "Progress", "Scale", "ScriptParser", "UserError",
    "build_parser", "command", "command_line", "load_data", "load_tensorflow", "option", "paragraph", "progress",
    "quiet_tensorflow_logging", "merge_summary", "partial_caption", "save_figure", "split_sizes", "unavailable_message", "write_csv", "write_json",
    "write_markdown", "write_outputs", "strategy_of", "worker_out",
]
