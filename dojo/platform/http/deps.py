"""FastAPI dependencies shared by the JSON API and the UI's page routes.

- :func:`get_settings`, :func:`get_database`, :func:`get_registry`: the app's singletons
  (``async`` so FastAPI does not send them to a thread; from plain code read
  ``request.app.state.settings`` / ``.db`` / ``.registry``).
- :func:`current_miner`: the miner of the request's session (``Authorization: Bearer dms_…``
  or the ``dojo_miner_session`` cookie); 401 without one.
- :func:`api_key_miner`: the miner an ``x-api-key`` header belongs to; 401 otherwise.
- :func:`current_worker` / :func:`optional_worker`: the worker of the request's session
  (``Authorization: Bearer dws_…`` or the ``dojo_worker_session`` cookie); 401 / ``None``.

Routes name them by their ``Annotated`` aliases, declared once at the end of this module
(``def route(worker: CurrentWorker, database: DatabaseDep)``), and the log-in limit by
``dependencies=[LOGIN_RATE_LIMIT]``.

Cookie-authenticated unsafe requests (POST, PUT, PATCH, DELETE) must carry the CSRF token
(:func:`dojo.platform.security.check_csrf`), checked here so no route can forget it: once
the cookie proved a live session, so an unknown or expired session cookie is a 401 and a
live one without the token a 403. The
objects returned are detached from any session: read their columns, and open
``database.session()`` to change anything.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request, Response
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from commons.platform_contract import MINER_COOKIE, WORKER_COOKIE
from dojo.platform.credentials import WORKER_TOKEN_PREFIX, hash_secret
from dojo.platform.errors import Unauthorized
from dojo.platform.schemas import DB_INT_MAX
from dojo.platform.security import check_csrf
from dojo.platform.services import auth
from dojo.platform.services.keys import miner_for_api_key
from dojo.platform.services.limits import LoginLimiter
from dojo.platform.services.registry import HotkeyRegistry
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import Miner, Worker
from template.clock import utcnow

T = TypeVar("T")
SESSION_CACHE_SECONDS = 5.0

# These only describe the credentials in the OpenAPI schema; the functions below check them.
bearer_scheme = HTTPBearer(auto_error=False, description="a session token from a log-in")
miner_cookie_scheme = APIKeyCookie(name=MINER_COOKIE, auto_error=False)
worker_cookie_scheme = APIKeyCookie(name=WORKER_COOKIE, auto_error=False)
api_key_scheme = APIKeyHeader(name="x-api-key", auto_error=False, description="an API key, sk-…")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
MinerCookie = Annotated[str | None, Depends(miner_cookie_scheme)]
WorkerCookie = Annotated[str | None, Depends(worker_cookie_scheme)]
ApiKey = Annotated[str | None, Depends(api_key_scheme)]


class WorkerSessionCache:
    """Worker session token → worker, for a few seconds: workers call next/submit in a loop.

    A log-out evicts its token at once in this process; other replicas forget it within
    ``ttl`` seconds (each entry lives between 3/4 of that and all of it). Only the token's
    worker is cached: access to a miner's tasks (the subscription and its key) is checked
    on every request.
    """

    def __init__(self, ttl: float = SESSION_CACHE_SECONDS, max_entries: int = 50_000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Worker]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Worker | None:
        """The token's worker, or ``None`` if it is not cached (unknown tokens never are)."""
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, worker: Worker | None) -> None:
        if worker is None:  # unknown tokens are not remembered: nothing to gain, memory to lose
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            # Jittered, so that workers who started together do not all expire together.
            self._entries[token] = (time.monotonic() + self.ttl * random.uniform(0.75, 1.0), worker)

    def evict(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)


async def run_db(request: Request, work: Callable[[], T]) -> T:
    """Run blocking database work on the app's database threads (``app.state.db_executor``).

    Few threads beat many here: a thread that has the database's write lock must win the
    GIL back after every statement, and with dozens of runnable threads that wait, not the
    database, would set the pace. On SQLite, which admits one writer at a time, that is one
    thread; on PostgreSQL ``db_threads``. The executor's plain hand-off costs a fraction of
    ``anyio.to_thread`` (no limiter, no cancellation scope) on this hottest of paths.
    """
    return await asyncio.get_running_loop().run_in_executor(request.app.state.db_executor, work)


def lookup_worker(database: Database, token: str) -> Worker | None:
    """The worker of a live session token, or ``None`` (blocking; run it with :func:`run_db`).

    :func:`auth.worker_for_token` in one statement on the driver's connection: every
    worker's session is looked up again each ``SESSION_CACHE_SECONDS``.
    """
    if not token.startswith(WORKER_TOKEN_PREFIX):
        return None
    with database.raw_read() as db:
        rows = db.execute(auth.WORKER_FOR_TOKEN, {"token_hash": hash_secret(token), "now": utcnow()})
    if not rows:
        return None
    worker_id, public_id, address, created_at = rows[0]
    return Worker(id=worker_id, public_id=public_id, address=address, created_at=created_at)


async def get_settings(request: Request) -> PlatformSettings:
    settings: PlatformSettings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_registry(request: Request) -> HotkeyRegistry:
    registry: HotkeyRegistry = request.app.state.registry
    return registry


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login_rate_limit(request: Request) -> None:
    """Count a log-in attempt from the client's address; 429 past the limit. The count is
    kept in the database, shared by every replica (:mod:`dojo.platform.services.limits`)."""
    limiter: LoginLimiter = request.app.state.login_limiter
    await run_in_threadpool(limiter.hit, client_address(request))


def set_session_cookie(
    response: Response, settings: PlatformSettings, name: str, token: str, max_age: int
) -> None:
    """A session cookie as the platform sets each: HttpOnly, SameSite=Lax, Secure under https."""
    response.set_cookie(
        name, token, max_age=max_age, httponly=True, samesite="lax", secure=settings.secure_cookies
    )


def session_token(
    request: Request, bearer: HTTPAuthorizationCredentials | None, cookie: str
) -> tuple[str | None, bool]:
    """The session token, and whether it came from the (ambient, so CSRF-checked) cookie."""
    if bearer is not None and bearer.credentials:
        return bearer.credentials, False
    token = request.cookies.get(cookie)
    return token or None, bool(token)


async def current_miner(request: Request, bearer: BearerCredentials, _cookie: MinerCookie) -> Miner:
    token, from_cookie = session_token(request, bearer, MINER_COOKIE)
    if token is None:
        raise Unauthorized("log in first: POST /api/v1/miner/challenge, sign, POST /api/v1/miner/session")
    database: Database = request.app.state.db

    def lookup() -> Miner | None:
        with database.read_session() as db:
            return auth.miner_for_token(db, token)

    miner = await run_in_threadpool(lookup)
    if miner is None:
        raise Unauthorized("your session has expired or is unknown; log in again")
    if from_cookie:
        await check_csrf(request)
    return miner


async def api_key_miner(request: Request, key: ApiKey) -> Miner:
    database: Database = request.app.state.db

    def lookup() -> Miner:
        with database.session() as db:
            return miner_for_api_key(db, key)

    return await run_in_threadpool(lookup)


# Set in a request's scope by the hot path (dojo.platform.http.hotpath) to the bearer token it
# looked up and found unknown or expired before handing the request on to the routes.
UNKNOWN_BEARER = "dojo.unknown_bearer"


async def optional_worker(
    request: Request, bearer: BearerCredentials, _cookie: WorkerCookie
) -> Worker | None:
    token, from_cookie = session_token(request, bearer, WORKER_COOKIE)
    if token is None or (not from_cookie and request.scope.get(UNKNOWN_BEARER) == token):
        return None  # no session, or one the hot path has just found unknown: not asked twice
    cache: WorkerSessionCache = request.app.state.worker_sessions
    worker = cache.get(token)
    if worker is None:
        database: Database = request.app.state.db
        worker = await run_db(request, lambda: lookup_worker(database, token))
        cache.put(token, worker)
    if worker is not None and from_cookie:
        await check_csrf(request)
    return worker


async def current_worker(worker: OptionalWorker) -> Worker:
    if worker is None:
        raise Unauthorized("log in first: with your wallet (POST /api/v1/worker/login) or an invite link")
    return worker


# What a route declares it needs, each once (``def route(database: DatabaseDep)``).
SettingsDep = Annotated[PlatformSettings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
RegistryDep = Annotated[HotkeyRegistry, Depends(get_registry)]
CurrentMiner = Annotated[Miner, Depends(current_miner)]
ApiKeyMiner = Annotated[Miner, Depends(api_key_miner)]
OptionalWorker = Annotated[Worker | None, Depends(optional_worker)]
CurrentWorker = Annotated[Worker, Depends(current_worker)]
# A row's id in a path (``/invites/{invite_id}``): a positive 32-bit integer, as the database keeps it.
RowId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
# For a route's ``dependencies=[...]``: it returns nothing the route reads.
LOGIN_RATE_LIMIT = Depends(login_rate_limit)
