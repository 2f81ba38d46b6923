"""worker backends: each task's backend and result count; the answers judged, pinned

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("miner_tasks") as batch:
        batch.add_column(sa.Column("backend", sa.String(32), nullable=False, server_default="dojo"))
        batch.add_column(sa.Column("max_results", sa.Integer(), nullable=True))
    op.create_table(
        "miner_answers",
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("answer_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("lead_time", sa.Float(), nullable=True),
        sa.Column("answer_values", sa.JSON(), nullable=False),
        sa.Column("rationale", sa.String(1000), nullable=True),
        sa.Column("judged_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("validator_hotkey", "request_id", "answer_id", name="pk_miner_answers"),
        sa.ForeignKeyConstraint(
            ["validator_hotkey", "request_id"],
            ["miner_tasks.validator_hotkey", "miner_tasks.request_id"],
            name="fk_miner_answers_miner_tasks",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("miner_answers")
    with op.batch_alter_table("miner_tasks") as batch:
        batch.drop_column("max_results")
        batch.drop_column("backend")
