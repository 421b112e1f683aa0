"""A paper-protocol run cut down by --max-train / --max-epochs is named so, never "paper"."""

from __future__ import annotations

import pytest
from script_helpers import EXPERIMENTS, load_script


@pytest.fixture(scope="module")
def fig06():
    from paper_experiments.dropnet import dropnet_protocol as protocol

    path = next((EXPERIMENTS / "dropnet").glob("04_2_1_fig06_*.py"))
    return protocol, load_script(path).EXPERIMENT


@pytest.mark.parametrize(
    "argv, name",
    [
        ([], "paper"),
        (["--max-train", "3000"], "paper_train3000"),
        (["--max-epochs", "20"], "paper_epochs20"),
        (["--max-train", "3000", "--max-epochs", "20"], "paper_train3000_epochs20"),
        (["--scale", "quick", "--max-train", "300"], "quick"),
    ],
)
def test_scale_name_says_what_was_cut(fig06, argv, name):
    protocol, exp = fig06
    scale = protocol.resolve_scale(exp, protocol.parse_args(exp, argv))
    assert scale.name == name


def test_results_page_command_reruns_the_reduced_scale():
    from paper_experiments.results_pages import _dropnet_command

    summary = {
        "script": "04_2_1_fig06_model_b_conv64_conv64_mnist.py",
        "dataset": "mnist",
        "scale": {"name": "paper_train3000_epochs20", "seeds": [0, 1, 2], "max_train": 3000, "max_epochs": 20},
    }
    command = _dropnet_command(summary)
    assert "--scale paper " in command
    assert "--max-train 3000" in command and "--max-epochs 20" in command
    assert "--seeds 0 1 2" in command
