"""Alembic environment: runs on the connection that ``dojo.platform.db.migrate`` hands it."""

from __future__ import annotations

from alembic import context

from dojo.platform.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `dojo platform migrate` (dojo.platform.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
