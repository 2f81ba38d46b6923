"""The synthetic service's own small database (SQLite, WAL, through SQLAlchemy Core).

Three tables:

- ``instructions``: every instruction the instructor proposed, accepted or rejected,
  with its kind and its similarity to the nearest earlier one. The filter reads the
  accepted ones to keep new instructions distinct; the rejected ones stay as a record of
  what was refused.
- ``task_queue``: generated tasks waiting to be handed out, with their kind, so that a
  restart of the service keeps the queue it had built.
- ``instruction_embeddings``: the embedding of each accepted instruction under one model,
  so that the semantic filter does not ask the provider again after a restart.

The schema is migrated on open with Alembic (``dojo/synthetic/migrations``), as the
validator's and the miner's databases are (:func:`template.storage.migrate`); a store made
before the migrations, with or without the ``kind`` columns, is adopted by the first
revision with its rows (those made before content kinds hold code).

``SyntheticStore(":memory:")`` (or ``None``) gives a private in-memory database for
in-process generation and benchmarks.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from commons.synthetic_api import SyntheticTask
from template.storage import database_url, make_engine, migrate

MIGRATIONS = Path(__file__).parent / "migrations"

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
    sa.Column("kind", sa.String(16), nullable=False, server_default="code"),
    sa.Index("ix_instructions_status", "status"),
)

task_queue = sa.Table(
    "task_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("task", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, server_default="code"),
)

instruction_embeddings = sa.Table(
    "instruction_embeddings",
    metadata,
    sa.Column("instruction_id", sa.Integer, sa.ForeignKey("instructions.id"), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("vector", sa.LargeBinary, nullable=False),  # float32, little-endian
)


class SyntheticStore:
    """Instructions seen and tasks queued; safe to share between threads."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None or str(path) == ":memory:":
            # One connection, shared: every connection to ":memory:" is a database of its own.
            self.engine = sa.create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            # WAL, writers begin IMMEDIATE; the queue is made again by the service if a power
            # cut loses its last commits, so the log is synced at checkpoints only.
            self.engine = make_engine(database_url(path), synchronous="NORMAL")
        # One connection for an in-memory database means one writer at a time; SQLite
        # files serialise writers themselves, the lock just spares them the busy wait.
        self._lock = threading.Lock()
        migrate(self.engine, MIGRATIONS, label="synthetic")

    def close(self) -> None:
        self.engine.dispose()

    # --- instructions ---------------------------------------------------------------------

    def accepted_instructions(self, kind: str = "code") -> list[tuple[int, str]]:
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(instructions.c.id, instructions.c.text)
                .where(instructions.c.status == "accepted", instructions.c.kind == kind)
                .order_by(instructions.c.id)
            )
            return [(row.id, row.text) for row in rows]

    def record_instruction(
        self, text: str, *, accepted: bool, similarity: float, nearest_id: int | None, kind: str = "code"
    ) -> int:
        with self._lock, self.engine.begin() as conn:
            result = conn.execute(
                instructions.insert().values(
                    text=text,
                    status="accepted" if accepted else "rejected",
                    similarity=float(similarity),
                    nearest_id=nearest_id,
                    created_at=time.time(),
                    kind=kind,
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # an INSERT of one row has its key
            return int(key[0])

    def embeddings(self, model: str, kind: str) -> dict[int, bytes]:
        """The stored embeddings under ``model`` of the accepted instructions of ``kind``."""
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(instruction_embeddings.c.instruction_id, instruction_embeddings.c.vector)
                .join(instructions, instructions.c.id == instruction_embeddings.c.instruction_id)
                .where(instruction_embeddings.c.model == model, instructions.c.kind == kind)
            )
            return {row.instruction_id: row.vector for row in rows}

    def save_embedding(self, instruction_id: int, model: str, vector: bytes) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                instruction_embeddings.insert().values(
                    instruction_id=instruction_id, model=model, vector=vector
                )
            )

    # --- queue ----------------------------------------------------------------------------

    def push_task(self, task: SyntheticTask) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                task_queue.insert().values(
                    task=task.model_dump_json(), created_at=time.time(), kind=task.kind
                )
            )

    def pop_task(self, kind: str | None = None) -> SyntheticTask | None:
        """The oldest queued task (of ``kind``, when given), removed from the queue; ``None``
        when there is none."""
        query = sa.select(task_queue.c.id, task_queue.c.task).order_by(task_queue.c.id).limit(1)
        if kind is not None:
            query = query.where(task_queue.c.kind == kind)
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            conn.execute(task_queue.delete().where(task_queue.c.id == row.id))
        return SyntheticTask.model_validate_json(row.task)

    def queue_size(self, kind: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(task_queue)
        if kind is not None:
            query = query.where(task_queue.c.kind == kind)
        with self._lock, self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def queue_sizes(self) -> dict[str, int]:
        """Queued tasks by kind."""
        with self._lock, self.engine.connect() as conn:
            rows = conn.execute(sa.select(task_queue.c.kind, sa.func.count()).group_by(task_queue.c.kind))
            return {row[0]: int(row[1]) for row in rows}
