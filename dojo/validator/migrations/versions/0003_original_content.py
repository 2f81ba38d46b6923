"""For the dataset export: each completion's original (un-obfuscated) content beside the
content sent (nullable: tasks written before this revision have none), and scored tasks
indexed in the order the export reads them, (created_at, task_id).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_completions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("original_content", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_status_created", ["status", "created_at", "task_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_status_created")
    with op.batch_alter_table("task_completions", schema=None) as batch_op:
        batch_op.drop_column("original_content")
