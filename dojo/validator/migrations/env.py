"""Alembic environment of the validator database: runs on the connection its migrate function hands it."""

from __future__ import annotations

from dojo.validator.models import Base
from template.storage import run_migrations

run_migrations(Base.metadata)
