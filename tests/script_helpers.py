"""Importing the numbered paper scripts (and their protocol modules) by path in tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

#: paper_experiments/ of this checkout.
EXPERIMENTS = Path(__file__).resolve().parents[1] / "paper_experiments"


def load_script(path) -> object:
    """The module at ``path`` (a script's name starts with a digit, so it cannot be imported by
    name).  It is registered in ``sys.modules`` because dataclasses look their module up there."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"paper_script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
