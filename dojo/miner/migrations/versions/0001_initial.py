"""initial schema: miner tasks, validator scores, the miner's secret

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "miner_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("dojo_task_id", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("completion_ids", sa.JSON(), nullable=False),
        sa.Column("criteria_types", sa.JSON(), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("results_returned_at", sa.DateTime(), nullable=True),
        sa.Column("results_returned", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_miner_tasks"),
        sa.UniqueConstraint("validator_hotkey", "request_id", name="uq_miner_tasks_validator_request"),
    )
    op.create_table(
        "validator_scores",
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("validator_hotkey", "request_id", name="pk_validator_scores"),
        sa.ForeignKeyConstraint(
            ["validator_hotkey", "request_id"],
            ["miner_tasks.validator_hotkey", "miner_tasks.request_id"],
            name="fk_validator_scores_miner_tasks",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "miner_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_miner_secrets"),
        sa.CheckConstraint("id = 1", name="ck_miner_secrets_one_row"),
    )


def downgrade() -> None:
    op.drop_table("miner_secrets")
    op.drop_table("validator_scores")
    op.drop_table("miner_tasks")
