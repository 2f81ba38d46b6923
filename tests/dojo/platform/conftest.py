"""Fixtures for the platform tests, parametrised over SQLite and PostgreSQL.

``platform`` is the app under uvicorn on loopback, with a LocalChain in ``tmp_path``;
``client`` an httpx client on it; ``miner`` a registered miner logged in with keys. The
PostgreSQL variant runs in a fresh schema per test and skips, saying why, where no server
listens on 127.0.0.1:5432.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dojo.platform.http.app import create_app
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import Base
from template.chain.local import LocalChain
from tests._session_servers import only_start_of_session
from tests.dojo.platform._support import (
    LiveServer,
    MinerClient,
    miner_with_keys,
    postgres_admin_url,
    postgres_schema,
)

NETUID = 7
PUBLIC_URL = "http://platform.test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = postgres_admin_url()
    if url is None:
        pytest.skip(
            "no PostgreSQL server accepts connections on 127.0.0.1:5432 (database test, user postgres or root)"
        )
    return url


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A platform database of each kind, migrated to head once per session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('platform') / 'platform.sqlite'}"
        _migrate(url)
        yield url
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        _migrate(url)
        yield url


def _migrate(url: str) -> None:
    database = Database(url, pool_size=1)
    database.migrate()
    database.dispose()


def empty_tables(url: str) -> None:
    database = Database(url, pool_size=1)
    # DELETE, not TRUNCATE: on tables this small PostgreSQL's TRUNCATE costs ten times more.
    with database.session() as db:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "platform_state":  # the secret the running servers hold
                db.execute(table.delete())
    database.dispose()


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> LocalChain:
    # Roomy: every test registers its own hotkeys on this one subnet.
    return LocalChain.init(tmp_path_factory.mktemp("chain"), netuid=NETUID, block_time=1.0, max_uids=100_000)


@dataclass
class Platform:
    url: str
    settings: PlatformSettings
    chain: LocalChain
    server: LiveServer

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def app(self) -> Any:
        return self.server.app


def _settings(database_url: str, **overrides: Any) -> PlatformSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_url": PUBLIC_URL,
        "netuid": NETUID,
        "registration_refresh_seconds": 0.0,
        "login_rate_limit": 100_000,
        "db_pool_size": 10,
    }
    values.update(overrides)
    return PlatformSettings(**values)


@pytest.fixture(scope="session")
def _shared_platform(database_url: str, chain: LocalChain) -> Iterator[Platform]:
    settings = _settings(database_url)
    server = LiveServer(create_app(settings, chain=chain)).start()
    yield Platform(server.url, settings, chain, server)
    server.stop()


@pytest.fixture
def platform(_shared_platform: Platform) -> Platform:
    """The platform under uvicorn (one server per database kind), its tables emptied for this test."""
    empty_tables(_shared_platform.database_url)
    return _shared_platform


@pytest.fixture
def start_platform(platform: Platform, chain: LocalChain) -> Iterator[Callable[..., Platform]]:
    """Another server on the same database with settings overrides; stopped at teardown."""
    servers: list[LiveServer] = []

    def _start(**overrides: Any) -> Platform:
        settings = _settings(platform.database_url, **overrides)
        server = LiveServer(create_app(settings, chain=chain)).start()
        servers.append(server)
        return Platform(server.url, settings, chain, server)

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def client(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        yield http


@pytest.fixture
def register_hotkey(chain: LocalChain, make_wallet: Callable[..., Any]) -> Callable[[], Any]:
    """A new wallet whose hotkey is registered on the subnet; returns the hotkey keypair."""

    def _register() -> Any:
        wallet = make_wallet()
        chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=1.0)
        return wallet.hotkey

    return _register


@pytest.fixture
def miner(client: httpx.Client, register_hotkey: Callable[[], Any]) -> MinerClient:
    return miner_with_keys(client, register_hotkey())


@dataclass
class Replicated:
    """The platform as replicas behind a load balancer, on a PostgreSQL schema of its own."""

    balanced: Any  # tests.dojo.platform._replicas.BalancedPlatform
    miners: list[Any]  # hotkey keypairs registered before the replicas started
    login_rate_limit: int

    @property
    def url(self) -> str:
        return self.balanced.url

    @property
    def database_url(self) -> str:
        return self.balanced.database_url


@pytest.fixture(scope="session")
def replicated(
    postgres_url: str, chain: LocalChain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicated]:
    """Two ``dojo platform serve`` processes on one PostgreSQL database behind HAProxy, started
    once per session. Skips, saying why, without HAProxy (scripts/test.sh installs it)."""
    from template.wallets import create_wallet
    from tests.dojo.platform._replicas import HAPROXY, balanced_platform

    if HAPROXY is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy; scripts/test.sh installs it)")
    only_start_of_session(tmp_path_factory, "haproxy-replicas")
    workdir = tmp_path_factory.mktemp("replicas")
    # The replicas read the chain's registrations when they start (and every 12 s after).
    miners = []
    for n in range(3):
        wallet = create_wallet(f"replica-miner-{n}", "default", str(workdir / "wallets"))
        chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=1.0)
        miners.append(wallet.hotkey)
    limit = 12
    with postgres_schema(postgres_url) as url:
        _migrate(url)
        balanced = balanced_platform(
            url, chain.directory, NETUID, workdir, replicas=2, login_rate_limit=limit
        )
        try:
            balanced.start()
            yield Replicated(balanced, miners, limit)
        finally:
            balanced.stop()
