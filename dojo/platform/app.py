"""The FastAPI application of the worker platform: :func:`create_app`."""

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

from dojo.platform import queue
from dojo.platform.api import miner as miner_api
from dojo.platform.api import tasks as tasks_api
from dojo.platform.api import worker as worker_api
from dojo.platform.db import Database
from dojo.platform.deps import SessionCache, lookup_worker
from dojo.platform.errors import PlatformError, RateLimited
from dojo.platform.hotpath import QueueHotPath
from dojo.platform.registry import HotkeyRegistry
from dojo.platform.schemas import CreateTasksIn
from dojo.platform.security import ASGIApp, RateLimiter, Receive, Scope, SecurityMiddleware, Send
from dojo.platform.settings import PlatformSettings
from template.chain import Chain, open_chain


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


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
    owns_chain = chain is None
    if chain is None:
        if not settings.network:
            raise ValueError("the platform needs a chain: set --subtensor.network and --netuid")
        chain = open_chain(settings.network, settings.netuid, settings.chain_endpoint)

    # The queue's database work (deps.run_db): one thread on SQLite, whose writers take
    # turns anyway, so no two threads contend for the GIL and the write lock.
    db_executor = ThreadPoolExecutor(
        max_workers=1 if database.is_sqlite else settings.db_threads, thread_name_prefix="dojo-db"
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info("worker platform at {} on {}", settings.base_url, chain.describe())
        try:
            yield
        finally:
            db_executor.shutdown(wait=True)
            database.dispose()
            if owns_chain:
                chain.close()

    app = PlatformApp(
        title="Dojo worker platform",
        version="1",
        description="The Dojo API: miner log-in and keys, tasks and results, workers and their queue.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.chain = chain
    app.state.registry = HotkeyRegistry(chain, settings.registration_refresh_seconds)
    app.state.worker_sessions = SessionCache()
    app.state.db_executor = db_executor
    app.state.login_limiter = RateLimiter(settings.login_rate_limit, settings.login_rate_window_seconds)

    @app.exception_handler(PlatformError)
    async def _platform_error(_request: Request, exc: PlatformError) -> JSONResponse:
        headers = (
            {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimited) else None
        )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.get("/health", tags=["platform"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(miner_api.router)
    app.include_router(tasks_api.router)
    app.include_router(worker_api.router)
    try:
        from dojo.platform.web import router as web_router
    except ModuleNotFoundError as exc:
        if exc.name != "dojo.platform.web":
            raise
    else:
        app.include_router(web_router)

    # The hot path inside SecurityMiddleware (caps and headers apply), both in front of FastAPI.
    hot_path = QueueHotPath(
        app.fastapi_call,
        database=database,
        settings=settings,
        sessions=app.state.worker_sessions,
        executor=db_executor,
        lookup_worker=partial(lookup_worker, database),
        claim=queue.next_task,
        submit=queue.submit_result,
        render_task=worker_api.task_json,
        render_submitted=worker_api.submitted_json,
    )
    app.front = SecurityMiddleware(
        hot_path,
        max_body_bytes=settings.max_body_bytes,
        large_body_paths={"/api/v1/tasks/create-tasks": settings.max_task_body_bytes},
        secure_cookies=settings.secure_cookies,
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
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
