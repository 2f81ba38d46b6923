"""Alembic environment of the local chain: runs on the connection its migrate function hands it."""

from __future__ import annotations

from template.storage import run_migrations

# No models: the chain's statements are plain SQL on the driver (see template.chain.local).
run_migrations(None)
