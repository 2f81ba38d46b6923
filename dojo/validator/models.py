"""The validator's global task database: tables named for the people who read them.

Every task the validator made lives here with its completions, ground truth, the miners it
went to, what each miner returned, the scores, the rounds and the weights set. The dataset
export reads it; ``docs/lifecycle.md`` says what is written when.

=======================  ==============================================================
table                    one row per
=======================  ==============================================================
``tasks``                synthetic task (prompt, criteria, deadline, life-cycle status)
``task_completions``     completion of a task, in the task's own order, with its
                         ground-truth rank (1 = best) and its original content
``assignments``          (task, miner): the request id the miner saw, the outcome of
                         sending it, of collecting it, and its score
``assignment_completions``  completion as one miner saw it: its own id and position
``miner_results``        worker result a miner returned and the validator accepted,
                         in the task's completion ids
``rounds``               scoring round
``task_scores``          (round, task, miner): the score and its parts
``miner_scores``         miner hotkey: its moving score (what weights are made from)
``weight_sets``          attempt to set weights, and its outcome
``miner_reliability``    miner hotkey: its reliability measured on synthetic tasks,
                         carried from round to round (the weights of consensus)
``organic_keys``         caller of the organic API: an API key (hashed) or a hotkey,
                         with its limits and its webhook secret
``organic_tasks``        task an outside caller submitted: its owner, its request, its
                         state, and once scored the result the caller gets
``organic_deliveries``   webhook to deliver (its id and body fixed at creation), with
                         its attempts and next try
=======================  ==============================================================

Statuses are strings, listed in :class:`TaskStatus`, :class:`SendStatus` and
:class:`CollectStatus`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from template.storage import UTCDateTime


class TaskStatus:
    SENDING = "sending"  # written with its assignments; the fan-out has not finished
    WAITING = "waiting"  # every assignment's send outcome is recorded; the deadline is ahead
    COLLECTED = "collected"  # every accepted assignment's collection is final; awaiting a round
    SCORING = "scoring"  # in a round that is being scored
    SCORED = "scored"  # its round is scored
    UNSENT = "unsent"  # the deadline passed before the task could be sent (validator was down)


class SendStatus:
    PENDING = "pending"  # written, outcome unknown (not sent yet, or the validator stopped mid-call)
    ACCEPTED = "accepted"  # the miner replied with its dojo_task_id
    REFUSED = "refused"  # the miner answered with an error status (send_detail says which)
    TIMEOUT = "timeout"  # no reply in time
    UNREACHABLE = "unreachable"  # connection refused or reset
    UNSENT = "unsent"  # never sent: the deadline passed while the validator was down


class CollectStatus:
    PENDING = "pending"  # accepted; results not collected yet
    COLLECTED = "collected"  # results returned and accepted (miner_results holds them)
    INVALID = "invalid"  # results returned and refused (collect_detail says why)
    NO_RESULT = "no_result"  # the miner returned no results, or never answered within the grace


class OrganicStatus:
    QUEUED = "queued"  # accepted, on disk, waiting for a place in the fan-out
    SENT = "sent"  # its task is written and sent (the task row says how far it is)
    SCORED = "scored"  # scored; the result is stored
    EXPIRED = "expired"  # never sent: it waited past --organic.queue_timeout
    FAILED = "failed"  # sent, but nothing came back to score (status_detail says why)


class DeliveryStatus:
    PENDING = "pending"  # to be delivered at next_attempt_at
    DELIVERED = "delivered"  # the callback answered 2xx
    FAILED = "failed"  # given up: attempts spent, the day over, or the URL refused (last_error)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Task(Base):
    __tablename__ = "tasks"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Indexed for readers who take tasks by time (`dojo export --since`).
    created_at: Mapped[datetime] = mapped_column(index=True)
    task_type: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str] = mapped_column(Text)
    # The criteria sent to miners, as the protocol's JSON: [{"type": "ranking"}].
    criteria: Mapped[list[Any]]
    expire_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(256))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.round_id"), index=True)
    # Filled when scored: the task's reliability-weighted agreement among miners, and the
    # trust the consensus got on it.
    task_agreement: Mapped[float | None] = mapped_column(Float)
    consensus_trust: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_tasks_status_expire", "status", "expire_at"),
        # The dataset export reads scored tasks in (created_at, task_id) order, a batch at a time.
        Index("ix_tasks_status_created", "status", "created_at", "task_id"),
    )


class TaskCompletion(Base):
    __tablename__ = "task_completions"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True)
    completion_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int]
    model: Mapped[str] = mapped_column(String(128))
    # The protocol's content as sent ({"kind": "code", "files": [...]}).
    content: Mapped[dict[str, Any]]
    ground_truth_rank: Mapped[int | None]
    # The same content before obfuscation, for the dataset export; NULL = unknown (a task from
    # before revision 0003, or a synthetic source that does not send it). Never sent to a
    # miner; deferred, so that loading a completion to send it does not read it.
    original_content: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), deferred=True)


class Assignment(Base):
    __tablename__ = "assignments"

    assignment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.task_id", ondelete="CASCADE"), index=True)
    miner_hotkey: Mapped[str] = mapped_column(String(64), index=True)
    miner_uid: Mapped[int]
    # What the miner saw as the request id: its own, so miners cannot match tasks by id.
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    send_status: Mapped[str] = mapped_column(String(16))
    send_detail: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None]
    dojo_task_id: Mapped[str | None] = mapped_column(String(128))
    sent_at: Mapped[datetime | None]
    collect_status: Mapped[str | None] = mapped_column(String(16))
    collect_detail: Mapped[str | None] = mapped_column(Text)
    collect_attempts: Mapped[int] = mapped_column(default=0)
    next_collect_at: Mapped[datetime | None]
    collected_at: Mapped[datetime | None]
    # The score of this miner on this task, once scored, and when the miner was told it.
    score: Mapped[float | None] = mapped_column(Float)
    score_sent_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("task_id", "miner_hotkey", name="uq_assignments_task_miner"),
        Index("ix_assignments_collect", "collect_status", "next_collect_at"),
    )


class AssignmentCompletion(Base):
    __tablename__ = "assignment_completions"

    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.assignment_id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    # The id this miner saw; unique across the database, so a result names exactly one
    # (assignment, completion).
    miner_completion_id: Mapped[str] = mapped_column(String(64), unique=True)
    completion_id: Mapped[str] = mapped_column(String(64))


class MinerResult(Base):
    __tablename__ = "miner_results"

    result_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.assignment_id", ondelete="CASCADE"), index=True
    )
    # The miner's pseudonym for the worker (the validator never sees platform identities).
    worker_id: Mapped[str] = mapped_column(String(128))
    criteria_type: Mapped[str] = mapped_column(String(16))
    # Task completion id -> rank (1 = best) or score, in the task's ids (not the miner's).
    values: Mapped[dict[str, Any]]
    submitted_at: Mapped[datetime]
    # Why the worker ranked so, in its words, when it said (revision 0004).
    rationale: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("assignment_id", "worker_id", name="uq_miner_results_worker"),)


class Round(Base):
    __tablename__ = "rounds"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))  # "scoring", then "scored"
    scored_at: Mapped[datetime | None]
    n_tasks: Mapped[int] = mapped_column(default=0)
    n_miners: Mapped[int] = mapped_column(default=0)
    mean_task_agreement: Mapped[float | None] = mapped_column(Float)


class TaskScore(Base):
    __tablename__ = "task_scores"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id", ondelete="CASCADE"), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True)
    miner_hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    miner_uid: Mapped[int]
    answered: Mapped[bool]
    score: Mapped[float] = mapped_column(Float)
    agreement: Mapped[float] = mapped_column(Float)
    kappa: Mapped[float] = mapped_column(Float)
    rho_consensus: Mapped[float] = mapped_column(Float)
    rho_ground_truth: Mapped[float] = mapped_column(Float)
    distance: Mapped[float] = mapped_column(Float)
    # The miner's answer in the task's completion order: mean rank over its valid workers.
    answer: Mapped[list[Any] | None]
    n_workers: Mapped[int] = mapped_column(default=0)


class MinerScore(Base):
    __tablename__ = "miner_scores"

    miner_hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    miner_uid: Mapped[int]
    moving_score: Mapped[float] = mapped_column(Float)
    rounds: Mapped[int]
    latest_score: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime]


class WeightSet(Base):
    __tablename__ = "weight_sets"

    weight_set_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempted_at: Mapped[datetime]
    block: Mapped[int | None]
    uids: Mapped[list[Any]]
    weights: Mapped[list[Any]]  # u16, as sent
    hotkeys: Mapped[list[Any]]  # the hotkey of each uid when the weights were made
    version_key: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(16))  # "set", "rejected", "failed"
    detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=1)


class MinerReliability(Base):
    __tablename__ = "miner_reliability"

    miner_hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    miner_uid: Mapped[int]
    # Moving average of the miner's in-round reliability on synthetic tasks, in [0, 1].
    reliability: Mapped[float] = mapped_column(Float)
    rounds: Mapped[int]
    updated_at: Mapped[datetime]


class OrganicKey(Base):
    __tablename__ = "organic_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "key" (an API key) or "hotkey" (a signing caller)
    name: Mapped[str] = mapped_column(String(128))
    # sha256 of the API key (never the key itself); NULL for a hotkey caller.
    key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str | None] = mapped_column(String(32))
    hotkey: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Signs this caller's webhooks (Standard Webhooks, "whsec_..."); kept to sign with.
    webhook_secret: Mapped[str] = mapped_column(String(128))
    rate_per_minute: Mapped[int]
    daily_quota: Mapped[int]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class OrganicTask(Base):
    __tablename__ = "organic_tasks"

    # The id of the task row it becomes when sent (never shown to a miner).
    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("organic_keys.key_id"))
    external_id: Mapped[str | None] = mapped_column(String(128))
    # sha256 of the request as accepted: the same external id with another body is a conflict.
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    status_detail: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(8))
    callback_url: Mapped[str | None] = mapped_column(Text)
    deadline_seconds: Mapped[float] = mapped_column(Float)
    miners_wanted: Mapped[int]
    # What was asked: prompt, task_type, criteria, completions [{label, model, content}].
    request: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    # The caller's labels by the task's completion ids, once sent.
    labels: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    sent_at: Mapped[datetime | None]
    scored_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), deferred=True)

    __table_args__ = (
        UniqueConstraint("owner_id", "external_id", name="uq_organic_tasks_external"),
        Index("ix_organic_tasks_owner_created", "owner_id", "created_at"),
        Index("ix_organic_tasks_status_owner", "status", "owner_id", "created_at"),
    )


class OrganicDelivery(Base):
    __tablename__ = "organic_deliveries"

    # The webhook-id header: the same on every attempt.
    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("organic_tasks.task_id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    # The exact bytes sent (UTF-8 JSON), fixed when the result is, so every attempt is alike.
    body: Mapped[str] = mapped_column(Text, deferred=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_organic_deliveries_due", "status", "next_attempt_at"),)
