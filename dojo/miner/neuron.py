"""The miner neuron: answers validators on its signed endpoint and runs their tasks on a worker platform.

=====================  ===========================================================
route                  what the miner does
=====================  ===========================================================
``Heartbeat``          says it is alive and which protocol it speaks
``FeedbackRequest``    creates a task on the worker platform (Dojo API), stores the
                       mapping, replies with the platform's task id; a repeat of
                       the same request gets the same reply and creates nothing
``TaskResultRequest``  the workers' results for one of the caller's requests, with
                       pseudonymous worker ids
``ScoringResult``      stores the caller's score for one of its requests, and
                       reports it to the platform for the workers who answered
=====================  ===========================================================

Status codes a handler answers with (the endpoint's own 401/403/413/422/400/504 come
first, see :mod:`template.transport.server`):

- 404: the caller sent no request with that id (another validator's is not revealed);
- 409: the request id was used before for another request;
- 422: ``expire_at`` not between 10 s and 5 days ahead, a score for another hotkey, or the
  platform said the task itself is invalid;
- 502: the platform answered against its contract;
- 503: the platform is down or slow, refused the miner's ``DOJO_API_KEY``, or none is set.

Every mapping is on disk before the miner replies. A miner killed between the platform's
create and that write is still safe: the create carries an idempotency key derived from
the validator and the request id, so the validator's retry gets the same platform task.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Hashable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pydantic
from loguru import logger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from commons.dojo_api import (
    AuthRejected,
    BadResponse,
    DojoAPI,
    DojoAPIError,
    RateLimited,
    RequestInvalid,
    RetryPolicy,
    ServerError,
    TaskResult,
    Unreachable,
)
from commons.protocol import (
    MAX_RATIONALE,
    MAX_RESULTS,
    PROTOCOL_VERSION,
    Ack,
    CodeContent,
    Content,
    DialogueContent,
    FeedbackReply,
    FeedbackRequest,
    Heartbeat,
    HeartbeatReply,
    ScoringResult,
    TaskResultReply,
    TaskResultRequest,
    TextContent,
    WorkerResult,
    has_control_characters,
    utcnow,
)
from dojo.miner.store import MinerStore, StoredTask, miner_database_url
from template.config import MinerConfig
from template.failpoints import failpoint
from template.neuron import BaseNeuron, StartupError
from template.transport import CallerInfo, HandlerRefusal

# A task must leave the workers some time, and the platform keeps tasks at most 5 days.
MIN_LEAD_TIME = timedelta(seconds=10)
MAX_LIFETIME = timedelta(days=5)
# Three attempts of at most 8 s with 0.5 s and 1 s between them stay within the endpoint's
# 30 s handler timeout, so the validator gets our 503 rather than a bare 504.
PLATFORM_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=2.0)
PLATFORM_TIMEOUT = 8.0
# A bound on one whole platform call (every attempt and wait), for the rare attempt that is
# slow both to connect and to answer: past it the validator gets a 503 it can retry.
PLATFORM_DEADLINE = 25.0

T = TypeVar("T")

_TITLES = {
    "code_generation": "Which program does what the prompt asks best?",
    "text": "Which answer does what the prompt asks best?",
    "dialogue": "Which conversation does what the prompt asks best?",
}


# --- pure mappings ------------------------------------------------------------------------


def request_hash(request: FeedbackRequest) -> str:
    """SHA-256 of the request's canonical JSON, without ``protocol_version``.

    The deadline is written in UTC, so the same instant spelt with another offset is the
    same request.
    """
    data = request.model_dump(mode="json", exclude={"protocol_version"})
    data["expire_at"] = request.expire_at.astimezone(timezone.utc).isoformat()
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def idempotency_key(validator_hotkey: str, request_id: str) -> str:
    """The platform's Idempotency-Key for one validator's request: 73 printable ASCII characters."""
    return "feedback-" + hashlib.sha256(f"{validator_hotkey}:{request_id}".encode()).hexdigest()


def platform_completion(content: Content) -> Any:
    """A completion as the platform's web UI shows it: code files, a text, or dialogue turns."""
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


def worker_pseudonym(secret: bytes, platform_worker_id: str) -> str:
    """Stable for one worker of this miner; says nothing of the platform's id without the secret."""
    return "w" + hmac.new(secret, platform_worker_id.encode("utf-8"), hashlib.sha256).hexdigest()[:24]


def check_expiry(expire_at: datetime, now: datetime | None = None) -> None:
    """Refuse with 422 a deadline the workers could not meet or the platform would not keep."""
    now = now or utcnow()
    when = expire_at.astimezone(timezone.utc).isoformat()
    if expire_at <= now:
        raise HandlerRefusal(422, f"expire_at {when} is in the past; send a deadline 10 s to 5 days ahead")
    if expire_at < now + MIN_LEAD_TIME:
        raise HandlerRefusal(
            422, f"expire_at {when} is less than 10 s ahead; send a deadline 10 s to 5 days ahead"
        )
    if expire_at > now + MAX_LIFETIME:
        raise HandlerRefusal(
            422, f"expire_at {when} is more than 5 days ahead; the worker platform keeps tasks at most 5 days"
        )


class _KeyedLocks:
    """One asyncio lock per key, forgotten once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: dict[Hashable, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


# --- the neuron ---------------------------------------------------------------------------


class MinerNeuron(BaseNeuron):
    neuron_type = "miner"
    config: MinerConfig

    def setup(self) -> None:
        self.server.protocol_version = PROTOCOL_VERSION
        config = self.config
        api_key = config.dojo_api_key.get_secret_value() if config.dojo_api_key is not None else ""
        try:
            self.platform = DojoAPI(
                config.dojo_api_base_url,
                api_key=api_key or None,
                timeout=PLATFORM_TIMEOUT,
                retry=PLATFORM_RETRY,
            )
        except ValueError as exc:
            raise StartupError(f"--dojo_api_base_url (env DOJO_API_BASE_URL): {exc}") from exc
        if not api_key:
            logger.error(
                "no DOJO_API_KEY: this miner answers heartbeats but refuses tasks. {}", self._key_fix()
            )
        url = miner_database_url(config.data_dir, config.neuron.database_url)
        shown = make_url(url).render_as_string(hide_password=True)
        try:
            self.store = MinerStore(url)
            # Created on the first start and kept: worker pseudonyms stay stable across restarts.
            self.worker_secret = self.store.worker_secret()
        except SQLAlchemyError as exc:
            raise StartupError(
                f"cannot open the miner database {shown}: {exc}; check --neuron.database_url "
                "(env MINER_DATABASE_URL) or --neuron.data_dir"
            ) from exc
        logger.info("miner database {}; worker platform {}", shown, self.platform.base_url)
        self._locks = _KeyedLocks()
        self._score_reports: set[asyncio.Task[None]] = set()
        self.server.route(Heartbeat, self.heartbeat)
        self.server.route(FeedbackRequest, self.feedback)
        self.server.route(TaskResultRequest, self.task_result)
        self.server.route(ScoringResult, self.scoring_result)

    async def shutdown(self) -> None:
        if self._score_reports:  # scores still on their way to the platform
            await asyncio.wait(self._score_reports, timeout=PLATFORM_DEADLINE)
        await self.platform.aclose()
        await asyncio.to_thread(self.store.close)

    def _key_fix(self) -> str:
        wallet = self.config.wallet
        return (
            f"Generate a key with `dojo api-key generate --wallet.name {wallet.name} --wallet.hotkey "
            f"{wallet.hotkey} --wallet.path {wallet.path} --platform {self.platform.base_url}`, "
            "then set DOJO_API_KEY to it and restart the miner"
        )

    def _require_key(self) -> None:
        if not self.platform.api_key:
            raise HandlerRefusal(
                503, f"this miner has no DOJO_API_KEY, so it cannot reach its workers. {self._key_fix()}"
            )

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, PLATFORM_DEADLINE)
        except asyncio.TimeoutError as exc:
            raise Unreachable(
                f"the platform at {self.platform.base_url} did not finish within {PLATFORM_DEADLINE:g} s"
            ) from exc

    def _refusal(self, exc: DojoAPIError, what: str) -> HandlerRefusal:
        """The answer for a platform failure: 503 when retrying later (or a fixed key) can help."""
        if isinstance(exc, (Unreachable, ServerError)):
            return HandlerRefusal(503, f"worker platform unavailable: {exc}")
        if isinstance(exc, AuthRejected):
            return HandlerRefusal(
                503,
                f"the worker platform at {self.platform.base_url} refused this miner's DOJO_API_KEY "
                f"({exc.detail}). {self._key_fix()}",
            )
        if isinstance(exc, RateLimited):
            later = f" for {exc.retry_after:g} s" if exc.retry_after is not None else ""
            return HandlerRefusal(503, f"worker platform unavailable: it rate-limited this miner{later}")
        if isinstance(exc, RequestInvalid) and what == "create":
            # 409: the idempotency key was used for another body, i.e. this request id was
            # used before for another request (the mapping was lost in a crash).
            status = 409 if exc.status_code == 409 else 422
            return HandlerRefusal(status, f"the worker platform refused the task: {exc.detail}")
        return HandlerRefusal(502, f"the worker platform answered unexpectedly: {exc}")

    # --- handlers ------------------------------------------------------------------------

    async def heartbeat(self, request: Heartbeat, caller: CallerInfo) -> HeartbeatReply:
        logger.debug("heartbeat from validator uid {} ({})", caller.uid, caller.hotkey)
        return HeartbeatReply(hotkey=self.hotkey)

    async def feedback(self, request: FeedbackRequest, caller: CallerInfo) -> FeedbackReply:
        digest = request_hash(request)
        # Concurrent copies of one request wait here, so only the first creates a task.
        async with self._locks.hold((caller.hotkey, request.request_id)):
            stored = await asyncio.to_thread(self.store.find_task, caller.hotkey, request.request_id)
            if stored is not None:
                # Checked before the deadline: a repeat gets its stored reply even when the
                # deadline is now close.
                return self._stored_reply(stored, digest, request, caller)
            check_expiry(request.expire_at)
            self._require_key()
            try:
                ids = await self._within_deadline(
                    self.platform.create_task(
                        title=_TITLES[request.task_type],
                        body=request.prompt,
                        expire_at=request.expire_at,
                        task_data=[platform_task_data(request)],
                        max_results=self.config.task_max_results,
                        idempotency_key=idempotency_key(caller.hotkey, request.request_id),
                    )
                )
            except DojoAPIError as exc:
                logger.warning(
                    "request {} from validator uid {}: platform create failed: {}",
                    request.request_id,
                    caller.uid,
                    exc,
                )
                raise self._refusal(exc, "create") from exc
            failpoint("miner.feedback.after_create")
            if len(ids) != 1:
                raise self._refusal(
                    BadResponse(f"one task sent, {len(ids)} task ids returned: {ids}"), "create"
                )
            stored = await asyncio.to_thread(
                self.store.save_task,
                validator_hotkey=caller.hotkey,
                request_id=request.request_id,
                dojo_task_id=ids[0],
                request_hash=digest,
                completion_ids=[c.completion_id for c in request.completions],
                criteria_types=[c.type for c in request.criteria],
                expire_at=request.expire_at,
            )
        logger.info(
            "request {} from validator uid {} ({}) is platform task {}, due {}",
            request.request_id,
            caller.uid,
            caller.hotkey,
            stored.dojo_task_id,
            request.expire_at.isoformat(),
        )
        return self._stored_reply(stored, digest, request, caller)

    @staticmethod
    def _stored_reply(
        stored: StoredTask, digest: str, request: FeedbackRequest, caller: CallerInfo
    ) -> FeedbackReply:
        if stored.request_hash != digest:
            logger.warning(
                "request {} from validator uid {}: the id was used before for another request",
                request.request_id,
                caller.uid,
            )
            raise HandlerRefusal(
                409,
                f"request id {request.request_id} was used before for another request; "
                "send a new request id for a new task",
            )
        return FeedbackReply(request_id=stored.request_id, dojo_task_id=stored.dojo_task_id)

    async def task_result(self, request: TaskResultRequest, caller: CallerInfo) -> TaskResultReply:
        stored = await asyncio.to_thread(self.store.find_task, caller.hotkey, request.request_id)
        if stored is None:
            # Another validator's request id gets the same answer as an unknown one.
            raise HandlerRefusal(404, f"no task from {caller.hotkey} with request id {request.request_id}")
        self._require_key()
        try:
            platform_results = await self._within_deadline(self.platform.task_results(stored.dojo_task_id))
        except DojoAPIError as exc:
            logger.warning(
                "request {} (platform task {}): results failed: {}",
                request.request_id,
                stored.dojo_task_id,
                exc,
            )
            raise self._refusal(exc, "results") from exc
        results = self._worker_results(stored, platform_results)
        await asyncio.to_thread(
            self.store.record_results_returned, caller.hotkey, request.request_id, len(results)
        )
        logger.info(
            "request {} from validator uid {}: {} results from {} workers returned",
            request.request_id,
            caller.uid,
            len(results),
            len({r.worker_id for r in results}),
        )
        return TaskResultReply(request_id=request.request_id, results=results)

    def _worker_results(self, stored: StoredTask, platform_results: list[TaskResult]) -> list[WorkerResult]:
        """One result per platform result and criterion, in the validator's completion ids.

        The platform returns the cids the miner sent, which are the validator's ids; an item
        that names others, or a criterion the validator did not ask for, is dropped.
        """
        expected = set(stored.completion_ids)
        results: list[WorkerResult] = []
        for result in platform_results:
            if result.status != "COMPLETED":
                continue
            submitted_at = result.updated_at or result.created_at
            if submitted_at.tzinfo is None:  # the contract's times are UTC
                submitted_at = submitted_at.replace(tzinfo=timezone.utc)
            worker_id = worker_pseudonym(self.worker_secret, result.worker_id)
            rationale = self._rationale(stored, result)
            for item in result.result_data:
                problem = None
                if item.type not in stored.criteria_types:
                    problem = f"criterion {item.type!r} was not asked for"
                elif set(item.value) != expected:
                    problem = f"it names completions {sorted(item.value)}, not {sorted(expected)}"
                if problem is None:
                    try:
                        results.append(
                            WorkerResult(
                                worker_id=worker_id,
                                criteria_type=item.type,
                                values=item.value,
                                submitted_at=submitted_at,
                                rationale=rationale,
                            )
                        )
                    except pydantic.ValidationError as exc:
                        problem = str(exc).splitlines()[0]
                if problem is not None:
                    logger.warning(
                        "request {} (platform task {}): dropped result {} of worker {}: {}",
                        stored.request_id,
                        stored.dojo_task_id,
                        result.id,
                        worker_id,
                        problem,
                    )
        if len(results) > MAX_RESULTS:
            logger.warning(
                "request {}: {} results, only the first {} fit a reply",
                stored.request_id,
                len(results),
                MAX_RESULTS,
            )
            results = results[:MAX_RESULTS]
        return results

    @staticmethod
    def _rationale(stored: StoredTask, result: TaskResult) -> str | None:
        """The worker's rationale as the protocol takes it; one it would refuse (too long,
        control characters) is left out, logged, and the ranking goes on without it."""
        rationale = (result.rationale or "").strip() or None
        if rationale is not None and (len(rationale) > MAX_RATIONALE or has_control_characters(rationale)):
            logger.warning(
                "request {} (platform task {}): result {} has a rationale the protocol refuses"
                " ({} characters, or control characters); sent without it",
                stored.request_id,
                stored.dojo_task_id,
                result.id,
                len(rationale),
            )
            return None
        return rationale

    async def scoring_result(self, request: ScoringResult, caller: CallerInfo) -> Ack:
        stored = await asyncio.to_thread(self.store.find_task, caller.hotkey, request.request_id)
        if stored is None:
            raise HandlerRefusal(404, f"no task from {caller.hotkey} with request id {request.request_id}")
        if request.hotkey != self.hotkey:
            raise HandlerRefusal(
                422, f"this score is for hotkey {request.hotkey}; this miner is {self.hotkey}"
            )
        await asyncio.to_thread(self.store.save_score, caller.hotkey, request.request_id, request.score)
        logger.info(
            "request {}: score {:.4f} from validator uid {} ({})",
            request.request_id,
            request.score,
            caller.uid,
            caller.hotkey,
        )
        if self.platform.api_key:
            # After the Ack (the score is on disk): a slow platform must not hold up the validator.
            report = asyncio.create_task(self._report_score(stored.dojo_task_id, request))
            self._score_reports.add(report)
            report.add_done_callback(self._score_reports.discard)
        return Ack()

    async def _report_score(self, task_id: str, request: ScoringResult) -> None:
        """Tell the platform the task's score, so the workers who answered it see what it earned."""
        try:
            await self._within_deadline(self.platform.report_score(task_id, request.score))
        except DojoAPIError as exc:
            logger.warning("request {}: the platform did not take its score: {}", request.request_id, exc)


__all__ = [
    "MinerNeuron",
    "check_expiry",
    "idempotency_key",
    "platform_completion",
    "platform_task_data",
    "request_hash",
    "worker_pseudonym",
]
