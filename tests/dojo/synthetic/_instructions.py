"""The instructions a synthetic store decided on, read from its database as an operator would."""

from __future__ import annotations

import sqlalchemy as sa

from dojo.synthetic.store import SyntheticStore


def instruction_counts(store: SyntheticStore) -> dict[str, int]:
    """Instructions accepted and rejected by the duplicate filter."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) FROM instructions GROUP BY status"))
        return {"accepted": 0, "rejected": 0, **{status: int(n) for status, n in rows}}


def rejected_instructions(store: SyntheticStore) -> list[tuple[str, float, int | None]]:
    """The rejected instructions in order: text, similarity, the accepted one they were near."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT text, similarity, nearest_id FROM instructions WHERE status = 'rejected' ORDER BY id"
            )
        )
        return [(text, similarity, nearest) for text, similarity, nearest in rows]
