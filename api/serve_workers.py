"""`hub serve --workers N`: N server processes answering on one listening socket.

One process runs the HTTP stack, the deciding and the group commit's writer under one
interpreter lock, so it uses about one core whatever the machine has. With PostgreSQL the
API is stateless (the store decides races), so N processes forked after the socket is bound
share it the way `uvicorn --workers` does: the kernel hands each connection to whichever
process accepts it. Each worker has its own group commit, customer cache and metrics; the
first one alone runs the embedded projections when `HUB_RUN_PROJECTIONS` is on. The parent
only supervises: SIGTERM (or SIGINT) is passed on to every worker, which finishes its
requests and commits what it holds; a worker that dies is started again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

RESTART_AFTER_S = 1.0  # the first pause before a dead worker is started again; doubles to 30 s
HEALTHY_AFTER_S = 60.0  # a worker that ran this long before it died starts the pauses afresh
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when its parent dies


def serve_forked(bound: socket.socket, workers: int, run_worker: Callable[[int], int]) -> int:
    """Fork `workers` processes that each call `run_worker(index)` on the inherited `bound`
    socket; supervise them until SIGTERM or SIGINT, then wait for them all and return 0."""
    stopping = False
    children: dict[int, int] = {}  # pid -> worker index
    started: dict[int, float] = {}  # worker index -> when it was last started

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _child_setup()
                code = run_worker(index)
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index
        started[index] = time.monotonic()

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    pauses = dict.fromkeys(range(workers), RESTART_AFTER_S)
    try:
        for index in range(workers):
            start(index)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children or stopping:
                children.pop(pid, None)
                continue
            index = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if time.monotonic() - started[index] >= HEALTHY_AFTER_S:
                pauses[index] = RESTART_AFTER_S
            print(
                f"hub: API worker {index} (pid {pid}) exited with {code}; "
                f"restarting in {pauses[index]:.0f} s",
                file=sys.stderr,
            )
            time.sleep(pauses[index])
            pauses[index] = min(pauses[index] * 2, 30.0)
            if not stopping:
                start(index)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        bound.close()
    return 0


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the workers share (bound before they are forked)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def _child_setup() -> None:
    """A worker: the supervisor's signal handling undone (uvicorn installs its own while it
    serves, then re-raises the signal: a SIGTERM that does nothing makes that exit 0), and an
    end of its own if the supervisor is killed outright (Linux), so no orphan keeps the port."""
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Ctrl-C in a terminal reaches the supervisor only; it passes one SIGTERM on (a second
    # signal would make uvicorn drop the requests in flight).
    os.setpgrp()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
