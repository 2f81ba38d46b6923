"""idempotency keys for create-tasks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

A miner's client retries create-tasks on timeouts and 5xx; a timeout after the platform
stored the tasks would otherwise create them twice. ``create_requests`` remembers, per
miner and ``Idempotency-Key``, the tasks a request created and a hash of what it asked for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "create_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("task_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["miner_id"], ["miners.id"], name="fk_create_requests_miner_id_miners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_create_requests"),
        sa.UniqueConstraint("miner_id", "key", name="uq_create_requests_miner_id"),
    )


def downgrade() -> None:
    op.drop_table("create_requests")
