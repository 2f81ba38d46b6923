"""Values the platform keeps for itself in its database (table ``platform_state``).

- ``csrf_secret``: the server secret CSRF tokens are derived from
  (:mod:`dojo.platform.security`). Made by the first process that needs it and read by
  every other, so all replicas of one platform and every restart agree on the tokens.
- ``base_url``: the URL the platform serves at, written by ``dojo platform serve`` when it
  starts, so that ``dojo platform invite --db`` on the same host prints links at the port
  the platform really listens on.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dojo.platform.storage.db import Database
from dojo.platform.storage.models import PlatformState
from template.clock import utcnow

CSRF_SECRET = "csrf_secret"
BASE_URL = "base_url"


def secret(database: Database, name: str = CSRF_SECRET) -> bytes:
    """The named 256-bit secret, made on first use. Two processes that make it at once
    both read the one that was stored first (the other insert fails on the key)."""
    with database.read_session() as db:
        stored = db.scalar(select(PlatformState.value).where(PlatformState.name == name))
    if stored is None:
        try:
            with database.session() as db:
                db.add(PlatformState(name=name, value=secrets.token_hex(32)))
        except IntegrityError:
            pass
        with database.read_session() as db:
            stored = db.scalar(select(PlatformState.value).where(PlatformState.name == name))
    assert stored is not None
    return bytes.fromhex(stored)


def record(db: Session, name: str, value: str) -> None:
    """Store ``value`` under ``name``, replacing what was there."""
    row = db.get(PlatformState, name)
    if row is None:
        db.add(PlatformState(name=name, value=value))
    else:
        row.value, row.updated_at = value, utcnow()


def recorded(db: Session, name: str) -> str | None:
    return db.scalar(select(PlatformState.value).where(PlatformState.name == name))
