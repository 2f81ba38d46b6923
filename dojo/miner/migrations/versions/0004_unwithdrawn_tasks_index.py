"""an index of the tasks still on their backend, by deadline: what each poll reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_UNWITHDRAWN = sa.text("withdrawn_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_miner_tasks_unwithdrawn_due",
        "miner_tasks",
        ["backend", "expire_at"],
        sqlite_where=_UNWITHDRAWN,
        postgresql_where=_UNWITHDRAWN,
    )


def downgrade() -> None:
    op.drop_index("ix_miner_tasks_unwithdrawn_due", table_name="miner_tasks")
