"""The HTTP side of security: CSRF, security headers, request-size caps, the JSON we read.

- The credentials themselves (session tokens, API/subscription keys, invite tokens, made
  and hashed): :mod:`dojo.platform.credentials`.
- CSRF (:func:`check_csrf`), on every unsafe request a cookie authenticates (and the
  invite form of a visitor not logged in), two checks:

  * where the request comes from: an ``Origin`` header must name this platform (its
    public URL, or the host the request was sent to); ``Origin: null`` never does.
    Without ``Origin``, a ``Sec-Fetch-Site`` other than ``same-origin`` (or ``none``, a
    person's own navigation) is refused. A client that sends neither (not a browser)
    passes on to the token.
  * the token: ``x-csrf-token`` (or a form's ``csrf_token`` field) must be the HMAC of
    the browser's session cookies under the platform's secret (:func:`csrf_token`;
    before any log-in, of the anonymous ``dojo_csrf`` cookie). A token is therefore good
    for one session only, and no one without the secret can make one: an attacker who
    can plant cookies (a sibling subdomain, plain HTTP) still cannot pair them with a
    header that passes. :class:`SecurityMiddleware` sets the anonymous cookie on any
    response to a request that lacks it and puts the token in ``request.state.csrf_token``
    for the page to embed, masked (:func:`mask_csrf`): a different string in every
    response. Bearer tokens and ``x-api-key`` are not ambient, so need neither check.
- The log-in endpoints' rate limit per client address: :mod:`dojo.platform.services.limits`.
- :class:`SecurityMiddleware`: body caps (413 before the app reads the body when
  Content-Length says so, and while streaming otherwise), the security headers, gzip for
  clients that accept it, and a 500 for any error the app lets out, which leaves the
  connection open. A page that sets its own ``Content-Security-Policy`` keeps it.
- :func:`load_json` reads a JSON body as the platform accepts it: UTF-8, nested at most
  :data:`MAX_JSON_DEPTH` deep, finite numbers only (Python's ``json`` takes ``NaN`` and
  ``Infinity``, which no response can carry again); else :class:`BadRequest`.
  :class:`JsonBodyCheck` applies it to every JSON body before FastAPI parses it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

from loguru import logger
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request, cookie_parser

from commons.platform_contract import CSRF_COOKIE, CSRF_HEADER, MINER_COOKIE, WORKER_COOKIE
from dojo.platform.errors import BadRequest, Forbidden
from template.log import quoted

CSRF_FORM_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def mask_csrf(token: str) -> str:
    """``token`` as a page embeds it: a fresh random pad and the token XOR that pad, in
    URL-safe base64. Every response then carries a different string, so a compressed page
    whose length an attacker watches while reflecting guesses into it (BREACH) gives away
    nothing about the token; :func:`check_csrf` takes the mask off again."""
    raw = token.encode()
    pad = secrets.token_bytes(len(raw))
    masked = (int.from_bytes(pad, "big") ^ int.from_bytes(raw, "big")).to_bytes(len(raw), "big")
    return base64.urlsafe_b64encode(pad + masked).rstrip(b"=").decode()


def _unmask_csrf(sent: str) -> bytes:
    """The token a :func:`mask_csrf` string carries; ``b""`` for anything else."""
    try:
        data = base64.urlsafe_b64decode(sent + "=" * (-len(sent) % 4))
    except ValueError:  # not base64 (binascii.Error), or not ASCII
        return b""
    half = len(data) // 2
    if not half or len(data) != 2 * half:
        return b""
    pad, masked = data[:half], data[half:]
    return (int.from_bytes(pad, "big") ^ int.from_bytes(masked, "big")).to_bytes(half, "big")


# The cookies a CSRF token is bound to: the sessions a browser may hold at once.
SESSION_COOKIES = (WORKER_COOKIE, MINER_COOKIE)


def csrf_token(secret: bytes, cookies: Mapping[str, str]) -> str:
    """The CSRF token of a browser with these ``cookies``: the HMAC-SHA256, under the
    platform's ``secret``, of its session cookies (both, when it is a worker and a miner
    at once), or, before any log-in, of its anonymous ``dojo_csrf`` cookie. A log-in or
    log-out changes it: the page the browser opens next carries the new one."""
    sessions = [f"{name}={cookies[name]}" for name in SESSION_COOKIES if cookies.get(name)]
    binding = "session\n" + "\n".join(sessions) if sessions else "anonymous\n" + cookies.get(CSRF_COOKIE, "")
    digest = hmac.new(secret, b"dojo-csrf\n" + binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(expected: str, sent: str) -> bool:
    """Whether ``sent`` is the ``expected`` token, as it is or masked by :func:`mask_csrf`.
    Compared as bytes: ``hmac.compare_digest`` refuses ``str`` with non-ASCII characters,
    which a client may put in the header."""
    if not expected or not sent:
        return False
    want = expected.encode()
    as_sent = sent.encode()
    return hmac.compare_digest(want, as_sent) or hmac.compare_digest(want, _unmask_csrf(sent))


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case, the default port left out (as
    browsers write ``Origin``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def request_origin_problem(request: Request, public_url: str) -> str | None:
    """Why an unsafe cookie request must be refused for where it comes from, or None.

    Allowed: an ``Origin`` that is the platform's public URL or the request's own host;
    without ``Origin``, a ``Sec-Fetch-Site`` of ``same-origin`` or ``none``, or neither
    header (a client other than a browser, which carries no one else's cookies)."""
    origin = request.headers.get("origin")
    if origin is not None:
        allowed = {_origin_of(public_url), _origin_of(str(request.base_url))}
        try:
            sent = _origin_of(origin.strip()) if origin.strip().lower() != "null" else "null"
        except ValueError:  # a port that is no number
            sent = origin
        if sent in allowed:
            return None
        return f"the request comes from {origin[:100]!r}, not from this platform ({_origin_of(public_url)})"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"the browser says the request comes from another site (Sec-Fetch-Site: {site[:40]})"
    return None


async def check_csrf(request: Request) -> None:
    """Raise :class:`Forbidden` unless an unsafe cookie-authenticated request comes from the
    platform's own pages: its origin (:func:`request_origin_problem`) and its token
    (:func:`csrf_token`). The app's state holds the secret and the public URL."""
    if request.method not in UNSAFE_METHODS:
        return
    state = request.app.state
    problem = request_origin_problem(request, state.settings.base_url)
    if problem is not None:
        raise Forbidden(f"cross-site request refused: {problem}")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FORM_FIELD)
        sent = value if isinstance(value, str) else ""
    cookies = request.cookies
    bound = any(cookies.get(name) for name in SESSION_COOKIES) or cookies.get(CSRF_COOKIE)
    if not bound or not csrf_matches(csrf_token(state.csrf_secret, cookies), sent):
        raise Forbidden(
            f"missing or wrong CSRF token: send the token of the page you came from (its "
            f'<meta name="csrf-token">) in the {CSRF_HEADER} header, or use a bearer token; '
            "after logging in or out elsewhere, reload the page"
        )


# --- JSON bodies -----------------------------------------------------------------------------

# Deeper than any body of the API needs (a task with a JSON completion is some 10 levels),
# far below what would exhaust the interpreter's stack in a parser, a validator, a renderer.
MAX_JSON_DEPTH = 64
_FLOAT_DIGITS = 308  # an integer with more digits may be past the largest double


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> NoReturn:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON syntax, but no double holds it
        raise _NotFinite(text)
    return value


def _bounded_int(text: str) -> int:
    # A double's range, so that code comparing it with floats cannot overflow.
    if len(text) > _FLOAT_DIGITS and math.isinf(float(text)):
        raise _NotFinite(text)
    return int(text)


_DECODER = json.JSONDecoder(
    parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_refuse_constant
)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in ``value`` (no recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def load_json(body: bytes | str, what: str = "the body") -> Any:
    """``body`` parsed as JSON, or :class:`BadRequest` saying why not (``what`` names it).

    Refused: text that is not UTF-8 (RFC 8259 §8.1), not JSON, nested deeper than
    :data:`MAX_JSON_DEPTH`, or holding a number no double holds (``NaN``, ``Infinity``,
    ``1e400``), which Python's ``json`` would take and no response could carry again.
    Cheap on small bodies: the depth is walked only when there are more opening brackets
    than the limit; the parser's own recursion guard stops a body that is deeper still.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start}): send JSON as UTF-8"
        ) from None
    too_deep = BadRequest(
        f"{what} nests too deeply: arrays and objects may nest at most {MAX_JSON_DEPTH} levels deep"
    )
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise too_deep from None
    except _NotFinite as exc:
        number = exc.args[0] if len(exc.args[0]) <= 24 else exc.args[0][:20] + "…"
        raise BadRequest(
            f"{what} holds {number}, which is not a finite number: JSON numbers must be finite "
            "(no NaN or Infinity, nothing beyond ±1.7e308)"
        ) from None
    except ValueError as exc:  # json.JSONDecodeError, with the place it stopped
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


def is_json_content_type(content_type: bytes) -> bool:
    """The content types FastAPI parses as JSON: ``application/json``, ``application/*+json``."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class Disconnected(Exception):
    """The client went away before its body was in."""


async def read_body(receive: Receive) -> bytes:
    """The whole request body; :class:`Disconnected` if the client leaves first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever the connection says next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class JsonBodyCheck:
    """Pure ASGI, in front of FastAPI: a JSON body that :func:`load_json` refuses is a 400
    with its reason, before FastAPI's ``json.loads`` (which takes ``NaN``, and words a
    too-deep body as "There was an error parsing the body") sees it; any other body goes
    on as it came. ``own_parsers``: paths whose routes read their body with
    :func:`load_json` themselves (create-tasks, up to 8 MiB), not to parse it twice."""

    def __init__(self, app: ASGIApp, own_parsers: Collection[str] = ()):
        self.app = app
        self.own_parsers = frozenset(own_parsers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.own_parsers:
            await self.app(scope, receive, send)
            return
        content_type = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
        if not is_json_content_type(content_type):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive)
        except HTTPException as exc:  # the body cap of SecurityMiddleware
            await plain_error(send, exc.status_code, str(exc.detail))
            return
        except Disconnected:
            return
        if body:
            try:
                load_json(body)
            except BadRequest as exc:
                await plain_error(send, exc.status_code, exc.detail)
                return
        await self.app(scope, replay(body, receive), send)


# --- the front: headers, caps, compression, the last word on errors -----------------------------

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = b"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
# Below about one TCP segment, compressing saves no round trip: the hot path's small JSON
# answers (a submission's receipt, a 204) go out as they are, at no cost.
COMPRESS_MIN_BYTES = 1400
# zlib's default: nearly level 9's ratio on HTML and JSON at a fraction of its CPU.
COMPRESS_LEVEL = 6
INTERNAL_ERROR = "internal error: the platform could not answer this request; it has been logged, try again"


class SecurityMiddleware:
    """Pure ASGI (no per-request task switch): body caps, headers, the CSRF cookie, gzip,
    and a 500 for any exception the app lets out.

    Compression and BREACH: pages carry the CSRF token, and a task page also carries
    text a miner chose, so an attacker who can reflect guesses into a page and watch its
    compressed length could learn the token one character at a time. Pages therefore
    never carry the token itself: ``request.state.csrf_token`` (:func:`csrf_token` of the
    request's cookies) is masked afresh for every response (:func:`mask_csrf`). No other
    secret repeats across compressed responses (a
    key or session token appears once, in the answer that created it).

    An exception from the app is logged and answered with a 500 ``{"detail": …}`` when no
    response has started, and swallowed when one was already sent in full (FastAPI's own
    500 raises again after sending it): either way uvicorn keeps the keep-alive
    connection, where an exception reaching it would close it.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        large_body_paths: dict[str, int] | None = None,
        secure_cookies: bool = False,
        *,
        csrf_secret: bytes,
    ):
        self.app = app
        self.compressing_app = GZipMiddleware(
            app, minimum_size=COMPRESS_MIN_BYTES, compresslevel=COMPRESS_LEVEL
        )
        self.max_body_bytes = max_body_bytes
        self.large_body_paths = large_body_paths or {}
        self.secure_cookies = secure_cookies
        self.csrf_secret = csrf_secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.large_body_paths.get(scope["path"], self.max_body_bytes)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await plain_error(send, 413, f"request body larger than {limit} bytes")
            return

        new_csrf = None
        if not (b"authorization" in headers or b"x-api-key" in headers):
            # Starlette's own parser, so that check_csrf reads the very cookies the token was made of.
            values = cookie_parser(headers.get(b"cookie", b"").decode("latin-1"))
            if not values.get(CSRF_COOKIE):
                values[CSRF_COOKIE] = new_csrf = secrets.token_urlsafe(32)
            scope.setdefault("state", {})["csrf_token"] = mask_csrf(csrf_token(self.csrf_secret, values))

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
            return message

        started = finished = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
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
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        app = self.compressing_app if b"gzip" in headers.get(b"accept-encoding", b"") else self.app
        try:
            await app(scope, capped_receive, send_with_headers)
        except Exception as exc:
            if started and not finished:
                raise  # half a response is out: only closing the connection can end it
            logger.opt(exception=exc).error(
                "internal error answering {} {}", quoted(scope["method"]), quoted(scope["path"])
            )
            if not started:
                await plain_error(send, 500, INTERNAL_ERROR)


async def plain_error(send: Send, status: int, detail: str) -> None:
    """``{"detail": detail}`` with ``status`` and the security headers, straight to ``send``."""
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
