"""The validator's task database: tasks, completions, assignments, results, rounds,
scores and weights (see ``dojo/validator/models.py``).

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


def upgrade() -> None:
    op.create_table(
        "miner_scores",
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("miner_uid", sa.Integer(), nullable=False),
        sa.Column("moving_score", sa.Float(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("latest_score", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("miner_hotkey"),
    )
    op.create_table(
        "rounds",
        sa.Column("round_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scored_at", sa.DateTime(), nullable=True),
        sa.Column("n_tasks", sa.Integer(), nullable=False),
        sa.Column("n_miners", sa.Integer(), nullable=False),
        sa.Column("mean_task_agreement", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("round_id"),
    )
    op.create_table(
        "weight_sets",
        sa.Column("weight_set_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("attempted_at", sa.DateTime(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=True),
        sa.Column("uids", sa.JSON(), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("hotkeys", sa.JSON(), nullable=False),
        sa.Column("version_key", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("weight_set_id"),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("task_type", sa.String(length=32), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.Column("task_agreement", sa.Float(), nullable=True),
        sa.Column("consensus_trust", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["rounds.round_id"],
        ),
        sa.PrimaryKeyConstraint("task_id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_round_id"), ["round_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_status"), ["status"], unique=False)
        batch_op.create_index("ix_tasks_status_expire", ["status", "expire_at"], unique=False)

    op.create_table(
        "assignments",
        sa.Column("assignment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("miner_uid", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("send_status", sa.String(length=16), nullable=False),
        sa.Column("send_detail", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("dojo_task_id", sa.String(length=128), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("collect_status", sa.String(length=16), nullable=True),
        sa.Column("collect_detail", sa.Text(), nullable=True),
        sa.Column("collect_attempts", sa.Integer(), nullable=False),
        sa.Column("next_collect_at", sa.DateTime(), nullable=True),
        sa.Column("collected_at", sa.DateTime(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("score_sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.task_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("assignment_id"),
        sa.UniqueConstraint("request_id"),
        sa.UniqueConstraint("task_id", "miner_hotkey", name="uq_assignments_task_miner"),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_collect", ["collect_status", "next_collect_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignments_miner_hotkey"), ["miner_hotkey"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignments_task_id"), ["task_id"], unique=False)

    op.create_table(
        "task_completions",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("completion_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("ground_truth_rank", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.task_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "completion_id"),
    )
    op.create_table(
        "task_scores",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("miner_uid", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("agreement", sa.Float(), nullable=False),
        sa.Column("kappa", sa.Float(), nullable=False),
        sa.Column("rho_consensus", sa.Float(), nullable=False),
        sa.Column("rho_ground_truth", sa.Float(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("n_workers", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.task_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("round_id", "task_id", "miner_hotkey"),
    )
    op.create_table(
        "assignment_completions",
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("miner_completion_id", sa.String(length=64), nullable=False),
        sa.Column("completion_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.assignment_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("assignment_id", "position"),
        sa.UniqueConstraint("miner_completion_id"),
    )
    op.create_table(
        "miner_results",
        sa.Column("result_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("criteria_type", sa.String(length=16), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.assignment_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("result_id"),
        sa.UniqueConstraint("assignment_id", "worker_id", name="uq_miner_results_worker"),
    )
    with op.batch_alter_table("miner_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_miner_results_assignment_id"), ["assignment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("miner_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_miner_results_assignment_id"))

    op.drop_table("miner_results")
    op.drop_table("assignment_completions")
    op.drop_table("task_scores")
    op.drop_table("task_completions")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignments_task_id"))
        batch_op.drop_index(batch_op.f("ix_assignments_miner_hotkey"))
        batch_op.drop_index("ix_assignments_collect")

    op.drop_table("assignments")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_status_expire")
        batch_op.drop_index(batch_op.f("ix_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_round_id"))

    op.drop_table("tasks")
    op.drop_table("weight_sets")
    op.drop_table("rounds")
    op.drop_table("miner_scores")
