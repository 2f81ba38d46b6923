"""The FastAPI application of the worker platform: :func:`create_app`.

Every error is ``{"detail": "<what was wrong and what to do>"}`` (:class:`ErrorOut`),
FastAPI's own included; the OpenAPI schema lists each operation's error statuses with
that model (:func:`document_errors`), so a client, and schemathesis, can hold us to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from loguru import logger

from commons.dojo_wire import CreateTasksIn
from dojo.platform.errors import PlatformError, TooManyRequests
from dojo.platform.http.api import miner as miner_api
from dojo.platform.http.api import tasks as tasks_api
from dojo.platform.http.api import worker as worker_api
from dojo.platform.http.apidocs import add_docs
from dojo.platform.http.deps import WorkerSessionCache, lookup_worker
from dojo.platform.http.hotpath import QueueHotPath
from dojo.platform.schemas import ErrorOut
from dojo.platform.security import (
    INTERNAL_ERROR,
    UNSAFE_METHODS,
    ASGIApp,
    JsonBodyCheck,
    Receive,
    Scope,
    SecurityMiddleware,
    Send,
)
from dojo.platform.services import queue
from dojo.platform.services.limits import LoginLimiter
from dojo.platform.services.pgqueue import PostgresQueue
from dojo.platform.services.registry import HotkeyRegistry
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage import state
from dojo.platform.storage.db import Database
from template.chain import Chain, open_chain
from template.validation import request_field, validation_detail

CREATE_TASKS_PATH = "/api/v1/tasks/create-tasks"


def _json_invalid_detail(exc: RequestValidationError) -> str | None:
    """FastAPI's own word for a body that is not JSON, as the platform's 400 says it.
    (JsonBodyCheck answers such bodies first; this keeps one status if one slips by.)"""
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "JSON decode error")
            return f"the body is not valid JSON: {reason} (char {error.get('loc', ('', '?'))[-1]})"
    return None


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
ERROR_DESCRIPTIONS = {
    400: "unreadable body: not JSON (or the form), nested too deeply, a non-finite number",
    401: "missing, unknown or expired credentials",
    403: "not allowed: a cookie session without the CSRF token or from another site, an unregistered hotkey",
    404: "absent, or not yours",
    409: "conflict with the current state",
    410: "gone: expired",
    413: "request body too large",
    422: "the body or a parameter breaks the rules",
    429: "too many log-in attempts from this address; see Retry-After",
}
# Statuses particular to an operation, which no rule below can see (a route may also
# declare its own with ``responses={...}``). The log-in endpoints are rate-limited (429).
OPERATION_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v1/miner/challenge"): (429,),
    ("post", "/api/v1/miner/session"): (401, 403, 429),
    ("post", "/api/v1/worker/challenge"): (429,),
    ("post", "/api/v1/worker/login"): (401, 429),
    ("post", "/api/v1/worker/recover"): (401, 429),
    ("post", CREATE_TASKS_PATH): (409,),
    ("post", "/api/v1/miner/api-keys"): (409,),
    ("post", "/api/v1/miner/subscription-keys"): (409,),
    ("post", "/api/v1/worker/subscriptions"): (404, 409),
    ("post", "/api/v1/worker/tasks/{task_id}/result"): (409, 410),
    ("post", "/api/v1/worker/tasks/{task_id}/hold"): (409, 410),
    ("post", "/api/v1/worker/tasks/{task_id}/skip"): (409,),
    ("delete", "/api/v1/miner/invites/{invite_id}"): (409,),
}
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses ``operation`` can answer: those its shape implies, those it declares."""
    statuses = {int(code) for code in operation.get("responses", {}) if code.isdigit() and int(code) >= 400}
    statuses.update(OPERATION_ERRORS.get((method, path), ()))
    if operation.get("requestBody"):
        statuses.update((400, 413, 422))
    if operation.get("parameters"):
        statuses.add(422)
    if "{" in path:
        statuses.add(404)
    security = operation.get("security")
    if security:
        statuses.add(401)
        if method.upper() in UNSAFE_METHODS and any("Cookie" in name for req in security for name in req):
            statuses.add(403)  # a cookie session without the CSRF header
    return statuses


def document_errors(schema: dict[str, Any]) -> None:
    """List every operation's error statuses with :class:`ErrorOut`, in place of FastAPI's
    ``HTTPValidationError`` (a list of objects, which this platform never sends)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["ErrorOut"] = ErrorOut.model_json_schema()
    for path, item in schema.get("paths", {}).items():
        for method in _HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in sorted(_error_statuses(method, path, operation)):
                entry = responses.setdefault(str(status), {})
                if not entry.get("description") or entry["description"] == "Validation Error":
                    entry["description"] = ERROR_DESCRIPTIONS.get(status, "error")
                entry["content"] = {"application/json": {"schema": ERROR_REF}}


class PlatformApp(FastAPI):
    """FastAPI behind the platform's own front (``front``, pure ASGI): the security
    middleware and the queue's hot path see every HTTP request before FastAPI's stack —
    its telemetry check, error middleware and routing, which would cost the hot path a
    fifth of its time — and pass on to :meth:`fastapi_call` what they do not answer."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http":
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def fastapi_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: PlatformSettings, chain: Chain | None = None) -> PlatformApp:
    """The platform app. Opens the database (migrating it unless told not to) and the chain.

    ``chain`` defaults to ``open_chain(settings.network, settings.netuid)``; a chain passed
    in stays the caller's to close.
    """
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    if settings.migrate_on_start:
        database.migrate()
    csrf_secret = state.secret(database)
    # A platform starting reads the time workers need afresh, not what an earlier platform
    # of this process read from the same database.
    queue.forget_time_needed(settings.database_url)
    owns_chain = chain is None
    if chain is None:
        chain = open_chain(settings.network, settings.netuid, settings.chain_endpoint)

    # The queue's database work (deps.run_db): one thread on SQLite, whose writers take
    # turns anyway, so no two threads contend for the GIL and the write lock.
    db_executor = ThreadPoolExecutor(
        max_workers=1 if database.is_sqlite else settings.db_threads, thread_name_prefix="dojo-db"
    )
    # PostgreSQL: the hot path's calls on the event loop (see dojo.platform.services.pgqueue).
    postgres = (
        None
        if database.is_sqlite
        else PostgresQueue(settings.database_url, settings.hot_path_connections_for(1))
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info("worker platform at {} on {}", settings.base_url, chain.describe())
        try:
            yield
        finally:
            if postgres is not None:
                await postgres.close()
            db_executor.shutdown(wait=True)
            database.dispose()
            if owns_chain:
                chain.close()

    app = PlatformApp(
        title="Dojo worker platform",
        version="1",
        description="The Dojo API: miner log-in and keys, tasks and results, workers and their queue.",
        lifespan=lifespan,
        # Off unless --docs: see dojo.platform.http.apidocs (pinned, with integrity hashes).
        docs_url=None,
        redoc_url=None,
    )
    if settings.docs:
        add_docs(app)
    app.state.settings = settings
    app.state.csrf_secret = csrf_secret
    app.state.db = database
    app.state.chain = chain
    app.state.registry = HotkeyRegistry(chain, settings.registration_refresh_seconds)
    app.state.worker_sessions = WorkerSessionCache()
    app.state.db_executor = db_executor
    app.state.login_limiter = LoginLimiter(
        database, settings.login_rate_limit, settings.login_rate_window_seconds
    )

    @app.exception_handler(PlatformError)
    async def _platform_error(_request: Request, exc: PlatformError) -> JSONResponse:
        headers = (
            {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, TooManyRequests) else None
        )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        not_json = _json_invalid_detail(exc)
        if not_json is not None:
            return JSONResponse({"detail": not_json}, status_code=400)
        return JSONResponse(
            {"detail": validation_detail(exc, where=request_field, limit=None)}, status_code=422
        )

    @app.exception_handler(Exception)
    async def _internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        # Starlette sends this, then raises the exception again: SecurityMiddleware logs it
        # and keeps the connection.
        return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)

    @app.get("/health", tags=["platform"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(miner_api.router)
    app.include_router(tasks_api.router)
    app.include_router(worker_api.router)
    try:
        from dojo.platform.http.web import router as web_router
    except ModuleNotFoundError as exc:
        if exc.name != "dojo.platform.http.web":
            raise
    else:
        app.include_router(web_router)

    # The hot path inside SecurityMiddleware (caps, headers, gzip apply), both in front of
    # FastAPI; behind the hot path (which reads its bodies itself) the JSON check, so that no
    # body FastAPI parses is too deep or holds NaN.
    hot_path = QueueHotPath(
        JsonBodyCheck(app.fastapi_call, own_parsers={CREATE_TASKS_PATH}),
        database=database,
        settings=settings,
        sessions=app.state.worker_sessions,
        executor=db_executor,
        lookup_worker=partial(lookup_worker, database),
        claim=queue.next_task,
        submit=queue.submit_result,
        render_task=worker_api.task_json,
        render_submitted=worker_api.submitted_json,
        postgres=postgres,
    )
    app.front = SecurityMiddleware(
        hot_path,
        max_body_bytes=settings.max_body_bytes,
        large_body_paths={CREATE_TASKS_PATH: settings.max_task_body_bytes},
        secure_cookies=settings.secure_cookies,
        csrf_secret=csrf_secret,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            # create-tasks reads its body itself (JSON or the multipart form); publish the JSON model.
            model = CreateTasksIn.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(model.pop("$defs", {}))
            components["CreateTasksIn"] = model
            document_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
