"""paper_experiments.kit.entry.command: Ctrl-C wherever it lands ends with the resume message and status 130 (issue 27).

TensorFlow can turn a KeyboardInterrupt raised inside a traced function into another
exception (the issue's ``TypeError: ... Failed to convert elements of (None, 64) to Tensor``
from the graph trainer's traced step).  The children here are paper scripts run through
tests/interrupt_driver.py, which sends the process SIGINT from inside a chosen function
(tracing the training step, tracing the evaluation, writing a record, a state file, Keras'
fit, drawing a figure), or, in the slow sweep, from the test at wall-clock moments.  Every
one must end with "Interrupted ..." and exit status 130, and print no traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "interrupt_driver.py"
FIG3 = ROOT / "paper_experiments" / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py"
SNIP = ROOT / "paper_experiments" / "foresight" / "04_snip_table1_fig1_lenet300_mnist.py"
FIG3_OPTIONS = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "1", "--metrics", "minimum_layer",
                "--max-epochs", "1", "--max-train", "100", "--quiet"]
SNIP_OPTIONS = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--methods", "reference", "snip",
                "--compressions", "10", "--epochs", "1", "--max-train", "100", "--quiet"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1")


def _start(tmp_path, moment, count, script=FIG3, options=FIG3_OPTIONS):
    where = ["--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    return subprocess.Popen([sys.executable, str(DRIVER), moment, str(count), str(script), *options, *where],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal():
    """A shell's background job (make test &, nohup) starts with SIGINT ignored, and Python then
    installs no KeyboardInterrupt at all: give the child the disposition a terminal gives it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _assert_interrupted(child, what, communicated=None):
    out, err = communicated or child.communicate(timeout=600)
    shown = f"{what}: exit {child.returncode}\n{out[-1500:]}\n{err[-3000:]}"
    assert "Traceback" not in out + err, shown
    assert child.returncode == 130, shown
    assert "Interrupted " in err and "Run the same command again" in err, shown


# (moment, which call): Flatten's second call while tracing is in the next run's step, as the
# grid moves from run to run (the case), with the interrupt turned into a TypeError as
# TensorFlow did there, then swallowed as autograph does; the third record write is a cycle's.
FAST_MOMENTS = [("trace_flatten:converted", 2), ("trace_flatten:swallowed", 2), ("results_write", 3)]


def test_sigint_at_chosen_moments_ends_with_the_resume_message_and_130(tmp_path):
    children = [(f"{moment} #{count}", _start(tmp_path / f"{moment.replace(':', '_')}{count}", moment, count))
                for moment, count in FAST_MOMENTS]
    for what, child in children:
        _assert_interrupted(child, what)


@pytest.mark.slow
@pytest.mark.parametrize("moment, count", [
    ("trace_flatten", 1), ("trace_flatten:converted", 1), ("trace_flatten:swallowed", 3), ("trace_train", 1), ("trace_train", 2), ("trace_evaluate", 1), ("trace_evaluate", 2), ("results_write", 1),
    ("results_write", 6), ("state_write", 1), ("state_write", 4), ("figure", 1), ("figure", 2),
])
def test_sigint_at_every_moment_of_a_dropnet_grid(tmp_path, moment, count):
    _assert_interrupted(_start(tmp_path, moment, count), f"{moment} #{count}")


@pytest.mark.slow
@pytest.mark.parametrize("count", [1, 2])  # the grid's two runs (reference, SNIP) call fit twice
def test_sigint_inside_keras_fit_of_a_foresight_grid(tmp_path, count):
    _assert_interrupted(_start(tmp_path, "keras_fit", count, SNIP, SNIP_OPTIONS), f"keras_fit #{count}")


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 16.0, 20.0, 25.0])
def test_sigint_from_outside_at_wall_clock_moments(tmp_path, seconds):
    """Ctrl-C as a user presses it: from another process, during start-up, the TensorFlow
    import, data loading, tracing, XLA compilation, training or drawing (the moment each
    lands at depends on the machine).  One that comes after the command ended, while the
    process tears TensorFlow down or after it exited, finds the command done: status 0, with
    both figures written before the signal was sent."""
    child = _start(tmp_path, "none", 0, options=FIG3_OPTIONS + ["--population", "2"])
    time.sleep(seconds)
    if child.poll() is None:
        sent = time.time()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=600)
        if child.returncode == 0:  # it had ended its command and was tearing TensorFlow down
            figures = sorted((tmp_path / "figures").glob("*.png"))
            assert len(figures) == 2 and all(f.stat().st_mtime <= sent for f in figures), (out, err[-3000:])
            assert "Traceback" not in out + err and "Interrupted" not in err, err[-3000:]
        else:
            _assert_interrupted(child, f"SIGINT after {seconds} s", (out, err))
    else:
        out, err = child.communicate()
        assert child.returncode == 0 and "Traceback" not in out + err, err[-3000:]


_TEARDOWN_SCRIPT = """
import os, signal, sys, time
from paper_experiments.kit.entry import command

class SignalAtTeardown:  # a module global: deleted while the interpreter is torn down
    def __del__(self):
        os.kill(os.getpid(), signal.{name})
        time.sleep(0.5)

keep = SignalAtTeardown()

@command
def main(status):
    print("done", flush=True)
    if status:
        raise SystemExit(status)

main(int(sys.argv[1]))
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("status", [0, 1])
def test_a_signal_after_the_command_ended_leaves_its_exit_status(tmp_path, name, status):
    """Python hands signals back to the system's default while it tears the process down
    (about a second with TensorFlow loaded): a Ctrl-C or SIGTERM then must not kill it by the
    signal, which would report a finished command as interrupted, with no message."""
    script = tmp_path / "command.py"
    script.write_text(_TEARDOWN_SCRIPT.format(name=name))
    child = subprocess.run([sys.executable, str(script), str(status)], cwd=ROOT, env=ENV, capture_output=True,
                           text=True, timeout=120, preexec_fn=_ctrl_c_as_in_a_terminal)
    assert (child.returncode, child.stdout) == (status, "done\n"), child.stderr
    assert "Traceback" not in child.stderr, child.stderr


# ----------------------------------------------------------------------------- in this process


def _command_of(body):
    from paper_experiments.kit.entry import command

    return command(body)


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler in this process (a background pytest starts with SIGINT ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_an_exception_after_sigint_is_the_interrupt_and_one_without_it_is_not(capsys, ctrl_c_raises):
    """The rule itself, on a main that raises what TensorFlow raised in the issue: after SIGINT
    arrived it ends as Ctrl-C does (130, the resume message); without SIGINT the same error
    keeps its traceback; a KeyboardInterrupt alone, and a UserError (1), are unchanged."""
    from paper_experiments.kit.entry import UserError

    def converted():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, raising KeyboardInterrupt
        except KeyboardInterrupt:
            pass  # as TensorFlow's tracing does: the interrupt swallowed, another error raised
        raise TypeError("Exception encountered when calling Flatten.call(). Failed to convert elements of "
                        "(None, 64) to Tensor")

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exited:
        _command_of(converted)()
    assert exited.value.code == 130 and "Run the same command again" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the command's handler is gone again

    def plain_bug():
        raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):  # no SIGINT in this call: a bug keeps its traceback
        _command_of(plain_bug)()

    def user_error():
        raise UserError("Put the files in DIR.")

    with pytest.raises(SystemExit) as exited:
        _command_of(user_error)()
    assert exited.value.code == 1 and "Put the files in DIR." in capsys.readouterr().err

    def pressed():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exited:
        _command_of(pressed)()
    assert exited.value.code == 130


def test_an_interrupt_swallowed_by_the_code_is_sent_again_until_the_command_ends(capsys, ctrl_c_raises):
    """What autograph does to a Ctrl-C while it converts a function: catches the KeyboardInterrupt
    and runs the function as it is. The command must still end on the interrupt (130), not run on."""
    swallowed = []

    def swallows_then_works():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            swallowed.append(1)
        for _ in range(50):  # the grid goes on: the next interrupt must come within this
            time.sleep(0.1)
        return "finished"

    with pytest.raises(SystemExit) as exited:
        _command_of(swallows_then_works)()
    assert swallowed == [1] and exited.value.code == 130
    assert "Run the same command again" in capsys.readouterr().err
