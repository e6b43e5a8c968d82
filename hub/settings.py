"""Settings: the only reader of the environment; turns itself into the library's env dict."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema of the hub's tables (default: public)"
    )
    pool_size: int = 10
    max_body_bytes: int = 1024 * 1024
    max_batch_items: int = 1000
    group_commit_wait_ms: float = Field(
        default=2.0,
        ge=0,
        description="how long a single touchpoint waits for others to share its transaction",
    )

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

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
                **({"POSTGRES_SCHEMA": self.database_schema} if self.database_schema else {}),
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
        }
