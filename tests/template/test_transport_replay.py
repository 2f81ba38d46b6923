"""A signed request refused as a replay stays refused after the receiver restarts."""

from __future__ import annotations

import sqlite3
import stat
import time
from pathlib import Path

from commons.protocol import Heartbeat
from template.storage import current_revision, database_url, head_revision, make_engine
from template.transport import BlacklistPolicy, SignedServer
from template.transport.nonces import MIGRATIONS_DIR, SQLiteNonceStore
from tests.template.test_transport import Handlers, ServerThread, keys, metagraph, raw_post, signed  # noqa: F401 - fixtures

DATA = Path(__file__).parent / "data"


def _server(keys, metagraph, nonce_path) -> tuple[SignedServer, Handlers]:  # noqa: F811
    handlers = Handlers(keys["miner"].ss58_address)
    server = SignedServer(
        keys["miner"], lambda: metagraph, policy=BlacklistPolicy(minimum_stake=10.0), nonce_path=nonce_path
    )
    server.route(Heartbeat, handlers.heartbeat)
    return server, handlers


async def test_a_replay_is_refused_after_the_receiver_restarts_on_the_same_data(keys, metagraph, tmp_path):  # noqa: F811
    nonces = tmp_path / "data" / "miner-nonces.sqlite"
    body = Heartbeat().model_dump_json().encode()
    headers = signed(keys, "/Heartbeat", body)
    server, handlers = _server(keys, metagraph, nonces)
    with ServerThread(server) as thread:
        assert (await raw_post(thread.url, "/Heartbeat", body, headers))[0] == 200
        status, text = await raw_post(thread.url, "/Heartbeat", body, headers)
        assert status == 401 and "ReplayedRequest" in text
    assert len(handlers.calls) == 1

    restarted, handlers = _server(keys, metagraph, nonces)  # a new process's server on the same folder
    with ServerThread(restarted) as thread:
        status, text = await raw_post(thread.url, "/Heartbeat", body, headers)
        assert status == 401 and "ReplayedRequest" in text
        fresh = signed(keys, "/Heartbeat", body)
        assert (await raw_post(thread.url, "/Heartbeat", body, fresh))[0] == 200
    assert len(handlers.calls) == 1
    assert stat.S_IMODE(nonces.stat().st_mode) == 0o600


def test_nonces_older_than_the_window_are_pruned(tmp_path):
    path = tmp_path / "nonces.sqlite"
    now = time.time_ns()
    store = SQLiteNonceStore(path, retention=60)
    assert store.check_and_store("hk", now - 120 * 10**9)  # signed two minutes ago: past the window
    assert store.check_and_store("hk", now)
    assert not store.check_and_store("hk", now)
    store.close()
    reopened = SQLiteNonceStore(path, retention=60)
    assert not reopened.check_and_store("hk", now)  # still within the window: kept
    assert len(reopened) == 1  # the old one pruned
    reopened.close()


def test_a_store_from_before_migrations_keeps_its_nonces(tmp_path):
    """A nonce store as it was written before its schema came from migrations is upgraded to
    the head on opening, and the nonces it held are still refused."""
    path = tmp_path / "miner-nonces.sqlite"
    db = sqlite3.connect(path)
    db.executescript((DATA / "nonces_before_migrations.sql").read_text())
    before = sorted(db.execute("SELECT hotkey, nonce FROM nonces"))
    db.close()
    assert len(before) == 3
    store = SQLiteNonceStore(path, retention=10**10)  # long enough that nothing is pruned
    engine = make_engine(database_url(path))
    assert current_revision(engine) == head_revision(MIGRATIONS_DIR)
    engine.dispose()
    assert len(store) == 3
    for hotkey, nonce in before:
        assert not store.check_and_store(hotkey, nonce)
    assert store.check_and_store("5Bob", before[0][1])
    store.close()
    with sqlite3.connect(path) as db:
        assert sorted(db.execute("SELECT hotkey, nonce FROM nonces")) == sorted(
            [*before, ("5Bob", before[0][1])]
        )
