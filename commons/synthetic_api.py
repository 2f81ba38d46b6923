"""The synthetic API's wire format and the client the validator uses to fetch tasks.

A synthetic task is an instruction, several code completions answering it (the original
and its augmented variants, obfuscated and shuffled) and the ground truth: each
completion's rank, 1 for the completion that answers the original instruction, ``k + 1``
for the one answering a variant ``k`` steps away from it.

Wire format of ``GET /api/synthetic-gen`` (``dojo synthetic serve``)::

    {"success": true,
     "body": {"prompt": "...",
              "responses": [{"model": "...", "cid": "...",
                             "completion": {"files": [{"filename", "content", "language"}],
                                            "original": [{"filename", "content", "language"}]}}],
              "ground_truth": {"<cid>": 1, ...}},
     "error": null}

``files`` are what miners get (obfuscated); ``original`` (optional, absent = unknown) is the
same completion before obfuscation, for the validator's dataset export. A validator older
than this field refuses responses that carry it (``extra="forbid"``): upgrade validators
before the synthetic API.

and ``GET /health`` → ``{"status": "ok", "backend", "queue_size", "queue_target"}``. The
service hands out ground truth, so it asks for ``Authorization: Bearer <token>`` whenever
it was given a token (always, when it listens beyond loopback).

Using it from the validator::

    source = dojo.synthetic.default_task_source()   # SYNTHETIC_API_URL set → this client
    task = await source.next_task()                  # -> SyntheticTask
    await source.aclose()

or directly ``async with SyntheticAPIClient(url, token) as client: await client.next_task()``.

Errors (every one a client can meet)::

    SyntheticAPIError
    ├── SyntheticAPIUnavailable     connection failed, timed out or 5xx after all retries
    ├── SyntheticAPIAuthError       401/403: the token is missing or wrong
    └── SyntheticAPIResponseError   the service answered, but not with a task
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import httpx
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from commons.protocol import CodeFile
from commons.retry import RetryPolicy, retry_after
from template.validation import validation_messages

__all__ = [
    "CodeFile",
    "SyntheticAPIAuthError",
    "SyntheticAPIClient",
    "SyntheticAPIError",
    "SyntheticAPIResponseError",
    "SyntheticAPIUnavailable",
    "SyntheticCompletion",
    "SyntheticEnvelope",
    "SyntheticResponse",
    "SyntheticTask",
    "SyntheticTaskSource",
    "task_source_from_env",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticCompletion(_Model):
    """A completion's files as miners will get them (obfuscated), and optionally the same
    completion before obfuscation (``original``; absent = unknown), which the validator keeps
    for the dataset export and never sends to a miner."""

    files: list[CodeFile] = Field(min_length=1)
    original: list[CodeFile] | None = Field(None, min_length=1)


class SyntheticResponse(_Model):
    model: str
    completion: SyntheticCompletion
    cid: str = Field(min_length=1)


class SyntheticTask(_Model):
    """One task with a known ranking. ``ground_truth`` maps every ``cid`` to its rank (1 = best)."""

    prompt: str = Field(min_length=1)
    responses: list[SyntheticResponse] = Field(min_length=2)
    ground_truth: dict[str, int]

    @model_validator(mode="after")
    def _ground_truth_is_a_ranking(self) -> SyntheticTask:
        cids = [r.cid for r in self.responses]
        if len(set(cids)) != len(cids):
            raise ValueError("completion ids must be unique")
        if set(self.ground_truth) != set(cids):
            raise ValueError("ground_truth must rank exactly the completions of the task")
        if sorted(self.ground_truth.values()) != list(range(1, len(cids) + 1)):
            raise ValueError("ground_truth ranks must be a permutation of 1..n")
        return self


class SyntheticEnvelope(_Model):
    """The response of ``GET /api/synthetic-gen``."""

    success: bool
    body: SyntheticTask | None = None
    error: str | None = None


class SyntheticAPIError(Exception):
    """Base class of every error the synthetic API client raises."""


class SyntheticAPIUnavailable(SyntheticAPIError):
    """The service could not be reached, timed out, or kept failing (5xx) after all retries."""


class SyntheticAPIAuthError(SyntheticAPIError):
    """The service refused the bearer token (401/403)."""


class SyntheticAPIResponseError(SyntheticAPIError):
    """The service answered with something that is not a task (``success: false``, bad JSON)."""


@runtime_checkable
class SyntheticTaskSource(Protocol):
    """Anything the validator can pull tasks from: this client, or in-process generation."""

    async def next_task(self) -> SyntheticTask: ...

    async def aclose(self) -> None: ...


# Statuses worth another try: the service is starting, its queue ran dry, or a proxy hiccuped.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class SyntheticAPIClient:
    """Async client of ``dojo synthetic serve``.

    ``next_task()`` retries connection errors, timeouts and retryable statuses with
    exponential backoff and jitter (honouring ``Retry-After``), up to ``max_retries``
    retries, then raises :class:`SyntheticAPIUnavailable`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.retry = RetryPolicy(attempts=max_retries + 1, base_delay=backoff, max_delay=max_backoff)
        self._rng = random.Random()
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> SyntheticAPIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def health(self) -> dict[str, Any]:
        response = await self._request("/health")
        try:
            return dict(response.json())
        except ValueError as exc:
            raise SyntheticAPIResponseError(f"{self.base_url}/health answered with invalid JSON") from exc

    async def next_task(self) -> SyntheticTask:
        response = await self._request("/api/synthetic-gen")
        try:
            envelope = SyntheticEnvelope.model_validate_json(response.content)
        except ValidationError as exc:
            raise SyntheticAPIResponseError(
                f"{self.base_url}/api/synthetic-gen answered with something that is not a task: "
                f"{validation_messages(exc, limit=1)[0]}"
            ) from exc
        if not envelope.success or envelope.body is None:
            raise SyntheticAPIResponseError(f"the synthetic API reported an error: {envelope.error}")
        return envelope.body

    async def _request(self, path: str) -> httpx.Response:
        last_problem = ""
        for attempt in range(self.retry.attempts):
            after: float | None = None
            try:
                response = await self._client.get(path)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (401, 403):
                    raise SyntheticAPIAuthError(
                        f"{self.base_url} refused the request ({response.status_code}); "
                        "pass the token the service was started with (--token / SYNTHETIC_API_TOKEN)"
                    )
                if response.is_success:
                    return response
                if response.status_code not in _RETRY_STATUSES:
                    raise SyntheticAPIResponseError(
                        f"{self.base_url}{path} answered {response.status_code}: {response.text[:200]}"
                    )
                last_problem = f"HTTP {response.status_code}"
                after = retry_after(response.headers)
            if attempt + 1 == self.retry.attempts:
                break
            # The server's Retry-After too waits at most max_backoff.
            delay = min(self.retry.delay(attempt, self._rng, after), self.retry.max_delay)
            logger.warning(
                "synthetic API {}{} failed ({}); retry {}/{} in {:.2f}s",
                self.base_url, path, last_problem, attempt + 1, self.retry.attempts - 1, delay,
            )
            await asyncio.sleep(delay)
        raise SyntheticAPIUnavailable(
            f"{self.base_url}{path} failed after {self.retry.attempts} attempts ({last_problem}); "
            "is `dojo synthetic serve` running there?"
        )


def task_source_from_env(
    local_factory: Callable[[], SyntheticTaskSource],
    *,
    url: str | None = None,
    token: str | None = None,
    **client_options: Any,
) -> SyntheticTaskSource:
    """The service at ``url`` (default ``SYNTHETIC_API_URL``) or, when none is set, the
    in-process generator that ``local_factory`` builds.

    ``commons`` cannot import ``dojo``, so the in-process generator is passed in;
    ``dojo.synthetic.default_task_source()`` wires it up.
    """
    url = url if url is not None else os.environ.get("SYNTHETIC_API_URL") or None
    token = token if token is not None else os.environ.get("SYNTHETIC_API_TOKEN") or None
    if url:
        logger.info("synthetic tasks from {}", url)
        return SyntheticAPIClient(url, token, **client_options)
    logger.info("SYNTHETIC_API_URL is not set; generating synthetic tasks in-process")
    return local_factory()
