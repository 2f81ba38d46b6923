"""An in-memory worker platform that answers as ``docs/platform-api.md`` says, for MockTransport.

It checks what a client can get wrong: real sr25519 signatures over the exact challenge
message, single-use nonces, bearer tokens, API keys, camelCase bodies. Faults
(``fail_next``) make it answer 5xx or raise transport errors, the way a real network
does, so that the client's retries can be watched request by request.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import httpx
from bittensor.keyfiles import Keypair

# A fault answers one request in the platform's place; None lets that request through.
Fault = Callable[[httpx.Request], httpx.Response] | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _error(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail})


@dataclass
class _Key:
    id: str
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
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

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

    def _challenge(self, body: dict[str, Any]) -> httpx.Response:
        nonce = secrets.token_hex(16)
        expires = _iso(_now() + timedelta(minutes=5))
        message = "\n".join(
            [
                "dojo-platform-login",
                f"platform: {self.base_url}",
                f"hotkey: {body['hotkey']}",
                f"nonce: {nonce}",
                f"expires: {expires}",
            ]
        )
        self.nonces[nonce] = (body["hotkey"], message)
        return httpx.Response(200, json={"nonce": nonce, "expiresAt": expires, "message": message})

    def _session(self, body: dict[str, Any]) -> httpx.Response:
        entry = self.nonces.pop(body.get("nonce", ""), None)
        if entry is None or entry[0] != body.get("hotkey"):
            return _error(401, "unknown, reused or expired nonce; request a new challenge")
        hotkey, message = entry
        signature = body.get("signature", "")
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
        return httpx.Response(
            200,
            json={"token": token, "expiresAt": _iso(_now() + self.session_ttl)},
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
            key = _Key(secrets.token_hex(8), start + secrets.token_hex(16), _now())
            mine.append(key)
            return httpx.Response(
                200,
                json={
                    "id": key.id,
                    "key": key.secret,
                    "prefix": key.prefix,
                    "createdAt": _iso(key.created_at),
                },
            )
        if method == "GET" and len(parts) == 1:
            listed = [
                {
                    "id": k.id,
                    "prefix": k.prefix,
                    "createdAt": _iso(k.created_at),
                    "lastUsedAt": None,
                    "disabled": k.disabled,
                }
                for k in mine
            ]
            return httpx.Response(200, json={"keys": listed})
        if method == "DELETE" and len(parts) == 2:
            for key in mine:
                if key.id == parts[1]:
                    key.disabled = True
                    return httpx.Response(200, json={"id": key.id, "disabled": True})
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
            expire_at = datetime.fromisoformat(body["expireAt"])
            if expire_at <= _now():
                return _error(422, "expireAt must be in the future")
            task_id = secrets.token_hex(8)
            self.tasks[task_id] = {"owner": owner, "body": body, "results": []}
            return httpx.Response(200, json={"success": True, "body": [task_id], "error": None})
        if method == "GET" and rest.startswith("task-result/"):
            task = self.tasks.get(rest.removeprefix("task-result/"))
            if task is None or task["owner"] != owner:
                return _error(404, "no such task")
            return httpx.Response(200, json={"success": True, "body": {"taskResults": task["results"]}})
        if method == "GET":
            task = self.tasks.get(rest)
            if task is None or task["owner"] != owner:
                return _error(404, "no such task")
            return httpx.Response(
                200,
                json={
                    "id": rest,
                    "status": "IN_PROGRESS",
                    "numResults": len(task["results"]),
                    "maxResults": task["body"]["maxResults"],
                    "expireAt": task["body"]["expireAt"],
                },
            )
        return _error(405, "method not allowed")
