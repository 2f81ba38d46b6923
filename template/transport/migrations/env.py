"""Alembic environment of the nonce store: runs on the connection its migrate function hands it."""

from __future__ import annotations

from template.storage import run_migrations

# No models: the store's two statements are plain SQL on the driver (see template.transport.nonces).
run_migrations(None)
