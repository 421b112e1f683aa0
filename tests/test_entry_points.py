"""The paper-experiment scripts as commands: --help before TensorFlow, Ctrl-C, fixable errors.

What they share is in paper_experiments/script_kit.py (issue 14, items 2, 3 and 7).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "paper_experiments"
SCRIPTS = sorted(p for p in EXPERIMENTS.glob("*/[0-9A-Z]*_*.py") if p.name != "quick_results_table.py")


def _load(path: Path):
    """Import a script (or protocol module) the way `python path` finds its neighbours."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"entry_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def test_every_script_answers_help_without_importing_tensorflow():
    # One child process runs every script's --help as `python script.py --help` would, then
    # reports what got imported: neither TensorFlow nor dropnet_tf may be among it.
    child = textwrap.dedent(
        """
        import contextlib, io, json, runpy, sys
        out = {}
        for path in sys.argv[1:]:
            sys.argv = [path, "--help"]
            sys.path.insert(0, path.rsplit("/", 1)[0])
            buffer = io.StringIO()
            try:
                with contextlib.redirect_stdout(buffer):
                    runpy.run_path(path, run_name="__main__")
                code = "returned"
            except SystemExit as stop:
                code = stop.code
            out[path] = [code, buffer.getvalue()[:6]]
        out["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "dropnet_tf"))
        print(json.dumps(out))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", child, *map(str, SCRIPTS)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found.pop("loaded") == []
    assert len(found) == len(SCRIPTS) > 40
    assert all(result == [0, "usage:"] for result in found.values()), found


def test_names_offered_before_the_library_loads_are_the_library_s():
    import dropnet_tf
    from dropnet_tf.foresight.experiment import REFERENCE
    from dropnet_tf.layerprune import FILTER_CRITERIA

    dropnet = _load(EXPERIMENTS / "dropnet" / "dropnet_protocol.py")
    assert dropnet.PAPER_METRICS == dropnet_tf.PAPER_METRICS
    assert set(dropnet.METRICS) == set(dropnet_tf.METRICS)
    assert dropnet.PROTOCOLS == tuple(dropnet_tf.PROTOCOLS)
    assert dropnet.DATASETS == dropnet_tf.data.DATASETS
    assert _load(EXPERIMENTS / "foresight" / "foresight_protocol.py").REFERENCE == REFERENCE
    assert set(_load(EXPERIMENTS / "layerprune" / "layerprune_protocol.py").FILTER_CRITERIA) == set(FILTER_CRITERIA)


def test_start_up_filter_drops_absl_lines_below_the_level_only():
    kit = _load(EXPERIMENTS / "script_kit.py")
    preamble = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    info = "I0000 00:00:1796002413.282826   21922 cudart_stub.cc:31] Could not find cuda drivers\n"
    error = "E0000 00:00:1796002430.269047   21964 cuda_platform.cc:52] failed call to cuInit\n"
    other = "Traceback (most recent call last):\n"
    assert [kit._keep(line, 3) for line in (preamble, info, error, other)] == [False, False, False, True]
    assert [kit._keep(line, 1) for line in (preamble, info, error, other)] == [False, False, True, True]
    assert [kit._keep(line, 0) for line in (preamble, info, error, other)] == [True, True, True, True]


def test_progress_lines_say_what_is_resumed_and_what_is_done():
    kit = _load(EXPERIMENTS / "script_kit.py")
    saved = {"n": 0}
    progress = kit.Progress()

    def start():
        return progress.start("runs/x.jsonl", lambda: saved["n"], total=18, describe="6 metrics × 3 seeds")

    assert start() == "Running 18 runs (6 metrics × 3 seeds); results in runs/x.jsonl."
    saved["n"] = 7
    assert progress.interrupted_message().startswith("Interrupted after 7 of 18 runs (7 in this call)")
    assert start().startswith("Resuming: 7 of 18 runs (6 metrics × 3 seeds) already done in runs/x.jsonl; 11 to go")
    saved["n"] = 18
    assert start().startswith("All 18 runs (6 metrics × 3 seeds) are already done in runs/x.jsonl; only redrawing")


@pytest.mark.slow
def test_ctrl_c_during_the_grid_says_what_is_saved_then_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    import dropnet_tf.experiment

    script = _load(EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    argv = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--metrics", "minimum", "random",
            "--max-epochs", "1", "--max-train", "200", "--quiet",
            "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    real = dropnet_tf.experiment.iterative_prune
    calls = []

    def interrupted_second_run(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of the second run
        return real(*args, **kwargs)

    monkeypatch.setattr(dropnet_tf.experiment, "iterative_prune", interrupted_second_run)
    try:
        script.main(script.EXPERIMENT, argv)
    except KeyboardInterrupt:  # caught here, or pytest would stop the whole session
        pytest.fail("Ctrl-C escaped the script as a KeyboardInterrupt (a traceback)")
    except SystemExit as stop:
        assert stop.code == 130
    else:
        pytest.fail("the interrupted script returned normally")
    err = capsys.readouterr().err
    assert "Interrupted after 1 of 2 runs (1 in this call)" in err
    assert str(tmp_path / "runs" / "results.jsonl") in err and "Run the same command again to continue." in err
    assert "Traceback" not in err

    monkeypatch.setattr(dropnet_tf.experiment, "iterative_prune", real)
    script.main(script.EXPERIMENT, argv)
    assert "Resuming: 1 of 2 runs (2 metrics × 1 seed) already done" in capsys.readouterr().out
    script.main(script.EXPERIMENT, argv)
    assert "All 2 runs (2 metrics × 1 seed) are already done" in capsys.readouterr().out


@pytest.mark.parametrize(
    "family, script, standin",
    [("dropnet", "04_1_1_fig03_model_a_fc40_fc40_mnist.py", "--dataset fashion_mnist "),
     ("foresight", "04_snip_table1_fig1_lenet300_mnist.py", "--dataset fashion_mnist "),
     ("layerprune", "01_table1_iterative_vs_oneshot_resnet56.py", "--dataset fashion_mnist_rgb32 ")],
)
def test_a_dataset_missing_offline_is_one_paragraph_naming_the_option_and_the_standins(
    family, script, standin, tmp_path, monkeypatch, capsys
):
    import dropnet_tf

    def offline(name, data_dir=None, **kwargs):
        attempts = [("local", f"no files for {name} under system folders"), ("tfds", "offline, no download tried")]
        raise dropnet_tf.DatasetUnavailableError(dropnet_tf.data.datasets._unavailable_message(name, attempts), name, attempts)

    monkeypatch.setattr(dropnet_tf, "load_dataset", offline)
    module = _load(EXPERIMENTS / family / script)
    argv = ["--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    with pytest.raises(SystemExit) as stop:
        module.main(module.EXPERIMENT, argv) if hasattr(module, "EXPERIMENT") else module.main(argv)
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n\n" not in err and "Traceback" not in err
    assert "--data-dir D" in err and "data_dir=D" not in err
    assert " ".join(err.split()).count(standin) == 1
    assert "is not on this machine" in err
