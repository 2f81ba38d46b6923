"""one covering index for the queue's look at a task's assignments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

The queue's search asks, for each open task it passes, how many live holds it has and
whether this worker already has it. ``(task_id, worker_id, status, held_until)`` answers
both from the index alone, without reading the rows; it replaces ``(task_id, status)``,
whose every use it covers.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_assignments_task_worker_state", "assignments", ["task_id", "worker_id", "status", "held_until"]
    )
    op.drop_index("ix_assignments_task_status", table_name="assignments")


def downgrade() -> None:
    op.create_index("ix_assignments_task_status", "assignments", ["task_id", "status"])
    op.drop_index("ix_assignments_task_worker_state", table_name="assignments")
