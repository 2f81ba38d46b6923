"""Async client for the worker platform's Dojo API, as the miner uses it.

The contract is ``docs/platform-api.md``: hotkey login (challenge, then a session opened
with the challenge message signed by the hotkey), API keys and subscription keys
(generate, list, disable), invite links for workers, and tasks (create, status, results,
the validator's score) under an API key. Replies are read with the platform's own wire
models (``commons.dojo_wire``).

Transient failures (``commons.retry.is_transient``: timeouts, connection errors, 5xx) are
retried with exponential backoff and jitter; a 4xx is the platform's answer and is never
retried, and neither is a malformed URL. Every error a
caller can meet is one of these::

    DojoAPIError                 base: .status_code (None without a response), .detail
    ├── Unreachable              timeouts or connection errors, after every retry
    ├── ServerError              5xx, after every retry
    ├── BadResponse              a 2xx whose body breaks the contract, or a challenge
    │                            that does not name this platform, hotkey and nonce
    └── RequestRejected          a 4xx: the platform refused the request (not retried)
        ├── AuthRejected         401/403: not logged in, bad signature, reused nonce,
        │                        hotkey not registered, disabled or unknown key
        ├── ResourceNotFound     404: no such task or key, or another miner's
        ├── RequestInvalid       400/409/413/422: the request itself is wrong
        └── RateLimited          429: too many requests; .retry_after in seconds

The names differ from pydantic's ``ValidationError`` and the platform's own ``NotFound``
(``dojo.platform.errors``), so that code meeting both can tell them apart.

Example::

    async with DojoAPI("http://127.0.0.1:8080") as api:
        session = await api.login(wallet.hotkey)
        new_key = await api.generate_api_key()

    async with DojoAPI(url, api_key=new_key.key) as api:
        [task_id] = await api.create_task(title=..., body=..., expire_at=..., task_data=[...])
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import pydantic
from loguru import logger

from commons import dojo_wire
from commons.platform_contract import LOGIN_MESSAGE_HEADER
from commons.retry import RetryPolicy, is_transient, retry_after
from template import http_body

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_REPLY_BYTES",
    "AuthRejected",
    "BadResponse",
    "DojoAPI",
    "DojoAPIError",
    "Hotkey",
    "KeyKind",
    "RateLimited",
    "RequestInvalid",
    "RequestRejected",
    "ResourceNotFound",
    "RetryPolicy",
    "ServerError",
    "Unreachable",
    "normalize_base_url",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"


# --- errors -------------------------------------------------------------------------------


class DojoAPIError(Exception):
    """A Dojo API call failed; ``str(error)`` says what was wrong and what to do."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail if detail is not None else message


class Unreachable(DojoAPIError):
    """The platform did not answer (timeouts, refused or dropped connections) after all retries."""


class ServerError(DojoAPIError):
    """The platform answered 5xx on every attempt."""


class BadResponse(DojoAPIError):
    """The platform answered 2xx with a body the contract does not allow."""


class RequestRejected(DojoAPIError):
    """The platform refused the request with a 4xx; retrying the same request cannot help."""


class AuthRejected(RequestRejected):
    """401/403: no or expired session, bad signature, unregistered hotkey, disabled key."""


class ResourceNotFound(RequestRejected):
    """404: the task or key does not exist, or belongs to another miner."""


class RequestInvalid(RequestRejected):
    """400/409/413/422: the request is malformed or breaks a rule of the platform."""


class RateLimited(RequestRejected):
    """429: too many requests; wait ``retry_after`` seconds (None if the platform did not say)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


_STATUS_ERRORS: dict[int, type[RequestRejected]] = {
    400: RequestInvalid,
    401: AuthRejected,
    403: AuthRejected,
    404: ResourceNotFound,
    409: RequestInvalid,
    413: RequestInvalid,
    422: RequestInvalid,
    429: RateLimited,
}


class Hotkey(Protocol):
    """What login needs of a hotkey: its address and sr25519 signing (``wallet.hotkey``)."""

    @property
    def ss58_address(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class KeyKind:
    """The two kinds of miner keys, as path segments of ``/api/v1/miner/...``."""

    API = "api-keys"
    SUBSCRIPTION = "subscription-keys"


# --- helpers ------------------------------------------------------------------------------


def normalize_base_url(url: str) -> str:
    """``scheme://host[:port][/path]`` without a trailing slash; a bare host gets ``http://``."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a platform URL: {url!r}; expected e.g. {DEFAULT_BASE_URL}")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _same_origin(a: str, b: str) -> bool:
    def origin(url: str) -> tuple[str, str, int, str]:
        p = urlsplit(normalize_base_url(url))
        port = p.port or (443 if p.scheme == "https" else 80)
        return p.scheme, (p.hostname or "").lower(), port, p.path.rstrip("/")

    return origin(a) == origin(b)


def _detail_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error"))
        if isinstance(detail, str):
            return detail
        if detail is not None:
            return str(detail)[:500]
    return str(body)[:300]


class _NoCookies(DefaultCookiePolicy):
    """Refuse every cookie: the client authenticates with its bearer token or API key only.

    A stored session cookie would make unsafe requests look like browser requests, which
    the platform rightly answers with a CSRF failure.
    """

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


_M = TypeVar("_M", bound=pydantic.BaseModel)

# The most a platform reply may take, compressed and decoded (template.http_body): a task's
# results are at most TASK_MAX_RESULTS workers' answers, a few kB each; 16 MiB is far above
# any honest reply and bounds a miner's memory against a hostile or broken platform.
MAX_REPLY_BYTES = 16 * 1024 * 1024


# --- the client ---------------------------------------------------------------------------


class DojoAPI:
    """One worker platform, seen by one miner.

    ``token`` (from :meth:`login`) authorises the key endpoints; ``api_key`` the task
    endpoints. ``transport`` replaces the network (``httpx.MockTransport`` in tests);
    ``sleep`` and ``rng`` are the backoff's clock and dice.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        self.base_url = normalize_base_url(base_url)
        self.api_key = api_key
        self.token = token
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            transport=http_body.capped(MAX_REPLY_BYTES, transport, name="the platform"),
            cookies=CookieJar(policy=_NoCookies()),
            headers={"accept": "application/json"},
            follow_redirects=False,
        )

    async def __aenter__(self) -> DojoAPI:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- miner session ---------------------------------------------------------------------

    async def challenge(self, hotkey: str) -> dojo_wire.ChallengeOut:
        return await self._call(
            dojo_wire.ChallengeOut, "POST", "/api/v1/miner/challenge", json={"hotkey": hotkey}
        )

    async def login(self, hotkey: Hotkey) -> dojo_wire.SessionOut:
        """Sign the platform's challenge with the hotkey and open a session (kept as ``token``).

        The session step spends the nonce, so a transient failure there is retried from a
        fresh challenge rather than by resending the spent nonce.
        """
        address = hotkey.ss58_address
        last_error: DojoAPIError | None = None
        for attempt in range(self.retry.attempts):
            challenge = await self.challenge(address)
            self._check_challenge(challenge, address)
            signature = "0x" + bytes(hotkey.sign(challenge.message.encode("utf-8"))).hex()
            try:
                session = await self._call(
                    dojo_wire.SessionOut,
                    "POST",
                    "/api/v1/miner/session",
                    json={"hotkey": address, "nonce": challenge.nonce, "signature": signature},
                    retry=False,
                )
            except (Unreachable, ServerError) as exc:
                last_error = exc
                if attempt + 1 < self.retry.attempts:
                    await self._backoff(attempt, "POST /api/v1/miner/session", str(exc), "-")
                continue
            self.token = session.token
            logger.info("dojo api: logged in to {} as {}", self.base_url, address)
            return session
        assert last_error is not None
        raise last_error

    async def logout(self) -> None:
        """End the session on the platform too (not only forget the token)."""
        await self._send(
            "POST", "/api/v1/miner/logout", json=None, headers=self._auth_headers("session"), retry=True
        )
        self.token = None

    def _check_challenge(self, challenge: dojo_wire.ChallengeOut, address: str) -> None:
        """Sign only a message that binds this platform, this hotkey and this nonce.

        A platform that handed us another platform's challenge would otherwise get a
        signature it could replay there.
        """
        lines = challenge.message.split("\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        problems = []
        if not lines or lines[0] != LOGIN_MESSAGE_HEADER:
            problems.append(f"it does not start with {LOGIN_MESSAGE_HEADER!r}")
        platform = fields.get("platform", "")
        try:
            same = _same_origin(platform, self.base_url)
        except ValueError:
            same = False
        if not same:
            problems.append(f"it names platform {platform!r}, not {self.base_url}")
        if fields.get("hotkey") != address:
            problems.append(f"it names hotkey {fields.get('hotkey')!r}, not {address}")
        if fields.get("nonce") != challenge.nonce:
            problems.append("its nonce differs from the challenge's")
        if problems:
            raise BadResponse(
                "refusing to sign the login challenge: " + "; ".join(problems) + ". "
                "Check the platform URL (it must be the platform's public address)."
            )

    # -- keys ------------------------------------------------------------------------------

    async def generate_key(self, kind: str) -> dojo_wire.KeyCreatedOut:
        """A new key of ``kind`` (:class:`KeyKind`); the secret is in the reply only."""
        return await self._call(dojo_wire.KeyCreatedOut, "POST", _keys_path(kind), auth="session")

    async def list_keys(self, kind: str) -> list[dojo_wire.KeyOut]:
        """Every key of ``kind``, disabled ones included."""
        reply = await self._call(dojo_wire.KeyListOut, "GET", _keys_path(kind), auth="session")
        return reply.keys

    async def disable_key(self, kind: str, key_id: int | str) -> int:
        """Disable a key at once (its id, or the id as typed); returns its id."""
        reply = await self._call(
            dojo_wire.KeyDisabledOut, "DELETE", f"{_keys_path(kind)}/{_segment(str(key_id))}", auth="session"
        )
        if not reply.disabled:
            raise BadResponse(f"the platform did not disable key {key_id}", detail=str(reply))
        return reply.id

    async def generate_api_key(self) -> dojo_wire.KeyCreatedOut:
        return await self.generate_key(KeyKind.API)

    async def generate_subscription_key(self) -> dojo_wire.KeyCreatedOut:
        return await self.generate_key(KeyKind.SUBSCRIPTION)

    # -- invites ---------------------------------------------------------------------------

    async def create_invite(self) -> dojo_wire.InviteOut:
        """A new one-time invite link for a worker to join this miner's team (no wallet needed)."""
        return await self._call(dojo_wire.InviteOut, "POST", "/api/v1/miner/invites", auth="session")

    # -- tasks -----------------------------------------------------------------------------

    async def create_task(
        self,
        *,
        title: str,
        body: str,
        expire_at: datetime,
        task_data: Sequence[dict[str, Any]],
        max_results: int,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Create a task for the miner's workers; returns the platform's task ids.

        ``idempotency_key`` (1–128 printable ASCII characters) names this create across
        calls: a caller that may repeat it after a crash passes a key derived from what it
        is creating, and gets the first call's tasks back. Without one, a fresh key covers
        this call's own retries only.
        """
        if expire_at.tzinfo is None:
            raise ValueError("expire_at must be timezone-aware (UTC)")
        payload = {
            "title": title,
            "body": body,
            "expireAt": expire_at.isoformat(),
            "taskData": list(task_data),
            "maxResults": max_results,
        }
        # One key for every retry of this call: a retry after a timeout that came when the
        # platform had already stored the tasks gets those tasks back, not new ones.
        reply = await self._call(
            dojo_wire.CreateTasksOut,
            "POST",
            "/api/v1/tasks/create-tasks",
            json=payload,
            auth="api_key",
            headers={"idempotency-key": idempotency_key or uuid.uuid4().hex},
        )
        if not reply.success or not reply.body:
            raise RequestRejected(
                f"the platform did not create the task: {reply.error}", detail=str(reply.error)
            )
        return reply.body

    async def task_status(self, task_id: str) -> dojo_wire.TaskStatusOut:
        return await self._call(
            dojo_wire.TaskStatusOut, "GET", f"/api/v1/tasks/{_segment(task_id)}", auth="api_key"
        )

    async def task_results(self, task_id: str) -> list[dojo_wire.TaskResultOut]:
        reply = await self._call(
            dojo_wire.TaskResultsOut,
            "GET",
            f"/api/v1/tasks/task-result/{_segment(task_id)}",
            auth="api_key",
            check=_numeric_values,
        )
        if not reply.success:
            raise RequestRejected(f"the platform returned no results: {reply.error}", detail=str(reply.error))
        return reply.body.task_results

    async def report_score(self, task_id: str, score: float) -> dojo_wire.TaskScoreOut:
        """Tell the platform the validator's score for one of its tasks (0..1, from a
        ``ScoringResult``), so that the workers who answered it see what it earned; a
        repeat replaces it."""
        return await self._call(
            dojo_wire.TaskScoreOut,
            "PUT",
            f"/api/v1/tasks/{_segment(task_id)}/score",
            json={"score": score},
            auth="api_key",
        )

    # -- transport -------------------------------------------------------------------------

    def _auth_headers(self, auth: str | None) -> dict[str, str]:
        if auth == "session":
            if not self.token:
                raise AuthRejected("no miner session: log in first (`authenticate` in the `dojo` shell)")
            return {"authorization": f"Bearer {self.token}"}
        if auth == "api_key":
            if not self.api_key:
                raise AuthRejected("no API key: set DOJO_API_KEY (generate one with `dojo api-key generate`)")
            return {"x-api-key": self.api_key}
        return {}

    async def _call(
        self,
        model: type[_M],
        method: str,
        path: str,
        *,
        json: Any = None,
        auth: str | None = None,
        retry: bool = True,
        headers: dict[str, str] | None = None,
        check: Callable[[_M], None] | None = None,
    ) -> _M:
        """The reply to one request, read as ``model``; ``check`` may refuse more of it
        (a ``ValueError``), as the reply's model allows more than this client takes."""
        response = await self._send(
            method, path, json=json, headers={**self._auth_headers(auth), **(headers or {})}, retry=retry
        )
        try:
            reply = model.model_validate(response.json())
            if check is not None:
                check(reply)
            return reply
        except (ValueError, pydantic.ValidationError) as exc:
            raise BadResponse(
                f"{method} {path}: the platform's reply does not match the API contract "
                f"(docs/platform-api.md): {exc}",
                status_code=response.status_code,
            ) from exc

    async def _send(
        self, method: str, path: str, *, json: Any, headers: dict[str, str], retry: bool
    ) -> httpx.Response:
        request_id = uuid.uuid4().hex[:12]
        headers = {**headers, "x-request-id": request_id}
        what = f"{method} {path}"
        attempts = self.retry.attempts if retry else 1
        for attempt in range(attempts):
            last = attempt + 1 >= attempts
            try:
                response = await self._client.request(method, path, json=json, headers=headers)
            except http_body.ResponseTooLarge as exc:
                # Not retried: the same request would get the same reply.
                raise BadResponse(f"{what}: {exc}") from exc
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if last or not is_transient(exc):
                    raise Unreachable(
                        f"{what}: the platform at {self.base_url} did not answer ({reason}) "
                        f"after {attempt + 1} attempt(s); check the URL and that it is running"
                    ) from exc
                await self._backoff(attempt, what, reason, request_id)
                continue
            # A 4xx, even one transient elsewhere (408, 425, 429), is the platform's answer to
            # this miner and is handed over (RateLimited with its Retry-After), never retried.
            if is_transient(response.status_code) and response.status_code >= 500:
                detail = _detail_of(response)
                if last:
                    raise ServerError(
                        f"{what}: the platform failed with {response.status_code} ({detail}) "
                        f"after {attempts} attempt(s)",
                        status_code=response.status_code,
                        detail=detail,
                    )
                await self._backoff(attempt, what, f"{response.status_code} {detail}", request_id)
                continue
            if response.status_code >= 400:
                raise self._rejection(what, response)
            logger.debug("dojo api {} -> {} [{}]", what, response.status_code, request_id)
            return response
        raise AssertionError("unreachable")  # the loop always returns or raises

    async def _backoff(self, attempt: int, what: str, reason: str, request_id: str) -> None:
        delay = self.retry.delay(attempt, self._rng)
        logger.warning(
            "dojo api {} failed ({}); retry {}/{} in {:.2f}s [{}]",
            what,
            reason,
            attempt + 1,
            self.retry.attempts - 1,
            delay,
            request_id,
        )
        await self._sleep(delay)

    @staticmethod
    def _rejection(what: str, response: httpx.Response) -> RequestRejected:
        detail = _detail_of(response)
        status = response.status_code
        cls = _STATUS_ERRORS.get(status, RequestRejected)
        message = f"{what}: {status} {detail}"
        if cls is RateLimited:
            return RateLimited(
                message, status_code=status, detail=detail, retry_after=retry_after(response.headers)
            )
        return cls(message, status_code=status, detail=detail)


# A result's value as the miner takes it: {cid: rank} or {cid: score}. The server's
# ``ResultItem`` also reads a worker's ranking given as a list, which it stores as this dict.
_VALUES = pydantic.TypeAdapter(dict[str, float])


def _numeric_values(reply: dojo_wire.TaskResultsOut) -> None:
    for result in reply.body.task_results:
        for item in result.result_data:
            item.value = _VALUES.validate_python(item.value)


def _keys_path(kind: str) -> str:
    if kind not in (KeyKind.API, KeyKind.SUBSCRIPTION):
        raise ValueError(f"unknown key kind {kind!r}; use KeyKind.API or KeyKind.SUBSCRIPTION")
    return f"/api/v1/miner/{kind}"


def _segment(value: str) -> str:
    """A path segment from an id, so that an id cannot reach another route."""
    if not value:
        raise ValueError("an id must not be empty")
    return quote(value, safe="")
