"""The organic API's part of the validator's database: its callers, their tasks, the results
they get, and the webhooks to deliver. Every method is one transaction and blocks (callers
in async code use a thread). A method that only reads begins a deferred transaction, which on
SQLite neither takes nor waits for the write lock: the API's key lookups and quota counts go on
while a group commit or the validator's own writers hold it.

A task is accepted by :meth:`OrganicStore.accept` (on disk before the API answers 202),
claimed for the fan-out by :func:`claim_organic` inside the transaction that writes its task
row (so it is sent at most once), scored by :func:`record_organic_results` inside the
transaction that commits its round (so its result and its webhook are written together), and
its webhook delivered by the rows :meth:`OrganicStore.due_deliveries` hands out.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Table, TextualSelect, and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from commons.organic import TaskView, WebhookEvent, event_type, new_webhook_secret
from dojo.validator.models import (
    DeliveryStatus,
    OrganicDelivery,
    OrganicKey,
    OrganicStatus,
    OrganicTask,
    Task,
    TaskStatus,
)
from template.storage import READ_ONLY

API_KEY_PREFIX = "dojo_org_"
MAX_PAGE = 200


def hash_key(api_key: str) -> str:
    """How an API key is kept: its sha256 (the key is 256 random bits; no slow hash needed)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Owner:
    """An authenticated caller: an API key's row, or a hotkey's."""

    key_id: str
    kind: str
    name: str
    rate_per_minute: int
    daily_quota: int
    revoked: bool


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    name: str
    api_key: str  # shown once
    webhook_secret: str  # shown once
    rate_per_minute: int
    daily_quota: int


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    kind: str
    name: str
    shown_as: str  # the key's first characters, or the hotkey
    rate_per_minute: int
    daily_quota: int
    created_at: datetime
    revoked_at: datetime | None
    tasks: int


@dataclass(frozen=True)
class NewOrganic:
    task_id: str
    owner_id: str
    external_id: str | None
    request_hash: str
    created_at: datetime
    visibility: str
    callback_url: str | None
    deadline_seconds: float
    miners_wanted: int
    request: dict[str, Any]


@dataclass(frozen=True)
class Accepted:
    """What :meth:`OrganicStore.accept` made of one request."""

    task_id: str
    created_at: datetime
    status: str
    duplicate: bool = False  # an earlier request with the same external id made it
    conflict: bool = False  # the external id names a task made from another body


@dataclass(frozen=True)
class QueuedOrganic:
    task_id: str
    owner_id: str
    created_at: datetime
    deadline_seconds: float
    miners_wanted: int
    request: dict[str, Any]


@dataclass(frozen=True)
class DueDelivery:
    delivery_id: str
    task_id: str
    url: str
    body: str
    attempts: int
    created_at: datetime
    secret: str


@functools.lru_cache(maxsize=256)
def _known_ids(n: int) -> TextualSelect:
    """The tasks that ``n`` (owner, external id) pairs (``:o0, :e0, ...``) name, in one read:
    the pairs are a table of constants joined to the tasks, so each is one lookup in the
    (owner_id, external_id) unique index. A statement built from SQLAlchemy's expressions
    (an OR of one condition per caller) cost about 0.5 ms of the commit thread's CPU per
    caller to build, and a query per caller as much to run: most of the group commit's time."""
    rows = ", ".join(f"(:o{i}, :e{i})" for i in range(n))
    return text(
        f"WITH wanted (owner_id, external_id) AS (VALUES {rows}) "
        "SELECT t.owner_id, t.external_id, t.task_id, t.request_hash, t.created_at, t.status "
        "FROM organic_tasks AS t JOIN wanted "
        "ON t.owner_id = wanted.owner_id AND t.external_id = wanted.external_id"
    ).columns(
        OrganicTask.owner_id,
        OrganicTask.external_id,
        OrganicTask.task_id,
        OrganicTask.request_hash,
        OrganicTask.created_at,
        OrganicTask.status,
    )


class OrganicStore:
    """The organic tables of the validator's database behind ``engine`` (already migrated by
    :class:`dojo.validator.store.TaskStore`)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Reads begin a deferred transaction on SQLite: they read a snapshot of the log and
        # never take, nor wait for, the write lock. A key lookup that began IMMEDIATE queued
        # behind every group commit (and they behind it), the API's main tail under load.
        self._reads = sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    # -- callers ---------------------------------------------------------------------------

    def create_key(self, name: str, rate_per_minute: int, daily_quota: int, now: datetime) -> CreatedKey:
        api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        created = CreatedKey(
            key_id="ok_" + secrets.token_hex(6),
            name=name,
            api_key=api_key,
            webhook_secret=new_webhook_secret(),
            rate_per_minute=rate_per_minute,
            daily_quota=daily_quota,
        )
        with self._sessions.begin() as db:
            db.add(
                OrganicKey(
                    key_id=created.key_id,
                    kind="key",
                    name=name,
                    key_hash=hash_key(api_key),
                    key_prefix=api_key[: len(API_KEY_PREFIX) + 6],
                    hotkey=None,
                    webhook_secret=created.webhook_secret,
                    rate_per_minute=rate_per_minute,
                    daily_quota=daily_quota,
                    created_at=now,
                    revoked_at=None,
                )
            )
        return created

    def list_keys(self) -> list[KeyInfo]:
        with self._reads.begin() as db:
            counts = dict(
                db.execute(select(OrganicTask.owner_id, func.count()).group_by(OrganicTask.owner_id)).all()
            )
            return [
                KeyInfo(
                    k.key_id,
                    k.kind,
                    k.name,
                    k.key_prefix or k.hotkey or "",
                    k.rate_per_minute,
                    k.daily_quota,
                    k.created_at,
                    k.revoked_at,
                    int(counts.get(k.key_id, 0)),
                )
                for k in db.scalars(select(OrganicKey).order_by(OrganicKey.created_at))
            ]

    def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke the key ``key_id`` (or the one its shown prefix names); False when none is live."""
        with self._sessions.begin() as db:
            result = db.execute(
                update(OrganicKey)
                .where(
                    or_(OrganicKey.key_id == key_id, OrganicKey.key_prefix == key_id),
                    OrganicKey.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def owner_by_key(self, api_key: str) -> Owner | None:
        with self._reads.begin() as db:
            row = db.scalars(select(OrganicKey).where(OrganicKey.key_hash == hash_key(api_key))).first()
            return None if row is None else _owner(row)

    def hotkey_owner(self, hotkey: str, rate_per_minute: int, daily_quota: int, now: datetime) -> Owner:
        """The caller row of a hotkey, made on its first accepted request with the hotkey
        lane's limits (an operator may change them in the table)."""
        for _ in range(2):
            with self._reads.begin() as db:
                row = db.scalars(select(OrganicKey).where(OrganicKey.hotkey == hotkey)).first()
                if row is not None:
                    return _owner(row)
            try:
                with self._sessions.begin() as db:
                    row = OrganicKey(
                        key_id="oh_" + secrets.token_hex(6),
                        kind="hotkey",
                        name=hotkey[:16],
                        key_hash=None,
                        key_prefix=None,
                        hotkey=hotkey,
                        webhook_secret=new_webhook_secret(),
                        rate_per_minute=rate_per_minute,
                        daily_quota=daily_quota,
                        created_at=now,
                        revoked_at=None,
                    )
                    db.add(row)
                return _owner(row)
            except IntegrityError:  # made at the same moment by a concurrent request
                continue
        raise RuntimeError(f"cannot make the caller row of hotkey {hotkey}")

    def webhook_secret(self, owner_id: str) -> str | None:
        with self._reads.begin() as db:
            return db.scalar(select(OrganicKey.webhook_secret).where(OrganicKey.key_id == owner_id))

    def count_since(self, owner_id: str, since: datetime) -> int:
        with self._reads.begin() as db:
            return int(
                db.scalar(
                    select(func.count())
                    .select_from(OrganicTask)
                    .where(OrganicTask.owner_id == owner_id, OrganicTask.created_at >= since)
                )
                or 0
            )

    # -- accepting -----------------------------------------------------------------------

    def accept(self, batch: Sequence[NewOrganic]) -> list[Accepted]:
        """Write a batch of accepted requests in one transaction (one commit on disk for many
        callers). A request whose external id is known answers with that task (``duplicate``)
        when its body is the same, and with ``conflict`` when it is not."""
        out: list[Accepted] = []
        with self._sessions.begin() as db:
            wanted = list(
                dict.fromkeys((n.owner_id, n.external_id) for n in batch if n.external_id is not None)
            )
            known: dict[tuple[str, str], tuple[str, str, datetime, str]] = {}
            if wanted:
                params = {
                    f"{side}{i}": v
                    for i, pair in enumerate(wanted)
                    for side, v in zip("oe", pair, strict=True)
                }
                for owner_id, external_id, task_id, request_hash, created_at, status in db.execute(
                    _known_ids(len(wanted)), params
                ):
                    known[(owner_id, external_id)] = (task_id, request_hash, created_at, status)
            rows = []
            for n in batch:
                key = (n.owner_id, n.external_id) if n.external_id is not None else None
                if key is not None and key in known:
                    task_id, request_hash, created_at, status = known[key]
                    same = request_hash == n.request_hash
                    out.append(Accepted(task_id, created_at, status, duplicate=same, conflict=not same))
                    continue
                if key is not None:
                    known[key] = (n.task_id, n.request_hash, n.created_at, OrganicStatus.QUEUED)
                rows.append(
                    {
                        "task_id": n.task_id,
                        "owner_id": n.owner_id,
                        "external_id": n.external_id,
                        "request_hash": n.request_hash,
                        "created_at": n.created_at,
                        "status": OrganicStatus.QUEUED,
                        "status_detail": None,
                        "visibility": n.visibility,
                        "callback_url": n.callback_url,
                        "deadline_seconds": n.deadline_seconds,
                        "miners_wanted": n.miners_wanted,
                        "request": n.request,
                        "labels": None,
                        "sent_at": None,
                        "scored_at": None,
                        "result": None,
                    }
                )
                out.append(Accepted(n.task_id, n.created_at, OrganicStatus.QUEUED))
            if rows:
                # A mapped class's __table__ is its Table; SQLAlchemy types it as any FromClause.
                db.execute(cast(Table, OrganicTask.__table__).insert(), rows)
        return out

    # -- reading, for the caller -------------------------------------------------------------

    def view(self, owner_id: str, task_id: str, now: datetime, *, raw: bool = False) -> TaskView | None:
        with self._reads.begin() as db:
            row = db.execute(
                _view_query().where(OrganicTask.task_id == task_id, OrganicTask.owner_id == owner_id)
            ).first()
            if row is None:
                return None
            delivery = db.scalars(
                select(OrganicDelivery)
                .where(OrganicDelivery.task_id == task_id)
                .order_by(OrganicDelivery.created_at.desc())
                .limit(1)
            ).first()
            return _view(row, now, raw=raw, delivery=delivery)

    def page(
        self,
        owner_id: str,
        now: datetime,
        *,
        status: str | None,
        since: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[TaskView], str | None]:
        """The caller's tasks, newest first, ``limit`` at a time after ``cursor``."""
        query = _view_query().where(OrganicTask.owner_id == owner_id)
        if status is not None:
            query = query.where(_status_condition(status, now))
        if since is not None:
            query = query.where(OrganicTask.created_at >= since)
        if cursor is not None:
            created_at, task_id = _read_cursor(cursor)
            query = query.where(
                or_(
                    OrganicTask.created_at < created_at,
                    and_(OrganicTask.created_at == created_at, OrganicTask.task_id < task_id),
                )
            )
        limit = max(1, min(limit, MAX_PAGE))
        with self._reads.begin() as db:
            rows = db.execute(
                query.order_by(OrganicTask.created_at.desc(), OrganicTask.task_id.desc()).limit(limit + 1)
            ).all()
        views = [_view(r, now) for r in rows[:limit]]
        more = len(rows) > limit
        return views, (_cursor(rows[limit - 1].created_at, rows[limit - 1].task_id) if more else None)

    # -- the fan-out ---------------------------------------------------------------------

    def next_queued(self, n: int, after_owner: str | None = None) -> list[QueuedOrganic]:
        """Up to ``n`` queued tasks, served fairly across callers: round robin over the callers
        with tasks queued (starting after ``after_owner``), each caller's oldest first."""
        if n <= 0:
            return []
        with self._reads.begin() as db:
            owners = list(
                db.scalars(
                    select(OrganicTask.owner_id)
                    .where(OrganicTask.status == OrganicStatus.QUEUED)
                    .group_by(OrganicTask.owner_id)
                    .order_by(OrganicTask.owner_id)
                )
            )
            if not owners:
                return []
            if after_owner is not None:
                later = [o for o in owners if o > after_owner]
                owners = later + [o for o in owners if o <= after_owner]
            owners = owners[:n]
            per_owner: dict[str, list[QueuedOrganic]] = {}
            for owner_id in owners:
                per_owner[owner_id] = [
                    QueuedOrganic(
                        r.task_id, r.owner_id, r.created_at, r.deadline_seconds, r.miners_wanted, r.request
                    )
                    for r in db.scalars(
                        select(OrganicTask)
                        .where(OrganicTask.status == OrganicStatus.QUEUED, OrganicTask.owner_id == owner_id)
                        .order_by(OrganicTask.created_at, OrganicTask.task_id)
                        .limit(n)
                    )
                ]
        picked: list[QueuedOrganic] = []
        while len(picked) < n and any(per_owner.values()):
            for owner_id in owners:
                if per_owner[owner_id] and len(picked) < n:
                    picked.append(per_owner[owner_id].pop(0))
        return picked

    def recent_shapes(self, limit: int = 256) -> list[tuple[float, list[Any], int]]:
        """(deadline, criteria, completions) of the latest organic tasks, newest first."""
        with self._reads.begin() as db:
            rows = db.execute(
                select(OrganicTask.deadline_seconds, OrganicTask.request)
                .order_by(OrganicTask.created_at.desc())
                .limit(limit)
            ).all()
        return [(float(d), list(r["criteria"]), len(r["completions"])) for d, r in rows]

    def settle(self, now: datetime, queue_timeout: float) -> int:
        """Queued tasks that waited past ``queue_timeout`` expire; sent tasks whose task the
        validator could not send in time fail. Each gets its webhook. Returns how many."""
        with self._sessions.begin() as db:
            expired = db.scalars(
                select(OrganicTask).where(
                    OrganicTask.status == OrganicStatus.QUEUED,
                    OrganicTask.created_at < now - timedelta(seconds=queue_timeout),
                )
            ).all()
            for row in expired:
                _finish(
                    db,
                    row,
                    OrganicStatus.EXPIRED,
                    f"no miner could take it within {queue_timeout:g}s",
                    None,
                    now,
                )
            unsent = db.scalars(
                select(OrganicTask)
                .join(Task, Task.task_id == OrganicTask.task_id)
                .where(OrganicTask.status == OrganicStatus.SENT, Task.status == TaskStatus.UNSENT)
            ).all()
            for row in unsent:
                _finish(
                    db,
                    row,
                    OrganicStatus.FAILED,
                    "the validator could not send it before its deadline",
                    None,
                    now,
                )
            return len(expired) + len(unsent)

    def counts(self) -> dict[str, int]:
        """Organic tasks by state, and webhooks delivered / pending / failed."""
        with self._reads.begin() as db:
            by_status = dict(
                db.execute(select(OrganicTask.status, func.count()).group_by(OrganicTask.status)).all()
            )
            collected = (
                db.scalar(
                    select(func.count())
                    .select_from(OrganicTask)
                    .join(Task, Task.task_id == OrganicTask.task_id)
                    .where(
                        OrganicTask.status == OrganicStatus.SENT,
                        Task.status.in_([TaskStatus.COLLECTED, TaskStatus.SCORING]),
                    )
                )
                or 0
            )
            deliveries = dict(
                db.execute(
                    select(OrganicDelivery.status, func.count()).group_by(OrganicDelivery.status)
                ).all()
            )
        return {
            "total": int(sum(by_status.values())),
            "queued": int(by_status.get(OrganicStatus.QUEUED, 0)),
            "sent": int(by_status.get(OrganicStatus.SENT, 0)),
            "collected": int(collected),
            "scored": int(by_status.get(OrganicStatus.SCORED, 0)),
            "expired": int(by_status.get(OrganicStatus.EXPIRED, 0)),
            "failed": int(by_status.get(OrganicStatus.FAILED, 0)),
            "delivered": int(deliveries.get(DeliveryStatus.DELIVERED, 0)),
            "delivery_pending": int(deliveries.get(DeliveryStatus.PENDING, 0)),
            "delivery_failed": int(deliveries.get(DeliveryStatus.FAILED, 0)),
        }

    # -- webhooks ------------------------------------------------------------------------

    def due_deliveries(self, now: datetime, limit: int = 64) -> list[DueDelivery]:
        with self._reads.begin() as db:
            rows = db.execute(
                select(
                    OrganicDelivery.delivery_id,
                    OrganicDelivery.task_id,
                    OrganicDelivery.url,
                    OrganicDelivery.body,
                    OrganicDelivery.attempts,
                    OrganicDelivery.created_at,
                    OrganicKey.webhook_secret,
                )
                .join(OrganicTask, OrganicTask.task_id == OrganicDelivery.task_id)
                .join(OrganicKey, OrganicKey.key_id == OrganicTask.owner_id)
                .where(
                    OrganicDelivery.status == DeliveryStatus.PENDING, OrganicDelivery.next_attempt_at <= now
                )
                .order_by(OrganicDelivery.next_attempt_at)
                .limit(limit)
            ).all()
        return [DueDelivery(*row) for row in rows]

    def record_attempt(
        self,
        delivery_id: str,
        now: datetime,
        *,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        next_at: datetime | None,
    ) -> None:
        """One attempt's outcome: delivered, another try at ``next_at``, or (neither) failed for good."""
        with self._sessions.begin() as db:
            row = db.get(OrganicDelivery, delivery_id)
            if row is None or row.status != DeliveryStatus.PENDING:
                return
            row.attempts += 1
            row.last_status_code = status_code
            row.last_error = None if error is None else error[:2000]
            if delivered:
                row.status, row.delivered_at, row.next_attempt_at = DeliveryStatus.DELIVERED, now, None
            elif next_at is None:
                row.status, row.next_attempt_at = DeliveryStatus.FAILED, None
            else:
                row.next_attempt_at = next_at


# --- inside the task store's transactions --------------------------------------------------


class AlreadyClaimed(RuntimeError):
    """The organic task is no longer queued: it was sent already (or expired)."""


def claim_organic(db: Session, task_id: str, labels: Mapping[str, str], now: datetime) -> None:
    """Mark a queued organic task sent, in the transaction that writes its task row."""
    result = db.execute(
        update(OrganicTask)
        .where(OrganicTask.task_id == task_id, OrganicTask.status == OrganicStatus.QUEUED)
        .values(status=OrganicStatus.SENT, labels=dict(labels), sent_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise AlreadyClaimed(f"organic task {task_id} is not queued")


def record_organic_results(db: Session, results: Mapping[str, dict[str, Any] | None], now: datetime) -> None:
    """Store each scored organic task's result in its caller's ids (or fail it when no miner
    answered), and its webhook, in the transaction that commits the round."""
    for task_id, result in results.items():
        row = db.get(OrganicTask, task_id)
        if row is None or row.status != OrganicStatus.SENT:
            continue
        if result is None:
            _finish(
                db,
                row,
                OrganicStatus.FAILED,
                "no miner returned a valid answer before the deadline",
                None,
                now,
            )
        else:
            _finish(db, row, OrganicStatus.SCORED, None, _in_labels(result, row.labels or {}), now)


def _in_labels(result: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    def label(cid: str) -> str:
        return str(labels.get(cid, cid))

    out = dict(result)
    out["ranking"] = [label(c) for c in result["ranking"]]
    out["completions"] = [{**c, "id": label(c["id"])} for c in result["completions"]]
    out["raw"] = [
        {"worker": w["worker"], "values": {label(c): v for c, v in w["values"].items()}}
        for w in result.get("raw") or []
    ]
    return out


def _finish(
    db: Session,
    row: OrganicTask,
    status: str,
    detail: str | None,
    result: dict[str, Any] | None,
    now: datetime,
) -> None:
    row.status, row.status_detail, row.scored_at = status, detail, now
    if result is not None:
        row.result = result
    if row.callback_url:
        delivery_id = "msg_" + uuid.uuid4().hex
        data = _build_view(
            row.task_id,
            row.external_id,
            status,
            detail,
            row.visibility,
            row.created_at,
            row.sent_at,
            now,
            row.deadline_seconds,
            result,
            raw=False,
            delivery=None,
        )
        body = WebhookEvent(type=event_type(status), timestamp=now, data=data).model_dump_json()
        db.add(
            OrganicDelivery(
                delivery_id=delivery_id,
                task_id=row.task_id,
                url=row.callback_url,
                body=body,
                status=DeliveryStatus.PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )


# --- views ----------------------------------------------------------------------------------


def _owner(row: OrganicKey) -> Owner:
    return Owner(
        row.key_id, row.kind, row.name, row.rate_per_minute, row.daily_quota, row.revoked_at is not None
    )


def _view_query() -> Any:
    return select(
        OrganicTask.task_id,
        OrganicTask.external_id,
        OrganicTask.status,
        OrganicTask.status_detail,
        OrganicTask.visibility,
        OrganicTask.created_at,
        OrganicTask.sent_at,
        OrganicTask.scored_at,
        OrganicTask.deadline_seconds,
        OrganicTask.result,
        Task.status.label("task_status"),
        Task.expire_at.label("expire_at"),
    ).outerjoin(Task, Task.task_id == OrganicTask.task_id)


def _status_condition(status: str, now: datetime) -> Any:
    in_flight = or_(
        Task.status == TaskStatus.SENDING, and_(Task.status == TaskStatus.WAITING, Task.expire_at > now)
    )
    if status == "sent":
        return and_(OrganicTask.status == OrganicStatus.SENT, in_flight)
    if status == "collecting":
        return and_(OrganicTask.status == OrganicStatus.SENT, ~in_flight)
    return OrganicTask.status == status


def _shown_status(
    organic_status: str, task_status: str | None, expire_at: datetime | None, now: datetime
) -> str:
    if organic_status != OrganicStatus.SENT:
        return organic_status
    if task_status == TaskStatus.SENDING or (
        task_status == TaskStatus.WAITING and expire_at and expire_at > now
    ):
        return "sent"
    return "collecting"


def _view(row: Any, now: datetime, *, raw: bool = False, delivery: OrganicDelivery | None = None) -> TaskView:
    status = _shown_status(row.status, row.task_status, row.expire_at, now)
    return _build_view(
        row.task_id,
        row.external_id,
        status,
        row.status_detail,
        row.visibility,
        row.created_at,
        row.sent_at,
        row.scored_at,
        row.deadline_seconds,
        row.result,
        raw=raw,
        delivery=delivery,
    )


def _build_view(
    task_id: str,
    external_id: str | None,
    status: str,
    detail: str | None,
    visibility: str,
    created_at: datetime,
    sent_at: datetime | None,
    scored_at: datetime | None,
    deadline: float,
    result: dict[str, Any] | None,
    *,
    raw: bool,
    delivery: OrganicDelivery | None,
) -> TaskView:
    shown = None
    if result is not None:
        shown = dict(result)
        if not raw:
            shown["raw"] = None
    return TaskView.model_validate(
        {
            "task_id": task_id,
            "external_id": external_id,
            "status": status,
            "status_detail": detail,
            "visibility": visibility,
            "created_at": created_at,
            "sent_at": sent_at,
            "scored_at": scored_at if status in ("scored", "expired", "failed") else None,
            "deadline": deadline,
            "result": shown,
            "delivery": None
            if delivery is None
            else {
                "webhook_id": delivery.delivery_id,
                "state": delivery.status,
                "attempts": delivery.attempts,
                "last_status_code": delivery.last_status_code,
                "last_error": delivery.last_error,
                "delivered_at": delivery.delivered_at,
                "next_attempt_at": delivery.next_attempt_at
                if delivery.status == DeliveryStatus.PENDING
                else None,
            },
        }
    )


def _cursor(created_at: datetime, task_id: str) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), task_id]).encode()).decode().rstrip("=")
    )


class BadCursor(ValueError):
    """A cursor this API did not hand out."""


def _read_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, task_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created_at), str(task_id)
    except (ValueError, TypeError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this API gave") from exc
