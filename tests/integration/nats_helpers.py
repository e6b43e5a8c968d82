"""Helpers of the NATS tests: per-test stream and subject names on the shared server, the
`hub` command as a process, and reading back what the store and the streams hold."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.js.api import Header
from nats.js.errors import NotFoundError

from adapters.nats_ingest import consumer_of
from adapters.nats_streams import partition_key, partition_of
from hub.app import Hub
from hub.settings import Settings
from projections.base import decode
from tests.stores import cli_env

ROOT = Path(__file__).resolve().parents[2]


def unique_nats(nats_url: str, **overrides: Any) -> Settings:
    """Settings with stream, consumer and subject names no other test (or run) uses."""
    tag = uuid.uuid4().hex[:10]
    fields: dict[str, Any] = {
        "nats_url": nats_url,
        "nats_stream": f"T_{tag}",
        "nats_subject_prefix": f"t{tag}.touchpoints",
        "nats_rejected_prefix": f"t{tag}.touchpoints.rejected",
        "nats_durable": f"ingest-{tag}",
        "nats_events_stream": f"E_{tag}",
        "nats_events_prefix": f"t{tag}.hub.events",
        "nats_publisher": f"publish-{tag}",
        "nats_ack_wait_s": 2.0,
        "nats_retry_delay_s": 0.2,
        "nats_poll_s": 0.05,
        **overrides,
    }
    return Settings(**fields)


def delete_streams(settings: Settings) -> None:
    async def delete() -> None:
        nc = await nats.connect(settings.nats_url)
        try:
            for name in (settings.nats_stream, settings.nats_events_stream):
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(delete())


def process_env(store_env: dict[str, str], settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `hub` process on the test's store and streams."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(cli_env(store_env))
    for name, value in settings.model_dump().items():
        if name.startswith("nats_") and value is not None:
            env[f"HUB_{name.upper()}"] = str(value)
    env.update(extra)
    return env


class HubProcess:
    """`hub <args>` as a child process; stderr kept in a file so it never blocks."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self.handle = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, marker: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.output():
            assert self.proc.poll() is None, f"exited early: {self.output()}"
            assert time.monotonic() < deadline, f"not ready: {self.output()}"
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.handle.close()

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.handle.close()
        return code

    def stats(self, label: str) -> dict[str, int]:
        """The JSON the command prints last: `hub: <label> stopped: {...}`."""
        line = [x for x in self.output().splitlines() if f"hub: {label} stopped:" in x][-1]
        return json.loads(line.split("stopped:", 1)[1])


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)


def recorded_sources(hub: Hub) -> Counter[str]:
    """How many touchpoints the store holds per source key (`channel:id`)."""
    found: Counter[str] = Counter()
    position = 1
    while page := hub.recorder.select_notifications(position, 1000):
        for event in decode(page, None):
            if event.kind == "touchpoint":
                found[f"{event.doc['channel']}:{event.doc['source_id']}"] += 1
        position = page[-1].id + 1
    return found


def published_positions(hub: Hub) -> list[int]:
    """Positions of every event the publisher should send, in log order."""
    positions = []
    position = 1
    while page := hub.recorder.select_notifications(position, 1000):
        positions += [event.position for event in decode(page, None)]
        position = page[-1].id + 1
    return positions


def source_key(raw: dict[str, Any]) -> str:
    return f"{raw['source']['channel']}:{raw['source']['id']}"


async def publish_envelopes(
    settings: Settings,
    raws: list[dict[str, Any]],
    msg_id: bool = True,
    partitions: int | None = None,
) -> list[Any]:
    """Publish envelopes as channels do (to `<prefix>.<channel>`, `Nats-Msg-Id` = source key);
    with `partitions`, to `<prefix>.<channel>.<partition of the envelope>`."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        futures = [
            await js.publish_async(
                f"{settings.nats_subject_prefix}.{raw['source']['channel']}"
                + (
                    "" if partitions is None else f".{partition_of(partition_key(raw), partitions)}"
                ),
                orjson.dumps(raw),
                headers={Header.MSG_ID.value: source_key(raw)} if msg_id else None,
            )
            for raw in raws
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await nc.close()


async def stream_messages(settings: Settings, stream: str, subject_prefix: str) -> list[Any]:
    """Every message of the stream under the subject prefix, in stream order."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            if msg.subject and msg.subject.startswith(subject_prefix + "."):
                found.append(msg)
        return found
    finally:
        await nc.close()


async def consumer_state(settings: Settings) -> tuple[int, int]:
    """(messages not yet delivered, delivered but not acked) of the ingest consumer."""
    nc = await nats.connect(settings.nats_url)
    try:
        _, durable = consumer_of(settings)
        info = await nc.jetstream().consumer_info(settings.nats_stream, durable)
        return info.num_pending or 0, info.num_ack_pending or 0
    finally:
        await nc.close()
