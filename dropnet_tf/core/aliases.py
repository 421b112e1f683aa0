"""The former module paths of dropnet_tf, kept importable as aliases of the new modules.

Before the packages (core/, data/, models/, dropnet/ ...) existed, every module sat at the
top of ``dropnet_tf``.  :data:`ALIASES` maps each former path to the module that now holds
its code; :func:`install` (called by ``dropnet_tf/__init__``) adds a ``sys.meta_path``
finder so that ``import dropnet_tf.iterative`` or ``from dropnet_tf.models.foresight import
lenet_300_100`` give the new module object itself (not a copy, so monkeypatching either
name patches both), and ``python -m dropnet_tf.foresight.tfmot_baseline`` still runs.
Nothing is imported until a former path is used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: Former module path → the module that holds its code now.
ALIASES: dict[str, str] = {
    "dropnet_tf._keras": "dropnet_tf.core.backend",
    "dropnet_tf.layers": "dropnet_tf.core.layers",
    "dropnet_tf.masking": "dropnet_tf.core.masking",
    "dropnet_tf.graph": "dropnet_tf.core.graph",
    "dropnet_tf.selection": "dropnet_tf.core.selection",
    "dropnet_tf.training": "dropnet_tf.engines.training",
    "dropnet_tf.results": "dropnet_tf.harness.results",
    "dropnet_tf.validation": "dropnet_tf.core.validation",
    "dropnet_tf.statistics": "dropnet_tf.core.statistics",
    "dropnet_tf.metrics": "dropnet_tf.dropnet.metrics",
    "dropnet_tf.oracle": "dropnet_tf.dropnet.oracle",
    "dropnet_tf.augmentation": "dropnet_tf.dropnet.augmentation",
    "dropnet_tf.iterative": "dropnet_tf.dropnet.iterative",
    "dropnet_tf.experiment": "dropnet_tf.dropnet.experiment",
    "dropnet_tf.foresight.models": "dropnet_tf.models.foresight",
    "dropnet_tf.foresight.tfmot_baseline": "dropnet_tf.foresight.tfmot.baseline",
    "dropnet_tf.layerprune.models": "dropnet_tf.models.layerprune",
}


class AliasLoader(importlib.abc.Loader):
    """Loads a former path as the (imported) new module itself."""

    def __init__(self, target: str):
        self.target = target
        self._target_spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self._target_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The import system has just set module.__spec__ to the alias' spec; give the module
        # its own back (its name, file and loader are untouched).
        module.__spec__ = self._target_spec

    def get_code(self, fullname: str):
        """The new module's code, for ``python -m <former path>`` (runpy asks for it)."""
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)


class AliasFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that answers only for the former paths in ``aliases``."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases = dict(aliases)

    def find_spec(self, fullname, path=None, target=None):
        new = self.aliases.get(fullname)
        if new is None:
            return None
        target_spec = importlib.util.find_spec(new)
        origin = target_spec.origin if target_spec is not None else None
        return importlib.util.spec_from_loader(fullname, AliasLoader(new), origin=origin)


_FINDER = AliasFinder(ALIASES)


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FINDER)


def alias_getattr(package: str, lazy: dict[str, str] | None = None):
    """A module ``__getattr__`` for ``package``: ``package.<former child>`` imports the alias.

    ``dropnet_tf.iterative`` (attribute access, no import statement) worked before because
    ``dropnet_tf/__init__`` imported every module; this keeps it working, lazily.  ``lazy``
    adds other ``{attribute: module}`` pairs imported on first use.
    """
    children = {old.rpartition(".")[2]: old for old in ALIASES if old.rpartition(".")[0] == package}
    lazy = dict(lazy or {})

    def __getattr__(name: str):
        if name in lazy:
            return importlib.import_module(lazy[name])
        if name in children:
            return importlib.import_module(children[name])
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


__all__ = ["ALIASES", "AliasFinder", "AliasLoader", "alias_getattr", "install"]
