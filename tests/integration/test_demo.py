"""`hub demo` is reproducible: same seed and anchor, same events, same digest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adapters.demo import run
from hub.app import Hub
from hub.settings import Settings

ANCHOR = datetime(2026, 11, 20, 12, tzinfo=UTC)


def fresh_sqlite(folder: Path) -> Hub:
    return Hub(Settings(database_url=f"sqlite:///{folder / 'again.db'}").eventsourcing_env())


def test_same_seed_gives_same_event_count_and_digest(hub: Hub, tmp_path: Path) -> None:
    first = run(hub, seed=3, customers=60, anchor=ANCHOR)
    again_hub = fresh_sqlite(tmp_path)
    try:
        again = run(again_hub, seed=3, customers=60, anchor=ANCHOR)
        assert again_hub.recorder.max_notification_id() == hub.recorder.max_notification_id()
    finally:
        again_hub.close()
    assert again.digest.hexdigest() == first.digest.hexdigest()
    assert (again.accepted, again.rejected, again.detected) == (
        first.accepted,
        first.rejected,
        first.detected,
    )


def test_the_demo_has_every_kind_of_story(hub: Hub) -> None:
    outcome = run(hub, seed=3, customers=60, anchor=ANCHOR)
    assert outcome.envelopes > 500
    assert outcome.rejected.get("conflict", 0) > 0  # blocked contradictions
    assert outcome.detected > 0  # contradictions found in back-filled history


def test_another_seed_gives_another_dataset(hub: Hub, tmp_path: Path) -> None:
    first = run(hub, seed=3, customers=20, anchor=ANCHOR)
    other_hub = fresh_sqlite(tmp_path)
    try:
        other = run(other_hub, seed=4, customers=20, anchor=ANCHOR)
    finally:
        other_hub.close()
    assert other.digest.hexdigest() != first.digest.hexdigest()
