"""A miner's team, and what the team learns about its own work.

For the miner (:func:`team_view`): each worker under the pseudonym the miner knows them by
(the one the worker sees on its own pages too), with the tasks done and skipped, the
median time, the agreement with the rest of the team and the latest validator score of
the tasks they worked; the invite links, when each was used and by whom. A miner removes
a worker (:func:`remove_worker`), revokes an unused invite (:func:`revoke_invite`), and
tells its team how it pays (:func:`set_team_message`).

For a worker (:func:`answer_feedback`, :func:`worker_summary`): how each of its answers
agrees with the other workers' answers to the same task (:mod:`dojo.platform.services.agreement`)
and the score the validator gave the task, as the miner reported it.

Counts cover all time; the median time, the agreement and the scores cover the latest
:data:`WINDOW` tasks (a miner's, or those a worker answered), so a page costs the same
after a year as after a week.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dojo.platform.errors import Conflict, Invalid, NotFound
from dojo.platform.schemas import MAX_TEAM_MESSAGE
from dojo.platform.services.agreement import agreement_with_others, answer_row, answer_values, criterion
from dojo.platform.services.auth import worker_pseudonym_for_miner
from dojo.platform.storage.models import (
    HOLD,
    SKIPPED,
    Assignment,
    Invite,
    Miner,
    Result,
    Subscription,
    Task,
    Worker,
)
from template.clock import utcnow
from template.storage import record

WINDOW = 1000
INVITES_SHOWN = 100


# --- agreement and scores of answers --------------------------------------------------------


@dataclass(frozen=True)
class TaskFeedback:
    """One task's validator score (None until the miner reports one) and each worker's
    agreement with the others on it (None for a worker alone, or whose answer is partial)."""

    score: float | None
    scored_at: datetime | None
    agreement: dict[int, float | None] = field(default_factory=dict)  # worker id -> kappa


def task_feedback(db: Session, task_ids: Iterable[str]) -> dict[str, TaskFeedback]:
    """For each task, its score and its workers' agreement with one another: one query
    for the answers, one numpy call for every task.

    The task's completions are not read (they may be large): a complete answer names every
    one of them, so the widest answer of a task gives its completion ids, in an order all
    its answers share; a partial answer counts for nothing, as for the validator."""
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return {}
    tasks = {
        task_id: (criterion(criteria), score, scored_at)
        for task_id, criteria, score, scored_at in db.execute(
            select(Task.id, Task.criteria, Task.score, Task.scored_at).where(Task.id.in_(ids))
        )
    }
    given: dict[str, list[tuple[int, dict[str, dict[str, Any]]]]] = defaultdict(list)
    for task_id, worker_id, data in db.execute(
        select(Result.task_id, Result.worker_id, Result.result_data)
        .where(Result.task_id.in_(ids))
        .order_by(Result.task_id, Result.id)
    ):
        given[task_id].append((worker_id, answer_values(data)))
    order = [t for t in ids if t in tasks]
    rows: dict[str, list[tuple[int, list[float]]]] = {}
    for task_id in order:
        kind = tasks[task_id][0]
        widest: dict[str, Any] = max(
            (values.get(kind, {}) for _, values in given[task_id]), key=len, default={}
        )
        cids = sorted(widest)
        complete = ((w, answer_row(kind, values, cids)) for w, values in given[task_id])
        rows[task_id] = [(w, row) for w, row in complete if row is not None and cids]
    kappas = agreement_with_others([[row for _, row in rows[t]] for t in order])
    feedback = {}
    for task_id, per_answer in zip(order, kappas, strict=True):
        _kind, score, scored_at = tasks[task_id]
        workers = [worker_id for worker_id, _ in rows[task_id]]
        feedback[task_id] = TaskFeedback(score, scored_at, dict(zip(workers, per_answer, strict=True)))
    return feedback


def _mean(values: Iterable[float | None]) -> tuple[float | None, int]:
    known = [v for v in values if v is not None]
    return (sum(known) / len(known) if known else None), len(known)


@dataclass(frozen=True)
class AnswerFeedback:
    agreement: float | None
    score: float | None


def answer_feedback(db: Session, worker: Worker, task_ids: Iterable[str]) -> dict[str, AnswerFeedback]:
    """This worker's agreement with the others and the validator's score, per task."""
    return {
        task_id: AnswerFeedback(f.agreement.get(worker.id), f.score)
        for task_id, f in task_feedback(db, task_ids).items()
    }


@dataclass(frozen=True)
class WorkerSummary:
    """A worker's feedback over its latest :data:`WINDOW` answers."""

    agreement: float | None  # mean of its agreement with the others, over the tasks that have one
    agreement_tasks: int
    score: float | None  # mean validator score of the tasks it answered that were scored
    scored_tasks: int
    window: int = WINDOW


def worker_summary(db: Session, worker: Worker) -> WorkerSummary:
    latest = db.scalars(
        select(Result.task_id)
        .where(Result.worker_id == worker.id)
        .order_by(Result.updated_at.desc(), Result.id.desc())
        .limit(WINDOW)
    ).all()
    feedback = task_feedback(db, latest)
    agreement, agreed = _mean(f.agreement.get(worker.id) for f in feedback.values())
    score, scored = _mean(f.score for f in feedback.values())
    return WorkerSummary(agreement, agreed, score, scored)


# --- the miner's team -----------------------------------------------------------------------


@dataclass(frozen=True)
class TeamMember:
    worker: str  # the pseudonym, as in task results and on the worker's own pages
    member: bool  # on the team now (else: left or removed, with answers from before)
    by_invite: bool
    joined_at: datetime | None
    done: int
    skipped: int
    last_answer_at: datetime | None
    median_time: float | None  # seconds, over the window
    agreement: float | None  # mean agreement with the rest of the team, over the window
    agreement_tasks: int
    latest_score: float | None  # the latest validator score of a task they answered
    latest_score_at: datetime | None


@dataclass(frozen=True)
class InviteView:
    id: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    worker: str | None  # who joined with it (pseudonym)
    state: str  # "unused", "used", "expired", "revoked"


@dataclass(frozen=True)
class TeamView:
    hotkey: str
    message: str | None
    message_at: datetime | None
    members: list[TeamMember]
    invites: list[InviteView]
    window: int = WINDOW


def _invite_state(invite: Invite, now: datetime) -> str:
    if invite.used_at is not None:
        return "used"
    if invite.revoked_at is not None:
        return "revoked"
    return "expired" if invite.expires_at <= now else "unused"


def team_view(db: Session, miner: Miner) -> TeamView:
    """The miner's team: its members and the workers who answered its tasks before they
    left, busiest first; and its latest invites. A fixed number of queries."""
    subs = {
        worker_id: (created_at, key_id is None)
        for worker_id, created_at, key_id in db.execute(
            select(Subscription.worker_id, Subscription.created_at, Subscription.key_id).where(
                Subscription.miner_id == miner.id
            )
        )
    }
    done = {
        worker_id: (count, last)
        for worker_id, count, last in db.execute(
            select(Result.worker_id, func.count(), func.max(Result.updated_at))
            .join(Task, Task.id == Result.task_id)
            .where(Task.miner_id == miner.id)
            .group_by(Result.worker_id)
        )
    }
    skipped = dict(
        db.execute(
            select(Assignment.worker_id, func.count())
            .join(Task, Task.id == Assignment.task_id)
            .where(Task.miner_id == miner.id, Assignment.status == SKIPPED)
            .group_by(Assignment.worker_id)
        ).all()
    )
    window = db.scalars(
        select(Task.id).where(Task.miner_id == miner.id).order_by(Task.created_at.desc()).limit(WINDOW)
    ).all()
    feedback = task_feedback(db, window)
    times: dict[int, list[float]] = defaultdict(list)
    for worker_id, lead_time in db.execute(
        select(Result.worker_id, Result.lead_time).where(
            Result.task_id.in_(window), Result.lead_time.is_not(None)
        )
    ):
        if lead_time is not None:  # as the query says: the type of the column cannot
            times[worker_id].append(lead_time)
    agreement: dict[int, list[float | None]] = defaultdict(list)
    latest: dict[int, tuple[datetime, float]] = {}
    for f in feedback.values():
        for worker_id, kappa in f.agreement.items():
            agreement[worker_id].append(kappa)
            newer = f.scored_at is not None and (
                worker_id not in latest or latest[worker_id][0] < f.scored_at
            )
            if f.score is not None and f.scored_at is not None and newer:
                latest[worker_id] = (f.scored_at, f.score)
    ids = set(subs) | set(done) | set(skipped)
    public = (
        dict(db.execute(select(Worker.id, Worker.public_id).where(Worker.id.in_(ids))).all()) if ids else {}
    )
    members = []
    for worker_id in ids:
        mean, counted = _mean(agreement.get(worker_id, ()))
        scored = latest.get(worker_id)
        joined, by_invite = subs.get(worker_id, (None, False))
        count, last = done.get(worker_id, (0, None))
        members.append(
            TeamMember(
                worker=worker_pseudonym_for_miner(public[worker_id], miner.hotkey),
                member=worker_id in subs,
                by_invite=by_invite,
                joined_at=joined,
                done=count,
                skipped=skipped.get(worker_id, 0),
                last_answer_at=last,
                median_time=statistics.median(times[worker_id]) if times.get(worker_id) else None,
                agreement=mean,
                agreement_tasks=counted,
                latest_score=scored[1] if scored else None,
                latest_score_at=scored[0] if scored else None,
            )
        )
    members.sort(key=lambda m: (not m.member, -m.done, m.worker))
    now = utcnow()
    invites = []
    rows = db.execute(
        select(Invite, Worker.public_id)
        .outerjoin(Worker, Worker.id == Invite.worker_id)
        .where(Invite.miner_id == miner.id)
        .order_by(Invite.created_at.desc(), Invite.id.desc())
        .limit(INVITES_SHOWN)
    ).all()
    for invite, public_id in rows:
        invites.append(
            record(
                InviteView,
                invite,
                worker=worker_pseudonym_for_miner(public_id, miner.hotkey) if public_id else None,
                state=_invite_state(invite, now),
            )
        )
    return TeamView(miner.hotkey, miner.team_message, miner.team_message_at, members, invites)


def remove_worker(db: Session, miner: Miner, pseudonym: str) -> None:
    """Take the worker known to this miner as ``pseudonym`` off the team: its access ends
    at once and its live holds on the miner's tasks are let go (their places free up).
    Its answers stay: each is a ranking a person made. 404 for no such member."""
    members = db.execute(
        select(Subscription, Worker.public_id)
        .join(Worker, Worker.id == Subscription.worker_id)
        .where(Subscription.miner_id == miner.id)
    ).all()
    match = next(
        (
            sub
            for sub, public_id in members
            if worker_pseudonym_for_miner(public_id, miner.hotkey) == pseudonym
        ),
        None,
    )
    if match is None:
        raise NotFound(f"no worker {pseudonym!r} on your team")
    worker_id = match.worker_id
    db.delete(match)
    holds = (
        Assignment.worker_id == worker_id,
        Assignment.status == HOLD,
        Assignment.task_id.in_(select(Task.id).where(Task.miner_id == miner.id)),
    )
    # Letting a hold go locks its task (on PostgreSQL, revision 0009's trigger), in the order
    # the holds are found; two removals at once could each hold a task the other waits for.
    # Take those tasks' locks first, in one order for everyone: by id.
    db.execute(
        select(Task.id)
        .where(Task.id.in_(select(Assignment.task_id).where(*holds)))
        .order_by(Task.id)
        .with_for_update(key_share=True)
    )
    db.execute(delete(Assignment).where(*holds))


def revoke_invite(db: Session, miner: Miner, invite_id: int) -> Invite:
    """Take back an invite nobody used: the link stops working at once. 404 not yours,
    409 already used (remove the worker instead)."""
    invite = db.scalar(select(Invite).where(Invite.id == invite_id, Invite.miner_id == miner.id))
    if invite is None:
        raise NotFound(f"no invite with id {invite_id} among yours")
    if invite.used_at is not None:
        raise Conflict("this invite was already used; to take the worker off your team, remove them instead")
    if invite.revoked_at is None:
        db.execute(update(Invite).where(Invite.id == invite.id).values(revoked_at=utcnow()))
        db.refresh(invite)
    return invite


def set_team_message(db: Session, miner: Miner, message: str) -> Miner:
    """What the miner tells its team (how and what it pays, where to ask); blank clears it."""
    text = message.strip()
    if len(text) > MAX_TEAM_MESSAGE:
        raise Invalid(f"the message may hold at most {MAX_TEAM_MESSAGE} characters; it holds {len(text)}")
    row = db.get(Miner, miner.id)
    assert row is not None
    row.team_message = text or None
    row.team_message_at = utcnow() if text else None
    db.flush()
    return row


@dataclass(frozen=True)
class TeamNote:
    """A team's message, as the worker sees it beside its teams and tasks."""

    miner_hotkey: str
    team: str  # the worker's name for the subscription
    message: str
    updated_at: datetime | None


def team_notes(db: Session, worker: Worker) -> list[TeamNote]:
    """The messages of the miners whose teams the worker is on."""
    rows = db.execute(
        select(Miner.hotkey, Subscription.name, Miner.team_message, Miner.team_message_at)
        .join(Subscription, Subscription.miner_id == Miner.id)
        .where(Subscription.worker_id == worker.id, Miner.team_message.is_not(None))
        .order_by(Subscription.id)
    )
    return [TeamNote(hotkey, name, message, at) for hotkey, name, message, at in rows if message is not None]
