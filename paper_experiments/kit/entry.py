"""Start-up, Ctrl-C and user errors: what every paper-experiment entry point shares.

The numbered scripts (and ``make demo``) are commands people type, so they behave like one:

* ``--help`` and argument errors answer before TensorFlow is imported: the protocol modules
  parse the command line first and import the library afterwards (:func:`load_tensorflow`).
* TensorFlow's C++ start-up logging is quieted: ``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 here
  (``os.environ.setdefault``, so a value you set wins).  Level 3 is the one that hides the
  ``E0000 ... failed call to cuInit ... CUDA error`` line of a machine without a GPU (level 2
  does not: it is logged as an error).  The ``I0000``/``W0000`` lines absl prints before
  its logging is initialised ignore that variable, so they are filtered from stderr while
  TensorFlow is imported, by the same level.  Only entry points do this; the library itself
  never sets environment variables.
* Ctrl-C ends with one message saying what is saved and how to resume, not a traceback
  (:func:`command`, exit status 130); the runners report their progress through
  :data:`progress`.
* Errors a user can fix (a dataset that is not on this machine, a bad combination of
  options) end with one paragraph and exit status 1, no traceback: raise :class:`UserError`.

This module imports nothing heavy: it is loaded before TensorFlow.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from typing import Callable

#: The level the entry points give TensorFlow's C++ logging unless the user set one.
QUIET_LEVEL = "3"

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130

#: Exit status after SIGTERM (128 + SIGTERM): what a batch system sends before it kills a job.
TERMINATED = 143

#: The signals a command ends on with the resume message, and the exit status of each.
STOP_SIGNALS = {signal.SIGINT: INTERRUPTED, signal.SIGTERM: TERMINATED}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (the run stops between saves and says how to resume)."""

# absl's "before InitializeLog" preamble and its I/W/E lines ("I0000 00:00:17... file.cc:31] ...").
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_LOG_LINE = re.compile(r"^([IWE])\d{4} \d\d:\d\d:\d\d")
_SEVERITY = {"I": 0, "W": 1, "E": 2}


class UserError(Exception):
    """An error the user can fix; :func:`command` prints its message as one paragraph."""


def quiet_tensorflow_logging() -> None:
    """``TF_CPP_MIN_LOG_LEVEL=3`` unless already set (entry points only, before TF loads)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)


def _keep(line: str, level: int) -> bool:
    """Whether a stderr line written while TensorFlow is imported passes ``level``."""
    if line.rstrip("\n") == _PREAMBLE:
        return level < 1
    match = _LOG_LINE.match(line)
    return match is None or _SEVERITY[match.group(1)] >= level


def load_tensorflow() -> None:
    """Import TensorFlow with the start-up noise this module's docstring describes.

    Called by the protocol modules once the arguments are parsed.  stderr (the file
    descriptor: the lines come from C++) goes to a temporary file during the import and is
    written back without the absl lines below ``TF_CPP_MIN_LOG_LEVEL``; anything else,
    including an import error's output, comes through.
    """
    quiet_tensorflow_logging()
    if "tensorflow" in sys.modules:
        return
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, captured)
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if _keep(line, level))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


# ----------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """What the running script has saved, for the start-up and Ctrl-C messages.

    ``count`` returns the number of finished runs now saved in ``path`` (read from the
    file, so it is right after an interrupt too); ``total`` is the runs this command asks
    for (``None`` when the script does not know it in advance).
    """

    path: str = ""
    unit: str = "runs"
    total: int | None = None
    count: Callable[[], int] | None = None
    before: int = 0
    partial_note: str = ""  # what happens to the run in progress when interrupted
    active: bool = False
    merged: object = None  # a MergeReport after --merge: nothing runs, so say what was merged

    def start(self, path: str, count: Callable[[], int], total: int | None = None, unit: str = "runs",
              partial_note: str = "", describe: str = "", redraw: str = "redrawing the figures") -> str:
        """Record the state before running; returns (and prints) the line saying what happens."""
        self.path, self.count, self.total, self.unit, self.partial_note = path, count, total, unit, partial_note
        self.before = self._done()
        self.active = True
        line = self.describe_start(describe, redraw)
        print(line, flush=True)
        return line

    def _done(self) -> int:
        try:
            return int(self.count()) if self.count is not None else 0
        except Exception:  # noqa: BLE001 - a half-written file must not hide the interrupt
            return self.before

    def describe_start(self, describe: str = "", redraw: str = "redrawing the figures") -> str:
        what = f" ({describe})" if describe else ""
        if self.merged is not None:  # a merge runs nothing: "Resuming ... to go" would promise runs
            of = f" of {self.total}" if self.total is not None else ""
            partial = (f"; PARTIAL (--allow-partial): {self.merged.missing_text()}"
                       if self.merged.partial else "")
            return (f"Merged: {self.before}{of} {self.unit}{what} finished in {self.path}; nothing runs, "
                    f"only {redraw}{partial}.")
        if self.total is not None and self.before >= self.total:
            return f"All {self.total} {self.unit}{what} are already done in {self.path}; only {redraw}."
        if self.before:
            left = f"{self.total - self.before} to go" if self.total is not None else "running the rest"
            of = f" of {self.total}" if self.total is not None else ""
            return (f"Resuming: {self.before}{of} {self.unit}{what} already done in {self.path}; {left} "
                    f"(finished {self.unit} are skipped).")
        if self.total is not None:
            return f"Running {self.total} {self.unit}{what}; results in {self.path}."
        return f"Results in {self.path}{what}."

    def interrupted_message(self) -> str:
        if not self.active:
            return ("Interrupted before any result was saved (this command writes its outputs as runs finish, "
                    "or at the end). Run the same command again to start over.")
        done = self._done()
        of = f" of {self.total}" if self.total is not None else ""
        this_call = done - self.before
        message = (f"Interrupted after {done}{of} {self.unit} ({this_call} in this call); "
                   f"the finished ones are saved in {self.path}")
        message += f" ({self.partial_note})" if self.partial_note else ""
        return message + ". Run the same command again to continue."


#: The progress of the command running in this process (one per process).
progress = Progress()


class _Interrupts:
    """SIGINT or SIGTERM while a command runs: noted, raised (KeyboardInterrupt, or
    :class:`Terminated`), and sent again every ``every`` seconds until the command ends on it.

    Why again: TensorFlow can swallow the KeyboardInterrupt (autograph runs a function as it
    is when converting it raised, so a Ctrl-C landing while a step is traced is lost and the
    grid goes on), or turn it into another exception (see :func:`command`).

    Both handlers are installed whatever the process inherited: a job started in the
    background by a non-interactive shell (``nohup ... &``, many batch scripts) inherits
    SIGINT *ignored*, so ``kill -INT`` would do nothing, and SIGTERM's default kills the
    process before it can say where it stopped.  Only the main thread receives signals;
    elsewhere nothing is installed.  The previous handlers come back on exit.
    """

    def __init__(self, every: float = 0.5):
        self.every = every
        self.arrived = None  # the signal that arrived first, if any
        self.previous = {}
        self._settled = False
        self._lock = threading.Lock()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.arrived is None:
            self.arrived = signum
            threading.Thread(target=self._repeat, daemon=True).start()
        raise Terminated() if self.arrived == signal.SIGTERM else KeyboardInterrupt()

    def _repeat(self):
        while True:
            time.sleep(self.every)
            with self._lock:
                if self._settled:
                    return
                os.kill(os.getpid(), self.arrived)

    @property
    def status(self) -> int:
        return STOP_SIGNALS.get(self.arrived, INTERRUPTED)

    def settle(self) -> None:
        """No more interrupts from here on: the command is ending (a pending one is ignored)."""
        while True:
            try:
                with self._lock:
                    self._settled = True
                for signum in self.previous:
                    signal.signal(signum, lambda signum, frame: None)
                return
            except KeyboardInterrupt:  # one sent before the lock was taken: it is this interrupt
                continue

    def __exit__(self, *exc_info):
        self.settle()
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        return False


def _end_interrupted(interrupts: _Interrupts):
    interrupts.settle()
    print(f"\n{progress.interrupted_message()}", file=sys.stderr, flush=True)
    raise SystemExit(interrupts.status) from None


def command(main: Callable) -> Callable:
    """Decorate an entry point's ``main``: Ctrl-C and :class:`UserError` end with a message.

    Ctrl-C prints :meth:`Progress.interrupted_message` and exits with status 130 (SIGTERM:
    the same message and status 143), whatever
    exception it surfaces as: TensorFlow turns a ``KeyboardInterrupt`` raised while it traces,
    compiles or runs a ``tf.data`` pipeline into another error (a ``TypeError`` from a shape
    conversion, say), so any exception raised after SIGINT arrived counts as the interrupt;
    and where TensorFlow swallows it, SIGINT is sent again every half second until the
    command has ended on it (:class:`_Interrupts`).
    A :class:`UserError`, or a library error marked ``user_fixable`` (a dataset not on this
    machine, a torn results file, a stored run of other settings), prints its message as one
    wrapped paragraph and exits with status 1.
    Everything else (a bug) still shows its traceback.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            with _Interrupts() as interrupts:
                try:
                    return main(*args, **kwargs)
                except KeyboardInterrupt:
                    _end_interrupted(interrupts)
                except Exception as error:
                    if interrupts.arrived is not None:
                        _end_interrupted(interrupts)
                    # The library marks the errors a user fixes (a dataset not on this machine, a
                    # torn results file, a stored run of other settings) with ``user_fixable``.
                    if not (isinstance(error, UserError) or getattr(error, "user_fixable", False)):
                        raise
                    print(paragraph(str(error)), file=sys.stderr, flush=True)
                    raise SystemExit(1) from None
        finally:
            _quiet_teardown()

    return wrapper


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _quiet_teardown() -> None:
    """At interpreter exit, ignore SIGINT and SIGTERM: the command has ended, and said how.

    After the last ``atexit`` function, Python gives every signal it handled the system's
    default disposition back, then tears TensorFlow down, which takes about a second.  A
    Ctrl-C landing then would kill the process by the signal (status -2 to a parent, 130
    with no message from a shell) after the command had finished or had already chosen its
    status and message.  An ignored signal is the one disposition that teardown keeps, so
    the status stays the command's own.  Registered again as each command ends, so that it
    is the last registered and runs first, before TensorFlow's own exit functions.
    """
    if threading.current_thread() is threading.main_thread():
        import atexit

        atexit.unregister(_ignore_stop_signals)
        atexit.register(_ignore_stop_signals)


def paragraph(text: str, width: int = 100) -> str:
    """``text`` as one paragraph wrapped at ``width`` (line breaks inside it are joined)."""
    return textwrap.fill(" ".join(text.split()), width)
