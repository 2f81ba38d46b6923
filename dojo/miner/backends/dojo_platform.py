"""The Dojo worker platform as a worker backend: ``--worker_platform dojo`` (the default).

Tasks go to the platform's Dojo API (:class:`commons.dojo_api.DojoAPI`) under the miner's
``DOJO_API_KEY``. The create carries an ``Idempotency-Key`` derived from the validator and
the request id, so a miner killed between the platform's create and its own write gets the
same platform task on the validator's retry. The platform itself holds each task to
``maxResults`` distinct workers and whole answers; the miner checks again all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timezone
from typing import Any, ClassVar, TypeVar

from loguru import logger

from commons.dojo_api import (
    AuthRejected,
    DojoAPI,
    DojoAPIError,
    RateLimited,
    RequestInvalid,
    RetryPolicy,
    ServerError,
    Unreachable,
)
from commons.dojo_wire import TaskResultOut
from commons.protocol import (
    MAX_RATIONALE,
    CodeContent,
    Content,
    DialogueContent,
    FeedbackRequest,
    ImageContent,
    TextContent,
    has_control_characters,
)
from dojo.miner.backends import _base

# Three attempts of at most 8 s with 0.5 s and 1 s between them stay within the endpoint's
# 30 s handler timeout, so the validator gets our 503 rather than a bare 504.
PLATFORM_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=2.0)
PLATFORM_TIMEOUT = 8.0

TITLES = {
    "code_generation": "Which program does what the prompt asks best?",
    "text": "Which answer does what the prompt asks best?",
    "dialogue": "Which conversation does what the prompt asks best?",
    "image": "Which image shows what the prompt asks for best?",
}

T = TypeVar("T")


def platform_completion(content: Content) -> Any:
    """A completion as the platform's web UI shows it: code files, a text, dialogue turns, or
    an image (``{"kind": "image", "mediaType", "data", "width", "height", "alt"}``)."""
    if isinstance(content, CodeContent):
        return {
            "files": [
                {"filename": f.filename, "content": f.content, "language": f.language} for f in content.files
            ]
        }
    if isinstance(content, TextContent):
        return content.text
    if isinstance(content, DialogueContent):
        return [{"role": turn.role, "message": turn.message} for turn in content.turns]
    if isinstance(content, ImageContent):
        return {
            "kind": "image",
            "mediaType": content.media_type,
            "data": content.data,
            "width": content.width,
            "height": content.height,
            "alt": content.alt,
        }
    raise TypeError(f"unknown content {type(content).__name__}")


def platform_task_data(request: FeedbackRequest) -> dict[str, Any]:
    """The one ``taskData`` entry of a request; the validator's completion ids become the cids."""
    return {
        "prompt": request.prompt,
        "responses": [
            {"model": c.model, "completion": platform_completion(c.content), "cid": c.completion_id}
            for c in request.completions
        ],
        "task": request.task_type.upper(),
        "criteria": [criterion.model_dump(mode="json") for criterion in request.criteria],
    }


class DojoPlatformBackend(_base.WorkerBackend):
    """The Dojo platform at ``base_url`` under ``api_key``; ``key_fix`` tells the operator how
    to get a key (it names their wallet)."""

    name: ClassVar[str] = "dojo"
    capabilities: ClassVar[_base.Capabilities] = _base.Capabilities(
        content_kinds=frozenset({"code", "text", "dialogue", "image"}),
        criteria=frozenset({"ranking", "multi-score"}),
    )

    def __init__(self, base_url: str, api_key: str | None, *, key_fix: str = "", api: DojoAPI | None = None):
        super().__init__()
        self.api = api or DojoAPI(
            base_url, api_key=api_key or None, timeout=PLATFORM_TIMEOUT, retry=PLATFORM_RETRY
        )
        self.key_fix = key_fix

    @property
    def where(self) -> str:
        return f"the Dojo platform at {self.api.base_url}"

    def problem(self) -> str | None:
        if not self.api.api_key:
            return f"this miner has no DOJO_API_KEY, so it cannot reach its workers. {self.key_fix}"
        return None

    async def aclose(self) -> None:
        await self.api.aclose()

    async def create_task(self, key: _base.TaskKey, request: FeedbackRequest, max_results: int) -> str:
        ids = await self._call(
            self.api.create_task(
                title=TITLES[request.task_type],
                body=request.prompt,
                expire_at=request.expire_at,
                task_data=[platform_task_data(request)],
                max_results=max_results,
                idempotency_key=key.idempotency_key,
            ),
            "create",
        )
        if len(ids) != 1:
            raise _base.BackendBroken(
                f"the worker platform answered unexpectedly: one task sent, {len(ids)} task ids returned: {ids}"
            )
        return ids[0]

    async def answers(self, task: _base.BackendTask) -> list[_base.Answer]:
        results = await self._call(self.api.task_results(task.task_id), "results")
        return [_answer(result) for result in results]

    async def report_score(self, task: _base.BackendTask, score: float) -> None:
        """The platform shows the workers who answered the task what it earned."""
        await self._call(self.api.report_score(task.task_id, score), "score")

    async def _call(self, call: Awaitable[T], what: str) -> T:
        late = (
            f"worker platform unavailable: the platform at {self.api.base_url} did not finish "
            f"within {_base.CALL_DEADLINE:g} s"
        )
        try:
            return await _base.within_deadline(call, late)
        except DojoAPIError as exc:
            raise self._error(exc, what) from exc

    def _error(self, exc: DojoAPIError, what: str) -> _base.BackendError:
        """A platform failure as the validator should see it: 503 when retrying later (or a
        fixed key) can help."""
        if isinstance(exc, (Unreachable, ServerError)):
            return _base.BackendUnavailable(f"worker platform unavailable: {exc}")
        if isinstance(exc, AuthRejected):
            return _base.BackendMisconfigured(
                f"the worker platform at {self.api.base_url} refused this miner's DOJO_API_KEY "
                f"({exc.detail}). {self.key_fix}"
            )
        if isinstance(exc, RateLimited):
            later = f" for {exc.retry_after:g} s" if exc.retry_after is not None else ""
            return _base.BackendUnavailable(f"worker platform unavailable: it rate-limited this miner{later}")
        if isinstance(exc, RequestInvalid) and what == "create":
            # 409: the idempotency key was used for another body, i.e. this request id was
            # used before for another request (the mapping was lost in a crash).
            status = 409 if exc.status_code == 409 else 422
            return _base.TaskRefused(f"the worker platform refused the task: {exc.detail}", status=status)
        return _base.BackendBroken(f"the worker platform answered unexpectedly: {exc}")


def _answer(result: TaskResultOut) -> _base.Answer:
    submitted_at = result.updated_at or result.created_at
    if submitted_at.tzinfo is None:  # the contract's times are UTC
        submitted_at = submitted_at.replace(tzinfo=timezone.utc)
    values: dict[str, dict[str, float]] = {}
    problem = None
    for item in result.result_data:
        if item.type in values:
            problem = f"criterion {item.type!r} answered twice"
        values[item.type] = dict(item.value)
    return _base.Answer(
        answer_id=str(result.id),
        worker_id=result.worker_id,
        submitted_at=submitted_at,
        values=values,
        skipped=result.status != "COMPLETED",
        problem=problem,
        rationale=_rationale(result),
    )


def _rationale(result: TaskResultOut) -> str | None:
    """The worker's rationale as the protocol takes it; one it would refuse (too long,
    control characters) is left out, logged, and the ranking goes on without it."""
    rationale = (result.rationale or "").strip() or None
    if rationale is not None and (len(rationale) > MAX_RATIONALE or has_control_characters(rationale)):
        logger.warning(
            "platform result {} has a rationale the protocol refuses ({} characters, or control characters); "
            "sent without it",
            result.id,
            len(rationale),
        )
        return None
    return rationale


__all__ = ["TITLES", "DojoPlatformBackend", "platform_completion", "platform_task_data"]
