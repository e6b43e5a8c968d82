"""One process of a race: N threads submit touchpoints at the same instant; prints outcomes.

Run as `python -m tests.integration.race_worker ENV_JSON START_AT ENVELOPES_JSON`.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from hub.app import Hub
from hub.envelope import parse_envelope
from hub.errors import HubError


def main() -> None:
    env, start_at, raws = json.loads(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
    hub = Hub(env)
    envelopes = [parse_envelope(raw) for raw in raws]
    outcomes: list[dict[str, object]] = [{} for _ in envelopes]
    barrier = threading.Barrier(len(envelopes))

    def submit(index: int) -> None:
        barrier.wait()
        time.sleep(max(0.0, start_at - time.time()))
        try:
            accepted = hub.record(envelopes[index])
            outcomes[index] = {"status": 201, **accepted.as_dict()}
        except HubError as error:
            outcomes[index] = {"status": error.status, "problem": error.problem()}

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(envelopes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hub.close()
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
