"""A real `hub serve` on a free port over a temporary SQLite store, seeded over HTTP with a
few customers, and a headless Debian chromium driven by Playwright: for the browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


LI = {"email": "li.wei@example.com"}
AGENT = {"kind": "agent", "id": "agent-17", "name": "Zhang Min"}


def seed_touchpoints() -> list[dict[str, Any]]:
    """Li Wei: an order paid on the web, a question by email left unanswered for days, a
    phone call; Ana Costa: an urgent repair just opened; Omar Said: a promise due next week."""
    return [
        {
            "source": {"channel": "web", "id": "profile-li"},
            "type": "profile.updated",
            "occurred_at": ago(days=9),
            "customer": {**LI, "phone": "+49 30 1234567"},
            "data": {"name": "Li Wei", "address": "Lindenweg 4, Berlin"},
        },
        {
            "source": {"channel": "web", "id": "order-A-17"},
            "type": "order.placed",
            "occurred_at": ago(days=8),
            "customer": LI,
            "data": {"order_id": "A-17", "total": {"amount": "19.90", "currency": "EUR"}},
        },
        {
            "source": {"channel": "erp", "id": "order-A-17-paid"},
            "type": "order.status_changed",
            "occurred_at": ago(days=8, hours=-1),
            "customer": LI,
            "data": {"order_id": "A-17", "status": "paid"},
        },
        {
            "source": {"channel": "email", "id": "<q-1@mail.example.com>"},
            "type": "email.received",
            "occurred_at": ago(days=6),
            "customer": LI,
            "data": {"message_id": "<q-1@mail.example.com>", "subject": "Where is my parcel?"},
        },
        {
            "source": {"channel": "service", "id": "SR-9-opened"},
            "type": "service.opened",
            "occurred_at": ago(minutes=30),
            "customer": {"email": "ana.costa@example.com"},
            "data": {
                "request_id": "SR-9",
                "subject": "Dishwasher leaks",
                "kind": "repair",
                "priority": "urgent",
            },
        },
        {
            "source": {"channel": "phone", "id": "promise-omar"},
            "type": "promise.made",
            "occurred_at": ago(hours=2),
            "customer": {"email": "omar.said@example.com"},
            "actor": AGENT,
            "data": {
                "promise_id": "P-1",
                "what": "Send the warranty papers",
                "due": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
            },
        },
    ]


@dataclass
class Served:
    url: str
    li: str  # Li Wei's customer id

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/touchpoints", json=envelope, timeout=10)


@contextmanager
def serve_hub(folder: Path) -> Iterator[Served]:
    """`hub serve` in a subprocess on a fresh store in `folder`, seeded; stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": f"sqlite:///{folder / 'hub.db'}",
        "HUB_PROJECTION_POLL_S": "0.1",
    }
    log = (folder / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "serve.log").read_text())
            time.sleep(0.2)
        answer = httpx.post(f"{url}/v1/touchpoints/batch", json=seed_touchpoints(), timeout=30)
        assert answer.json()["accepted"] == len(seed_touchpoints()), answer.text
        li = answer.json()["results"][0]["customer_id"]
        blocked = {  # a phone agent says "shipped" while the ERP says "paid": refused (409)
            "source": {"channel": "phone", "id": "call-blocked"},
            "type": "call.outbound",
            "occurred_at": ago(days=5),
            "customer": LI,
            "actor": AGENT,
            "data": {"summary": "Told the customer it shipped"},
            "claims": [{"subject": "order:A-17:status", "value": "shipped"}],
        }
        assert httpx.post(f"{url}/v1/touchpoints", json=blocked, timeout=10).status_code == 409
        last = httpx.get(f"{url}/healthz", timeout=5).json()["position"]
        ready = httpx.get(f"{url}/v1/open-items", params={"min_position": last}, timeout=10)
        assert ready.status_code == 200
        yield Served(url, li)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def require_chromium() -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright (never a browser it downloads)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def shot(page: Any, name: str) -> None:
    """Keep a screenshot as a test artefact (artifacts/ is not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
