"""The validator database's engine and sessions, which the stores of each kind share
(:mod:`dojo.validator.store`)."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from template.storage import database_url, make_engine, migrate

MIGRATIONS = Path(__file__).parent.parent / "migrations"
ORGANIC_SOURCE = "organic"  # tasks.source of an organic task
DB_FILE = "validator.sqlite"


class StoreBase:
    """The validator's database at ``url`` (SQLAlchemy URL or SQLite file path), migrated on open."""

    url: Any
    engine: Engine
    _sessions: sessionmaker[Session]
    # Moving scores are read, changed and written back in one transaction; the lock keeps
    # two threads of this process from interleaving theirs on PostgreSQL.
    _scores_lock: threading.Lock

    def __init__(self, url: str | Path):
        self.url = database_url(url)
        self.engine = make_engine(self.url)
        migrate(self.engine, MIGRATIONS, label="validator")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._scores_lock = threading.Lock()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
