"""Alembic environment of the platform database: runs on the connection its migrate function hands it."""

from __future__ import annotations

from commons.storage import run_migrations
from dojo.platform.models import Base

run_migrations(Base.metadata)
