"""The synthetic API's wire format and the client the validator uses to fetch tasks.

A synthetic task is an instruction of one content kind (``code``, ``text``, ``dialogue`` or
``image``), several completions answering it (for code: the original and its augmented
variants; for the other kinds: responses with a known number of deliberate defects;
obfuscated and shuffled) and the ground truth: each completion's rank, 1 for the completion
that answers the instruction best, ``k + 1`` for the one ``k`` steps away from it.

Wire format of ``GET /api/synthetic-gen[?kind=text]`` (``dojo synthetic serve``)::

    {"success": true,
     "body": {"prompt": "...", "kind": "code",
              "responses": [{"model": "...", "cid": "...",
                             "completion": {"files": [{"filename", "content", "language"}],
                                            "original": [{"filename", "content", "language"}]}}],
              "ground_truth": {"<cid>": 1, ...}},
     "error": null}

A code completion has ``files``, what miners get (obfuscated), and ``original`` (optional,
absent = unknown), the same completion before obfuscation, for the validator's dataset
export. A completion of another kind has ``content`` instead, the protocol's content
(``{"kind": "text", "text": ...}``, ``{"kind": "dialogue", "turns": [...]}``,
``{"kind": "image", "media_type", "data", "width", "height", "alt"}``), and
``original_content``. ``kind`` absent means code. A validator older than a field refuses
responses that carry it (``extra="forbid"``): upgrade validators before the synthetic API.

and ``GET /health`` → ``{"status": "ok", "backend", "queue_size", "queue_target"}``. The
service hands out ground truth, so it asks for ``Authorization: Bearer <token>`` unless it
was started with ``--no-token`` (a local network on loopback).

Using it from the validator (the URL and token are its settings ``--synthetic_api_url`` /
``SYNTHETIC_API_URL`` and ``--synthetic_api_token`` / ``SYNTHETIC_API_TOKEN``, resolved with
every other setting by :mod:`template.config`)::

    source = dojo.synthetic.default_task_source(url=url, token=token)   # a URL → this client
    task = await source.next_task()                  # -> SyntheticTask, of the source's own kinds
    task = await source.next_task("text")            # -> a text task
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
import random
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import httpx
from loguru import logger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from commons.protocol import CONTENT_KINDS, CodeContent, CodeFile, Content
from commons.retry import RetryPolicy, is_transient, retry_after
from template.http_body import ResponseTooLarge, capped
from template.validation import validation_messages

__all__ = [
    "CodeFile",
    "Mix",
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
    "normalised_mix",
    "parse_mix",
    "task_source_for",
]


# --- the mix of content kinds ---------------------------------------------------------------


def parse_mix(value: str) -> dict[str, float]:
    """``code:1,text:2`` as ``{"code": 1.0, "text": 2.0}``: each content kind
    (:data:`~commons.protocol.CONTENT_KINDS`) at most once, with a weight >= 0 (a kind alone
    may leave out ``:1``), at least one above 0."""
    mix: dict[str, float] = {}
    for part in value.split(","):
        name, sep, weight = part.strip().partition(":")
        name = name.strip()
        if name not in CONTENT_KINDS:
            raise ValueError(
                f"accepts kind:weight pairs of {', '.join(CONTENT_KINDS)}; {name!r} is not a kind"
            )
        if name in mix:
            raise ValueError(f"names {name} twice")
        try:
            share = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"the weight of {name} must be a number, not {weight!r}") from None
        if not (share >= 0 and share < float("inf")):
            raise ValueError(f"the weight of {name} must be a finite number >= 0")
        mix[name] = share
    if not any(mix.values()):
        raise ValueError("needs at least one kind with a weight above 0")
    return mix


def normalised_mix(value: str) -> str:
    """A synthetic-task mix in its one written form (``code:1,text:0.5``); ValueError if it
    is not one (:func:`parse_mix`)."""
    return ",".join(f"{k}:{v:g}" for k, v in parse_mix(value).items())


# A synthetic-task mix as a setting takes it (``--synthetic.mix``, ``dojo synthetic serve
# --mix``), normalised (``code:1,text:0.5``).
Mix = Annotated[str, AfterValidator(normalised_mix)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticCompletion(_Model):
    """A completion as miners will get it (obfuscated), and optionally the same completion
    before obfuscation (absent = unknown), which the validator keeps for the dataset export
    and never sends to a miner: ``files`` and ``original`` for code, ``content`` and
    ``original_content`` for every other kind."""

    files: list[CodeFile] | None = Field(None, min_length=1)
    original: list[CodeFile] | None = Field(None, min_length=1)
    content: Content | None = None
    original_content: Content | None = None

    @model_validator(mode="after")
    def _one_form(self) -> SyntheticCompletion:
        if (self.files is None) == (self.content is None):
            raise ValueError("a completion has either files (code) or content (any other kind)")
        if self.content is not None and self.original is not None:
            raise ValueError("original is for code files; give original_content with content")
        if self.files is not None and self.original_content is not None:
            raise ValueError("original_content is for content; give original with files")
        if self.content is not None and isinstance(self.content, CodeContent):
            raise ValueError("code goes in files")
        return self

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A field a completion does not have is left out (absent = unknown, or not its kind).
        return {k: v for k, v in handler(self).items() if v is not None}

    def sent(self) -> Content:
        """What miners get."""
        return self.content if self.content is not None else CodeContent(files=self.files or [])

    def kept(self) -> Content | None:
        """The completion before obfuscation, or None when unknown."""
        if self.files is not None:
            return None if self.original is None else CodeContent(files=self.original)
        return self.original_content


class SyntheticResponse(_Model):
    model: str
    completion: SyntheticCompletion
    cid: str = Field(min_length=1)


class SyntheticTask(_Model):
    """One task with a known ranking. ``ground_truth`` maps every ``cid`` to its rank (1 = best)."""

    prompt: str = Field(min_length=1)
    kind: Literal["code", "text", "dialogue", "image"] = "code"
    responses: list[SyntheticResponse] = Field(min_length=2)
    ground_truth: dict[str, int]

    @model_validator(mode="after")
    def _ground_truth_is_a_ranking(self) -> SyntheticTask:
        for r in self.responses:
            if r.completion.sent().kind != self.kind:
                raise ValueError(f"a {self.kind} task has a {r.completion.sent().kind} completion")
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

    async def next_task(self, kind: str | None = None) -> SyntheticTask:
        """A task of ``kind`` (one of :data:`~commons.protocol.CONTENT_KINDS`), or of the
        source's own choice when None."""
        ...

    async def aclose(self) -> None: ...


# The most a reply of the synthetic API may take, compressed and decoded (template.http_body).
# A task is sent to miners whole and must fit their 1 MiB body cap; with its completions
# before obfuscation and its ground truth it stays well under this.
MAX_REPLY_BYTES = 16 * 1024 * 1024


class SyntheticAPIClient:
    """Async client of ``dojo synthetic serve``.

    ``next_task()`` retries transient failures (``commons.retry.is_transient``) with
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
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=capped(MAX_REPLY_BYTES, transport, name="the synthetic API"),
        )

    async def __aenter__(self) -> SyntheticAPIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def next_task(self, kind: str | None = None) -> SyntheticTask:
        if kind is not None and kind not in CONTENT_KINDS:
            raise ValueError(f"unknown content kind {kind!r}; one of {', '.join(CONTENT_KINDS)}")
        response = await self._request("/api/synthetic-gen" + (f"?kind={kind}" if kind else ""))
        try:
            envelope = SyntheticEnvelope.model_validate_json(response.content)
        except ValidationError as exc:
            raise SyntheticAPIResponseError(
                f"{self.base_url}/api/synthetic-gen answered with something that is not a task: "
                f"{validation_messages(exc, limit=1)[0]}"
            ) from exc
        if not envelope.success or envelope.body is None:
            raise SyntheticAPIResponseError(f"the synthetic API reported an error: {envelope.error}")
        if kind is not None and envelope.body.kind != kind:
            raise SyntheticAPIResponseError(
                f"asked for a {kind} task, the synthetic API sent a {envelope.body.kind} one"
            )
        return envelope.body

    async def _request(self, path: str) -> httpx.Response:
        last_problem = ""
        for attempt in range(self.retry.attempts):
            after: float | None = None
            try:
                response = await self._client.get(path)
            except ResponseTooLarge as exc:
                raise SyntheticAPIResponseError(f"{self.base_url}{path}: {exc}") from exc
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                if not is_transient(exc):  # a malformed URL: no try mends it
                    raise SyntheticAPIUnavailable(f"{self.base_url}{path}: {last_problem}") from exc
            else:
                if response.status_code in (401, 403):
                    raise SyntheticAPIAuthError(
                        f"{self.base_url} refused the request ({response.status_code}); "
                        "pass the token the service was started with (--token / SYNTHETIC_API_TOKEN)"
                    )
                if response.is_success:
                    return response
                # The service is starting, its queue ran dry, or a proxy hiccuped.
                if not is_transient(response.status_code):
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
                self.base_url,
                path,
                last_problem,
                attempt + 1,
                self.retry.attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)
        raise SyntheticAPIUnavailable(
            f"{self.base_url}{path} failed after {self.retry.attempts} attempts ({last_problem}); "
            "is `dojo synthetic serve` running there?"
        )


def task_source_for(
    local_factory: Callable[[], SyntheticTaskSource],
    *,
    url: str | None = None,
    token: str | None = None,
    **client_options: Any,
) -> SyntheticTaskSource:
    """The service at ``url`` with ``token`` or, when no URL is given, the in-process
    generator that ``local_factory`` builds. Both come from the caller's resolved settings;
    nothing here reads the environment.

    ``commons`` cannot import ``dojo``, so the in-process generator is passed in;
    ``dojo.synthetic.default_task_source()`` wires it up.
    """
    if url:
        logger.info("synthetic tasks from {}", url)
        return SyntheticAPIClient(url, token, **client_options)
    logger.info("no synthetic API URL (SYNTHETIC_API_URL); generating synthetic tasks in-process")
    return local_factory()
