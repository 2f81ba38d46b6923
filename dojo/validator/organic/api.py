"""The organic API (FastAPI): outside callers submit tasks and read their results.

Every request is checked in this order, each refusal ``{detail}`` with its status:

1. body size over ``--organic.max_body_bytes``: 413;
2. the caller: ``Authorization: Bearer <API key>`` (401: none, unknown, revoked) or a btauth/1
   hotkey signature (401: malformed, bad, stale, replayed, for another receiver; 403: no
   validator permit or too little stake on ``--organic.caller_netuids``);
3. the caller's rate limit: 429 with ``Retry-After``; every answer carries
   ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds);
4. the body: 422 naming the field (the protocol's caps), or a rule (deadline, miners,
   callback URL);
5. the daily quota: 429 with ``Retry-After`` until the next UTC day;
6. the external id: 409 when it names a task made from another body.

A task is on disk before its 202 (:class:`BatchWriter` commits many callers' tasks in one
transaction, on a thread of its own). A caller sees only its own tasks: another's id is a 404
like an unknown one.

Latency (``benchmarks/organic.py``, 50 callers, 2 cores; ``docs/organic.md`` has the table):
the p99 of 380-420 ms came from stalls of about 230 ms every second or two that every request
in flight shared, the validator's full garbage collections over its start-up heap (now frozen,
:func:`template.heap.freeze_heap`), and from reads that took SQLite's write lock
(the key lookups: now deferred, read-only transactions). In a paired run on a busy machine p99
went from 390 to 279 ms at the same rate (539 and 558 tasks/s); in a run with more CPU to spare,
734 tasks/s with p99 132 ms. What remains follows the CPU the process gets.

CPU per request (``benchmarks/organic_cpu.py``: the API alone, its process's CPU per 1 000
accepted requests, old and new code alternated in one run): 1.64 ms before, 1.04 ms after
(medians of four rounds each). cProfile on CPU time showed the group commit's thread at a
third of it, nearly all SQLAlchemy building and running one external-id query per caller in
the batch (now one statement per batch, :func:`~dojo.validator.organic.store._known_ids`);
on the API's thread, the ``Printable`` fields' check (a ``unicodedata`` call per character,
now a regular expression) and the callback URL's (parsing and classifying the address every
time; now remembered for URLs with an address). What the API's thread spends now, in
shares of its CPU: FastAPI and Starlette's layers (routing, middleware, dependency
injection) about 45%, uvicorn's HTTP parsing and writing 13%, reading and validating the
body 12%, the route itself (checks, quota, request hash, answer) 15%, the caller's key and
rate limit 9%; the group commit costs an eighth of what the API's thread does.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, get_args

import bittensor as bt
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware

from commons.organic import QuotaUsage, RateUsage, TaskAccepted, TaskPage, TaskRequest, TaskView, Usage
from commons.protocol import TaskType
from dojo.validator.organic.callbacks import CallbackGuard, CallbackRefused
from dojo.validator.organic.callers import HotkeyCallers
from dojo.validator.organic.limits import DailyQuota, RateDecision, RateLimiter, day_start
from dojo.validator.organic.store import Accepted, BadCursor, NewOrganic, OrganicStore, Owner
from template.clock import utcnow
from template.failpoints import failpoint
from template.transport.server import BodyLimitMiddleware
from template.validation import dotted, validation_detail

OWNER_CACHE_SECONDS = 1.0  # a revoked key stops working within this
MIN_DEADLINE = 30.0
MAX_DEADLINE = 5 * 86400 - 3600  # miners refuse a task due more than 5 days ahead


class TaskIds:
    """New task ids, as ``uuid.uuid4().hex`` makes them, from ``os.urandom`` read for
    ``batch`` ids at a time. Each read is a system call that lets go of the GIL, and the API's
    thread then waits for it behind the process's other threads (the group commit, the
    validator's loops): one read per id cost every request about 1.5 ms of wall time under
    load, though next to no CPU. Not thread-safe: the API's loop alone calls it."""

    def __init__(self, batch: int = 256):
        self.batch = batch
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(16 * self.batch), 0
        raw = self._pool[self._at : self._at + 16]
        self._at += 16
        return uuid.UUID(bytes=raw, version=4).hex


@dataclass
class OrganicContext:
    """What the routes need; one per API process."""

    store: OrganicStore
    validator_hotkey: str
    task_deadline: float
    sample_size: int
    subnet_size: Callable[[], int]
    guard: CallbackGuard
    callers: HotkeyCallers | None
    hotkey_rate: int
    hotkey_daily_quota: int
    limiter: RateLimiter = field(default_factory=RateLimiter)
    quota: DailyQuota = field(default_factory=DailyQuota)
    nonces: Any = field(default_factory=lambda: bt.http_auth.InMemoryNonceStore(retention=60.0))
    max_age: float = bt.http_auth.DEFAULT_MAX_AGE
    writer: BatchWriter | None = None
    task_ids: TaskIds = field(default_factory=TaskIds)
    _owners: dict[str, tuple[Owner | None, float]] = field(default_factory=dict)

    @property
    def deadline_bounds(self) -> tuple[float, float]:
        # Around the validator's own deadline (always allowed): a quarter of it to four times it,
        # never under MIN_DEADLINE nor past what miners take.
        low = min(self.task_deadline, max(MIN_DEADLINE, self.task_deadline / 4))
        return low, max(self.task_deadline, min(MAX_DEADLINE, self.task_deadline * 4))

    async def owner_for_key(self, api_key: str) -> Owner | None:
        cached = self._owners.get(api_key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        owner = await asyncio.to_thread(self.store.owner_by_key, api_key)
        if len(self._owners) > 10_000:
            self._owners.clear()
        self._owners[api_key] = (owner, time.monotonic() + OWNER_CACHE_SECONDS)
        return owner

    async def owner_for_hotkey(self, hotkey: str) -> Owner:
        cached = self._owners.get("hotkey:" + hotkey)
        if cached is not None and cached[0] is not None and cached[1] > time.monotonic():
            return cached[0]
        owner = await asyncio.to_thread(
            self.store.hotkey_owner, hotkey, self.hotkey_rate, self.hotkey_daily_quota, utcnow()
        )
        self._owners["hotkey:" + hotkey] = (owner, time.monotonic() + OWNER_CACHE_SECONDS)
        return owner


class BatchWriter:
    """Group commit: the tasks of every request waiting at once go to disk in one transaction,
    and each request is answered when its transaction has committed.

    The commits run on a thread of their own: in the loop's shared pool they queued behind
    the requests' reads (key lookups, quota counts), and every request behind them."""

    def __init__(self, store: OrganicStore, max_batch: int = 256):
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[NewOrganic, asyncio.Future[Accepted]]] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="organic-commit")

    def close(self) -> None:
        """Wait for the batch being written, then let the writer's thread go."""
        self._thread.shutdown(wait=True)

    async def submit(self, new: NewOrganic) -> Accepted:
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((new, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self.store.accept, [n for n, _ in batch]
                )
            except Exception as exc:  # the batch is not on disk: each of its requests says so
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def _rate_headers(decision: RateDecision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(math.ceil(decision.reset)),
    }


def _context(request: Request) -> OrganicContext:
    ctx: OrganicContext = request.app.state.ctx
    return ctx


async def authenticated(request: Request, response: Response) -> Owner:
    """The caller of this request, within its rate limit (the FastAPI dependency)."""
    ctx = _context(request)
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "Authorization must be 'Bearer <API key>'")
        owner = await ctx.owner_for_key(token.strip())
        if owner is None or owner.kind != "key":
            raise HTTPException(401, "unknown API key")
        if owner.revoked:
            raise HTTPException(401, "this API key was revoked")
    elif bt.http_auth.HEADER_SIGNATURE in request.headers:
        if ctx.callers is None:
            raise HTTPException(
                401, "this validator takes no hotkey signatures (--organic.caller_netuids is empty)"
            )
        body = await request.body()
        query = request.scope.get("query_string", b"").decode("latin-1")
        target = request.url.path + (f"?{query}" if query else "")
        try:
            signed = bt.http_auth.verify(
                request.headers,
                body,
                method=request.method,
                path=target,
                self_hotkey_ss58=ctx.validator_hotkey,
                max_age=ctx.max_age,
                nonce_store=ctx.nonces,
            )
        except bt.http_auth.AuthError as exc:
            raise HTTPException(401, f"{type(exc).__name__}: {exc}") from None
        reason = ctx.callers.refusal(signed.hotkey_ss58)
        if reason is not None:
            raise HTTPException(403, reason)
        owner = await ctx.owner_for_hotkey(signed.hotkey_ss58)
        if owner.revoked:
            raise HTTPException(403, f"hotkey {signed.hotkey_ss58} was barred by this validator")
    else:
        raise HTTPException(
            401, "no credentials: send 'Authorization: Bearer <API key>' or a btauth/1 hotkey signature"
        )
    decision = ctx.limiter.hit(owner.key_id, owner.rate_per_minute, time.monotonic())
    headers = _rate_headers(decision)
    if not decision.allowed:
        retry = max(1, math.ceil(decision.reset))
        raise HTTPException(
            429,
            f"rate limit of {owner.rate_per_minute} requests per minute reached; try again in {retry}s",
            headers={**headers, "Retry-After": str(retry)},
        )
    response.headers.update(headers)
    return owner


Caller = Annotated[Owner, Depends(authenticated)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credentials, or refused ones"},
    403: {"description": "a hotkey without permit or stake"},
    413: {"description": "body too large"},
    422: {"description": "invalid request"},
    429: {"description": "rate limit or daily quota; see Retry-After"},
}


def _task_type(task: TaskRequest) -> str:
    if task.task_type is not None:
        return task.task_type
    kinds = {c.content.kind for c in task.completions}
    if kinds == {"code"}:
        return "code_generation"
    if len(kinds) == 1 and (kind := next(iter(kinds))) in get_args(TaskType):
        return kind
    raise HTTPException(422, f"task_type: say which task type completions of kinds {sorted(kinds)} make")


def _request_hash(task: TaskRequest) -> str:
    """The request as parsed, in the models' own field order: the same body hashes the same
    however its keys were ordered or spaced."""
    return hashlib.sha256(task.model_dump_json().encode()).hexdigest()


def create_app(ctx: OrganicContext, *, max_body_bytes: int = 1 << 20) -> FastAPI:
    app = FastAPI(
        title="Dojo organic API",
        version="1",
        description="Have your own completions ranked by Dojo's human workers (docs/organic.md).",
        middleware=[Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)],
    )
    app.state.ctx = ctx

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": "invalid request: " + validation_detail(exc, where=_where)}, status_code=422
        )

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/tasks", status_code=202, response_model=TaskAccepted, responses={**_ERRORS, 409: {}})
    async def submit(task: TaskRequest, owner: Caller, response: Response) -> Response:
        """Queue a task: answered once it is on the validator's disk."""
        now = utcnow()
        low, high = ctx.deadline_bounds
        deadline = ctx.task_deadline if task.deadline is None else task.deadline
        if not low <= deadline <= high:
            raise HTTPException(
                422, f"deadline: {deadline:g}s is outside the {low:g}-{high:g}s this validator takes"
            )
        size = max(1, ctx.subnet_size())
        miners = ctx.sample_size if task.miners is None else task.miners
        if task.miners is not None and task.miners > size:
            raise HTTPException(422, f"miners: {task.miners} is more than the subnet's {size} neurons")
        task_type = _task_type(task)
        if task.callback_url is not None:
            try:
                await ctx.guard.check(task.callback_url)
            except CallbackRefused as exc:
                raise HTTPException(422, str(exc)) from None
        if not ctx.quota.known(owner.key_id, now):
            used = await asyncio.to_thread(ctx.store.count_since, owner.key_id, day_start(now))
            ctx.quota.load(owner.key_id, now, used)
        if not ctx.quota.reserve(owner.key_id, owner.daily_quota, now):
            wait = DailyQuota.seconds_to_reset(now)
            raise HTTPException(
                429,
                f"daily quota of {owner.daily_quota} tasks is spent; it resets at "
                f"{DailyQuota.resets_at(now).isoformat()}",
                headers={"Retry-After": str(wait)},
            )
        new = NewOrganic(
            task_id=ctx.task_ids(),
            owner_id=owner.key_id,
            external_id=task.external_id,
            request_hash=_request_hash(task),
            created_at=now,
            visibility=task.visibility,
            callback_url=task.callback_url,
            deadline_seconds=float(deadline),
            miners_wanted=min(miners, size),
            request={
                "prompt": task.prompt,
                "task_type": task_type,
                "criteria": [task.criteria.model_dump(mode="json")],
                "completions": [
                    {"label": label, "model": c.model, "content": c.content.model_dump(mode="json")}
                    for label, c in zip(task.labels(), task.completions, strict=True)
                ],
            },
        )
        assert ctx.writer is not None
        try:
            accepted = await ctx.writer.submit(new)
        except Exception as exc:
            ctx.quota.release(owner.key_id, now)
            raise HTTPException(
                503, f"the task could not be stored ({type(exc).__name__}); nothing was accepted"
            ) from None
        if accepted.conflict:
            ctx.quota.release(owner.key_id, now)
            raise HTTPException(
                409,
                f"external_id {task.external_id!r} names task {accepted.task_id}, "
                "made from another request body",
            )
        if accepted.duplicate:
            ctx.quota.release(owner.key_id, now)
        else:
            failpoint("validator.organic.after_accept")  # on disk, not yet answered
        status = accepted.status if accepted.status in ("queued", "scored", "expired", "failed") else "sent"
        body = TaskAccepted(
            task_id=accepted.task_id,
            status=status,  # type: ignore[arg-type]
            created_at=accepted.created_at,
            external_id=task.external_id,
            duplicate=accepted.duplicate,
        ).model_dump_json()
        # Answered as it is (the model is already checked), with the rate-limit headers.
        return Response(
            body,
            status_code=202,
            media_type="application/json",
            headers={k: v for k, v in response.headers.items() if k.startswith("x-ratelimit")},
        )

    @app.get("/v1/tasks/{task_id}", response_model=TaskView, responses={**_ERRORS, 404: {}})
    async def task(task_id: str, owner: Caller, raw: bool = False) -> TaskView:
        """A task's state and, once scored, its result (``?raw=1``: each worker's answer)."""
        view = await asyncio.to_thread(ctx.store.view, owner.key_id, task_id[:64], utcnow(), raw=raw)
        if view is None:
            raise HTTPException(404, f"no task {task_id[:64]}")
        return view

    @app.get("/v1/tasks", response_model=TaskPage, responses=_ERRORS)
    async def tasks(
        owner: Caller,
        status: Annotated[
            str | None, Query(pattern="^(queued|sent|collecting|scored|expired|failed)$")
        ] = None,
        since: datetime | None = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> TaskPage:
        """The caller's own tasks, newest first, a page at a time (``next_cursor``)."""
        if since is not None and since.tzinfo is None:
            raise HTTPException(422, "since: give a time zone (2026-01-02T03:04:05Z)")
        try:
            views, cursor_out = await asyncio.to_thread(
                ctx.store.page, owner.key_id, utcnow(), status=status, since=since, cursor=cursor, limit=limit
            )
        except BadCursor as exc:
            raise HTTPException(422, str(exc)) from None
        return TaskPage(tasks=views, next_cursor=cursor_out)

    @app.get("/v1/usage", response_model=Usage, responses=_ERRORS)
    async def usage(owner: Caller) -> Usage:
        """The caller's limits and what is left of them."""
        now = utcnow()
        if not ctx.quota.known(owner.key_id, now):
            ctx.quota.load(
                owner.key_id,
                now,
                await asyncio.to_thread(ctx.store.count_since, owner.key_id, day_start(now)),
            )
        used = ctx.quota.used(owner.key_id, now)
        rate = ctx.limiter.peek(owner.key_id, owner.rate_per_minute, time.monotonic())
        return Usage(
            caller=owner.name,
            kind=owner.kind,  # type: ignore[arg-type]
            rate=RateUsage(limit=rate.limit, remaining=rate.remaining, reset=round(rate.reset, 3)),
            daily_quota=QuotaUsage(
                limit=owner.daily_quota,
                used=used,
                remaining=max(0, owner.daily_quota - used),
                resets_at=DailyQuota.resets_at(now),
            ),
        )

    @app.get("/v1/webhook-secret", responses=_ERRORS)
    async def webhook_secret(owner: Caller) -> dict[str, str]:
        """A hotkey caller's webhook secret (an API key's is shown once, when it is made)."""
        if owner.kind != "hotkey":
            raise HTTPException(403, "an API key's webhook secret is shown once, when the key is made")
        secret = await asyncio.to_thread(ctx.store.webhook_secret, owner.key_id)
        return {"webhook_secret": secret or ""}

    return app


def _where(loc: tuple[Any, ...]) -> str:
    parts = loc[1:] if loc and loc[0] in ("body", "query", "path") else loc
    return dotted(parts) or "body"
