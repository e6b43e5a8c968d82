"""The reads the dashboard adds beside the JSON API's agree with them, on the demo dataset and
on every store: claims in force, queue counts, conflict counts, display names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.demo import run
from hub.app import Hub
from projections import open_items, reads
from projections.base import norm_time
from projections.claims import claims_of
from projections.conflicts import conflicts
from projections.runner import Projections

ANCHOR = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOW = norm_time(ANCHOR) or ""


@pytest.fixture
def views(hub: Hub) -> Projections:
    run(hub, seed=3, customers=80, anchor=ANCHOR)
    projections = Projections(hub)
    projections.catch_up()
    return projections


def customers(views: Projections) -> list[str]:
    rows = views.read(lambda tx: tx.execute("SELECT stream FROM {s}view_profile ORDER BY stream"))
    return [row["stream"] for row in rows]


@pytest.mark.parametrize("days_later", [0, 90])  # later: the quotes' prices have expired
def test_claims_in_force_are_those_of_the_full_fold(views: Projections, days_later: int) -> None:
    now = norm_time(ANCHOR + timedelta(days=days_later)) or ""
    compared = ended = 0
    for customer in customers(views):
        streams = views.read(lambda tx, c=customer: reads.streams_of(tx, c)[0])
        folded = views.read(lambda tx, s=streams: claims_of(tx, s, now))
        quick = views.read(lambda tx, s=streams: reads.claims_in_force(tx, s, now))
        assert quick == folded["claims"]
        latest = views.read(lambda tx, s=streams: reads.claims_in_force(tx, s, now, latest=2))
        newest = sorted(folded["claims"], key=lambda c: c["said_by"]["recorded_at"])[::-1][:2]
        assert [c["subject"] for c in latest] == [c["subject"] for c in newest]
        compared += len(folded["claims"])
        ended += len(folded["ended"])
    assert compared > 5 and ended > 5  # claims stand, and others were replaced or overtaken


def test_queue_counts_match_the_queue(views: Projections) -> None:
    counts = views.read(lambda tx: reads.queue_counts(tx, NOW))
    for kind, found in counts.items():
        queued = views.read(lambda tx, k=kind: open_items.queue(tx, NOW, kinds=[k], limit=100_000))
        assert found["open"] == len(queued)
        assert found["overdue"] == sum(item["overdue"] for item in queued)
    assert sum(found["overdue"] for found in counts.values()) > 0


def test_conflict_summary_counts_every_conflict_once_by_rule_and_by_channel(
    views: Projections,
) -> None:
    summary = views.read(reads.conflict_summary)
    every = views.read(lambda tx: conflicts(tx, limit=100_000)["conflicts"])
    for grouping in ("by_rule", "by_channel"):
        total = sum(sum(counts.values()) for counts in summary[grouping].values())
        assert total == len(every)
    detected = sum(c["detected"] for c in summary["by_rule"].values())
    assert detected == sum(c["outcome"] == "detected" for c in every) > 0


def test_customer_names_are_the_profile_name_else_an_identity(views: Projections) -> None:
    ids = customers(views)
    names = views.read(lambda tx: reads.customer_names(tx, ids))
    named = 0
    for customer in ids:
        profile = views.read(lambda tx, c=customer: reads.read_profile(tx, c))
        name = (profile["contact"].get("name") or {}).get("value")
        if name:
            assert names[customer] == name
            named += 1
        elif profile["identities"]:
            assert names[customer] == profile["identities"][0].partition(":")[2]
    assert named > len(ids) / 2


def test_customer_page_read_is_the_json_reads_in_one_pass(views: Projections) -> None:
    for customer in customers(views)[:15]:
        page = views.read(lambda tx, c=customer: reads.read_customer_page(tx, c, NOW))
        assert page["profile"] == views.read(lambda tx, c=customer: reads.read_profile(tx, c))
        timeline = views.read(lambda tx, c=customer: reads.read_timeline(tx, c, limit=30))
        assert page["timeline"]["entries"] == timeline["entries"]
        items = views.read(lambda tx, c=customer: reads.read_open_items(tx, c, NOW))
        assert page["items"] == items["open_items"]
        claims = views.read(lambda tx, c=customer: reads.read_claims(tx, c, NOW))
        newest = sorted(claims["claims"], key=lambda c: c["said_by"]["recorded_at"])[::-1]
        assert page["claims"] == newest[:20]
        assert page["promises"] == [p for p in items["open_items"] if p["kind"] == "promise"]
        positions = [e["position"] for e in timeline["entries"]]
        assert page["position"] >= max(positions, default=0)
