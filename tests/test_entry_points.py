"""The paper-experiment scripts as commands: --help before TensorFlow, Ctrl-C, fixable errors.

What they share is in paper_experiments/kit (issue 14, items 2, 3 and 7): one parser
builder, one dataset-choice list, one scale base, one set of writers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from script_helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "paper_experiments"
SCRIPTS = sorted(p for p in EXPERIMENTS.glob("*/[0-9A-Z]*_*.py") if p.name != "quick_results_table.py")


_load = load_script  # a script (or protocol module) by path; it imports the kit as paper_experiments.kit


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
    from dropnet_tf.data import standins
    from paper_experiments import kit

    assert kit.DATASETS == dropnet_tf.data.DATASETS
    assert kit.STANDIN_NAMES == tuple(standins.STANDINS)
    foresight = _load(EXPERIMENTS / "foresight" / "foresight_protocol.py")
    assert foresight.REFERENCE == REFERENCE
    from dropnet_tf.core.selection import WEIGHT_SELECTIONS

    assert foresight.SELECTIONS == WEIGHT_SELECTIONS  # --selection's choices, written out to load without TF
    assert set(_load(EXPERIMENTS / "layerprune" / "layerprune_protocol.py").FILTER_CRITERIA) == set(FILTER_CRITERIA)


def test_start_up_filter_drops_absl_lines_below_the_level_only():
    from paper_experiments.kit import entry as kit
    preamble = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    info = "I0000 00:00:1796002413.282826   21922 cudart_stub.cc:31] Could not find cuda drivers\n"
    error = "E0000 00:00:1796002430.269047   21964 cuda_platform.cc:52] failed call to cuInit\n"
    other = "Traceback (most recent call last):\n"
    assert [kit._keep(line, 3) for line in (preamble, info, error, other)] == [False, False, False, True]
    assert [kit._keep(line, 1) for line in (preamble, info, error, other)] == [False, False, True, True]
    assert [kit._keep(line, 0) for line in (preamble, info, error, other)] == [True, True, True, True]


def test_progress_lines_say_what_is_resumed_and_what_is_done():
    from paper_experiments.kit import entry as kit
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
    import dropnet_tf.dropnet.experiment

    script = _load(EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    argv = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--metrics", "minimum", "random",
            "--max-epochs", "1", "--max-train", "200", "--quiet",
            "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    real = dropnet_tf.dropnet.experiment.iterative_prune
    calls = []

    def interrupted_second_run(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the middle of the second run
        return real(*args, **kwargs)

    monkeypatch.setattr(dropnet_tf.dropnet.experiment, "iterative_prune", interrupted_second_run)
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

    monkeypatch.setattr(dropnet_tf.dropnet.experiment, "iterative_prune", real)
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
        module.main(argv) if family == "layerprune" else module.main(module.EXPERIMENT, argv)
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n\n" not in err and "Traceback" not in err
    assert "--data-dir D" in err and "data_dir=D" not in err
    assert " ".join(err.split()).count(standin) == 1
    assert "is not on this machine" in err


# ----------------------------------------------------------------------------- the one kit


def _parsers_of_every_script():
    """Each script's parser, as its ``--help`` builds it (in this process, no TensorFlow needed)."""
    import contextlib
    import io
    import runpy

    from paper_experiments import kit

    built = []
    real = kit.ScriptParser.parse_args

    def recording(self, args=None, namespace=None):
        built.append(self)
        return real(self, args, namespace)

    parsers = {}
    saved_argv = sys.argv
    kit.ScriptParser.parse_args = recording
    try:
        for path in SCRIPTS:
            built.clear()
            sys.argv = [str(path), "--help"]
            with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit):
                runpy.run_path(str(path), run_name="__main__")
            parsers[path.name] = built[-1] if built else None
    finally:
        kit.ScriptParser.parse_args = real
        sys.argv = saved_argv
    return parsers


def test_every_script_s_parser_comes_from_the_one_builder():
    from paper_experiments import kit

    parsers = _parsers_of_every_script()
    assert len(parsers) == len(SCRIPTS) > 40
    for name, parser in parsers.items():
        assert isinstance(parser, kit.ScriptParser), f"{name} builds its own parser"
        if name.startswith("00_"):  # the demo: digits only, no scales
            assert {"seeds", "out", "figures"} <= parser.shared_options(), name
            continue
        assert parser.shared_options() == set(kit.SHARED), name
        dataset = next(action for action in parser._actions if action.dest == "dataset")
        assert tuple(dataset.choices) == kit.DATASET_CHOICES, name
        scale = next(action for action in parser._actions if action.dest == "scale")
        assert tuple(scale.choices) == kit.SCALES, name


def test_shared_checks_apply_to_every_paper():
    from paper_experiments.dropnet import dropnet_protocol
    from paper_experiments.foresight import foresight_protocol
    from paper_experiments.layerprune import layerprune_protocol

    dropnet = _load(EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py").EXPERIMENT
    foresight = _load(EXPERIMENTS / "foresight" / "04_snip_table1_fig1_lenet300_mnist.py").EXPERIMENT
    parsers = [dropnet_protocol.build_parser(dropnet), foresight_protocol.build_parser(foresight),
               layerprune_protocol.build_parser("x", "cifar10")]
    for parser in parsers:
        for bad in (["--seeds", "1", "1"], ["--max-train", "0"], ["--dataset", "nope"]):
            with pytest.raises(SystemExit):
                parser.parse_args(bad)
        args = parser.parse_args(["--scale", "quick", "--dataset", "fashion_mnist_rgb32", "--quiet"])
        assert (args.scale, args.dataset, args.quiet) == ("quick", "fashion_mnist_rgb32", True)


def test_the_scales_share_one_base():
    from paper_experiments import kit
    from paper_experiments.dropnet import dropnet_protocol
    from paper_experiments.foresight import foresight_protocol
    from paper_experiments.layerprune import layerprune_protocol

    scales = [dropnet_protocol.PAPER_SCALE, *dropnet_protocol.QUICK_SCALES.values(), foresight_protocol.Quick(),
              *layerprune_protocol.SCALE.values()]
    assert all(isinstance(scale, kit.Scale) for scale in scales)
    assert {scale.name for scale in layerprune_protocol.SCALE.values()} == set(kit.SCALES)


def test_no_file_under_paper_experiments_edits_sys_path():
    offenders = [str(path.relative_to(ROOT)) for path in EXPERIMENTS.rglob("*.py") if "sys.path" in path.read_text()]
    assert offenders == []


def test_command_line_names_only_the_options_given():
    import argparse

    from paper_experiments.kit import command_line

    args = argparse.Namespace(scale="quick", dataset="digits", seeds=[0, 1], data_dir="/x", protocol="paper", steps=10)
    options = (("protocol", "paper"), ("data_dir", None, "DIR"), ("seeds", None), ("steps", 10))
    assert command_line("dropnet", "a.py", args, options) == (
        "python paper_experiments/dropnet/a.py --scale quick --dataset digits --data-dir DIR --seeds 0 1")
    assert command_line("layerprune", "b", args) == "python paper_experiments/layerprune/b.py --scale quick --dataset digits"


@pytest.mark.parametrize("signum, status", [(2, 130), (15, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_background_job_stops_on_sigint_or_sigterm_with_the_resume_message(tmp_path, signum, status):
    """``nohup script &`` from a non-interactive shell starts with SIGINT *ignored*, and a
    batch system stops a job with SIGTERM: both used to end the run without a word (or not
    at all).  The child here inherits SIGINT ignored, as such a job does."""
    import signal
    import time

    script = EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py"
    argv = [sys.executable, str(script), "--scale", "quick", "--dataset", "digits", "--seeds", "0", "1", "2",
            "--max-epochs", "50", "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        for line in child.stdout:  # wait until the grid has started
            if line.startswith(("Running", "Resuming")):
                break
        time.sleep(1.0)
        child.send_signal(signum)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == status, err[-2000:]
    assert "Interrupted after" in err and "Run the same command again to continue." in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- exit statuses (issue 27)

FIG3_TINY = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--metrics", "minimum_layer",
             "--max-epochs", "1", "--max-train", "100", "--quiet"]


def test_a_refused_resume_exits_1_with_one_paragraph_naming_the_difference(tmp_path, capsys):
    """A grid rerun with other settings into the same --out is refused: status 1, the stored and
    the new value named, what to do (another --out), no traceback, nothing drawn."""
    script = _load(EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    where = ["--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    script.main(script.EXPERIMENT, FIG3_TINY + where)
    (tmp_path / "figures").rename(tmp_path / "first_figures")
    capsys.readouterr()
    changed = [value if value != "100" else "120" for value in FIG3_TINY]  # --max-train 120: other data
    with pytest.raises(SystemExit) as stop:
        script.main(script.EXPERIMENT, changed + where)
    err = " ".join(capsys.readouterr().err.split())
    assert stop.value.code == 1 and "Traceback" not in err, err
    assert "with a different data than the one given now" in err and "use another --out" in err, err
    assert not (tmp_path / "figures").exists()


@pytest.mark.slow
def test_every_command_that_touches_results_says_by_its_exit_status_whether_it_did_its_job(tmp_path):
    """Each step a real process, run as a user runs it (Fig. 3 on digits, two seeds), through
    tests/interrupt_driver.py where a Ctrl-C must land at a given moment: a shard (0), a shard
    interrupted (130), the merge that finds it unfinished (1, nothing drawn), the shard resumed
    (0), the merge (0), a redraw (0), a resume refused (1), a population interrupted (130) and
    resumed (0). None prints a traceback."""
    import signal

    script = EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py"
    options = [value if value != "0" else "0 1" for value in FIG3_TINY]
    options = " ".join(options).split()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1")

    def run(out, *extra, moment="none", count=0):
        done = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "interrupt_driver.py"), moment, str(count), str(script), *options,
             "--out", str(tmp_path / out), "--figures", str(tmp_path / f"{out}_figures"), *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
        return done.returncode, done.stdout, " ".join(done.stderr.split())

    assert run("grid", "--shard", "0/2")[0] == 0
    code, _, err = run("grid", "--shard", "1/2", moment="results_write", count=2)
    assert code == 130 and "Interrupted" in err
    assert not json.loads((tmp_path / "grid" / "results.shard-1-of-2.manifest.json").read_text())["complete"]
    code, _, err = run("grid", "--merge")
    assert code == 1 and "shard 1" in err and "(seed=1)" in err and not (tmp_path / "grid_figures").exists()
    assert run("grid", "--shard", "1/2")[0] == 0
    code, out, _ = run("grid", "--merge")
    assert code == 0 and "Merged: 2 of 2 runs" in out and (tmp_path / "grid_figures").is_dir()
    code, out, _ = run("grid")
    assert code == 0 and "All 2 runs (1 metric × 2 seeds) are already done" in out
    code, _, err = run("grid", "--max-train", "120")
    assert code == 1 and "use another --out" in err
    code, _, err = run("population", "--population", "2", moment="state_write", count=2)
    assert code == 130 and "Interrupted" in err
    code, out, _ = run("population", "--population", "2")
    assert code == 0 and (tmp_path / "population_figures").is_dir()


def test_a_redraw_over_a_torn_results_file_names_the_line_and_exits_1(tmp_path, capsys):
    """A results file cut mid-line (a copy that stopped, a disk that filled) is the user's to
    repair: one paragraph naming the file and line, exit 1, no traceback, nothing dropped."""
    script = _load(EXPERIMENTS / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py")
    argv = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--metrics", "minimum", "--max-epochs", "1",
            "--max-train", "200", "--quiet", "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    script.main(script.EXPERIMENT, argv)
    results = tmp_path / "runs" / "results.jsonl"
    lines = results.read_text().splitlines()
    torn = "\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]]) + "\n"
    results.write_text(torn)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        script.main(script.EXPERIMENT, argv)
    assert stop.value.code == 1
    err = " ".join(capsys.readouterr().err.split())  # one paragraph, wrapped
    assert f"{results}: line {len(lines)} is not valid JSON" in err and "repair or remove that line" in err
    assert "Traceback" not in err
    assert results.read_text() == torn  # nothing dropped or rewritten
