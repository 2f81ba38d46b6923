"""An in-memory worker platform that answers as ``docs/platform-api.md`` says, for MockTransport.

It checks what a client can get wrong: real sr25519 signatures over the exact challenge
message, single-use nonces, bearer tokens, API keys, camelCase bodies. It reads requests and
writes replies with the platform's own wire models (``commons.dojo_wire``). Faults
(``fail_next``) make it answer 5xx or raise transport errors, the way a real network
does, so that the client's retries can be watched request by request.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx
import pydantic
from bittensor.keyfiles import Keypair

from commons import dojo_wire as wire

_Body = TypeVar("_Body", bound=pydantic.BaseModel)

# A fault answers one request in the platform's place; None lets that request through.
Fault = Callable[[httpx.Request], httpx.Response] | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _error(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail})


def _reply(body: pydantic.BaseModel, status: int = 200, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, json=body.model_dump(mode="json", by_alias=True), **kwargs)


class _Invalid(Exception):
    """A request body the platform's model refuses: a 422."""


def _read(model: type[_Body], body: Any) -> _Body:
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        raise _Invalid(str(exc)) from None


@dataclass
class _Key:
    id: int
    secret: str
    created_at: datetime
    disabled: bool = False

    @property
    def prefix(self) -> str:
        return self.secret[:16]  # as the platform shows it


@dataclass
class ContractPlatform:
    base_url: str = "http://platform.test"
    registered: set[str] = field(default_factory=set)
    session_ttl: timedelta = timedelta(hours=24)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    nonces: dict[str, tuple[str, str]] = field(default_factory=dict)  # nonce -> (hotkey, message)
    sessions: dict[str, str] = field(default_factory=dict)  # token -> hotkey
    keys: dict[str, dict[str, list[_Key]]] = field(default_factory=dict)  # hotkey -> kind -> keys
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # results: list[wire.TaskResultOut]
    last_key_id: int = 0

    # -- faults ----------------------------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next requests with these faults, in order (None: answer normally)."""
        self.faults.extend(faults)

    @staticmethod
    def status(code: int) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: _error(code, f"injected {code}")

    @staticmethod
    def raises(exc_type: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
        def fault(request: httpx.Request) -> httpx.Response:
            raise exc_type("injected", request=request)

        return fault

    # -- the handler -----------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            return fault(request)
        # Route on the raw path, as an ASGI server does: an encoded "/" stays inside its segment.
        path, method = request.url.raw_path.decode().split("?")[0], request.method
        body = json.loads(request.content) if request.content else None
        try:
            return self._route(request, method, path, body)
        except _Invalid as exc:
            return _error(422, str(exc))

    def _route(self, request: httpx.Request, method: str, path: str, body: Any) -> httpx.Response:
        if (method, path) == ("POST", "/api/v1/miner/challenge"):
            return self._challenge(body)
        if (method, path) == ("POST", "/api/v1/miner/session"):
            return self._session(body)
        if (method, path) == ("POST", "/api/v1/miner/logout"):
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if self.sessions.pop(token, None) is None:
                return _error(401, "no miner session; log in again")
            return httpx.Response(204)
        if path.startswith("/api/v1/miner/"):
            parts = [unquote(p) for p in path.removeprefix("/api/v1/miner/").split("/")]
            return self._keys(request, method, parts)
        if path.startswith("/api/v1/tasks/"):
            return self._tasks(request, method, path.removeprefix("/api/v1/tasks/"), body)
        return _error(404, "no such route")

    def _challenge(self, body: Any) -> httpx.Response:
        hotkey = _read(wire.MinerChallengeIn, body).hotkey
        nonce = secrets.token_hex(16)
        expires = _now() + timedelta(minutes=5)
        message = "\n".join(
            [
                "dojo-platform-login",
                f"platform: {self.base_url}",
                f"hotkey: {hotkey}",
                f"nonce: {nonce}",
                f"expires: {wire.iso(expires)}",
            ]
        )
        self.nonces[nonce] = (hotkey, message)
        return _reply(wire.ChallengeOut(nonce=nonce, expires_at=expires, message=message))

    def _session(self, body: Any) -> httpx.Response:
        opening = _read(wire.MinerSessionIn, body)
        entry = self.nonces.pop(opening.nonce, None)
        if entry is None or entry[0] != opening.hotkey:
            return _error(401, "unknown, reused or expired nonce; request a new challenge")
        hotkey, message = entry
        signature = opening.signature
        try:
            ok = signature.startswith("0x") and Keypair(ss58_address=hotkey).verify(
                message.encode(), bytes.fromhex(signature[2:])
            )
        except ValueError:
            ok = False
        if not ok:
            return _error(401, "the signature does not match the hotkey")
        if hotkey not in self.registered:
            return _error(403, f"hotkey {hotkey} is not registered on the subnet")
        token = secrets.token_urlsafe(24)
        self.sessions[token] = hotkey
        return _reply(
            wire.SessionOut(token=token, expires_at=_now() + self.session_ttl),
            headers={"set-cookie": f"dojo_miner_session={token}; HttpOnly; Path=/"},
        )

    def _keys(self, request: httpx.Request, method: str, parts: list[str]) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        hotkey = self.sessions.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if hotkey is None:
            return _error(401, "no miner session; log in again")
        if "cookie" in request.headers and method != "GET" and "x-csrf-token" not in request.headers:
            return _error(403, "CSRF token missing")
        kind = parts[0]
        if kind not in ("api-keys", "subscription-keys"):
            return _error(404, "no such route")
        mine = self.keys.setdefault(hotkey, {}).setdefault(kind, [])
        if method == "POST" and len(parts) == 1:
            start = "dojo_api_" if kind == "api-keys" else "dojo_sub_"
            self.last_key_id += 1
            key = _Key(self.last_key_id, start + secrets.token_hex(16), _now())
            mine.append(key)
            created = wire.KeyCreatedOut(
                id=key.id, key=key.secret, prefix=key.prefix, created_at=key.created_at
            )
            return _reply(created, 201)
        if method == "GET" and len(parts) == 1:
            listed = [
                wire.KeyOut(
                    id=k.id, prefix=k.prefix, created_at=k.created_at, last_used_at=None, disabled=k.disabled
                )
                for k in mine
            ]
            return _reply(wire.KeyListOut(keys=listed))
        if method == "DELETE" and len(parts) == 2:
            for key in mine:
                if str(key.id) == parts[1]:
                    key.disabled = True
                    return _reply(wire.KeyDisabledOut(id=key.id, disabled=True))
            return _error(404, f"no key {parts[1]}")
        return _error(405, "method not allowed")

    def _api_key_owner(self, request: httpx.Request) -> str | None:
        secret = request.headers.get("x-api-key")
        for hotkey, kinds in self.keys.items():
            for key in kinds.get("api-keys", []):
                if key.secret == secret and not key.disabled:
                    return hotkey
        return None

    def _tasks(self, request: httpx.Request, method: str, rest: str, body: Any) -> httpx.Response:
        owner = self._api_key_owner(request)
        if owner is None:
            return _error(401, "missing, unknown or disabled API key")
        if method == "POST" and rest == "create-tasks":
            request_body = _read(wire.CreateTasksIn, body)
            if request_body.expire_at <= _now().replace(tzinfo=None):  # naive UTC, as read
                return _error(422, "expireAt must be in the future")
            task_id = secrets.token_hex(8)
            self.tasks[task_id] = {"owner": owner, "body": body, "request": request_body, "results": []}
            return _reply(wire.CreateTasksOut(body=[task_id]))
        if method == "GET" and rest.startswith("task-result/"):
            task = self.tasks.get(rest.removeprefix("task-result/"))
            if task is None or task["owner"] != owner:
                return _error(404, "no such task")
            results: list[wire.TaskResultOut] = task["results"]
            return _reply(wire.TaskResultsOut(body=wire.TaskResultsBody(task_results=results)))
        if method == "GET":
            task = self.tasks.get(rest)
            if task is None or task["owner"] != owner:
                return _error(404, "no such task")
            request_body = task["request"]
            status = wire.TaskStatusOut(
                id=rest,
                status="IN_PROGRESS",
                num_results=len(task["results"]),
                max_results=request_body.max_results,
                expire_at=request_body.expire_at,
            )
            return _reply(status)
        return _error(405, "method not allowed")
