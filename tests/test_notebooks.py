"""examples/*.ipynb: each worked example runs from top to bottom in a fresh kernel (nbclient), so it cannot rot.

The notebooks' saved outputs are what a reader sees; this test executes a copy and leaves the
committed file alone.  Slow (minutes of training): ``make test-long`` and CI run it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_shows_the_whole_path(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # The kernel imports this checkout's dropnet_tf, not an installed copy.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    # Every step of the path printed its result: groups, cycles, exact compaction, fine-tuning, TFLite.
    for marker in ("groups,", "cycle 2:", "max |compact - masked|", "compact test accuracy", "TFLite file:"):
        assert marker in text, marker
    delta = float(text.split("max |compact - masked| = ")[1].split()[0])
    assert delta < 1e-4
