"""A repeated source key returns the first result and appends nothing: in one process,
across a restart, and across two processes."""

from __future__ import annotations

import json
import subprocess
import sys

from hub.app import Hub
from tests.factories import raw_touchpoint, touchpoint


def test_repeat_returns_the_first_result_and_appends_nothing(hub: Hub) -> None:
    raw = raw_touchpoint(source={"channel": "phone", "id": "call-88121"})
    first = hub.record(touchpoint(**raw))
    before = hub.recorder.max_notification_id()
    again = hub.record(touchpoint(**raw))
    assert again.duplicate and not first.duplicate
    assert (again.touchpoint_id, again.customer_id, again.position) == (
        first.touchpoint_id,
        first.customer_id,
        first.position,
    )
    assert hub.recorder.max_notification_id() == before


def test_repeat_with_other_content_is_still_the_first_result(hub: Hub) -> None:
    first = hub.record(touchpoint(source={"channel": "phone", "id": "c-1"}))
    again = hub.record(
        touchpoint(source={"channel": "phone", "id": "c-1"}, data={"summary": "edited"})
    )
    assert again.duplicate and again.position == first.position


def test_duplicates_inside_one_batch_are_recorded_once(hub: Hub) -> None:
    raw = raw_touchpoint(source={"channel": "email", "id": "<a@b>"})
    first, second = hub.record_batch([touchpoint(**raw), touchpoint(**raw)])
    assert not first.duplicate and second.duplicate
    assert first.position == second.position


def test_idempotent_across_a_restart(make_hub) -> None:
    raw = raw_touchpoint(source={"channel": "phone", "id": "restart-1"})
    first_run = make_hub()
    first = first_run.record(touchpoint(**raw))
    first_run.close()
    again = make_hub().record(touchpoint(**raw))
    assert again.duplicate and again.position == first.position


def test_idempotent_across_two_processes(store_env, hub: Hub) -> None:
    raw = raw_touchpoint(source={"channel": "phone", "id": "two-processes"})
    first = hub.record(touchpoint(**raw))
    script = (
        "import json, sys\n"
        "from hub.app import Hub\n"
        "from hub.envelope import parse_envelope\n"
        "env, raw = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "print(json.dumps(Hub(env).record(parse_envelope(raw)).as_dict()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(store_env), json.dumps(raw)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    other = json.loads(out)
    assert other["duplicate"] is True
    assert other["position"] == first.position
    assert other["customer_id"] == first.customer_id
