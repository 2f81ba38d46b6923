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

``benchmarks/worker_pages.py`` (ms a read, the median of 15; a worker with 1 000 answers,
then one with 20 000), before this revision (and the median over every answer) and after:

| read | SQLite 1 000 | SQLite 20 000 | PostgreSQL 1 000 | PostgreSQL 20 000 |
|---|---|---|---|---|
| progress (task page) | 1.7 → 2.0 | 20.4 → 8.3 | 3.0 → 3.6 | 31.4 → 9.6 |
| summary (history page) | 20.8 → 20.8 | 36.2 → 22.7 | 35.0 → 36.1 | 54.2 → 36.9 |
| history, first page | 5.1 → 3.8 | 45.4 → 4.4 | 9.1 → 7.3 | 35.1 → 9.3 |

What still grows is counting: done today and in all, and the time in all, over every answer.
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
