"""The platform's tables (SQLAlchemy 2), the head of the migrations in ``migrations/``.

Times are timezone-aware UTC in Python (:func:`template.storage.utcnow` makes them) and naive
UTC in the database, as every database of the subnet keeps them (``UTCDateTime``), so the rows
written before the platform's times were aware read back as they were meant. Secrets
(session tokens, API and subscription keys, invite tokens) are stored only as SHA-256
hashes. The platform holds what workers answered and never any ground truth.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from template.clock import utcnow
from template.storage import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY_KIND_API = "api"
KEY_KIND_SUBSCRIPTION = "subscription"
HOLD = "held"
DONE = "done"
SKIPPED = "skipped"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Miner(Base):
    __tablename__ = "miners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hotkey: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the miner tells its team (how and what it pays, how to reach it), shown to its
    # workers and on its invite links (revision 0006).
    team_message: Mapped[str | None] = mapped_column(Text)
    team_message_at: Mapped[datetime | None]


class LoginNonce(Base):
    """A single-use challenge: ``subject`` is a hotkey (miner) or an address (worker)."""

    __tablename__ = "login_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class LoginSession:
    """The columns of a log-in session, a miner's or a worker's: the SHA-256 of its token, and
    until when it is good."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class MinerSession(LoginSession, Base):
    __tablename__ = "miner_sessions"

    miner_id: Mapped[int] = mapped_column(ForeignKey("miners.id", ondelete="CASCADE"), index=True)


class ApiKey(Base):
    """An API key (``kind='api'``: the miner's scripts) or a subscription key (handed to workers)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    miner_id: Mapped[int] = mapped_column(ForeignKey("miners.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class Worker(Base):
    """A human worker: a wallet address, or none for one who came by invite link."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Random; the pseudonym a miner sees is derived from it and the miner's hotkey.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    address: Mapped[str | None] = mapped_column(String(42), unique=True)
    # SHA-256 of the recovery code an invited worker logs back in with (revision 0005).
    recovery_hash: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerSession(LoginSession, Base):
    __tablename__ = "worker_sessions"

    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)


class Subscription(Base):
    """A worker's access to one miner's tasks: by a subscription key, or by invite (no key)."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("worker_id", "miner_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    miner_id: Mapped[int] = mapped_column(ForeignKey("miners.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_miner_created", "miner_id", "created_at"),
        # The queue's search: open tasks of given miners, soonest deadline first (revision 0002).
        Index(
            "ix_tasks_open",
            "miner_id",
            "expire_at",
            sqlite_where=text("num_results < max_results"),
            postgresql_where=text("num_results < max_results"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    miner_id: Mapped[int] = mapped_column(ForeignKey("miners.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text)
    task_type: Mapped[str] = mapped_column(String(64))
    criteria: Mapped[list[Any]]
    # [{"cid", "model", "completion"}]; the order the miner sent, no ranking implied.
    completions: Mapped[list[Any]]
    max_results: Mapped[int]
    # Kept in step with the results table under the task's row lock (revision 0002).
    num_results: Mapped[int] = mapped_column(default=0, server_default="0")
    expire_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The validator's score for this task, as the miner reported it (0..1; revision 0006).
    score: Mapped[float | None] = mapped_column(Float)
    scored_at: Mapped[datetime | None]
    # PostgreSQL's queue: every place is held until then at least (revision 0009); in no index.
    full_until: Mapped[datetime | None]


class Assignment(Base):
    """A worker's claim on a task: held until ``held_until``, then done or skipped."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("task_id", "worker_id"),
        # Covers the queue's per-task look: live holds, and this worker's own (revision 0003).
        Index("ix_assignments_task_worker_state", "task_id", "worker_id", "status", "held_until"),
        Index("ix_assignments_worker_status", "worker_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    held_until: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The worker's answer so far, kept with the hold for its other browsers; cleared on
    # submit and skip (revision 0007). See ``dojo.platform.services.drafts``.
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    draft_saved_at: Mapped[datetime | None]


class Result(Base):
    """One worker's answer to one task; a resubmission before expiry replaces it."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("task_id", "worker_id"),
        # A worker's answers, the latest first: what its pages read (revision 0011).
        Index("ix_results_worker_latest", "worker_id", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    result_data: Mapped[list[Any]]
    # Seconds the worker spent on it, summed over resubmissions (revision 0005).
    lead_time: Mapped[float | None] = mapped_column(Float)
    # Why the worker ranked as it did, in its words, if it said (revision 0007).
    rationale: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Flag(Base):
    """A worker's report that one completion of a task is broken (revision 0005)."""

    __tablename__ = "flags"
    __table_args__ = (UniqueConstraint("task_id", "worker_id", "cid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    cid: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invite(Base):
    """A one-time invite link to one miner's team (revision 0002)."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    miner_id: Mapped[int] = mapped_column(ForeignKey("miners.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    # The miner took the link back before anyone used it (revision 0006).
    revoked_at: Mapped[datetime | None]


class CreateRequest(Base):
    """A create-tasks request that came with an ``Idempotency-Key`` (revision 0004): a retry
    with the same key gets the same task ids instead of new tasks."""

    __tablename__ = "create_requests"
    __table_args__ = (UniqueConstraint("miner_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    miner_id: Mapped[int] = mapped_column(ForeignKey("miners.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    # SHA-256 of the request as validated: the same key with other tasks is refused.
    body_hash: Mapped[str] = mapped_column(String(64))
    task_ids: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlatformState(Base):
    """Named values the platform keeps for itself (revision 0006): ``csrf_secret``, the
    server secret CSRF tokens are derived from (made on first start, shared by every
    replica); ``base_url``, the URL the platform last served at (``dojo platform invite
    --db`` prints links at it)."""

    __tablename__ = "platform_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginLimit(Base):
    """The log-in rate limit's state for one client address (revision 0008): its theoretical
    arrival time, seconds since the epoch (see ``dojo.platform.services.limits``). Kept in the
    database so that every replica of a platform counts the same attempts."""

    __tablename__ = "login_limits"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)
