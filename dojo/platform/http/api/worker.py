"""Worker log-in (wallet or invite link), subscriptions, and the queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from commons.dojo_wire import ChallengeOut, iso
from commons.platform_contract import WORKER_COOKIE
from dojo.platform.http.deps import (
    LOGIN_RATE_LIMIT,
    BearerCredentials,
    CurrentWorker,
    DatabaseDep,
    RowId,
    SettingsDep,
    run_db,
    session_token,
    set_session_cookie,
)
from dojo.platform.schemas import (
    DB_INT_MAX,
    DraftIn,
    DraftOut,
    FlagIn,
    FlagOut,
    HistoryItem,
    HistoryOut,
    HoldOut,
    RecoverIn,
    RecoveryCodeOut,
    SkipOut,
    SubmitResultIn,
    SubmitResultOut,
    SubscriptionIn,
    SubscriptionListOut,
    SubscriptionOut,
    WorkerChallengeIn,
    WorkerLoginIn,
    WorkerMeOut,
    WorkerSessionOut,
    WorkerTaskListOut,
    WorkerTaskOut,
    wire,
    wired,
)
from dojo.platform.schemas import WorkerTaskSummary as WorkerTaskSummaryOut
from dojo.platform.services import auth, drafts, queue, subscriptions
from dojo.platform.services.subscriptions import SubscriptionView, WorkerTaskView
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import Worker
from dojo.platform.storage.rawsql import RawDb

T = TypeVar("T")
router = APIRouter(prefix="/api/v1/worker", tags=["worker"])


def set_worker_cookie(response: Response, settings: PlatformSettings, token: str) -> None:
    set_session_cookie(response, settings, WORKER_COOKIE, token, settings.worker_session_ttl_seconds)


@router.post("/challenge", response_model=ChallengeOut, dependencies=[LOGIN_RATE_LIMIT])
def worker_challenge(
    body: WorkerChallengeIn,
    database: DatabaseDep,
    settings: SettingsDep,
) -> ChallengeOut:
    with database.session() as db:
        challenge = auth.worker_challenge(db, settings, body.address)
    return wired(challenge, ChallengeOut)


@router.post("/login", response_model=WorkerSessionOut, dependencies=[LOGIN_RATE_LIMIT])
def worker_login(
    body: WorkerLoginIn,
    response: Response,
    database: DatabaseDep,
    settings: SettingsDep,
) -> WorkerSessionOut:
    with database.session() as db:
        worker, opened = auth.open_worker_session(db, settings, body.address, body.signature, body.nonce)
    set_worker_cookie(response, settings, opened.token)
    return WorkerSessionOut(token=opened.token, expires_at=iso(opened.expires_at), worker_id=worker.public_id)


@router.post("/recover", response_model=WorkerSessionOut, dependencies=[LOGIN_RATE_LIMIT])
def worker_recover(
    body: RecoverIn,
    response: Response,
    database: DatabaseDep,
    settings: SettingsDep,
) -> WorkerSessionOut:
    """Log back in to the same worker with the recovery code shown when it joined by invite."""
    with database.session() as db:
        worker, opened = auth.recover_worker_session(db, settings, body.code)
    set_worker_cookie(response, settings, opened.token)
    return WorkerSessionOut(token=opened.token, expires_at=iso(opened.expires_at), worker_id=worker.public_id)


@router.post("/recovery-code", response_model=RecoveryCodeOut, status_code=201)
def new_recovery_code(worker: CurrentWorker, database: DatabaseDep) -> RecoveryCodeOut:
    """A new recovery code for this worker, shown only here; the earlier one stops working."""
    with database.session() as db:
        current = db.merge(worker, load=True)
        code = auth.new_recovery_code(db, current)
    return RecoveryCodeOut(code=code)


@router.post("/logout", status_code=204)
def worker_logout(
    request: Request,
    response: Response,
    _worker: CurrentWorker,
    bearer: BearerCredentials,
    database: DatabaseDep,
) -> None:
    token = session_token(request, bearer, WORKER_COOKIE)[0] or ""
    with database.session() as db:
        auth.end_worker_session(db, token)
    request.app.state.worker_sessions.evict(token)
    response.delete_cookie(WORKER_COOKIE)


@router.get("/me", response_model=WorkerMeOut)
def worker_me(worker: CurrentWorker, database: DatabaseDep) -> WorkerMeOut:
    with database.read_session() as db:
        progress = queue.worker_progress(db, worker)
        has_code = db.scalar(select(Worker.recovery_hash).where(Worker.id == worker.id)) is not None
    # The progress's counts as they are, its seconds to the millisecond.
    figures = {name: round(v, 3) if isinstance(v, float) else v for name, v in asdict(progress).items()}
    return WorkerMeOut.model_validate(
        {"worker_id": worker.public_id, "address": worker.address, "has_recovery_code": has_code, **figures}
    )


@router.get("/history", response_model=HistoryOut)
def worker_history(
    worker: CurrentWorker,
    database: DatabaseDep,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=DB_INT_MAX),
) -> HistoryOut:
    """This worker's own submissions, newest first."""
    with database.read_session() as db:
        entries, total = subscriptions.history(db, worker, limit=limit, offset=offset)
    return HistoryOut(results=[wired(e, HistoryItem) for e in entries], total=total)


def _subscription_out(view: SubscriptionView) -> SubscriptionOut:
    return wired(view, SubscriptionOut)


@router.get("/subscriptions", response_model=SubscriptionListOut)
def list_subscriptions(worker: CurrentWorker, database: DatabaseDep) -> SubscriptionListOut:
    with database.read_session() as db:
        views = subscriptions.list_subscriptions(db, worker)
    return SubscriptionListOut(subscriptions=[_subscription_out(v) for v in views])


@router.post("/subscriptions", response_model=SubscriptionOut, status_code=201)
def add_subscription(body: SubscriptionIn, worker: CurrentWorker, database: DatabaseDep) -> SubscriptionOut:
    with database.session() as db:
        view = subscriptions.add_subscription(db, worker, body.name, body.key)
    return _subscription_out(view)


@router.delete("/subscriptions/{subscription_id}", status_code=204)
def remove_subscription(worker: CurrentWorker, database: DatabaseDep, subscription_id: RowId) -> None:
    with database.session() as db:
        subscriptions.remove_subscription(db, worker, subscription_id)


@router.get("/tasks", response_model=WorkerTaskListOut)
def list_tasks(
    worker: CurrentWorker,
    database: DatabaseDep,
    include_closed: bool = False,
) -> WorkerTaskListOut:
    with database.read_session() as db:
        rows = subscriptions.worker_tasks(db, worker, include_closed=include_closed)
    return WorkerTaskListOut.model_validate({"tasks": [wire(t, WorkerTaskSummaryOut) for t in rows]})


def task_json(view: WorkerTaskView) -> dict[str, Any]:
    """The wire form of :class:`WorkerTaskOut`, built directly, without a second validation
    of what the queue read (the queue's hot path sends it as it is)."""
    return wire(view, WorkerTaskOut)


async def _queue_write(request: Request, database: Database, work: Callable[[RawDb], T]) -> T:
    """Queue work in one write transaction on the database threads (``run_db``)."""

    # One write transaction for both halves of a claim. On PostgreSQL the look takes no
    # locks; on SQLite this process runs its queue work on one thread (deps.run_db), so
    # holding the write lock through the look costs no concurrency and saves a transaction.
    def write() -> T:
        with database.raw_write() as db:
            return work(db)

    return await run_db(request, write)


def submitted_json(done: queue.Submitted) -> dict[str, Any]:
    """The wire form of :class:`SubmitResultOut`, built directly (the queue's hot path)."""
    return {
        "taskId": done.task_id,
        "status": "done",
        "replaced": done.replaced,
        "updatedAt": iso(done.updated_at),
    }


@router.post(
    "/tasks/next",
    response_model=WorkerTaskOut,
    responses={204: {"description": "no task is available for you now"}},
)
async def next_task(
    request: Request,
    worker: CurrentWorker,
    database: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    view = await _queue_write(request, database, lambda db: queue.next_task(db, settings, worker))
    if view is None:
        return Response(status_code=204)
    return JSONResponse(task_json(view))


@router.get("/tasks/{task_id}", response_model=WorkerTaskOut)
def get_task(task_id: str, worker: CurrentWorker, database: DatabaseDep) -> WorkerTaskOut:
    with database.read_session() as db:
        return WorkerTaskOut.model_validate(task_json(subscriptions.worker_task(db, worker, task_id)))


@router.post("/tasks/{task_id}/result", response_model=SubmitResultOut)
async def submit_result(
    request: Request,
    task_id: str,
    body: SubmitResultIn,
    worker: CurrentWorker,
    database: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    data = [item.model_dump() for item in body.result_data]
    done = await _queue_write(
        request,
        database,
        lambda db: queue.submit_result(
            db, settings, worker, task_id, data, lead_time=body.lead_time, rationale=body.rationale
        ),
    )
    return JSONResponse(submitted_json(done))


@router.post("/tasks/{task_id}/hold", response_model=HoldOut)
async def hold_task(
    request: Request,
    task_id: str,
    worker: CurrentWorker,
    database: DatabaseDep,
    settings: SettingsDep,
) -> HoldOut:
    """Claim the task for this worker, or extend its hold: the page calls it while the
    worker is at work on the task, so the hold does not lapse under them."""
    held = await _queue_write(request, database, lambda db: queue.extend_hold(db, settings, worker, task_id))
    return HoldOut(task_id=held.task_id, held_until=iso(held.held_until), expire_at=iso(held.expire_at))


def _draft_out(draft: drafts.Draft) -> DraftOut:
    return wired(draft, DraftOut)


@router.put("/tasks/{task_id}/draft", response_model=DraftOut)
def save_draft(
    task_id: str,
    body: DraftIn,
    worker: CurrentWorker,
    database: DatabaseDep,
) -> DraftOut:
    """Keep the worker's answer so far with its hold, for its other browsers and sessions.
    Submitting or skipping the task ends the draft."""
    with database.session() as db:
        return _draft_out(drafts.save_draft(db, worker, task_id, body.model_dump()))


@router.get(
    "/tasks/{task_id}/draft",
    response_model=DraftOut,
    responses={204: {"description": "you keep no draft of this task"}},
)
def get_draft(task_id: str, worker: CurrentWorker, database: DatabaseDep) -> Response:
    with database.read_session() as db:
        draft = drafts.get_draft(db, worker, task_id)
    if draft is None:
        return Response(status_code=204)
    return JSONResponse(_draft_out(draft).model_dump(mode="json", by_alias=True))


@router.post("/tasks/{task_id}/flags", response_model=FlagOut, status_code=201)
def flag_completion(
    task_id: str,
    body: FlagIn,
    worker: CurrentWorker,
    database: DatabaseDep,
) -> FlagOut:
    """Report that one completion of the task is broken (it does not render, is empty, is
    cut off…), with a reason the miner reads. Flagging does not answer the task."""
    with database.session() as db:
        flag = subscriptions.flag_completion(db, worker, task_id, body.cid, body.reason)
        return FlagOut(
            task_id=flag.task_id,
            cid=flag.cid,
            reason=flag.reason,
            created_at=iso(flag.created_at),
            updated_at=iso(flag.updated_at),
        )


@router.post("/tasks/{task_id}/skip", response_model=SkipOut)
def skip_task(task_id: str, worker: CurrentWorker, database: DatabaseDep) -> SkipOut:
    with database.session() as db:
        queue.skip_task(db, worker, task_id)
    return SkipOut(task_id=task_id)
