"""lead times, recovery codes and flags

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- ``results.lead_time``: the seconds a worker spent on the answer (Label Studio's lead
  time), summed over resubmissions; null for results stored before this revision.
- ``workers.recovery_hash``: the SHA-256 of an invited worker's recovery code, the way
  back to the same worker after logging out (a new invite would make a new worker).
- ``flags``: a worker's report that one completion of a task is broken, with a reason.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy on SQLite: dropping the old ``workers`` table would
    # cascade to every row that references it).
    op.add_column("results", sa.Column("lead_time", sa.Float(), nullable=True))
    op.add_column("workers", sa.Column("recovery_hash", sa.String(64), nullable=True))
    op.create_index("ix_workers_recovery_hash", "workers", ["recovery_hash"], unique=True)
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("cid", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_flags_task_id_tasks", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name="fk_flags_worker_id_workers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_flags"),
        sa.UniqueConstraint("task_id", "worker_id", "cid", name="uq_flags_task_id"),
    )
    op.create_index("ix_flags_task_id", "flags", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_flags_task_id", table_name="flags")
    op.drop_table("flags")
    op.drop_index("ix_workers_recovery_hash", table_name="workers")
    op.drop_column("workers", "recovery_hash")
    op.drop_column("results", "lead_time")
