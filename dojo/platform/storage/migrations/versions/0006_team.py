"""the miner's team: scores, the team message, revoked invites, the platform's own state

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09

- ``tasks.score``, ``tasks.scored_at``: the validator's score for the task, as the miner
  reports it (``PUT /api/v1/tasks/{id}/score``); shown to the workers who answered it.
- ``miners.team_message``, ``miners.team_message_at``: what the miner tells its team (how
  and what it pays), shown to its workers and on its invite links.
- ``invites.revoked_at``: an unused invite the miner took back.
- ``platform_state``: named values the platform keeps for itself (the CSRF secret, the
  URL it serves at).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, as in 0005 (a batch copy on SQLite would drop tables others reference).
    op.add_column("tasks", sa.Column("score", sa.Float(), nullable=True))
    op.add_column("tasks", sa.Column("scored_at", sa.DateTime(), nullable=True))
    op.add_column("miners", sa.Column("team_message", sa.Text(), nullable=True))
    op.add_column("miners", sa.Column("team_message_at", sa.DateTime(), nullable=True))
    op.add_column("invites", sa.Column("revoked_at", sa.DateTime(), nullable=True))
    op.create_table(
        "platform_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_platform_state"),
    )


def downgrade() -> None:
    op.drop_table("platform_state")
    op.drop_column("invites", "revoked_at")
    op.drop_column("miners", "team_message_at")
    op.drop_column("miners", "team_message")
    op.drop_column("tasks", "scored_at")
    op.drop_column("tasks", "score")
