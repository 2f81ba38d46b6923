"""a result counter on tasks (backfilled) and one-time invite links

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

``tasks.num_results`` lets the queue skip full tasks without counting results per task;
existing tasks get the count of their results. ``ix_tasks_open`` indexes only the tasks
that still take results, which is what the queue searches.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("num_results", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE tasks SET num_results = (SELECT count(*) FROM results WHERE results.task_id = tasks.id)"
    )
    op.create_index(
        "ix_tasks_open",
        "tasks",
        ["miner_id", "expire_at"],
        sqlite_where=sa.text("num_results < max_results"),
        postgresql_where=sa.text("num_results < max_results"),
    )
    op.create_table(
        "invites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["miner_id"], ["miners.id"], name="fk_invites_miner_id_miners", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name="fk_invites_worker_id_workers", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invites"),
        sa.UniqueConstraint("token_hash", name="uq_invites_token_hash"),
    )
    op.create_index("ix_invites_miner_id", "invites", ["miner_id"])


def downgrade() -> None:
    op.drop_table("invites")
    op.drop_index("ix_tasks_open", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("num_results")
