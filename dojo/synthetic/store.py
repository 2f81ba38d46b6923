"""The synthetic service's own small database (SQLite, WAL, through SQLAlchemy Core).

Two tables:

- ``instructions``: every instruction the instructor proposed, accepted or rejected,
  with its similarity to the nearest earlier one. The filter reads the accepted ones to
  keep new instructions distinct; the rejected ones stay as a record of what was refused.
- ``task_queue``: generated tasks waiting to be handed out, so that a restart of the
  service keeps the queue it had built.

``SyntheticStore(":memory:")`` (or ``None``) gives a private in-memory database for
in-process generation and benchmarks.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from commons.synthetic_api import SyntheticTask

metadata = sa.MetaData()

instructions = sa.Table(
    "instructions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # accepted | rejected
    sa.Column("similarity", sa.Float, nullable=False),
    sa.Column("nearest_id", sa.Integer, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_instructions_status", "status"),
)

task_queue = sa.Table(
    "task_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("task", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)


class SyntheticStore:
    """Instructions seen and tasks queued; safe to share between threads."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None or str(path) == ":memory:":
            self.engine = sa.create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            path = Path(path).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", _sqlite_pragmas)
        # One connection for an in-memory database means one writer at a time; SQLite
        # files serialise writers themselves, the lock just spares them the busy wait.
        self._lock = threading.Lock()
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- instructions ---------------------------------------------------------------------

    def accepted_instructions(self) -> list[tuple[int, str]]:
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(instructions.c.id, instructions.c.text)
                .where(instructions.c.status == "accepted")
                .order_by(instructions.c.id)
            )
            return [(row.id, row.text) for row in rows]

    def record_instruction(self, text: str, *, accepted: bool, similarity: float, nearest_id: int | None) -> int:
        with self._lock, self.engine.begin() as conn:
            result = conn.execute(
                instructions.insert().values(
                    text=text,
                    status="accepted" if accepted else "rejected",
                    similarity=float(similarity),
                    nearest_id=nearest_id,
                    created_at=time.time(),
                )
            )
            return int(result.inserted_primary_key[0])

    def instruction_counts(self) -> dict[str, int]:
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(instructions.c.status, sa.func.count()).group_by(instructions.c.status)
            )
            counts = {"accepted": 0, "rejected": 0}
            counts.update({row[0]: int(row[1]) for row in rows})
            return counts

    def rejected_instructions(self) -> list[tuple[str, float, int | None]]:
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(instructions.c.text, instructions.c.similarity, instructions.c.nearest_id)
                .where(instructions.c.status == "rejected")
                .order_by(instructions.c.id)
            )
            return [(row.text, row.similarity, row.nearest_id) for row in rows]

    # --- queue ----------------------------------------------------------------------------

    def push_task(self, task: SyntheticTask) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(task_queue.insert().values(task=task.model_dump_json(), created_at=time.time()))

    def pop_task(self) -> SyntheticTask | None:
        """The oldest queued task, removed from the queue; ``None`` when the queue is empty."""
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(sa.select(task_queue.c.id, task_queue.c.task).order_by(task_queue.c.id).limit(1)).first()
            if row is None:
                return None
            conn.execute(task_queue.delete().where(task_queue.c.id == row.id))
        return SyntheticTask.model_validate_json(row.task)

    def queue_size(self) -> int:
        with self._lock, self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(task_queue)).scalar_one())


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
