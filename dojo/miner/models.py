"""The miner's database: which validator request became which platform task, and what came back.

=====================  ==================================================================
table                  one row per
=====================  ==================================================================
``miner_tasks``        (validator hotkey, request id) the miner accepted: the platform
                       task it became, a hash of the request, when results went back,
                       when it left the workers' reach after its deadline
``validator_scores``   (validator hotkey, request id) a validator scored; a repeat
                       overwrites the score
``miner_answers``      answer a backend reported for a task, judged once by the miner's
                       rules (:mod:`dojo.miner.answers`): counted, or why not
``miner_secrets``      exactly one: the random key the miner derives worker pseudonyms from
=====================  ==================================================================

The tables are created by the migrations in ``dojo/miner/migrations/`` only; the models
here are what the code reads and writes, and must match them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from template.storage import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, list[Any]: JSON}


class MinerTask(Base):
    __tablename__ = "miner_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    validator_hotkey: Mapped[str] = mapped_column(String(64))
    # Request ids are the validator's; two validators may use the same one.
    request_id: Mapped[str] = mapped_column(String(64))
    dojo_task_id: Mapped[str] = mapped_column(String(128))
    # SHA-256 of the request's canonical JSON without protocol_version: a repeat of the same
    # request gets the stored reply, the same id with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    # The completion ids the validator sent (the platform's cids), to check what comes back.
    completion_ids: Mapped[list[Any]]
    criteria_types: Mapped[list[Any]]
    expire_at: Mapped[datetime]
    created_at: Mapped[datetime]
    results_returned_at: Mapped[datetime | None]
    results_returned: Mapped[int | None] = mapped_column(Integer)
    # The worker backend the task went to (--worker_platform), and the answers it asked for
    # (None: a task from before backends were recorded; the setting of the day applies).
    backend: Mapped[str] = mapped_column(String(32), server_default="dojo")
    max_results: Mapped[int | None] = mapped_column(Integer)
    # When the task, past its deadline and its answers read a last time, was taken out of
    # the workers' reach on its backend (None: still there, or a backend that needs none).
    withdrawn_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("validator_hotkey", "request_id", name="uq_miner_tasks_validator_request"),
        # The tasks still on their backend, by deadline: what each poll reads (the open
        # tasks, and those due to be withdrawn), without a scan of every task ever taken.
        Index(
            "ix_miner_tasks_unwithdrawn_due",
            "backend",
            "expire_at",
            sqlite_where=text("withdrawn_at IS NULL"),
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
    )


def _of_task(name: str) -> ForeignKeyConstraint:
    """The foreign key named ``name`` from a row to its task (``miner_tasks``), deleted with it."""
    return ForeignKeyConstraint(
        ["validator_hotkey", "request_id"],
        ["miner_tasks.validator_hotkey", "miner_tasks.request_id"],
        name=name,
        ondelete="CASCADE",
    )


class JudgedAnswer(Base):
    """A worker's answer as the miner judged it: counted, or not and why."""

    __tablename__ = "miner_answers"

    validator_hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The backend's id of the answer (a Label Studio annotation id, a platform result id).
    answer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The order it was judged in: counted answers go back to the validator in this order.
    seq: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(64))  # the pseudonym
    counted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(1000))
    submitted_at: Mapped[datetime]
    lead_time: Mapped[float | None] = mapped_column(Float)
    # {criterion: {completion id: rank or score}} of a counted answer; {} otherwise.
    answer_values: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Why the worker answered so, in its words, when it said (a counted answer only).
    rationale: Mapped[str | None] = mapped_column(String(1000))
    judged_at: Mapped[datetime]

    __table_args__ = (_of_task("fk_miner_answers_miner_tasks"),)


class ValidatorScore(Base):
    __tablename__ = "validator_scores"

    validator_hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime]

    __table_args__ = (_of_task("fk_validator_scores_miner_tasks"),)


class MinerSecret(Base):
    __tablename__ = "miner_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("id = 1", name="ck_miner_secrets_one_row"),)
