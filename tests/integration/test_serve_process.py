"""`hub serve` as a real process: who it lets start, SIGTERM under load, slow clients."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.app import Hub
from hub.settings import Settings
from tests.factories import raw_touchpoint
from tests.integration.nats_helpers import ROOT, HubProcess, recorded_sources, source_key
from tests.stores import cli_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(store_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {**env, **cli_env(store_env), "HUB_RUN_PROJECTIONS": "false", **extra}


def refused_serve(store_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`hub serve ARGS` run to its end, for the cases it must refuse before binding."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", *args],
        cwd=ROOT,
        env=serve_env(store_env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_serve(
    store_env: dict[str, str], tmp_path: Path, *args: str, **extra: str
) -> tuple[HubProcess, str]:
    port = free_port()
    server = HubProcess(
        ["serve", "--port", str(port), *args], serve_env(store_env, **extra), tmp_path / "serve.log"
    )
    server.wait_ready("Uvicorn running")
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}").eventsourcing_env()


@pytest.mark.parametrize("keys", ["none", "all revoked"])
def test_serve_refuses_a_public_host_without_keys(sqlite_env: dict[str, str], keys: str) -> None:
    if keys == "all revoked":
        hub = Hub(dict(sqlite_env))
        try:
            hub.keys.revoke(hub.keys.create("admin")[0].id)
        finally:
            hub.close()
    done = refused_serve(sqlite_env, "--host", "0.0.0.0", "--port", "1")
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0: no API key" in done.stderr


def test_serve_on_loopback_without_keys_says_loudly_it_runs_open(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    server, url = start_serve(sqlite_env, tmp_path)
    try:
        assert "RUNNING OPEN" in server.output()
        assert httpx.get(f"{url}/v1/projections").status_code == 200
    finally:
        assert server.terminate() == 0


def test_sigterm_answers_in_flight_posts_and_loses_none_of_them(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    # A long group-commit wait keeps touchpoints in flight when the signal lands.
    server, url = start_serve(store_env, tmp_path, HUB_GROUP_COMMIT_WAIT_MS="40")
    acknowledged: list[tuple[str, float]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def post_until_refused() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while True:
                raw = raw_touchpoint(customer={"email": f"sig{time.monotonic_ns()}@example.com"})
                try:
                    response = client.post("/v1/touchpoints", json=raw)
                except httpx.TransportError:
                    return  # the server has closed: nothing more is acknowledged
                with lock:
                    if response.status_code in (200, 201):
                        acknowledged.append((source_key(raw), time.monotonic()))
                    elif response.status_code != 503:
                        failures.append(f"{response.status_code} {response.text}")

    clients = [threading.Thread(target=post_until_refused) for _ in range(8)]
    for thread in clients:
        thread.start()
    while len(acknowledged) < 100:
        assert server.proc.poll() is None, server.output()
        time.sleep(0.01)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(60)
    for thread in clients:
        thread.join(30)
    assert code == 0, server.output()
    assert failures == []
    assert any(at > signalled for _, at in acknowledged), "no in-flight post was answered"
    hub = Hub(dict(store_env))
    try:
        stored = recorded_sources(hub)
        assert all(stored[key] == 1 for key, _ in acknowledged)
        assert hub.verify().ok  # nothing half-written: every chain and key row whole
    finally:
        hub.close()


def test_sigterm_ends_open_dashboard_event_streams_at_once(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    server, url = start_serve(sqlite_env, tmp_path)
    port = int(url.rpartition(":")[2])
    # A browser's EventSource: one connection, the request sent, the stream held open.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as browser:
        browser.sendall(
            b"GET /dashboard/live?every=600 HTTP/1.1\r\nHost: hub\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        received = b""
        while b"retry:" not in received:  # headers and the first event may come apart
            chunk = browser.recv(4096)
            assert chunk, received
            received += chunk
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(60)
    # The graceful shutdown waits up to HUB_REQUEST_TIMEOUT_S + 5 s for requests; an open
    # dashboard must not hold it that long.
    assert code == 0, server.output()
    assert time.monotonic() - signalled < 5


def read_response(sock: socket.socket) -> bytes:
    """A whole HTTP/1.1 response with a Content-Length (headers and body may come apart)."""
    data = b""
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _closed(sock: socket.socket, within: float) -> bool:
    readable, _, _ = select.select([sock], [], [], within)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_slow_clients_time_out_and_hold_no_writer(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    server, url = start_serve(sqlite_env, tmp_path, HUB_REQUEST_TIMEOUT_S="3")
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    try:
        dribbling_headers = socket.create_connection((host, port))
        dribbling_headers.sendall(b"POST /v1/touchpoints HTTP/1.1\r\nHost: hub\r\n")
        dribbling_body = socket.create_connection((host, port))
        body = b'{"source": {"channel": "phone", "id": "slow-1"}}' + b" " * 400
        dribbling_body.sendall(
            b"POST /v1/touchpoints HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
        )
        started = time.monotonic()
        # Meanwhile a well-behaved client is served at once.
        quick = httpx.post(f"{url}/v1/touchpoints", json=raw_touchpoint(), timeout=5)
        assert quick.status_code == 201
        assert time.monotonic() - started < 2

        answer = b""
        header_closed_at = None
        for byte in body[10:]:
            if header_closed_at is None:
                try:
                    dribbling_headers.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    header_closed_at = time.monotonic()
                if header_closed_at is None and _closed(dribbling_headers, 0):
                    header_closed_at = time.monotonic()
            try:
                dribbling_body.sendall(bytes([byte]))
            except OSError:
                break
            readable, _, _ = select.select([dribbling_body], [], [], 0.25)
            if readable:
                answer = read_response(dribbling_body)
                break
            assert time.monotonic() - started < 10, "the slow body was never cut off"
        waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"application/problem+json" in answer and b"request-timeout" in answer
        assert 2.5 < waited < 7
        if header_closed_at is None:
            assert _closed(dribbling_headers, 5), "headers dribbled forever"
            header_closed_at = time.monotonic()
        assert header_closed_at - started < 8
    finally:
        assert server.terminate() == 0
    hub = Hub(dict(sqlite_env))
    try:
        assert "phone:slow-1" not in recorded_sources(hub)
        assert sum(recorded_sources(hub).values()) == 1
    finally:
        hub.close()


def test_keys_cli_creates_lists_and_revokes(sqlite_env: dict[str, str]) -> None:
    # The CLI is a thin door to `hub.keys`, whose tables tests/integration/test_api_keys.py
    # runs on both stores.
    store_env = sqlite_env

    def hub_cli(*args: str) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "keys", *args],
            cwd=ROOT,
            env=serve_env(store_env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = hub_cli("create", "--role", "channel:web", "--name", "shop webhook")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("hub_") and "shown only now" in made.stderr
    key_id = made.stderr.split("id ", 1)[1].split(",", 1)[0]
    listed = hub_cli("list")
    assert (
        key_id in listed.stdout
        and "channel:web" in listed.stdout
        and "shop webhook" in listed.stdout
    )
    assert key not in listed.stdout
    assert hub_cli("revoke", key_id).returncode == 0
    assert hub_cli("revoke", "nosuchkey").returncode == 1
    bad = hub_cli("create", "--role", "superuser")
    assert bad.returncode == 2 and "unknown role 'superuser'" in bad.stderr
    hub = Hub(dict(store_env))
    try:
        (record,) = hub.keys.list()
        assert record.revoked and hub.keys.verify(key) == record
    finally:
        hub.close()
