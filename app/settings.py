"""Configuration from the environment (prefix DISPATCH_) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.dispatch.policy import PolicyOverrides

DEFAULT_SECRET = "dev-insecure-secret-change-me-dev-insecure-secret"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/dispatch.db"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="DISPATCH_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    access_token_ttl_s: int = Field(900, ge=60, le=86_400)
    # How long a resolved bearer token is trusted without a database read; revocations
    # from another process take effect within it (0: check every request).
    auth_cache_s: float = Field(5, ge=0, le=60)
    cors_origins: Annotated[list[str], NoDecode] = []
    ws_allowed_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    # SQLite durability: NORMAL survives a process crash (WAL); FULL also survives power loss.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)
    # A database that is down or hangs answers 503 with Retry-After within these bounds,
    # instead of holding every request (and the writer queue) behind it.
    db_connect_timeout_s: float = Field(5, gt=0)  # PostgreSQL: opening a connection
    db_statement_timeout_s: float = Field(5, gt=0)  # PostgreSQL: server statement_timeout
    db_pool_timeout_s: float = Field(5, gt=0)  # waiting for a pooled connection or a writer turn
    db_retry_after_s: int = Field(5, ge=1)  # the Retry-After of a 503 database_unavailable

    # Dispatch and the live index.
    policy: PolicyOverrides = PolicyOverrides()
    position_freshness_s: float = Field(120, gt=0)
    position_flush_interval_s: float = Field(1.0, gt=0)
    position_flush_chunk: int = Field(200, ge=1)
    position_history_interval_s: float = Field(15, ge=0)
    position_history_retention_h: float = Field(72, gt=0)
    max_ping_speed_mps: float = Field(70, gt=0)
    max_ping_future_s: float = Field(30, ge=0)
    max_ping_age_s: float = Field(300, gt=0)
    index_cell_m: float = Field(250, gt=10)

    # Guard websocket.
    ws_hello_timeout_s: float = Field(10, gt=0)
    ws_idle_timeout_s: float = Field(90, gt=0)
    ws_ping_interval_s: float = Field(20, gt=0)
    ws_max_frame_bytes: int = Field(16_384, ge=256)
    ws_frames_per_s: float = Field(20, gt=0)
    ws_frame_burst: int = Field(60, ge=1)
    ws_send_queue: int = Field(256, ge=8)

    # Command-centre stream and webhooks.
    stream_heartbeat_s: float = Field(15, gt=0)
    stream_queue_size: int = Field(1000, ge=8)
    positions_feed_interval_s: float = Field(1.0, gt=0)  # /ws/positions: one update per tick
    webhook_timeout_s: float = Field(10, gt=0)
    webhook_concurrency_per_endpoint: int = Field(4, ge=1)
    webhook_batch: int = Field(100, ge=1)
    allow_private_webhook_targets: bool = True
    cap_sender: str = "dispatch@guard-dispatch.local"

    # Alarm intake: alarms that occurred longer ago are rejected `too_old`; an alarm with
    # the same account, zone and event code as one accepted within the window, `duplicate`.
    alarm_max_age_s: float = Field(300, gt=0)
    alarm_duplicate_window_s: float = Field(120, gt=0)

    # The operator console.
    # Leaflet tile template, e.g. https://tiles.example/{z}/{x}/{y}.png; none keeps the
    # console wholly on its own origin (the map still draws precincts, a grid and a scale).
    map_tile_url: str | None = None
    map_tile_attribution: str = ""
    timezone: str = "Asia/Shanghai"  # how the console shows times; storage stays UTC

    @model_validator(mode="before")
    @classmethod
    def _csv_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("cors_origins", "ws_allowed_origins"):
                if key in data:
                    data[key] = _split_csv(data[key])
        return data

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name like Asia/Shanghai)"
            ) from exc
        return value

    @field_validator("map_tile_url")
    @classmethod
    def _tile_template(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("https://", "http://", "/")) or "{z}" not in value:
            raise ValueError(
                "a URL template with {z}, {x} and {y}, e.g. https://host/{z}/{x}/{y}.png"
            )
        return value

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ValueError("DISPATCH_SECRET_KEY must be set in production")
        if len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("DISPATCH_SECRET_KEY must be at least 32 characters")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
