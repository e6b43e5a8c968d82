"""Prometheus metrics of one hub process (`prometheus-client`), on a registry of its own.

Touchpoints by outcome, channel and reason (the rule of a conflict, else the problem type),
append latency, auth denials and timed-out requests are counted where they happen; the lag
of each projection is read from the store when scraped. `hub ingest nats` serves its own
registry (consumer lag, its touchpoints) on `HUB_INGEST_METRICS_PORT`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub.app import Accepted, Outcome
from hub.errors import ConflictError, HubError, StoreUnavailable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def reasons_of(error: HubError) -> list[str]:
    """What a rejection is counted under: each conflicting rule, else the problem type."""
    if isinstance(error, ConflictError) and error.conflicts:
        return sorted({c.rule for c in error.conflicts})
    return [error.kind]


class _Lag(Collector):
    """Each projection's distance behind the log's head, read at scrape time."""

    def __init__(self, status: Callable[[], list[dict[str, Any]]]):
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "hub_projection_lag_events", "events a projection is behind the log", labels=["name"]
        )
        position = GaugeMetricFamily(
            "hub_projection_position", "last event a projection applied", labels=["name"]
        )
        for view in self.status():
            lag.add_metric([view["name"]], view["lag"])
            position.add_metric([view["name"]], view["position"])
        yield lag
        yield position


class _Caches(Collector):
    """What each in-memory cache holds against its bounds, read at scrape time: an operator
    sizing `HUB_AGGREGATE_CACHE_FACTS` or `HUB_PROJECTION_CACHE_ENTRIES` sees whether a
    cache is full and, for the aggregates, how often it is missed."""

    def __init__(self, caches: dict[str, Any]):
        self.caches = caches

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(f"hub_cache_{name}", text, labels=["cache"])
            for name, text in (
                ("entries", "entries a cache holds"),
                ("weight", "what a cache's entries weigh (facts, or view entries)"),
                ("weight_limit", "the weight a cache may hold before it drops the oldest"),
                ("hits", "look-ups a cache answered"),
                ("misses", "look-ups a cache could not answer"),
            )
        }
        for label, cache in self.caches.items():
            figures = {"entries": len(cache), "weight": cache.weight}
            figures["weight_limit"] = cache.max_weight
            figures["hits"] = getattr(cache, "hits", None)
            figures["misses"] = getattr(cache, "misses", None)
            for name, value in figures.items():
                if value is not None:
                    families[name].add_metric([label], value)
        yield from families.values()


class TouchpointMetrics:
    """The touchpoint counters and latency a writer keeps (the API and `hub ingest nats`)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.touchpoints = Counter(
            "hub_touchpoints",
            "touchpoints submitted, by outcome (accepted, duplicate, rejected), channel and reason",
            ["outcome", "channel", "reason"],
            registry=registry,
        )
        self.append_seconds = Histogram(
            "hub_append_seconds",
            "time to record a request's touchpoints (decide and commit)",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Children by label values: `labels()` checks and joins its values on every call
        # (3 % of the event loop's time per touchpoint, `bench/http.py`).
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    def appended(self, path: str, seconds: float) -> None:
        """A request's touchpoints were recorded (or refused) in `seconds`, on this path."""
        child = self._timed.get(path)
        if child is None:
            child = self._timed[path] = self.append_seconds.labels(path)
        child.observe(seconds)

    def _count(self, outcome: str, channel: str, reason: str) -> None:
        key = (outcome, channel, reason)
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = self.touchpoints.labels(*key)
        child.inc()

    def count(self, outcomes: Sequence[Outcome], channels: Iterable[str | None]) -> None:
        """Count each outcome under the channel of its touchpoint."""
        for outcome, channel in zip(outcomes, channels, strict=False):
            self.count_one(outcome, channel)

    def count_one(self, outcome: Outcome, channel: str | None) -> None:
        label = channel or "unknown"
        if isinstance(outcome, Accepted):
            kind = "duplicate" if outcome.duplicate else "accepted"
            self._count(kind, label, "")
            return
        for reason in reasons_of(outcome):
            self._count("rejected", label, reason)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Metrics(TouchpointMetrics):
    """Everything `GET /metrics` of `hub serve` shows."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry())
        self.denials = Counter(
            "hub_auth_denials",
            "requests refused for their API key (401) or its role or channel (403), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.timeouts = Counter(
            "hub_request_timeouts",
            "requests answered 503 because they ran over HUB_REQUEST_TIMEOUT_S",
            registry=self.registry,
        )
        self._lag: _Lag | None = None
        self._caches: _Caches | None = None

    def denied(self, reason: str) -> None:
        self.denials.labels(reason).inc()

    def watch_projections(self, status: Callable[[], list[dict[str, Any]]]) -> None:
        """Report the lag of these projections (those of the app's current lifespan)."""
        if self._lag is not None:
            self.registry.unregister(self._lag)
        self._lag = _Lag(status)
        self.registry.register(self._lag)

    def watch_caches(self, caches: dict[str, Any]) -> None:
        """Report these caches, by name (those of the app's current lifespan)."""
        if self._caches is not None:
            self.registry.unregister(self._caches)
        self._caches = _Caches(caches)
        self.registry.register(self._caches)


class IngestMetrics(TouchpointMetrics):
    """What `hub ingest nats` serves on its metrics port: its touchpoints and consumer lag."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry())
        self.consumer = Gauge(
            "hub_nats_consumer",
            "the durable consumer's messages not yet delivered (pending), delivered but not "
            "acked (ack_pending) and redelivered; pending from the last fetched message while "
            "messages flow, all three from JetStream's consumer info when quiet",
            ["state"],
            registry=self.registry,
        )
        self.retried = Counter(
            "hub_nats_retried",
            "messages nak'd for a later retry because the store was unavailable",
            registry=self.registry,
        )

    def batch(self, channels: list[str], outcomes: Sequence[Outcome], seconds: float) -> None:
        """Count one recorded batch of messages (`NatsIngest.on_batch`)."""
        self.appended("nats", seconds)
        for channel, outcome in zip(channels, outcomes, strict=False):
            if isinstance(outcome, StoreUnavailable):
                self.retried.inc()
            else:
                self.count_one(outcome, channel)

    def pending(self, pending: int) -> None:
        self.consumer.labels("pending").set(pending)

    def consumer_info(self, info: Any) -> None:
        self.consumer.labels("pending").set(info.num_pending or 0)
        self.consumer.labels("ack_pending").set(info.num_ack_pending or 0)
        self.consumer.labels("redelivered").set(info.num_redelivered or 0)


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]
