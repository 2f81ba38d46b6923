"""the accepted nonces, by hotkey, and their index by time

Revision ID: 0001
Revises:
Create Date: 2026-12-06

A store written before its schema came from migrations has this table and index already:
each statement creates only what is missing, so this revision adopts such a file, its
nonces kept, as well as creating a new one.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE IF NOT EXISTS nonces (hotkey TEXT NOT NULL, nonce INTEGER NOT NULL,"
        " PRIMARY KEY (hotkey, nonce)) WITHOUT ROWID"
    )
    op.execute("CREATE INDEX IF NOT EXISTS nonces_by_time ON nonces (nonce)")


def downgrade() -> None:
    op.drop_table("nonces")
