"""Configuration from the environment (prefix DISPATCH_) and an optional .env file."""

from __future__ import annotations

import ipaddress
from functools import cached_property, lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.auth import keyfile
from app.dispatch.policy import PolicyOverrides
from app.integrations.egress import parse_networks
from app.supervision.points import points_table

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/dispatch.db"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "production", "test"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Signs access tokens and seals webhook secrets. Empty: read from `secret_key_file`,
    # generated there on first start (app/auth/keyfile.py); production requires one given.
    secret_key: SecretStr = SecretStr("")
    # Default: next to the SQLite database file (./var/secret_key), else ./var/secret_key.
    secret_key_file: Path | None = None
    access_token_ttl_s: int = Field(900, ge=60, le=86_400)
    # How long a resolved bearer token is trusted without a database read; revocations
    # from another process take effect within it (0: check every request).
    auth_cache_s: float = Field(5, ge=0, le=60)
    # Sign-in (app/auth/throttle.py, app/auth/signin.py). Failed sign-ins within the window
    # answer 429 past these counts, per username (any address) and per address (any name).
    login_failures_per_username: int = Field(10, ge=1)
    login_failures_per_address: int = Field(20, ge=1)
    login_throttle_window_s: float = Field(300, gt=0)
    # CJIS AC-7: this many failures for one account within the window lock it for the
    # duration (or until an admin unlocks it).
    lockout_threshold: int = Field(5, ge=1, le=100)
    lockout_window_s: float = Field(900, gt=0)
    lockout_duration_s: float = Field(900, gt=0)
    # Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs); the client is
    # the right-most address in it that is not one of them. Empty: the peer is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # Request bodies over this are refused (413) before they are parsed or authenticated.
    max_body_bytes: int = Field(65_536, ge=1024)
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
    # Recognition points per rule (app/supervision/points.py), merged onto the defaults.
    points: dict[str, int] = {}
    position_freshness_s: float = Field(120, gt=0)
    position_flush_interval_s: float = Field(1.0, gt=0)
    # Replicas on PostgreSQL (app/cluster/): this process's name (made unique per start),
    # and how often it reads the positions of guards connected to the other replicas.
    replica_id: str = Field("", max_length=40, pattern=r"^[A-Za-z0-9_.-]*$")
    replica_sync_s: float = Field(1.0, gt=0, le=30)
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
    # Open /ws/events sockets one user, API key or device token may hold; more close 4013.
    streams_per_credential: int = Field(5, ge=1)
    positions_feed_interval_s: float = Field(1.0, gt=0)  # /ws/positions: one update per tick
    webhook_timeout_s: float = Field(10, gt=0)
    webhook_concurrency_per_endpoint: int = Field(4, ge=1)
    webhook_batch: int = Field(100, ge=1)
    # Networks webhooks may reach although they are loopback, private, link-local…
    # (comma-separated CIDRs; police CAD systems often live on private networks).
    webhook_allow_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []
    # Replaced by webhook_allow_networks; still read only to refuse it, with a message.
    allow_private_webhook_targets: bool | None = Field(None, exclude=True, repr=False)
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
            for key in ("cors_origins", "ws_allowed_origins", "trusted_proxies"):
                if key in data:
                    data[key] = _split_csv(data[key])
        return data

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("points")
    @classmethod
    def _points_rules(cls, value: dict[str, int]) -> dict[str, int]:
        return points_table(value)

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

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _cidrs(cls, value: object) -> object:
        if isinstance(value, str | list | tuple):
            try:
                return parse_networks(value)
            except ValueError as exc:
                raise ValueError(f"DISPATCH_WEBHOOK_ALLOW_NETWORKS: {exc}") from None
        return value

    @field_validator("allow_private_webhook_targets")
    @classmethod
    def _replaced(cls, value: bool | None) -> None:
        if value is not None:
            raise ValueError(
                "DISPATCH_ALLOW_PRIVATE_WEBHOOK_TARGETS was replaced by "
                "DISPATCH_WEBHOOK_ALLOW_NETWORKS: list the networks webhooks may reach "
                "as CIDRs (e.g. 10.20.0.0/16), or remove the setting"
            )
        return None

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
    def _resolve_secret_key(self) -> Settings:
        """DISPATCH_SECRET_KEY, or the kept (first time: generated) one; never a known value."""
        given = self.secret_key.get_secret_value()
        if given:
            if keyfile.is_published(given):
                raise ValueError(
                    "DISPATCH_SECRET_KEY is a value published in this project's source; use "
                    "a random one (python -c 'import secrets; print(secrets.token_urlsafe(48))') "
                    "or unset it to have one generated"
                )
            if len(given) < keyfile.MIN_LENGTH:
                raise ValueError(
                    f"DISPATCH_SECRET_KEY must be at least {keyfile.MIN_LENGTH} characters"
                )
            return self
        explicit_file = self.secret_key_file is not None
        path = self.secret_key_file or keyfile.default_path(self.database_url)
        self.secret_key_file = path
        try:
            if self.env == "production":
                # Workers or hosts must share one key, and a lost key makes sealed webhook
                # secrets unreadable: production names it, never generates it.
                if not explicit_file:
                    raise ValueError(
                        "DISPATCH_SECRET_KEY (or DISPATCH_SECRET_KEY_FILE) must be set in "
                        "production"
                    )
                secret = keyfile.read(path)
            else:
                secret = keyfile.load_or_create(path)
        except OSError as exc:
            raise ValueError(f"secret key file {path}: {exc.strerror or exc}") from None
        except keyfile.SecretKeyError as exc:
            raise ValueError(str(exc)) from None
        self.secret_key = SecretStr(secret)
        return self

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
