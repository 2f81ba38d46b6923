"""Alembic environment of the synthetic service's database: runs on the connection its store hands it."""

from __future__ import annotations

from dojo.synthetic.store import metadata
from template.storage import run_migrations

run_migrations(metadata)
