"""Alembic environment: runs on the connection that ``dojo.miner.store.MinerStore`` hands it."""

from __future__ import annotations

from alembic import context

from dojo.miner.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the miner migrates its database at start (dojo.miner.store.MinerStore)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
