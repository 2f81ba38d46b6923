"""Organic tasks: the organic API's callers (API keys hashed, hotkeys), the tasks they
submit with their results, the webhooks to deliver, and each miner's reliability carried
from round to round.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "miner_reliability",
        sa.Column("miner_hotkey", sa.String(64), primary_key=True),
        sa.Column("miner_uid", sa.Integer(), nullable=False),
        sa.Column("reliability", sa.Float(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "organic_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("key_prefix", sa.String(32), nullable=True),
        sa.Column("hotkey", sa.String(64), nullable=True, unique=True),
        sa.Column("webhook_secret", sa.String(128), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("daily_quota", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "organic_tasks",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(32), sa.ForeignKey("organic_keys.key_id"), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(8), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("deadline_seconds", sa.Float(), nullable=False),
        sa.Column("miners_wanted", sa.Integer(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("scored_at", sa.DateTime(), nullable=True),
        sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
        sa.UniqueConstraint("owner_id", "external_id", name="uq_organic_tasks_external"),
    )
    op.create_index("ix_organic_tasks_owner_created", "organic_tasks", ["owner_id", "created_at"])
    op.create_index("ix_organic_tasks_status_owner", "organic_tasks", ["status", "owner_id", "created_at"])
    op.create_table(
        "organic_deliveries",
        sa.Column("delivery_id", sa.String(64), primary_key=True),
        sa.Column(
            "task_id",
            sa.String(64),
            sa.ForeignKey("organic_tasks.task_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_organic_deliveries_task_id", "organic_deliveries", ["task_id"])
    op.create_index("ix_organic_deliveries_due", "organic_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("organic_deliveries")
    op.drop_table("organic_tasks")
    op.drop_table("organic_keys")
    op.drop_table("miner_reliability")
