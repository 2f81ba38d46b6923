"""Fixtures shared by every test package: real wallets in a temporary directory."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bittensor as bt
import pytest

from template.wallets import create_wallet
from tests._session_servers import only_start_of_session, unit_of

_counter = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of whole-system tests first, then those that drive a browser, then the rest
    by their number of tests, most first.

    ``scripts/test.sh`` hands each file whole to one of its workers, in this order
    (``--dist loadfile --no-loadscope-reorder``): the longest start first, and the many
    short files fill in around them, so that no worker is left alone at the end with a
    minute-long run of processes (pytest-xdist's own order, by tests per file alone, put
    those files last, since each holds one or two tests)."""
    rank: dict[Path, int] = {}
    tests: dict[Path, int] = {}
    for item in items:
        kind = 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("browser") else 2
        rank[item.path] = min(kind, rank.get(item.path, 2))
        tests[item.path] = tests.get(item.path, 0) + 1
    # Stable: files of the same weight, and each file's own tests, keep their order.
    items.sort(key=lambda item: (rank[item.path], -tests[item.path]))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with the files of each server in ``ONE_SERVER_FILES`` as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class OneServerScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(super()._split_scope(nodeid))

    return OneServerScheduling(config, log)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty validator database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'validator.sqlite'}"
        return
    from tests.dojo.platform._support import postgres_admin_url, postgres_schema

    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("no PostgreSQL server accepts connections on 127.0.0.1:5432 (database test)")
    with postgres_schema(admin) as url:
        yield url


@pytest.fixture
def wallet_path(tmp_path: Path) -> Path:
    path = tmp_path / "wallets"
    path.mkdir()
    return path


@pytest.fixture
def make_wallet(wallet_path: Path) -> Callable[..., bt.Wallet]:
    """Create a fresh real wallet (unencrypted sr25519 keys on disk)."""

    def _make(name: str | None = None, hotkey: str = "default") -> bt.Wallet:
        return create_wallet(name or f"w{next(_counter)}", hotkey, str(wallet_path))

    return _make


CHROMIUM = Path("/usr/bin/chromium")
# Without these, chromium tries to reach Google's hosts on start and the closed network
# here refuses the connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (``scripts/test.sh`` installs it).

    Module-scoped: Playwright's sync API keeps an event loop installed in this thread while
    it runs, and asyncio tests in later modules would find it ("Cannot run the event loop
    while another loop is running"). Stopping it at the end of each module that uses it
    hands the thread back clean.
    """
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """One real Label Studio server for the whole session of the suite (its files run on one
    worker: ``tests/_session_servers.py``), on a free loopback port, with no call home
    (``dojo.label_studio_server``); skipped with the reason when it is not installed
    (``scripts/label_studio.sh``, which ``scripts/test.sh`` runs) or does not start."""
    from dojo.label_studio_server import DEFAULT_VENV, LabelStudioServer, installed

    if not installed(DEFAULT_VENV):
        pytest.skip(f"Label Studio is not installed in {DEFAULT_VENV}: run scripts/label_studio.sh")
    from dojo.localnet.net import free_port

    only_start_of_session(tmp_path_factory, "label-studio")
    server = LabelStudioServer(tmp_path_factory.mktemp("label-studio"), free_port())
    server.start()
    try:
        try:
            server.wait_ready()
        except (RuntimeError, TimeoutError) as exc:
            pytest.skip(f"Label Studio did not start: {exc}")
        yield server
    finally:
        server.stop()
