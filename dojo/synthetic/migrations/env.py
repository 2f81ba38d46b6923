"""Alembic environment of the synthetic service's database: runs on the connection its store hands it."""

from __future__ import annotations

from commons.storage import run_migrations
from dojo.synthetic.store import metadata

run_migrations(metadata)
