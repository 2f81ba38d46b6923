"""Alembic environment: runs on the connection that ``commons.storage.migrate`` hands it."""

from __future__ import annotations

from alembic import context

from dojo.validator.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the validator's migrations through dojo.validator.store.TaskStore")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
