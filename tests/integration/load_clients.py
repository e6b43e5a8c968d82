"""Clients that keep a hub busy while a test takes it (or its store) away, as real ones would:
post touchpoints one after another and, when the connection breaks or the hub answers 503,
send the same touchpoint again until it gets an answer."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.factories import raw_touchpoint

PROBLEM = "application/problem+json"


def call(run: str, index: int, customers: int = 50) -> dict[str, Any]:
    return raw_touchpoint(
        source={"channel": "phone", "id": f"{run}-call-{index}"},
        customer={"email": f"c{index % customers}@{run}.example.com"},
    )


@dataclass
class Unavailable:
    """A 503 as the client saw it."""

    content_type: str
    retry_after: str | None
    problem: dict[str, Any]


@dataclass
class Streamer:
    """`threads` clients posting `make(i)` for i = 0, 1, … until stopped (or `limit` sent)."""

    url: str
    make: Callable[[int], dict[str, Any]]
    threads: int = 4
    limit: int | None = None
    timeout: float = 15.0
    give_up_after: float = 120.0
    answers: dict[str, int] = field(default_factory=dict)  # source key → final status
    broken: Counter[str] = field(default_factory=Counter)  # source key → transport errors
    unavailable: list[Unavailable] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._indexes = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._work, daemon=True) for _ in range(self.threads)
        ]
        self.errors: list[BaseException] = []

    def start(self) -> Streamer:
        for worker in self._workers:
            worker.start()
        return self

    def stop(self, timeout: float = 150.0) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout)
            assert not worker.is_alive(), "a client never got its answer"
        assert not self.errors, self.errors

    def sent(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for(self, answered: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.sent() < answered:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"only {self.sent()} answered"
            time.sleep(0.02)

    def _next(self) -> int | None:
        with self._lock:
            index = next(self._indexes)
        if self._stop.is_set() or (self.limit is not None and index >= self.limit):
            return None
        return index

    def _work(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
                while (index := self._next()) is not None:
                    raw = self.make(index)
                    key = f"{raw['source']['channel']}:{raw['source']['id']}"
                    status = self._post_until_answered(client, key, raw)
                    with self._lock:
                        self.answers[key] = status
        except BaseException as error:  # noqa: BLE001 - the test thread reports it
            self.errors.append(error)

    def _post_until_answered(self, client: httpx.Client, key: str, raw: dict[str, Any]) -> int:
        deadline = time.monotonic() + self.give_up_after
        while time.monotonic() < deadline:
            try:
                response = client.post("/v1/touchpoints", json=raw)
            except httpx.TransportError:  # the hub died mid-request, or is not up yet
                with self._lock:
                    self.broken[key] += 1
                time.sleep(0.05)
                continue
            if response.status_code == 503:
                with self._lock:
                    self.unavailable.append(
                        Unavailable(
                            response.headers.get("content-type", ""),
                            response.headers.get("retry-after"),
                            response.json(),
                        )
                    )
                time.sleep(min(float(response.headers.get("retry-after") or 1), 0.25))
                continue
            return response.status_code
        raise AssertionError(f"{key}: no answer in {self.give_up_after} s")


def assert_nothing_half_written(hub: Any, store_env: dict[str, str], env: dict[str, str]) -> None:
    """Every touchpoint event has its source-key row and every such row its event, and
    `hub verify` (run as the command an operator would) finds no break."""
    import subprocess
    import sys

    from tests.integration.nats_helpers import ROOT, recorded_sources
    from tests.stores import RawStore

    raw = RawStore(hub, store_env)
    try:
        ((key_rows,),) = raw.execute("SELECT count(*) FROM {keys} WHERE version IS NOT NULL")
    finally:
        raw.close()
    assert key_rows == sum(recorded_sources(hub).values())
    assert hub.store.orphan_keys() == []
    verify = subprocess.run(
        [sys.executable, "-m", "api.cli", "verify"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("OK"), verify.stdout
