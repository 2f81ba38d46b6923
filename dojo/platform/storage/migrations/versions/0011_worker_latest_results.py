"""a worker's answers, the latest first, from an index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

The pages a worker opens all day read its latest answers: the task page's median time per
task (over its latest 1 000, as the team page counts its medians), the history page (50 a
page, the newest first) and its summary (its latest 1 000). Each sorted every answer the
worker ever gave to find them. ``(worker_id, updated_at, id)`` hands them over in that order;
it replaces ``(worker_id)``, whose every use it covers, so a submission writes as many index
entries as before.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_results_worker_latest", "results", ["worker_id", "updated_at", "id"])
    op.drop_index("ix_results_worker_id", table_name="results")


def downgrade() -> None:
    op.create_index("ix_results_worker_id", "results", ["worker_id"])
    op.drop_index("ix_results_worker_latest", table_name="results")
