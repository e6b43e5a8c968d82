"""`hub project --workers N`: the views split over N processes by what each costs a catch-up,
each process a plain `hub project --views …`, restarted when it dies and stopped on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from projections.runner import VIEW_NAMES

# Each view's share of a one-process catch-up (wall time in its `apply`, PostgreSQL's writes
# included; `bench.projections --quick`, see README). Every worker also reads and decodes the
# whole log, which no split saves.
VIEW_COSTS = {
    "timeline": 0.26,
    "profile": 0.24,
    "open_items": 0.35,
    "claims": 0.03,
    "conflicts": 0.01,
    "analytics": 0.11,
}
RESTART_AFTER_S = 1.0  # a worker that died is started again after this pause (doubling to 30 s)
STOP_WAIT_S = 30.0


def partition(names: Sequence[str], workers: int) -> list[list[str]]:
    """The views split into at most `workers` groups of about equal cost (costliest first, each
    onto the cheapest group so far); each group in `VIEW_NAMES` order."""
    groups: list[list[str]] = [[] for _ in range(min(workers, len(names)))]
    loads = [0.0] * len(groups)
    for name in sorted(names, key=lambda n: (-VIEW_COSTS[n], VIEW_NAMES.index(n))):
        lightest = loads.index(min(loads))
        groups[lightest].append(name)
        loads[lightest] += VIEW_COSTS[name]
    return [sorted(group, key=VIEW_NAMES.index) for group in groups]


def worker_command(views: Sequence[str]) -> list[str]:
    """A `hub project` of these views alone, in this Python."""
    return [
        sys.executable,
        "-m",
        "api.cli",
        "project",
        "--workers",
        "1",
        "--views",
        ",".join(views),
    ]


class Supervisor:
    """Runs one `hub project --views` process per group until `stop`; restarts any that exits."""

    def __init__(self, groups: Sequence[Sequence[str]], env: dict[str, str] | None = None):
        self.groups = [list(group) for group in groups]
        self.env = {**(env if env is not None else os.environ), "HUB_PROJECTION_WORKERS": "1"}
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(self.groups)
        self._stop = threading.Event()

    def _start(self, index: int) -> None:
        self.procs[index] = subprocess.Popen(worker_command(self.groups[index]), env=self.env)

    def run(self) -> int:
        """Start every worker and keep them running until `stop`; then end them (SIGTERM,
        then SIGKILL after `STOP_WAIT_S`) and return 0."""
        pauses = [RESTART_AFTER_S] * len(self.groups)
        due = [0.0] * len(self.groups)
        try:
            for index in range(len(self.groups)):
                self._start(index)
            while not self._stop.wait(0.2):
                for index, proc in enumerate(self.procs):
                    if proc is not None and proc.poll() is not None:
                        print(
                            f"hub: projection worker {','.join(self.groups[index])} exited with "
                            f"{proc.returncode}; restarting in {pauses[index]:.0f} s",
                            file=sys.stderr,
                        )
                        self.procs[index] = None
                        due[index] = time.monotonic() + pauses[index]
                        pauses[index] = min(pauses[index] * 2, 30.0)
                    elif proc is None and time.monotonic() >= due[index]:
                        self._start(index)
        finally:
            self._end()
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _end(self) -> None:
        running = [proc for proc in self.procs if proc is not None and proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
