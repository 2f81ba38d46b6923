"""Secrets, CSRF, log-in rate limits, security headers and request-size caps.

- Secrets (session tokens, API/subscription keys, invite tokens) carry 256 random bits and
  are stored as their SHA-256 (a slow hash buys nothing for secrets this long).
- CSRF: cookie-authenticated unsafe requests must echo the ``dojo_csrf`` cookie in the
  ``x-csrf-token`` header (double-submit cookie; plain HTML forms may send a
  ``csrf_token`` field instead). :class:`SecurityMiddleware` sets the cookie on any response
  to a request that lacks it, and puts the token in ``request.state.csrf_token`` so a page
  can embed it. Bearer tokens and ``x-api-key`` are not ambient, so need no CSRF token.
- :class:`RateLimiter`: a sliding window per client address for the log-in endpoints.
- :class:`SecurityMiddleware`: body caps (413 before the app reads the body when
  Content-Length says so, and while streaming otherwise), and the security headers.
  A page that sets its own ``Content-Security-Policy`` keeps it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from dojo.platform.errors import Forbidden, RateLimited

KEY_PREFIX = "sk-"
MINER_TOKEN_PREFIX = "dms_"
WORKER_TOKEN_PREFIX = "dws_"
INVITE_PREFIX = "inv_"
CSRF_COOKIE = "dojo_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_secret(prefix: str) -> str:
    """``prefix`` followed by 256 random bits, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What a key list shows: ``sk-`` and the next 8 characters."""
    return key[: len(KEY_PREFIX) + 8]


async def check_csrf(request: Request) -> None:
    """Raise :class:`Forbidden` unless an unsafe cookie-authenticated request carries the token."""
    if request.method not in UNSAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FORM_FIELD)
        sent = value if isinstance(value, str) else ""
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise Forbidden(
            f"missing or wrong CSRF token: send the value of the {CSRF_COOKIE} cookie in the "
            f"{CSRF_HEADER} header (or use a bearer token)"
        )


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key; thread-safe."""

    def __init__(self, limit: int, window: float):
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                retry = hits[0] + self.window - now
                raise RateLimited(
                    f"too many log-in attempts from this address; try again in {retry:.0f} s",
                    retry_after=retry,
                )
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle clients rather than grow without bound
                for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[stale]


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = b"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"


class SecurityMiddleware:
    """Pure ASGI (no per-request task switch): body caps, headers, the CSRF cookie."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        large_body_paths: dict[str, int] | None = None,
        secure_cookies: bool = False,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.large_body_paths = large_body_paths or {}
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.large_body_paths.get(scope["path"], self.max_body_bytes)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _plain_error(send, 413, f"request body larger than {limit} bytes")
            return

        new_csrf = None
        if not (b"authorization" in headers or b"x-api-key" in headers):
            cookies = SimpleCookie()
            try:
                cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
            except Exception:  # a malformed Cookie header is the client's problem; issue a fresh token
                cookies = SimpleCookie()
            token = cookies[CSRF_COOKIE].value if CSRF_COOKIE in cookies else None
            if not token:
                token = new_csrf = secrets.token_urlsafe(32)
            scope.setdefault("state", {})["csrf_token"] = token

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in response_headers}
                response_headers.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                if b"content-security-policy" not in names:
                    content_type = next((v for n, v in response_headers if n.lower() == b"content-type"), b"")
                    response_headers.append(
                        (
                            b"content-security-policy",
                            PAGE_CSP if content_type.startswith(b"text/html") else API_CSP,
                        )
                    )
                if new_csrf is not None:
                    cookie = f"{CSRF_COOKIE}={new_csrf}; Path=/; SameSite=Lax"
                    if self.secure_cookies:
                        cookie += "; Secure"
                    response_headers.append((b"set-cookie", cookie.encode()))
                message["headers"] = response_headers
            await send(message)

        await self.app(scope, capped_receive, send_with_headers)


async def _plain_error(send: Send, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
                (b"content-security-policy", API_CSP),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
