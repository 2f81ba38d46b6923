"""The miner's database: which validator request became which platform task, and what came back.

=====================  ==================================================================
table                  one row per
=====================  ==================================================================
``miner_tasks``        (validator hotkey, request id) the miner accepted: the platform
                       task it became, a hash of the request, when results went back
``validator_scores``   (validator hotkey, request id) a validator scored; a repeat
                       overwrites the score
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
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from commons.storage import UTCDateTime


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

    __table_args__ = (
        UniqueConstraint("validator_hotkey", "request_id", name="uq_miner_tasks_validator_request"),
    )


class ValidatorScore(Base):
    __tablename__ = "validator_scores"

    validator_hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime]

    __table_args__ = (
        ForeignKeyConstraint(
            ["validator_hotkey", "request_id"],
            ["miner_tasks.validator_hotkey", "miner_tasks.request_id"],
            name="fk_validator_scores_miner_tasks",
            ondelete="CASCADE",
        ),
    )


class MinerSecret(Base):
    __tablename__ = "miner_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("id = 1", name="ck_miner_secrets_one_row"),)
