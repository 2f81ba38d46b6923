"""initial schema: miners, log-in, keys, workers, subscriptions, tasks, assignments, results

Revision ID: 0001
Revises:
Create Date: 2026-11-25
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
        "miners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hotkey", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_miners"),
        sa.UniqueConstraint("hotkey", name="uq_miners_hotkey"),
    )
    op.create_table(
        "login_nonces",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name="pk_login_nonces"),
    )
    op.create_index("ix_login_nonces_subject", "login_nonces", ["subject"])
    op.create_table(
        "miner_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["miner_id"], ["miners.id"], name="fk_miner_sessions_miner_id_miners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_miner_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_miner_sessions_token_hash"),
    )
    op.create_index("ix_miner_sessions_miner_id", "miner_sessions", ["miner_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["miner_id"], ["miners.id"], name="fk_api_keys_miner_id_miners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_miner_id", "api_keys", ["miner_id"])
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("address", sa.String(42), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
        sa.UniqueConstraint("public_id", name="uq_workers_public_id"),
        sa.UniqueConstraint("address", name="uq_workers_address"),
    )
    op.create_table(
        "worker_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name="fk_worker_sessions_worker_id_workers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_worker_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_worker_sessions_token_hash"),
    )
    op.create_index("ix_worker_sessions_worker_id", "worker_sessions", ["worker_id"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name="fk_subscriptions_key_id_api_keys", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["miner_id"], ["miners.id"], name="fk_subscriptions_miner_id_miners", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name="fk_subscriptions_worker_id_workers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        sa.UniqueConstraint("worker_id", "miner_id", name="uq_subscriptions_worker_id"),
    )
    op.create_index("ix_subscriptions_miner_id", "subscriptions", ["miner_id"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("miner_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("task_type", sa.String(64), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("completions", sa.JSON(), nullable=False),
        sa.Column("max_results", sa.Integer(), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["miner_id"], ["miners.id"], name="fk_tasks_miner_id_miners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
    )
    op.create_index("ix_tasks_expire_at", "tasks", ["expire_at"])
    op.create_index("ix_tasks_miner_created", "tasks", ["miner_id", "created_at"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("held_until", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_assignments_task_id_tasks", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name="fk_assignments_worker_id_workers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_assignments"),
        sa.UniqueConstraint("task_id", "worker_id", name="uq_assignments_task_id"),
    )
    op.create_index("ix_assignments_task_status", "assignments", ["task_id", "status"])
    op.create_index("ix_assignments_worker_status", "assignments", ["worker_id", "status"])
    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("result_data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_results_task_id_tasks", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name="fk_results_worker_id_workers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
        sa.UniqueConstraint("task_id", "worker_id", name="uq_results_task_id"),
    )
    op.create_index("ix_results_worker_id", "results", ["worker_id"])


def downgrade() -> None:
    for table in (
        "results",
        "assignments",
        "tasks",
        "subscriptions",
        "worker_sessions",
        "workers",
        "api_keys",
        "miner_sessions",
        "login_nonces",
        "miners",
    ):
        op.drop_table(table)
