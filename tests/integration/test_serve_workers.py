"""`hub serve --workers N`: N processes answer on one port, a dead one is started again, and
SIGTERM stops them all cleanly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.app import Hub
from hub.settings import Settings
from tests.conftest import pg_url
from tests.factories import raw_touchpoint
from tests.integration.nats_helpers import HubProcess, recorded_sources, wait_until
from tests.integration.test_serve_process import free_port, refused_serve, serve_env


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (from /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(p) for p in text)
    return found


@pytest.fixture
def pg_env(pg_database: str) -> dict[str, str]:
    return Settings(database_url=pg_url(pg_database)).eventsourcing_env()


@pytest.fixture
def two_workers(pg_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[HubProcess, str]]:
    port = free_port()
    server = HubProcess(
        ["serve", "--port", str(port), "--workers", "2"], serve_env(pg_env), tmp_path / "serve.log"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: server.output().count("Application startup complete") >= 2, 60, "two workers"
        )
        yield server, url
    finally:
        if server.proc.poll() is None:
            server.kill()


def post_each_on_its_own_connection(url: str, count: int, tag: str) -> list[int]:
    statuses = []
    for n in range(count):
        raw = raw_touchpoint(source={"channel": "phone", "id": f"{tag}-{n}"})
        with httpx.Client() as client:  # a new connection: any worker may accept it
            statuses.append(client.post(f"{url}/v1/touchpoints", json=raw).status_code)
    return statuses


def test_two_workers_share_the_port_and_record_every_touchpoint_once(
    two_workers: tuple[HubProcess, str], pg_env: dict[str, str]
) -> None:
    server, url = two_workers
    assert len(children(server.proc.pid)) == 2
    assert post_each_on_its_own_connection(url, 30, "shared") == [201] * 30
    hub = Hub(dict(pg_env))
    try:
        recorded = recorded_sources(hub)
    finally:
        hub.close()
    assert [recorded[f"phone:shared-{n}"] for n in range(30)] == [1] * 30


def test_a_killed_worker_is_started_again(two_workers: tuple[HubProcess, str]) -> None:
    server, url = two_workers
    first = children(server.proc.pid)
    victim = min(first)
    os.kill(victim, 9)
    wait_until(lambda: len(children(server.proc.pid) - {victim}) == 2, 30, "a new worker")
    assert "exited with -9; restarting" in server.output()
    wait_until(
        lambda: server.output().count("Application startup complete") >= 3,
        60,
        "the new one serving",
    )
    assert post_each_on_its_own_connection(url, 10, "after-kill") == [201] * 10


def test_sigterm_stops_every_worker_and_exits_0(two_workers: tuple[HubProcess, str]) -> None:
    server, url = two_workers
    workers = children(server.proc.pid)
    assert post_each_on_its_own_connection(url, 4, "before-stop") == [201] * 4
    assert server.terminate() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert server.output().count("Application shutdown complete") == 2


def test_workers_are_refused_on_sqlite(tmp_path: Path) -> None:
    sqlite_env = Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}").eventsourcing_env()
    done = refused_serve(sqlite_env, "--port", "1", "--workers", "2")
    assert done.returncode == 2
    assert "--workers needs PostgreSQL" in done.stderr
