"""The miner neuron: answers validators on its signed endpoint and runs their tasks on a worker backend.

=====================  ===========================================================
route                  what the miner does
=====================  ===========================================================
``Heartbeat``          says it is alive and which protocol it speaks
``FeedbackRequest``    creates a task on its worker backend (``--worker_platform``:
                       the Dojo platform or Label Studio, :mod:`dojo.miner.backends`),
                       stores the mapping, replies with the backend's task id; a
                       repeat of the same request gets the same reply and creates
                       nothing
``TaskResultRequest``  the workers' whole answers for one of the caller's requests,
                       judged by :mod:`dojo.miner.answers`, with pseudonymous ids
``ScoringResult``      stores the caller's score for one of its requests, and
                       reports it to the backend for the workers who answered
=====================  ===========================================================

Status codes a handler answers with (the endpoint's own 401/403/413/422/400/504 come
first, see :mod:`template.transport.server`):

- 404: the caller sent no request with that id (another validator's is not revealed);
- 409: the request id was used before for another request;
- 422: ``expire_at`` not between 10 s and 5 days ahead, a score for another hotkey, a task
  the backend cannot show (a content kind or criterion it lacks), or the backend said the
  task itself is invalid;
- 502: the backend answered against its contract;
- 503: the backend is down or slow, refused the miner's key, or none is set; a task that
  went to another backend than the one running now.

Every mapping is on disk before the miner replies. A miner killed between the backend's
create and that write is still safe: each backend's create is idempotent on the validator
and the request id, so the validator's retry gets the same task. Every answer a backend
reports is judged once and pinned (:mod:`dojo.miner.answers`); a backend that asks for it
(Label Studio) has its open tasks' answers read on an interval as well, and each task, once
its deadline has passed, read a last time and then withdrawn from the workers' reach
(:meth:`~dojo.miner.backends.WorkerBackend.withdraw`); a task withdrawn is answered from what
was pinned, without asking the backend. Deadlines and waits are kept by the neuron's
:class:`~template.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from datetime import datetime, timedelta, timezone
from typing import Any

import pydantic
from loguru import logger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from commons.dojo_api import normalize_base_url
from commons.protocol import (
    MAX_RESULTS,
    PROTOCOL_VERSION,
    Ack,
    FeedbackReply,
    FeedbackRequest,
    Heartbeat,
    HeartbeatReply,
    ScoringResult,
    TaskResultReply,
    TaskResultRequest,
    WorkerResult,
)
from dojo.miner.answers import Verdict, judge, worker_pseudonym_for_validators
from dojo.miner.backends import (
    BackendError,
    BackendMisconfigured,
    BackendTask,
    BackendUnavailable,
    TaskKey,
    WorkerBackend,
    open_backend,
)
from dojo.miner.backends.dojo_platform import platform_completion, platform_task_data
from dojo.miner.config import MinerConfig
from dojo.miner.store import MinerStore, StoredTask, miner_database_url
from template.clock import utcnow
from template.failpoints import failpoint
from template.log import quoted
from template.neuron import BaseNeuron, StartupError
from template.transport import CallerInfo, HandlerRefusal
from template.validation import validation_detail

# Scores still being reported when the miner stops get this long to arrive.
SCORE_REPORT_DEADLINE = 25.0
# A task must leave the workers some time, and the platform keeps tasks at most 5 days.
MIN_LEAD_TIME = timedelta(seconds=10)
MAX_LIFETIME = timedelta(days=5)
# A task is withdrawn from a polled backend this long after its deadline, so that the last
# read sees an answer given just before it that the backend was still writing, or that a
# backend clock a little behind the miner's stamped before the deadline.
WITHDRAW_DELAY = timedelta(seconds=30)
# The most tasks withdrawn in one round; the rest wait for the next.
WITHDRAW_BATCH = 100


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
    """The backend's idempotency key for one validator's request: 73 printable ASCII characters."""
    return TaskKey(validator_hotkey, request_id).idempotency_key


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


def backend_task(stored: StoredTask, default_max_results: int) -> BackendTask:
    return BackendTask(
        key=TaskKey(stored.validator_hotkey, stored.request_id),
        task_id=stored.dojo_task_id,
        completion_ids=stored.completion_ids,
        criteria_types=stored.criteria_types,
        expire_at=stored.expire_at,
        max_results=stored.max_results or default_max_results,
    )


def worker_results(task: BackendTask, verdicts: list[Verdict]) -> list[WorkerResult]:
    """The counted answers as the validator reads them: one result per answer and criterion."""
    results: list[WorkerResult] = []
    for verdict in verdicts:
        if not verdict.counted:
            continue
        for criterion in task.criteria_types:
            try:
                results.append(
                    WorkerResult(
                        worker_id=verdict.worker,
                        criteria_type=criterion,  # type: ignore[arg-type]
                        values=verdict.values[criterion],
                        submitted_at=verdict.submitted_at,
                        rationale=verdict.rationale,
                    )
                )
            except KeyError as exc:  # judged whole: a bug if it happens
                logger.error(
                    "request {}: answer {} cannot be sent: no value for {}",
                    task.key.request_id,
                    quoted(verdict.answer_id),
                    quoted(exc),
                )
            except pydantic.ValidationError as exc:
                logger.error(
                    "request {}: answer {} cannot be sent: {}",
                    task.key.request_id,
                    quoted(verdict.answer_id),
                    quoted(validation_detail(exc)),
                )
    if len(results) > MAX_RESULTS:
        logger.warning(
            "request {}: {} results, only the first {} fit a reply",
            task.key.request_id,
            len(results),
            MAX_RESULTS,
        )
        results = results[:MAX_RESULTS]
    return results


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


class MinerNeuron(BaseNeuron[MinerConfig]):
    neuron_type = "miner"

    def setup(self) -> None:
        self.server.protocol_version = PROTOCOL_VERSION
        config = self.config
        try:
            self.backend: WorkerBackend = open_backend(config, hotkey=self.hotkey, key_fix=self._key_fix())
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        problem = self.backend.problem()
        if problem:
            logger.error("{}: this miner answers heartbeats but refuses tasks", problem)
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
        logger.info("miner database {}; worker backend {} ({})", shown, self.backend.name, self.backend.where)
        self._locks = _KeyedLocks()
        self._score_reports: set[asyncio.Task[None]] = set()
        self.server.route(Heartbeat, self.heartbeat)
        self.server.route(FeedbackRequest, self.feedback)
        self.server.route(TaskResultRequest, self.task_result)
        self.server.route(ScoringResult, self.scoring_result)

    def loops(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        return [self._backend_loop]

    async def shutdown(self) -> None:
        if self._score_reports:  # scores still on their way to the backend
            await asyncio.wait(self._score_reports, timeout=SCORE_REPORT_DEADLINE)
        await self.backend.aclose()
        await asyncio.to_thread(self.store.close)

    def _key_fix(self) -> str:
        wallet = self.config.wallet
        try:
            platform = normalize_base_url(self.config.dojo_api_base_url)
        except ValueError:
            platform = self.config.dojo_api_base_url
        return (
            f"Generate a key with `dojo api-key generate --wallet.name {wallet.name} --wallet.hotkey "
            f"{wallet.hotkey} --wallet.path {wallet.path} --platform {platform}`, "
            "then set DOJO_API_KEY to it and restart the miner"
        )

    def _require_backend(self) -> None:
        problem = self.backend.problem()
        if problem:
            raise HandlerRefusal(503, problem)

    # --- the backend's own loop ----------------------------------------------------------

    async def _backend_loop(self) -> None:
        """Start the backend; for one that asks for it, read its open tasks' answers on its
        interval or sooner when it hints that answers came, and withdraw the tasks whose
        deadline has passed."""
        try:
            await self.backend.start()
        except Exception as exc:  # a hint listener that cannot start must not stop the polling
            logger.opt(exception=exc).error(
                "worker backend {} did not start its listener: {}", self.backend.name, exc
            )
        interval = self.backend.poll_interval
        if interval is None:
            return
        while not self.stop_event.is_set():
            await self.poll_open_tasks()
            # The rest is counted from this reading of the clock, so that a clock moved on
            # while the withdrawals run ends it at once.
            now = self.clock.now()
            await self.withdraw_expired_tasks(now)
            await self._rest_until(now + timedelta(seconds=interval))

    async def _rest_until(self, due: datetime) -> None:
        """Until ``due`` by the miner's clock, the stop, or the backend's hint that answers came."""

        async def rest() -> None:
            await self.clock.wait((due - self.clock.now()).total_seconds(), self.stop_event)

        waits = [asyncio.ensure_future(rest()), asyncio.ensure_future(self.backend.hint.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        self.backend.hint.clear()

    async def poll_open_tasks(self) -> int:
        """Judge and pin the new answers of every open task not yet full; the answers pinned."""
        if self.backend.problem():
            return 0
        tasks = await asyncio.to_thread(self.store.open_tasks, self.backend.name, self.clock.now())
        pinned = 0
        for stored in tasks:
            key = TaskKey(stored.validator_hotkey, stored.request_id)
            try:
                async with self._locks.hold(key):
                    pinned += len(await self._collect(stored))
            except BackendError as exc:
                logger.warning(
                    "worker backend {}: reading answers failed: {}", self.backend.name, quoted(exc)
                )
                break
        return pinned

    async def withdraw_expired_tasks(self, now: datetime | None = None) -> int:
        """Read each task :data:`WITHDRAW_DELAY` past its deadline a last time, pinning its
        answers, then take it out of the workers' reach (:meth:`WorkerBackend.withdraw`) and
        note so: it is neither read nor withdrawn again. A task whose read or withdrawal
        fails stays as it is and is tried again in the next round. The tasks withdrawn."""
        if self.backend.problem():
            return 0
        before = (now or self.clock.now()) - WITHDRAW_DELAY
        tasks = await asyncio.to_thread(self.store.expired_tasks, self.backend.name, before, WITHDRAW_BATCH)
        withdrawn = 0
        for stored in tasks:
            try:
                async with self._locks.hold(TaskKey(stored.validator_hotkey, stored.request_id)):
                    verdicts = await self._collect(stored)
                    await self.backend.withdraw(backend_task(stored, self.config.task_max_results))
                    await asyncio.to_thread(
                        self.store.mark_withdrawn,
                        stored.validator_hotkey,
                        stored.request_id,
                        self.clock.now(),
                    )
            except BackendError as exc:
                logger.warning(
                    "request {} ({} task {}): past its deadline, but not withdrawn ({}); tried again in the next round",
                    stored.request_id,
                    self.backend.name,
                    quoted(stored.dojo_task_id),
                    quoted(exc),
                )
                if isinstance(exc, (BackendUnavailable, BackendMisconfigured)):
                    break  # the same for every task: the next round tries them all again
                continue
            withdrawn += 1
            logger.info(
                "request {} ({} task {}): due {}, read a last time and taken out of the annotators' reach; "
                "{} answers counted",
                stored.request_id,
                self.backend.name,
                quoted(stored.dojo_task_id),
                stored.expire_at.isoformat(),
                sum(v.counted for v in verdicts),
            )
        return withdrawn

    async def _collect(self, stored: StoredTask) -> list[Verdict]:
        """Every verdict pinned for the task, after reading the backend's new answers when the
        task still wants some and is still on the backend. Call under the task's lock."""
        task = backend_task(stored, self.config.task_max_results)
        pinned = await asyncio.to_thread(
            self.store.pinned_answers, stored.validator_hotkey, stored.request_id
        )
        if stored.withdrawn_at is not None or sum(v.counted for v in pinned) >= task.max_results:
            return pinned
        answers = await self.backend.answers(task)
        new = judge(task, answers, pinned, self.worker_secret)
        if new:
            await asyncio.to_thread(self.store.pin_answers, stored.validator_hotkey, stored.request_id, new)
        for verdict in new:
            if verdict.counted:
                logger.info(
                    "request {} ({} task {}): counted answer {} of worker {}",
                    stored.request_id,
                    self.backend.name,
                    quoted(stored.dojo_task_id),
                    quoted(verdict.answer_id),
                    verdict.worker,
                )
            else:
                logger.warning(
                    "request {} ({} task {}): answer {} of worker {} not counted: {}",
                    stored.request_id,
                    self.backend.name,
                    quoted(stored.dojo_task_id),
                    quoted(verdict.answer_id),
                    verdict.worker,
                    quoted(verdict.reason),
                )
        return pinned + new

    # --- handlers ------------------------------------------------------------------------

    async def heartbeat(self, request: Heartbeat, caller: CallerInfo) -> HeartbeatReply:
        logger.debug("heartbeat from validator uid {} ({})", caller.uid, caller.hotkey)
        return HeartbeatReply(hotkey=self.hotkey)

    async def feedback(self, request: FeedbackRequest, caller: CallerInfo) -> FeedbackReply:
        digest = request_hash(request)
        key = TaskKey(caller.hotkey, request.request_id)
        # Concurrent copies of one request wait here, so only the first creates a task.
        async with self._locks.hold(key):
            stored = await asyncio.to_thread(self.store.find_task, caller.hotkey, request.request_id)
            if stored is not None:
                # Checked before the deadline: a repeat gets its stored reply even when the
                # deadline is now close.
                return self._stored_reply(stored, digest, request, caller)
            check_expiry(request.expire_at, self.clock.now())
            self._require_backend()
            refusal = self.backend.refusal(request)
            if refusal is not None:
                logger.warning(
                    "request {} from validator uid {} refused: {}",
                    request.request_id,
                    caller.uid,
                    quoted(refusal),
                )
                raise HandlerRefusal(422, refusal)
            try:
                task_id = await self.backend.create_task(key, request, self.config.task_max_results)
            except BackendError as exc:
                logger.warning(
                    "request {} from validator uid {}: {} create failed: {}",
                    request.request_id,
                    caller.uid,
                    self.backend.name,
                    quoted(exc),
                )
                raise HandlerRefusal(exc.status, str(exc)) from exc
            failpoint("miner.feedback.after_create")
            stored = await asyncio.to_thread(
                self.store.save_task,
                validator_hotkey=caller.hotkey,
                request_id=request.request_id,
                dojo_task_id=task_id,
                request_hash=digest,
                completion_ids=[c.completion_id for c in request.completions],
                criteria_types=[c.type for c in request.criteria],
                expire_at=request.expire_at,
                backend=self.backend.name,
                max_results=self.config.task_max_results,
            )
        logger.info(
            "request {} from validator uid {} ({}) is platform task {} on {}, due {}",
            request.request_id,
            caller.uid,
            caller.hotkey,
            quoted(stored.dojo_task_id),
            self.backend.name,
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
        if stored.backend != self.backend.name:
            logger.error(
                "request {} went to the {} backend, but this miner now runs {}: start it with "
                "--worker_platform {} to collect it",
                request.request_id,
                stored.backend,
                self.backend.name,
                stored.backend,
            )
            raise HandlerRefusal(
                503, f"this task went to the miner's {stored.backend} backend, which it does not run now"
            )
        async with self._locks.hold(TaskKey(caller.hotkey, request.request_id)):
            pinned = await asyncio.to_thread(self.store.pinned_answers, caller.hotkey, request.request_id)
            task = backend_task(stored, self.config.task_max_results)
            if sum(v.counted for v in pinned) < task.max_results and stored.withdrawn_at is None:
                self._require_backend()
            try:
                verdicts = await self._collect(stored)
            except BackendError as exc:
                logger.warning(
                    "request {} ({} task {}): results failed: {}",
                    request.request_id,
                    self.backend.name,
                    quoted(stored.dojo_task_id),
                    quoted(exc),
                )
                raise HandlerRefusal(exc.status, str(exc)) from exc
        results = worker_results(task, verdicts)
        await asyncio.to_thread(
            self.store.record_results_returned, caller.hotkey, request.request_id, len(results)
        )
        counted = [v for v in verdicts if v.counted]
        leads = sorted(v.lead_time for v in counted if v.lead_time is not None)
        logger.info(
            "request {} from validator uid {}: {} results from {} workers returned{}",
            request.request_id,
            caller.uid,
            len(results),
            len(counted),
            f" (median lead time {leads[len(leads) // 2]:.1f} s)" if leads else "",
        )
        return TaskResultReply(request_id=request.request_id, results=results)

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
        if stored.backend == self.backend.name and self.backend.problem() is None:
            # After the Ack (the score is on disk): a slow backend must not hold up the validator.
            report = asyncio.create_task(self._report_score(stored, request))
            self._score_reports.add(report)
            report.add_done_callback(self._score_reports.discard)
        return Ack()

    async def _report_score(self, stored: StoredTask, request: ScoringResult) -> None:
        """Tell the backend the task's score, so the workers who answered it see what it earned."""
        try:
            await self.backend.report_score(backend_task(stored, self.config.task_max_results), request.score)
        except BackendError as exc:
            logger.warning(
                "request {}: the {} backend did not take its score: {}",
                request.request_id,
                self.backend.name,
                quoted(exc),
            )


__all__ = [
    "MinerNeuron",
    "backend_task",
    "check_expiry",
    "idempotency_key",
    "platform_completion",
    "platform_task_data",
    "request_hash",
    "worker_pseudonym_for_validators",
    "worker_results",
]
