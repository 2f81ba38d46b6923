"""drafts kept with the hold, and rationales kept with results

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09

- ``assignments.draft`` and ``assignments.draft_saved_at``: the worker's answer so far
  (the order of the responses, which of them it placed, its scores and rationale), kept
  with its hold so that another browser of the same worker takes it up; cleared when the
  worker submits or skips.
- ``results.rationale``: the short reason a worker may give with its answer; null when
  none was given (and for results stored before this revision).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, as in 0005: no batch copy of tables others reference.
    op.add_column("assignments", sa.Column("draft", sa.JSON(), nullable=True))
    op.add_column("assignments", sa.Column("draft_saved_at", sa.DateTime(), nullable=True))
    op.add_column("results", sa.Column("rationale", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("results", "rationale")
    op.drop_column("assignments", "draft_saved_at")
    op.drop_column("assignments", "draft")
