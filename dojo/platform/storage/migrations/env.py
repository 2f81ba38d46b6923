"""Alembic environment of the platform database: runs on the connection its migrate function hands it."""

from __future__ import annotations

from dojo.platform.storage.models import Base
from template.storage import run_migrations

run_migrations(Base.metadata)
