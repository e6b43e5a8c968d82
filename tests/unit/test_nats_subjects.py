"""Inbound subjects: the channel of a subject, partitioned or not, the stream's subjects, and
the partition a publisher computes (stable: other languages must compute the same)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.nats_ingest import consumer_of
from adapters.nats_streams import (
    channel_of,
    covers,
    inbound_subjects,
    partition_key,
    partition_of,
)
from hub.settings import Settings


def test_the_channel_is_the_token_after_the_prefix_partitioned_or_not() -> None:
    assert channel_of("touchpoints.web", "touchpoints") == "web"
    assert channel_of("touchpoints.web.3", "touchpoints") == "web"
    assert channel_of("acme.touchpoints.phone.0", "acme.touchpoints") == "phone"


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.*.*", "a.rejected.*", True),
        ("a.*.*", "a.b.c", True),
        ("a.*.*", "a.b", False),
        ("a.*.*", "a.b.>", False),
        ("a.*", "a.*", True),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a.b.*", "a.*.*", False),
    ],
)
def test_covers_follows_nats_wildcards(pattern: str, subject: str, expected: bool) -> None:
    assert covers(pattern, subject) is expected


def test_the_stream_takes_partitioned_subjects_and_the_rejected_ones_once() -> None:
    assert inbound_subjects("touchpoints", "touchpoints.rejected", partitioned=False) == [
        "touchpoints.*",
        "touchpoints.rejected.*",
    ]
    assert inbound_subjects("touchpoints", "touchpoints.rejected") == [
        "touchpoints.*",
        "touchpoints.*.*",
    ]
    assert inbound_subjects("touchpoints", "dead.touchpoints") == [
        "touchpoints.*",
        "touchpoints.*.*",
        "dead.touchpoints.*",
    ]


def test_each_partition_has_its_own_consumer_and_the_rest_share_one() -> None:
    assert consumer_of(Settings()) == ("touchpoints.*", "hub-ingest")
    assert consumer_of(Settings(nats_partitions=3, nats_partition=2)) == (
        "touchpoints.*.2",
        "hub-ingest-p2",
    )


def test_a_partition_needs_a_partition_count_above_it() -> None:
    with pytest.raises(ValidationError, match="HUB_NATS_PARTITIONS above it"):
        Settings(nats_partition=2, nats_partitions=2)
    with pytest.raises(ValidationError):
        Settings(nats_partition=0)  # no partitions configured


def test_the_partition_key_is_the_first_identity_given_loosely_normalised() -> None:
    assert partition_key({"customer": {"email": " Ann@Example.COM", "phone": "1"}}) == (
        "email:ann@example.com"
    )
    assert partition_key({"customer": {"phone": "+49 30 1234-567"}}) == "phone:49301234567"
    assert partition_key({"customer": {"id": "ABC", "email": "x@y.z"}}) == "id:abc"
    assert partition_key({"customer": {"account": "Shop:7"}}) == "account:shop:7"


def test_the_partition_is_the_first_eight_bytes_of_sha256_modulo_the_count() -> None:
    key = "email:ann@example.com"
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    assert [partition_of(key, n) for n in (1, 2, 4, 7)] == [number % n for n in (1, 2, 4, 7)]
    assert number == 3887647814938185889  # sha256("email:ann@example.com")[:8], for other languages


def test_a_setting_the_environment_got_wrong_is_named_and_the_command_exits_2() -> None:
    """Not a traceback: the setting and what is wrong with it, before anything starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_NATS_PARTITION"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "ingest", "nats"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert "HUB_NATS_PARTITIONS above it" in done.stderr
    assert "Traceback" not in done.stderr
