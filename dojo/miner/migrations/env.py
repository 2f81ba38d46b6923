"""Alembic environment of the miner database: runs on the connection its migrate function hands it."""

from __future__ import annotations

from dojo.miner.models import Base
from template.storage import run_migrations

run_migrations(Base.metadata)
