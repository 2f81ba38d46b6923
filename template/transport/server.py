"""The signed HTTP endpoint a neuron serves (its "axon"): Starlette under uvicorn.

Every route is ``POST /<MessageName>`` and every request is checked, in this order:

1. body size: over the limit → 413 (checked on ``Content-Length`` and while streaming);
2. signature (``bt.http_auth``, btauth/1, over the method, the path with its query string
   as sent, and the raw body): malformed, bad, stale, replayed or addressed to another
   hotkey → 401 with the reason (a neuron keeps the nonces it accepted in its data folder,
   so a replay stays refused across a restart: :mod:`template.transport.nonces`);
3. blacklist against the chain's metagraph: caller not registered, without a validator
   permit (when required) or below the minimum stake → 403 with the reason;
4. body validation against the route's pydantic model, in its strict types where the model
   asks (``protocol_version`` is a JSON integer) → 422 naming the field; a request of
   another protocol version → 400;
5. the handler, admitted by the caller's stake as the chain reports it (never by anything
   the caller sends) when more calls wait than may run, and bounded by a timeout → 504.

The server binds exactly the address it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bittensor as bt
import uvicorn
from loguru import logger
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from template.chain.base import Metagraph
from template.transport.nonces import SQLiteNonceStore
from template.validation import dotted, validation_detail

Handler = Callable[[Any, "CallerInfo"], Awaitable[BaseModel]]


@dataclass(frozen=True)
class CallerInfo:
    """The authenticated caller, as the chain knows it."""

    hotkey: str
    uid: int | None
    stake: float
    validator_permit: bool


@dataclass(frozen=True)
class BlacklistPolicy:
    require_registered: bool = True
    force_validator_permit: bool = True
    minimum_stake: float = 0.0

    def check(self, hotkey: str, metagraph: Metagraph) -> tuple[CallerInfo | None, str | None]:
        """The caller's chain identity, or the reason it is refused."""
        neuron = metagraph.get(hotkey)
        if neuron is None:
            if self.require_registered:
                return None, f"hotkey {hotkey} is not registered on subnet {metagraph.netuid}"
            return CallerInfo(hotkey, None, 0.0, False), None
        info = CallerInfo(hotkey, neuron.uid, neuron.stake, neuron.validator_permit)
        if self.force_validator_permit and not neuron.validator_permit:
            return None, f"hotkey {hotkey} (uid {neuron.uid}) holds no validator permit"
        if neuron.stake < self.minimum_stake:
            return None, (
                f"hotkey {hotkey} (uid {neuron.uid}) has stake {neuron.stake:g}, "
                f"below the minimum {self.minimum_stake:g}"
            )
        return info, None


class PriorityGate:
    """At most ``limit`` holders at once; waiters are admitted highest priority first.

    Ties go to the earlier arrival. Priority is the caller's stake read from the chain.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._active = 0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def admit(self, priority: float) -> _Admission:
        return _Admission(self, priority)

    async def _acquire(self, priority: float) -> None:
        if self._active < self.limit and not self._waiters:
            self._active += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # admitted and cancelled in the same tick: pass the slot on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._active -= 1


class _Admission:
    def __init__(self, gate: PriorityGate, priority: float):
        self.gate = gate
        self.priority = priority

    async def __aenter__(self) -> None:
        await self.gate._acquire(self.priority)

    async def __aexit__(self, *exc: object) -> None:
        self.gate._release()


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await _too_large(self.max_bytes, send)
                    return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            if refused:
                await _too_large(self.max_bytes, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    body = json.dumps({"detail": f"request body exceeds the limit of {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SignedServer:
    """A neuron's endpoint: register message handlers, then :meth:`serve`.

    ``metagraph`` is a callable returning the latest snapshot the neuron holds; the server
    never reads the chain itself, so a slow chain never blocks a request.
    """

    def __init__(
        self,
        keypair: Any,
        metagraph: Callable[[], Metagraph],
        *,
        policy: BlacklistPolicy | None = None,
        max_body_bytes: int = 1 << 20,
        handler_timeout: float = 30.0,
        max_concurrent: int = 64,
        protocol_version: int | None = None,
        max_age: float = bt.http_auth.DEFAULT_MAX_AGE,
        nonce_path: str | Path | None = None,
    ):
        self.keypair = keypair
        self.hotkey = keypair.ss58_address
        self.metagraph = metagraph
        self.policy = policy or BlacklistPolicy()
        self.handler_timeout = handler_timeout
        self.protocol_version = protocol_version
        self.max_age = max_age
        # With ``nonce_path`` the nonces accepted within the window outlive a restart
        # (:mod:`template.transport.nonces`), so a request refused as a replay stays refused.
        retention = max(60.0, max_age + 5)
        self.nonces: bt.http_auth.NonceStore = (
            SQLiteNonceStore(nonce_path, retention)
            if nonce_path is not None
            else bt.http_auth.InMemoryNonceStore(retention=retention)
        )
        self.gate = PriorityGate(max_concurrent)
        # Bare Starlette: every route parses and checks its own body, so a framework layer of
        # dependency injection would only add cost to each of the many small calls.
        self.app = Starlette(middleware=[Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)])
        self._server: uvicorn.Server | None = None

    def route(self, request_model: type[BaseModel], handler: Handler) -> None:
        """Serve ``POST /<request_model name>`` with ``handler(request, caller) -> reply``."""
        path = f"/{request_model.__name__}"

        async def endpoint(request: Request) -> Response:
            return await self._handle(request, path, request_model, handler)

        self.app.router.routes.append(Route(path, endpoint, methods=["POST"], name=request_model.__name__))

    async def _handle(
        self, request: Request, path: str, model: type[BaseModel], handler: Handler
    ) -> Response:
        raw = await request.body()
        target = _signed_target(path, request.scope.get("query_string", b""))
        try:
            caller = bt.http_auth.verify(
                request.headers,
                raw,
                method="POST",
                path=target,
                self_hotkey_ss58=self.hotkey,
                max_age=self.max_age,
                nonce_store=self.nonces,
            )
        except bt.http_auth.AuthError as exc:
            logger.debug("refused {} from {}: {}", target, request.client, exc)
            detail = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, bt.http_auth.BadSignature):
                # Say what was checked: a client that signed the path without its query, or
                # a query changed on the way, reads why here.
                detail += f" (verified POST {target} with the body as received)"
            return JSONResponse({"detail": detail}, status_code=401)
        info, reason = self.policy.check(caller.hotkey_ss58, self.metagraph())
        if info is None:
            logger.debug("blacklisted {} on {}: {}", caller.hotkey_ss58, path, reason)
            return JSONResponse({"detail": f"Blacklisted: {reason}"}, status_code=403)
        try:
            message = model.model_validate_json(raw)
        except ValidationError as exc:
            detail = "invalid request: " + validation_detail(exc, where=_body_field)
            return JSONResponse({"detail": detail}, status_code=422)
        version = getattr(message, "protocol_version", None)
        if self.protocol_version is not None and version is not None and version != self.protocol_version:
            return JSONResponse(
                {
                    "detail": f"protocol version {version} is not supported; this neuron speaks {self.protocol_version}"
                },
                status_code=400,
            )
        async with self.gate.admit(info.stake):
            try:
                reply = await _within(handler(message, info), self.handler_timeout)
            except asyncio.TimeoutError:
                logger.warning(
                    "{} from {} timed out after {}s", path, caller.hotkey_ss58, self.handler_timeout
                )
                return JSONResponse(
                    {"detail": f"handler did not finish within {self.handler_timeout:g}s"}, status_code=504
                )
            except HandlerRefusal as exc:
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return Response(reply.model_dump_json(), media_type="application/json")

    async def serve(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        """Run until :meth:`stop`; binds exactly ``host:port``."""
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        task = asyncio.create_task(self._server.serve())
        while not self._server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        if task.done():
            # uvicorn logs the bind error and exits; turn that into an error the caller can read.
            with contextlib.suppress(SystemExit):
                task.result()
            raise OSError(f"could not serve on {host}:{port} (address in use or not available)")
        logger.info(
            "serving {} on http://{}:{}",
            sorted(r.path for r in self.app.routes if isinstance(r, Route)),
            host,
            port,
        )
        if ready is not None:
            ready.set()
        await task

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True


class HandlerRefusal(Exception):
    """Raised by a handler to answer with a 4xx and a reason instead of a reply."""

    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[BaseModel], seconds: float) -> BaseModel:
        # asyncio.timeout bounds the handler without the extra task wait_for creates per call.
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - Python 3.10
    _within = asyncio.wait_for


def _signed_target(path: str, query: bytes) -> str:
    """The request target btauth/1 signs: the route's path and the query string as sent.

    The query is the raw bytes of the request line, never unquoted or re-encoded, so any
    change to it after signing fails the signature. uvicorn refuses a request line that is
    not ASCII (400), so latin-1 here only turns bytes into the same characters.
    """
    return f"{path}?{query.decode('latin-1')}" if query else path


def _body_field(loc: tuple[Any, ...]) -> str:
    return dotted(loc) or "body"
