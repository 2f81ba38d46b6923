"""The worker platform's settings, resolved once per process into one typed object.

``dojo platform`` resolves them with :mod:`template.config`, as the neurons resolve theirs:
flag > environment variable > ``.env`` > default. The settings with a flag name it and their
variable on the field: ``--db`` / ``DATABASE_URL``, ``--public-url`` / ``PUBLIC_URL``,
``--subtensor.network`` / ``SUBTENSOR_NETWORK``, ``--subtensor.chain_endpoint`` /
``SUBTENSOR_CHAIN_ENDPOINT``, ``--netuid`` / ``NETUID``, ``--host`` / ``PLATFORM_HOST``,
``--port`` / ``PLATFORM_PORT``, ``--forwarded-allow-ips`` / ``PLATFORM_FORWARDED_ALLOW_IPS``,
``--docs`` / ``PLATFORM_DOCS``, ``--min-time-left`` / ``PLATFORM_MIN_TIME_LEFT``,
``--login-rate-limit`` / ``PLATFORM_LOGIN_RATE_LIMIT``, ``--hot-path-connections`` /
``PLATFORM_HOT_PATH_CONNECTIONS``.
:meth:`PlatformSettings.describe` prints them with the database password masked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import make_url

from template import storage
from template.config import ChainEndpoint, NetworkOrPath

DEFAULT_DB_PATH = "~/.dojo/platform.sqlite"
# The hot path's PostgreSQL connections for a whole server (one process, or shared among its
# processes) when none are given: on 2 cores shared with the database server, 8 in all beat
# 16 in all with one process and with two (dojo.platform.http.hotpath's docstring).
HOT_PATH_CONNECTIONS = 8


def default_database_url() -> str:
    """A SQLite file under ``~/.dojo``."""
    return f"sqlite:///{Path(DEFAULT_DB_PATH).expanduser()}"


class PlatformSettings(BaseModel):
    """Everything the platform process needs; the defaults suit one machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(
        default_factory=default_database_url,
        description="database URL or SQLite path (default ~/.dojo/platform.sqlite)",
        json_schema_extra={"flag": "--db", "env": "DATABASE_URL"},
    )
    host: str = Field("127.0.0.1", description="address to bind", json_schema_extra={"env": "PLATFORM_HOST"})
    port: int = Field(8080, ge=0, le=65535, description="port", json_schema_extra={"env": "PLATFORM_PORT"})
    public_url: str | None = Field(
        None,
        description="base URL workers and miners reach the platform at, signed into logins "
        "(default http://HOST:PORT)",
        json_schema_extra={"flag": "--public-url", "env": "PUBLIC_URL"},
    )
    network: NetworkOrPath = Field(
        "finney",
        description="finney, test, local, or a local-chain directory (dojo chain init)",
        json_schema_extra={"flag": "--subtensor.network", "env": "SUBTENSOR_NETWORK"},
    )
    chain_endpoint: ChainEndpoint = Field(
        None,
        description="ws:// endpoint of a subtensor node",
        json_schema_extra={"flag": "--subtensor.chain_endpoint", "env": "SUBTENSOR_CHAIN_ENDPOINT"},
    )
    netuid: int = Field(52, ge=0, le=65535, description="subnet uid", json_schema_extra={"env": "NETUID"})
    # How stale the registration snapshot may be before a request refreshes it.
    registration_refresh_seconds: float = Field(12.0, ge=0)
    nonce_ttl_seconds: int = Field(300, ge=10)
    miner_session_ttl_seconds: int = Field(24 * 3600, ge=60)
    # Invited workers have no wallet to log in again with, so their session is long.
    worker_session_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)
    invite_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    hold_ttl_seconds: int = Field(
        600, ge=5, description="how long a task stays held for the worker it was given to"
    )
    min_time_left_seconds: float = Field(
        60.0,
        ge=0,
        le=24 * 3600,
        description="a task is handed out only with at least this long before its deadline, or the median "
        "time workers took on recent answers if longer; holds last at least as long (0: hand out any task)",
        json_schema_extra={"flag": "--min-time-left", "env": "PLATFORM_MIN_TIME_LEFT"},
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body, except create-tasks")
    max_task_body_bytes: int = Field(8 << 20, ge=1024, description="largest create-tasks body")
    login_rate_limit: int = Field(
        30,
        ge=1,
        description="log-in requests per client address per window (60 s)",
        json_schema_extra={"flag": "--login-rate-limit", "env": "PLATFORM_LOGIN_RATE_LIMIT"},
    )
    login_rate_window_seconds: float = Field(60.0, gt=0)
    cookie_secure: bool | None = Field(None, description="Secure cookies; default: when public_url is https")
    forwarded_allow_ips: str | None = Field(
        None,
        description="behind a reverse proxy: its addresses (comma-separated, or *), whose X-Forwarded-For "
        "and X-Forwarded-Proto are then believed (default: trust none, so a client cannot pick its own "
        "address; the log-in rate limit counts per client address)",
        json_schema_extra={"flag": "--forwarded-allow-ips", "env": "PLATFORM_FORWARDED_ALLOW_IPS"},
    )
    docs: bool = Field(
        False,
        description="serve the API's interactive documentation at /docs and /redoc (their scripts come "
        "from a CDN, pinned by version and integrity hash); /openapi.json is always served",
        json_schema_extra={"flag": "--docs", "env": "PLATFORM_DOCS"},
    )
    migrate_on_start: bool = True
    db_pool_size: int = Field(20, ge=1)
    db_threads: int = Field(
        4, ge=1, description="threads running the routes' queue work on PostgreSQL (SQLite: always 1)"
    )
    hot_path_connections: int | None = Field(
        None,
        ge=1,
        description="PostgreSQL connections each server process keeps for the queue's hot path "
        f"(next task, submit), on its event loop; by default {HOT_PATH_CONNECTIONS} for a server "
        f"of one process and {HOT_PATH_CONNECTIONS // 2} for each of several: more than the "
        "database server's cores can run at once cost each call more of its CPU (docs/deployment.md)",
        json_schema_extra={"flag": "--hot-path-connections", "env": "PLATFORM_HOT_PATH_CONNECTIONS"},
    )

    def hot_path_connections_for(self, processes: int) -> int:
        """The hot path's connections for each of a server's ``processes``: as given, else
        :data:`HOT_PATH_CONNECTIONS` shared among them, at least half of it each."""
        if self.hot_path_connections is not None:
            return self.hot_path_connections
        return max(HOT_PATH_CONNECTIONS // 2, HOT_PATH_CONNECTIONS // processes)

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        # the forms operators type: a bare path, ``postgres://`` and ``postgresql://``
        return storage.database_url(value) if isinstance(value, str) else value

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.base_url.startswith("https://")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def describe(self) -> str:
        """One line per setting, the database password masked."""
        shown = self.model_dump()
        shown["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        shown["public_url"] = self.base_url
        return "\n".join(f"  {key}: {value}" for key, value in shown.items())
