"""Progress per test file: one line when a file's last test finishes.

``make test`` runs the suite on two pytest-xdist workers, whose dots carry no file names;
this line says which file is done, how its tests ended and how long they took (the sum of
their setup, call and teardown times, which is what the file costs on one worker), and when
in the session it finished.  It works without xdist as well: then it follows the file's dots.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest


class _FileProgress:
    def __init__(self, config):
        self.config = config
        self.started = time.monotonic()
        self.expected: dict[str, int] = {}  # file → number of tests collected
        self.finished: dict[str, int] = defaultdict(int)
        self.failed: dict[str, set] = defaultdict(set)  # file → ids of tests with a failed phase
        self.skipped: dict[str, set] = defaultdict(set)
        self.seconds: dict[str, float] = defaultdict(float)

    @staticmethod
    def _file(nodeid: str) -> str:
        return nodeid.split("::", 1)[0]

    def _expect(self, nodeids) -> None:
        if self.expected:  # every xdist worker collects the same ids; the first list will do
            return
        for nodeid in nodeids:
            self.expected[self._file(nodeid)] = self.expected.get(self._file(nodeid), 0) + 1

    # Without xdist (and on each xdist worker, where it does nothing useful but no harm).
    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        if not hasattr(self.config, "workerinput"):
            self._expect(item.nodeid for item in session.items)

    # On the xdist controller: the ids each worker collected.
    def pytest_xdist_node_collection_finished(self, node, ids):
        self._expect(ids)

    def pytest_runtest_logreport(self, report):
        if hasattr(self.config, "workerinput"):  # a worker: the controller prints
            return
        path = self._file(report.nodeid)
        self.seconds[path] += getattr(report, "duration", 0.0)
        if report.failed:
            self.failed[path].add(report.nodeid)
        elif report.skipped and report.when != "teardown":
            self.skipped[path].add(report.nodeid)
        if report.when != "teardown":
            return
        self.finished[path] += 1
        if self.finished[path] == self.expected.get(path):
            self._report(path)

    def _report(self, path: str) -> None:
        failed, skipped = len(self.failed[path]), len(self.skipped[path] - self.failed[path])
        passed = self.finished[path] - failed - skipped
        elapsed = time.monotonic() - self.started
        parts = [f"{passed} passed"] + ([f"{failed} failed"] if failed else []) + (
            [f"{skipped} skipped"] if skipped else []
        )
        line = (f"{path}: {', '.join(parts)} in {self.seconds[path]:.1f} s "
                f"[{int(elapsed // 60)}:{int(elapsed % 60):02d} into the run]")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        reporter.ensure_newline()  # after a file's dots (without xdist)
        writer = getattr(reporter, "_tw", None)
        if writer is not None and getattr(writer, "width_of_current_line", 0):
            writer.line()  # after xdist's dots, which carry no file name
        reporter.write_line(line, red=bool(failed), green=not failed)
        reporter.currentfspath = None  # the next dots start a fresh line


def pytest_configure(config):
    config.pluginmanager.register(_FileProgress(config), "file_progress")
