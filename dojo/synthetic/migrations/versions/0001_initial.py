"""The synthetic service's store: instructions (with their kind), the task queue (with
its kind) and the embeddings of accepted instructions (see ``dojo/synthetic/store.py``).

Stores made before migrations existed were built by ``create_all`` and have these tables
already, with or without the ``kind`` columns (those made before content kinds hold
code): this revision adopts them, creating only what is missing, and keeps their rows.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _kind() -> sa.Column[str]:
    return sa.Column("kind", sa.String(length=16), server_default="code", nullable=False)


def upgrade() -> None:
    existing = sa.inspect(op.get_bind())
    tables = set(existing.get_table_names())
    if "instructions" not in tables:
        op.create_table(
            "instructions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("similarity", sa.Float(), nullable=False),
            sa.Column("nearest_id", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.Float(), nullable=False),
            _kind(),
            sa.PrimaryKeyConstraint("id"),
        )
    elif "kind" not in {c["name"] for c in existing.get_columns("instructions")}:
        op.add_column("instructions", _kind())
    if "ix_instructions_status" not in {i["name"] for i in existing.get_indexes("instructions")}:
        op.create_index("ix_instructions_status", "instructions", ["status"])
    if "task_queue" not in tables:
        op.create_table(
            "task_queue",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("task", sa.Text(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            _kind(),
            sa.PrimaryKeyConstraint("id"),
        )
    elif "kind" not in {c["name"] for c in existing.get_columns("task_queue")}:
        op.add_column("task_queue", _kind())
    if "instruction_embeddings" not in tables:
        op.create_table(
            "instruction_embeddings",
            sa.Column("instruction_id", sa.Integer(), nullable=False),
            sa.Column("model", sa.String(length=200), nullable=False),
            sa.Column("vector", sa.LargeBinary(), nullable=False),
            sa.ForeignKeyConstraint(["instruction_id"], ["instructions.id"]),
            sa.PrimaryKeyConstraint("instruction_id", "model"),
        )


def downgrade() -> None:
    op.drop_table("instruction_embeddings")
    op.drop_table("task_queue")
    op.drop_index("ix_instructions_status", table_name="instructions")
    op.drop_table("instructions")
