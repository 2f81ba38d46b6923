"""Each worker result's rationale, the short reason a worker may give with its ranking
(nullable: most results have none, and results written before this revision none at all).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("miner_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rationale", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("miner_results", schema=None) as batch_op:
        batch_op.drop_column("rationale")
