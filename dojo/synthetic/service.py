"""The synthetic API (``dojo synthetic serve``): tasks with known rankings, over HTTP.

- ``GET /api/synthetic-gen`` hands out the oldest queued task (format in
  :mod:`commons.synthetic_api`), ``?kind=text`` the oldest of that kind (404 for a kind
  outside the service's ``--mix``); with none queued, the request waits for one task to be
  generated for it.
- ``GET /health`` reports the backend, the queue (in all and by kind) and, per kind, the
  tasks generated, those discarded because the checker could not confirm their ranking,
  and those that failed otherwise.

A background loop keeps the persisted queue at its target size, each kind of the mix at its
share of it. The service hands out
ground truth, so it listens on loopback by default, and every ``/api`` request must carry
``Authorization: Bearer <token>`` unless the service was started with ``--no-token`` (a local
network on loopback; see :mod:`dojo.synthetic.settings`). It answers only requests whose
``Host`` is a loopback name, the address it listens on or one of ``--allowed-host`` (400
otherwise), so a web page whose domain was rebound to 127.0.0.1 cannot read it from a
browser on the same machine; and it refuses a request whose head is over
:data:`MAX_HEAD_BYTES` with 431 (uvicorn's h11 parser stops buffering a head past the same
cap, so a larger one never sits whole in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal, TypedDict

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from commons.retry import RetryPolicy
from commons.synthetic_api import SyntheticTask, parse_mix
from dojo.synthetic.backend import Backend, GenerationError
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.settings import ServiceSettings, allowed_hosts, token_problem
from dojo.synthetic.store import SyntheticStore


def build_backend(settings: ServiceSettings) -> Backend:
    if settings.backend == "procedural":
        from dojo.synthetic.procedural import ProceduralBackend

        return ProceduralBackend()
    from dojo.synthetic.llm import LLMBackend, llm_settings

    return LLMBackend(llm_settings(settings))


def build_pipeline(
    settings: ServiceSettings, store: SyntheticStore, backend: Backend | None = None
) -> SyntheticPipeline:
    """The service's pipeline: procedural backends, or the llm ones (text and dialogue from the
    chat model, images from the images endpoint when one is set, else drawn offline; the
    semantic duplicate filter when an embedding model is set, else TF-IDF)."""
    options = PipelineOptions(
        n_completions=settings.completions,
        similarity_threshold=settings.similarity,
        task_seconds=settings.task_seconds,
        task_tokens=settings.task_tokens,
        mix=parse_mix(settings.mix),
    )
    code = backend or build_backend(settings)
    backends: dict[str, Backend] = {}
    filter_factory = None
    if backend is None and settings.backend == "llm":
        from dojo.synthetic.llm import LLMBackend
        from dojo.synthetic.llm_kinds import EmbeddingFilter, LLMImageBackend, LLMTextBackend

        assert isinstance(code, LLMBackend)
        chat, llm = code.chat, code.settings
        backends = {
            "text": LLMTextBackend(llm, "text", chat),
            "dialogue": LLMTextBackend(llm, "dialogue", chat),
        }
        if llm.image_model:
            backends["image"] = LLMImageBackend(llm, chat, completions=settings.completions)
        if llm.embedding_model:
            model = llm.embedding_model

            def filter_factory(store: SyntheticStore, kind: str, threshold: float) -> EmbeddingFilter:
                return EmbeddingFilter(store, settings.semantic_similarity, kind=kind, chat=chat, model=model)

    return SyntheticPipeline(
        code, store, seed=settings.seed, options=options, backends=backends, filter_factory=filter_factory
    )


# After a failed refill: 1 s, doubling, at most a minute (no jitter: one process, one loop).
REFILL_BACKOFF = RetryPolicy(base_delay=0.5, max_delay=60.0, jitter=0.0)


class TaskQueue:
    """The persisted queue and the loop that keeps it full."""

    def __init__(self, store: SyntheticStore, pipeline: SyntheticPipeline, target: int) -> None:
        self.store = store
        self.pipeline = pipeline
        self.target = target
        mix = pipeline.options.mix
        total = sum(share for share in mix.values() if share > 0)
        # Each kind's share of the queue, at least one task of every kind in the mix.
        self.targets = {
            kind: max(1, round(target * share / total)) if target else 0
            for kind, share in mix.items()
            if share > 0
        }
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff_rng = random.Random()

    def start(self) -> None:
        self._task = asyncio.create_task(self._refill(), name="synthetic-refill")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def size(self) -> int:
        return await asyncio.to_thread(self.store.queue_size)

    async def take(self, kind: str | None = None) -> SyntheticTask:
        task = await asyncio.to_thread(self.store.pop_task, kind)
        self._wake.set()
        if task is None:
            logger.info("synthetic queue has no {} task: generating one for this request", kind or "")
            task = await self.pipeline.generate_task(kind)
        return task

    async def _short(self) -> str | None:
        """The kind furthest below its share of the queue, or None when every kind has its share."""
        sizes = await asyncio.to_thread(self.store.queue_sizes)
        missing = {kind: want - sizes.get(kind, 0) for kind, want in self.targets.items() if want > 0}
        kind = max(missing, key=lambda k: (missing[k] / self.targets[k], k)) if missing else None
        return kind if kind is not None and missing[kind] > 0 else None

    async def _refill(self) -> None:
        failures = 0
        while True:
            kind = await self._short()
            if kind is None:
                self._wake.clear()
                # Woken by take(); the timeout re-checks in case another process shares the queue.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                continue
            try:
                task = await self.pipeline.generate_task(kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving whatever goes wrong in one task
                failures += 1
                delay = REFILL_BACKOFF.delay(failures, self._backoff_rng)
                logger.warning(
                    "synthetic refill failed ({}: {}); next try in {:.1f}s", type(exc).__name__, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            await asyncio.to_thread(self.store.push_task, task)


def create_app(
    settings: ServiceSettings,
    *,
    pipeline_factory: Callable[[SyntheticStore], SyntheticPipeline] | None = None,
) -> FastAPI:
    """The FastAPI application; the store, pipeline and refill loop live for its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = SyntheticStore(settings.db)
        pipeline = (pipeline_factory or (lambda s: build_pipeline(settings, s)))(store)
        queue = TaskQueue(store, pipeline, settings.queue_size)
        app.state.queue = queue
        queue.start()
        logger.info("synthetic API ready on {}:{} ({})", settings.host, settings.port, settings.masked())
        try:
            yield
        finally:
            await queue.stop()
            await pipeline.aclose()
            store.close()

    problem = token_problem(settings)
    if problem is not None:
        raise ValueError(problem)
    app = FastAPI(
        title="Dojo synthetic API", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings))
    app.add_middleware(HeadLimitMiddleware, max_bytes=MAX_HEAD_BYTES)
    token = settings.token.get_secret_value() if settings.token else None

    def authorised(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise _Unauthorised()

    @app.exception_handler(_Unauthorised)
    async def _unauthorised(request: Request, exc: _Unauthorised) -> JSONResponse:
        return JSONResponse(
            {"success": False, "body": None, "error": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.get("/api/synthetic-gen", dependencies=[Depends(authorised)])
    async def synthetic_gen(request: Request, kind: str | None = None) -> JSONResponse:
        queue: TaskQueue = request.app.state.queue
        if kind is not None and kind not in queue.targets:
            made = ", ".join(queue.targets) or "nothing"
            return JSONResponse(
                {
                    "success": False,
                    "body": None,
                    "error": f"this service makes {made} tasks (--mix {settings.mix}), not {kind!r}",
                },
                status_code=404,
            )
        try:
            task = await queue.take(kind)
        except GenerationError as exc:
            logger.warning("synthetic-gen failed: {}", exc)
            return JSONResponse({"success": False, "body": None, "error": str(exc)}, status_code=503)
        return JSONResponse({"success": True, "body": task.model_dump(mode="json"), "error": None})

    @app.get("/health")
    async def health(request: Request) -> dict[str, object]:
        queue: TaskQueue = request.app.state.queue
        by_kind = await asyncio.to_thread(queue.store.queue_sizes)
        return {
            "status": "ok",
            "backend": settings.backend,
            "mix": settings.mix,
            "queue_size": sum(by_kind.values()),
            "queue_target": queue.target,
            "queue": {
                kind: {"size": by_kind.get(kind, 0), "target": want} for kind, want in queue.targets.items()
            },
            "tasks": {
                kind: {"generated": s.generated, "discarded": s.discarded, "failed": s.failed}
                for kind, s in queue.pipeline.stats.items()
                if kind in queue.targets or s.generated or s.discarded or s.failed
            },
        }

    return app


class _Unauthorised(Exception):
    pass


# A request line and its headers together; a client of this API sends a few hundred bytes.
MAX_HEAD_BYTES = 16 * 1024


class HeadLimitMiddleware:
    """431 for a request whose path, query and headers together exceed ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))
            if size > self.max_bytes:
                response = PlainTextResponse(f"request headers over {self.max_bytes} bytes", status_code=431)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve(settings: ServiceSettings) -> None:
    """Run the service until interrupted; a missing LLM key is reported before it starts."""

    import uvicorn

    if settings.backend == "llm":
        from dojo.synthetic.llm import llm_settings

        llm_settings(settings)

    uvicorn.run(create_app(settings), **server_options(settings))


class ServerOptions(TypedDict):
    """The keyword arguments of ``uvicorn.run`` that :func:`server_options` sets."""

    host: str
    port: int
    log_level: str
    http: Literal["h11"]
    h11_max_incomplete_event_size: int


def server_options(settings: ServiceSettings) -> ServerOptions:
    """uvicorn's settings for the service: h11, whose parser refuses a request head over
    :data:`MAX_HEAD_BYTES` (httptools has no such cap)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "http": "h11",
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
