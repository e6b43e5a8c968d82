"""Settings: the only reader of the environment; turns itself into the library's env dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.envelope import Limits

DEFAULT_DATABASE = "hub.db"


class Settings(BaseSettings):
    """Configuration of a hub process, from `HUB_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATABASE}",
        description="sqlite:///path/to/file.db (default hub.db in the current folder) "
        "or postgresql://user:password@host:port/dbname",
    )
    channels: list[str] = Field(default=[], description="channels beyond the built-in ones")
    default_region: str | None = Field(
        default=None, description="region for phone numbers given without +, e.g. DE"
    )
    company_domains: list[str] = Field(
        default=[],
        description="the company's own email domains, as a JSON list: '[\"example.com\"]'; "
        "mail from them is outbound (email.sent), other mail inbound (email.received)",
    )
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema of the hub's tables (default: public)"
    )
    pool_size: int = 10
    store_wait_s: int = Field(
        default=5,
        ge=1,
        description="longest wait for a PostgreSQL connection before a 503 (store down)",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="largest request body")
    max_batch_items: int = Field(default=1000, ge=1, description="most touchpoints in a batch")
    max_claims: int = Field(default=50, ge=0, description="most claims of one touchpoint")
    max_string_chars: int = Field(
        default=20_000, ge=1, description="longest string anywhere in a touchpoint's data"
    )
    max_data_depth: int = Field(
        default=8, ge=1, description="deepest nesting of objects and lists in `data`"
    )
    max_data_bytes: int = Field(
        default=256 * 1024, ge=1, description="largest `data` of one touchpoint, as JSON"
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="longest a request may take, reading its body included"
    )
    keep_alive_s: float = Field(
        default=5.0, gt=0, description="an idle keep-alive connection is closed after this"
    )
    key_cache_s: float = Field(
        default=2.0,
        ge=0,
        description="how long a process trusts a verified API key "
        "(a revocation takes effect everywhere within this)",
    )
    ingest_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="`hub ingest nats` serves /metrics on this loopback port (0: off)",
    )
    aggregate_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="customers kept in memory between batches (0: none); each is checked "
        "against the store by version before a decision",
    )
    aggregate_cache_facts: int = Field(
        default=50_000,
        ge=0,
        description="what the cached customers may hold together, in facts (orders, "
        "requests, claims, consent, promises, identities; ~2 kB each): the cache's memory bound",
    )
    snapshot_interval: int = Field(
        default=500,
        ge=0,
        description="snapshot a customer every this many events (0: never)",
    )
    group_commit: bool = Field(
        default=True,
        description="gather concurrent single touchpoints into shared transactions "
        "(false: one transaction per request, the naive path)",
    )
    group_commit_wait_ms: float = Field(
        default=0.5,
        ge=0,
        description="how long a single touchpoint waits for others to share its transaction",
    )
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="processes `hub serve` answers with, sharing its port (PostgreSQL only)",
    )
    run_projections: bool = Field(
        default=True,
        description="keep the projections up to date inside `hub serve` (false when "
        "separate `hub project` processes do it)",
    )
    projection_page_size: int = Field(default=1000, ge=1, le=10_000)
    projection_cache_entries: int = Field(
        default=50_000,
        ge=0,
        description="what the profile documents a projection runner keeps in memory may hold "
        "together, in entries (orders, identities, contact fields, consent; ~2 kB each)",
    )
    projection_workers: int = Field(
        default=1,
        ge=1,
        le=6,
        description="processes `hub project` starts, each applying its share of the views",
    )
    projection_views: str = Field(
        default="",
        description="the views `hub project` applies, comma-separated (default: every one)",
    )
    projection_poll_s: float = Field(
        default=0.2, gt=0, description="how often a projection runner looks for new events"
    )
    read_wait_s: float = Field(
        default=5.0, ge=0, description="longest wait of a read with min_position before a 503"
    )
    sla: dict[str, str] = Field(
        default={},
        description='SLA overrides as JSON, e.g. {"repair:urgent": "2h", "reply": "1bd"}',
    )
    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server(s)")
    nats_stream: str = Field(
        default="TOUCHPOINTS", description="JetStream stream of inbound touchpoints"
    )
    nats_subject_prefix: str = Field(
        default="touchpoints", description="channels publish to <prefix>.<channel>"
    )
    nats_rejected_prefix: str = Field(
        default="touchpoints.rejected",
        description="refused messages go to <prefix>.<channel> with their problem document",
    )
    nats_durable: str = Field(
        default="hub-ingest", description="durable pull consumer shared by `hub ingest nats`"
    )
    nats_partitions: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="how many partitions channels publish to (<prefix>.<channel>.<0..N-1>); "
        "0: none, and the stream takes no partitioned subject",
    )
    nats_partition: int | None = Field(
        default=None,
        ge=0,
        le=9999,
        description="take only <prefix>.<channel>.<N> (below HUB_NATS_PARTITIONS), with a "
        "consumer of its own (<durable>-p<N>); unset: the unpartitioned <prefix>.<channel>",
    )
    nats_duplicate_window_s: float = Field(
        default=120.0, gt=0, description="JetStream duplicate window of both streams (Nats-Msg-Id)"
    )
    nats_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="messages per fetch and per commit"
    )
    nats_ack_wait_s: float = Field(
        default=30.0, gt=0, description="redelivery after a consumer died without acking"
    )
    nats_retry_delay_s: float = Field(
        default=1.0, gt=0, description="first back-off of a nak'd message (store down)"
    )
    nats_retry_max_delay_s: float = Field(default=60.0, gt=0, description="longest back-off")
    nats_events_stream: str = Field(
        default="HUB_EVENTS", description="JetStream stream of outbound hub events"
    )
    nats_events_prefix: str = Field(
        default="hub.events", description="recorded events go to <prefix>.<type>"
    )
    nats_events_max_age_s: float = Field(
        default=7 * 86400.0, gt=0, description="how long the events stream keeps an event"
    )
    nats_publisher: str = Field(
        default="nats-publish", description="tracking name of `hub publish nats`"
    )
    nats_poll_s: float = Field(
        default=0.2, gt=0, description="how often `hub publish nats` looks for new events"
    )

    def limits(self) -> Limits:
        """The bounds on one touchpoint, for the application service."""
        return Limits(
            max_claims=self.max_claims,
            max_string_chars=self.max_string_chars,
            max_data_depth=self.max_data_depth,
            max_data_bytes=self.max_data_bytes,
        )

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @field_validator("nats_partition", mode="before")
    @classmethod
    def _no_partition(cls, value: Any) -> Any:
        return None if value == "" else value  # HUB_NATS_PARTITION= (empty): unpartitioned

    @model_validator(mode="after")
    def _partition_within(self) -> Settings:
        if self.nats_partition is not None and self.nats_partition >= self.nats_partitions:
            raise ValueError(
                f"HUB_NATS_PARTITION={self.nats_partition} needs HUB_NATS_PARTITIONS above it "
                f"(it is {self.nats_partitions})"
            )
        return self

    def eventsourcing_env(self) -> dict[str, str]:
        """The `eventsourcing` library's environment for this store."""
        if self.is_postgres:
            url = urlsplit(self.database_url)
            return {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
                "POSTGRES_HOST": url.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(url.port or 5432),
                "POSTGRES_USER": unquote(url.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(url.password or ""),
                "POSTGRES_POOL_SIZE": str(self.pool_size),
                "POSTGRES_MAX_OVERFLOW": str(self.pool_size),
                "POSTGRES_LOCK_TIMEOUT": "10",
                # The library's pool waits this long for a connection; its default (30 s)
                # held every request while the store was down.
                "POSTGRES_CONNECT_TIMEOUT": str(self.store_wait_s),
                **({"POSTGRES_SCHEMA": self.database_schema} if self.database_schema else {}),
                **self._write_path_env(),
            }
        path = self.database_url
        if path.startswith("sqlite:///"):
            path = path.removeprefix("sqlite:///")
        elif path.startswith("sqlite://"):
            path = path.removeprefix("sqlite://")
        if path != ":memory:" and not path.startswith("file:"):
            path = str(Path(path).expanduser().resolve())
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            **self._write_path_env(),
        }

    def _write_path_env(self) -> dict[str, str]:
        return {
            "AGGREGATE_CACHE_SIZE": str(self.aggregate_cache_size),
            "AGGREGATE_CACHE_FACTS": str(self.aggregate_cache_facts),
            "SNAPSHOT_INTERVAL": str(self.snapshot_interval),
        }
