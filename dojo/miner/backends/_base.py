"""The miner's worker backend interface: where a validator's task goes to be worked by people.

A backend creates one task for a :class:`~commons.protocol.FeedbackRequest`, idempotently on
the validator's hotkey and request id, and reports the people's answers in the order they
came. It says what it can render (:class:`Capabilities`), and the miner refuses, with a
reason, what it cannot. Whatever the backend itself guarantees, the miner enforces Dojo's
rules on what comes back (:mod:`dojo.miner.answers`): one answer per person, whole answers
only, no more than the task asked for.

Every failure a backend can meet is one of these, each with the status the validator gets::

    BackendError                 base: .status (the HTTP status the validator sees), message
    ├── BackendUnavailable       503: down, slow, rate-limited; the validator retries later
    ├── BackendMisconfigured     503: no key, a refused key, a deleted project, a changed
    │                            labelling config; the message says what the operator must do
    ├── TaskRefused              422 (409 when the request id was used for another task):
    │                            the backend will not take this task
    └── BackendBroken            502: the backend answered against its contract
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, TypeVar

from commons.protocol import FeedbackRequest

__all__ = [
    "Answer",
    "BackendBroken",
    "BackendError",
    "BackendMisconfigured",
    "BackendTask",
    "BackendUnavailable",
    "CALL_DEADLINE",
    "Capabilities",
    "TaskKey",
    "TaskRefused",
    "WorkerBackend",
    "content_kind",
    "within_deadline",
]

T = TypeVar("T")
# A bound on one whole backend call (every attempt and wait, a client's own retries included),
# for the rare call that is slow both to connect and to answer: past it the validator gets a
# 503 it can retry, within the endpoint's 30 s handler timeout.
CALL_DEADLINE = 25.0


class BackendError(Exception):
    """A backend call failed; ``str(error)`` says what was wrong and what to do."""

    status: int = 502

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class BackendUnavailable(BackendError):
    """The backend is down, slow or rate-limiting: the same call may work later."""

    status = 503


class BackendMisconfigured(BackendError):
    """The backend refuses this miner (key, project, config): the operator must act."""

    status = 503


class TaskRefused(BackendError):
    """The backend will not take this task (422), or the request id names another task (409)."""

    status = 422


class BackendBroken(BackendError):
    """The backend answered against its contract."""

    status = 502


async def within_deadline(call: Awaitable[T], late: str, seconds: float = CALL_DEADLINE) -> T:
    """What ``call`` returns, or :class:`BackendUnavailable` saying ``late`` when it takes
    longer than ``seconds``."""
    try:
        return await asyncio.wait_for(call, seconds)
    except asyncio.TimeoutError as exc:
        raise BackendUnavailable(late) from exc


@dataclass(frozen=True)
class TaskKey:
    """What makes a task one task: the validator's hotkey and its request id."""

    validator_hotkey: str
    request_id: str

    @property
    def idempotency_key(self) -> str:
        """73 printable ASCII characters naming this task on any backend."""
        return "feedback-" + hashlib.sha256(f"{self.validator_hotkey}:{self.request_id}".encode()).hexdigest()


def content_kind(request: FeedbackRequest) -> str | None:
    """The one kind of content of a request's completions, or None when they mix kinds."""
    kinds = {c.content.kind for c in request.completions}
    return kinds.pop() if len(kinds) == 1 else None


@dataclass(frozen=True)
class Capabilities:
    """What a backend can put in front of people: kinds of content and kinds of criteria."""

    content_kinds: frozenset[str]
    criteria: frozenset[str]

    def refusal(self, request: FeedbackRequest, backend: str) -> str | None:
        """Why ``backend`` cannot show ``request`` to its workers, or None when it can."""
        kinds = sorted({c.content.kind for c in request.completions})
        missing = [k for k in kinds if k not in self.content_kinds]
        if missing:
            return (
                f"this miner's worker backend ({backend}) cannot show {', '.join(missing)} content; "
                f"it shows {', '.join(sorted(self.content_kinds))}"
            )
        asked = sorted({c.type for c in request.criteria})
        unknown = [c for c in asked if c not in self.criteria]
        if unknown:
            return (
                f"this miner's worker backend ({backend}) cannot ask for {', '.join(unknown)}; "
                f"it asks for {', '.join(sorted(self.criteria))}"
            )
        return None


@dataclass(frozen=True)
class BackendTask:
    """A task as the miner stored it, which is all a backend gets back to find its results."""

    key: TaskKey
    task_id: str
    completion_ids: tuple[str, ...]
    criteria_types: tuple[str, ...]
    expire_at: datetime
    max_results: int


@dataclass(frozen=True)
class Answer:
    """One submission on the backend, as the backend reports it, before the miner's rules.

    ``answer_id`` names it on the backend for good; ``worker_id`` is the backend's own id of
    the person (the miner only ever sends a pseudonym of it); ``values`` maps each criterion
    type answered to ``{completion id: rank or score}`` (rank 1 = best); ``skipped`` marks a
    skip or a cancelled annotation; ``problem`` is what the backend already found wrong with
    it (a ranking it could not read); ``lead_time`` is the seconds the person spent on it,
    when the backend measures it; ``rationale`` is why the person answered so, in their
    words, when they said (one the protocol would refuse is left out by the backend).
    """

    answer_id: str
    worker_id: str
    submitted_at: datetime
    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    skipped: bool = False
    problem: str | None = None
    lead_time: float | None = None
    rationale: str | None = None


class WorkerBackend(ABC):
    """Where the miner's tasks are worked. Subclasses: :mod:`.dojo_platform`, :mod:`.label_studio`.

    ``name`` is the ``--worker_platform`` value that selects it. ``poll_interval`` (seconds)
    asks the miner to read the answers of its open tasks on that interval, for a backend
    whose answers must be pinned as they come (None: read them only when a validator asks),
    and to :meth:`withdraw` each task once its deadline has passed.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    poll_interval: float | None = None

    def __init__(self) -> None:
        # Set by an outside hint (Label Studio's webhook) that answers came: the miner's
        # polling reads them now instead of at its next interval.
        self.hint = asyncio.Event()

    @property
    @abstractmethod
    def where(self) -> str:
        """The backend's address, for log lines and messages."""

    def problem(self) -> str | None:
        """Why this backend cannot take tasks at all (a missing key), or None."""
        return None

    async def start(self) -> None:  # noqa: B027 - an optional hook
        """Open what the backend needs while the miner runs (a webhook listener)."""

    async def aclose(self) -> None:  # noqa: B027 - an optional hook
        """Release what :meth:`start` and the calls opened."""

    def refusal(self, request: FeedbackRequest) -> str | None:
        """Why this backend cannot show ``request`` to its workers, or None."""
        return self.capabilities.refusal(request, self.name)

    @abstractmethod
    async def create_task(self, key: TaskKey, request: FeedbackRequest, max_results: int) -> str:
        """Create the task for ``request`` and return the backend's task id.

        Idempotent on ``key``: a second call for the same key, from this process or after a
        restart, returns the first call's task and creates nothing.
        """

    @abstractmethod
    async def answers(self, task: BackendTask) -> list[Answer]:
        """Every answer the task has, in the order the backend received them."""

    async def report_score(self, task: BackendTask, score: float) -> None:  # noqa: B027 - optional
        """Tell the backend the validator's score for the task (default: nothing to tell)."""

    async def withdraw(self, task: BackendTask) -> None:  # noqa: B027 - optional
        """Take ``task`` out of the workers' reach for good: its deadline has passed and the
        miner has read and pinned its answers a last time, so nothing given later can count.

        Called once a task is past its deadline, for a backend with a ``poll_interval``; the
        miner reads the task no more afterwards. A task already gone counts as withdrawn. The
        default does nothing: for a backend that stops serving a task at its deadline itself
        (the Dojo platform).
        """
