"""Every database a process creates is private to its owner (0600), as the wallets' keys are,
with its -wal and -shm: a miner's holds the secret behind its worker pseudonyms, a
validator's and the synthetic service's hold ground truth, the platform's sessions and key
hashes."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dojo.miner.store import MinerStore
from dojo.platform.storage.db import Database
from dojo.synthetic.store import SyntheticStore
from dojo.validator.store import TaskStore
from template.chain.local import LocalChain
from template.storage import database_url
from template.transport.nonces import SQLiteNonceStore


@pytest.fixture
def common_umask() -> Iterator[None]:
    """The umask most accounts have (0022: new files readable by everyone)."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _miner(folder: Path) -> Any:
    store = MinerStore(database_url(folder / "miner.sqlite"))
    store.worker_secret()
    return store


def _validator(folder: Path) -> Any:
    return TaskStore(folder / "validator.sqlite")


def _synthetic(folder: Path) -> Any:
    store = SyntheticStore(folder / "synthetic.sqlite")
    store.record_instruction("rank these", accepted=True, similarity=0.0, nearest_id=None)
    return store


def _platform(folder: Path) -> Any:
    database = Database(database_url(folder / "platform.sqlite"), pool_size=1)
    database.migrate()
    return database


def _chain(folder: Path) -> Any:
    return LocalChain.init(folder / "chain", netuid=7)


def _nonces(folder: Path) -> Any:
    store = SQLiteNonceStore(folder / "validator-nonces.sqlite", retention=60)
    store.check_and_store("5F", 1)
    return store


@pytest.mark.usefixtures("common_umask")
@pytest.mark.parametrize(
    ("create", "wal"),
    [
        (_miner, True),
        (_validator, True),
        (_synthetic, True),
        (_platform, True),
        (_chain, False),
        (_nonces, True),
    ],
    ids=["miner", "validator", "synthetic", "platform", "local-chain", "nonces"],
)
def test_each_database_and_its_wal_and_shm_are_created_private(
    tmp_path: Path, create: Callable[[Path], Any], wal: bool
) -> None:
    opened = create(tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite") for p in files), files
    if wal:  # open, in WAL mode (the local chain uses a rollback journal, gone after each write)
        assert any(p.name.endswith("-wal") for p in files) and any(p.name.endswith("-shm") for p in files), (
            files
        )
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o600"}, modes
    for close in ("close", "dispose"):
        if hasattr(opened, close):
            getattr(opened, close)()
            break


@pytest.mark.usefixtures("common_umask")
def test_a_database_made_readable_before_is_made_private_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "validator.sqlite"
    TaskStore(path).close()
    os.chmod(path, 0o644)
    TaskStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
