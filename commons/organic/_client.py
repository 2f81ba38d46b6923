"""The organic API client: async httpx, retries through :mod:`commons.retry`, bounded reads.

Two ways to authenticate, as the API has:

- an API key (``dojo validator organic-key create``): ``OrganicClient(url, api_key=KEY)``;
- a hotkey signature (btauth/1, another subnet's validator): ``OrganicClient(url,
  keypair=wallet.hotkey, validator_hotkey=SS58)``; every request, and every retry of it, is
  signed afresh over its method, path with query, and body.

Transient failures (``commons.retry.is_transient``: connection errors, timeouts, 408, 425,
429, 5xx) are retried with backoff and the server's ``Retry-After``; everything else raises
at once (the tree is in
:mod:`commons.organic._errors`). A submit without an ``external_id`` is given one, so a
retried submit never makes two tasks.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from bittensor import http_auth
from pydantic import BaseModel, ValidationError

from commons.organic._errors import OrganicResponseError, OrganicUnavailable, refusal
from commons.organic._models import TaskAccepted, TaskPage, TaskRequest, TaskView, Usage
from commons.retry import RetryPolicy, is_transient, retry_after
from template.http_body import ResponseTooLarge, capped

ModelT = TypeVar("ModelT", bound=BaseModel)

DEFAULT_RETRY = RetryPolicy(attempts=5, base_delay=0.5, max_delay=30.0)
MAX_RESPONSE_BYTES = 16 << 20
FINAL_STATES = frozenset({"scored", "expired", "failed"})


class OrganicClient:
    """A caller of one validator's organic API. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        keypair: Any = None,
        validator_hotkey: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if (api_key is None) == (keypair is None):
            raise ValueError("give an api_key or a keypair (with validator_hotkey), not both")
        if keypair is not None and not validator_hotkey:
            raise ValueError("a signing caller names the validator's hotkey (validator_hotkey)")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._keypair = keypair
        self._receiver = validator_hotkey
        self.retry = retry
        self.max_response_bytes = max_response_bytes
        self._rng = random.Random()
        # Capped in the transport too: it bounds the body after decompression, which the
        # running count in _read alone cannot (one gzip chunk may inflate a thousandfold).
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=capped(max_response_bytes, transport, name="the validator"),
        )

    async def __aenter__(self) -> OrganicClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the API ----------------------------------------------------------------------------

    async def submit(self, task: TaskRequest | Mapping[str, Any]) -> TaskAccepted:
        """``POST /v1/tasks``: the task on the validator's disk, queued (202)."""
        request = task if isinstance(task, TaskRequest) else TaskRequest.model_validate(task)
        if request.external_id is None:
            request = request.model_copy(update={"external_id": uuid.uuid4().hex})
        body = request.model_dump_json(exclude_none=True).encode()
        return await self._call("POST", "/v1/tasks", TaskAccepted, body=body)

    async def task(self, task_id: str, *, raw: bool = False) -> TaskView:
        """``GET /v1/tasks/{id}``; with ``raw`` each worker's answer under a pseudonym."""
        return await self._call("GET", f"/v1/tasks/{task_id}", TaskView, query={"raw": "1"} if raw else None)

    async def tasks(
        self,
        *,
        status: str | None = None,
        since: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> TaskPage:
        """``GET /v1/tasks``: this caller's tasks, newest first, a page at a time."""
        query = {
            k: str(v)
            for k, v in {"status": status, "since": since, "cursor": cursor, "limit": limit}.items()
            if v is not None
        }
        return await self._call("GET", "/v1/tasks", TaskPage, query=query or None)

    async def usage(self) -> Usage:
        """``GET /v1/usage``: this caller's limits and what is left of them."""
        return await self._call("GET", "/v1/usage", Usage)

    async def webhook_secret(self) -> str:
        """``GET /v1/webhook-secret``: a hotkey caller's webhook secret (an API key's is shown
        once, when the key is made)."""
        return (await self._call("GET", "/v1/webhook-secret", _Secret)).webhook_secret

    async def wait(
        self,
        task_ids: Iterable[str],
        *,
        poll: float = 5.0,
        timeout: float | None = None,
        raw: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, TaskView]:
        """Poll until every task is final (scored, expired or failed), or ``timeout`` seconds
        pass (then the views as they are); ``on_progress(done, total)`` after each pass."""
        pending = list(dict.fromkeys(task_ids))
        views: dict[str, TaskView] = {}
        started = time.monotonic()
        while True:
            for task_id in list(pending):
                view = await self.task(task_id, raw=raw)
                views[task_id] = view
                if view.status in FINAL_STATES:
                    pending.remove(task_id)
            if on_progress is not None:
                on_progress(len(views) - len(pending), len(views))
            if not pending or (timeout is not None and time.monotonic() - started >= timeout):
                return views
            await asyncio.sleep(poll)

    # --- the wire -----------------------------------------------------------------------------

    def _headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        else:
            headers.update(
                http_auth.sign(
                    self._keypair, method=method, path=target, body=body, receiver_ss58=self._receiver
                )
            )
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        model: type[ModelT],
        *,
        body: bytes = b"",
        query: Mapping[str, str] | None = None,
    ) -> ModelT:
        target = path + ("?" + urlencode(query) if query else "")
        last = ""
        for attempt in range(self.retry.attempts):
            wait: float | None = None
            try:
                request = self._http.build_request(
                    method, target, content=body or None, headers=self._headers(method, target, body)
                )
                response = await self._http.send(request, stream=True)
                try:
                    raw = await self._read(response)
                finally:
                    await response.aclose()
            except ResponseTooLarge as exc:
                raise OrganicResponseError(
                    f"{method} {path}: the answer is over the {self.max_response_bytes} bytes read ({exc})"
                ) from exc
            except httpx.TransportError as exc:  # connection refused, reset, timed out
                last = f"{type(exc).__name__}: {exc}"
                if not is_transient(exc):  # a malformed URL: no try mends it
                    raise OrganicUnavailable(f"{method} {self.base_url}{path}: {last}") from exc
            else:
                status = response.status_code
                if status < 300:
                    try:
                        return model.model_validate_json(raw)
                    except ValidationError as exc:
                        raise OrganicResponseError(
                            f"{method} {path}: not a {model.__name__}: {exc}"
                        ) from None
                detail = _detail(raw)
                if is_transient(status):
                    last, wait = f"{status}: {detail}", retry_after(response.headers)
                    if status == 429 and attempt == self.retry.attempts - 1:
                        raise refusal(status, detail, wait)
                else:
                    raise refusal(status, detail, retry_after(response.headers))
            if attempt < self.retry.attempts - 1:
                await asyncio.sleep(self.retry.delay(attempt, self._rng, retry_after=wait))
        raise OrganicUnavailable(
            f"{method} {self.base_url}{path} failed {self.retry.attempts} times; last: {last}"
        )

    async def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise OrganicResponseError(
                f"the answer is {declared} bytes, over the {self.max_response_bytes} read"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise OrganicResponseError(f"the answer is over the {self.max_response_bytes} bytes read")
            chunks.append(chunk)
        return b"".join(chunks)


class _Secret(BaseModel):
    webhook_secret: str


def _detail(raw: bytes) -> str:
    text = raw[:2000].decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return str(value["detail"]) if isinstance(value, dict) and "detail" in value else text
