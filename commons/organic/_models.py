"""The organic API's wire format: what a caller sends, and what it gets back by ``GET`` and by
webhook. One declaration for the validator's server and for the client.

The content of a completion is the protocol's :data:`commons.protocol.Content` union, so
every content kind the protocol carries to miners is accepted here too, with the same size
caps; the criteria are the protocol's :data:`commons.protocol.Criteria`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from commons.protocol import (
    MAX_COMPLETIONS,
    MAX_PROMPT,
    MIN_COMPLETIONS,
    Content,
    Criteria,
    Printable,
    RankingCriteria,
    ShortId,
    TaskType,
)

MAX_EXTERNAL_ID = 128
MAX_CALLBACK_URL = 2048
MAX_MODEL = 128

Visibility = Literal["private", "public"]
TaskState = Literal["queued", "sent", "collecting", "scored", "expired", "failed"]
DeliveryState = Literal["pending", "delivered", "failed"]
EventType = Literal["task.scored", "task.expired", "task.failed"]


# What a caller chooses and the validator stores and logs (the external id, the completions'
# model labels, the callback URL) is :data:`commons.protocol.Printable`: one line, no control
# characters. Completion ids are the protocol's ``ShortId``, file names its ``CodeFile``'s.


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrganicCompletion(_Wire):
    """One completion to rank: the caller's own ``id`` for it (results name it), the model
    that made it (kept by the validator, never sent to a miner), and its content."""

    id: ShortId | None = Field(
        None, description="your label for this completion; default c1, c2, ... in order"
    )
    model: Printable = Field(
        "", max_length=MAX_MODEL, description="the model that made it; never shown to a miner"
    )
    content: Content


class TaskRequest(_Wire):
    """``POST /v1/tasks``: one prompt and 2-10 completions for Dojo's workers to rank."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    completions: list[OrganicCompletion] = Field(min_length=MIN_COMPLETIONS, max_length=MAX_COMPLETIONS)
    criteria: Criteria = Field(
        default_factory=RankingCriteria, description="ranking, or multi-score with a range"
    )
    task_type: TaskType | None = Field(None, description="default: from the completions' content kind")
    deadline: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="seconds the workers get; default the validator's task deadline",
    )
    miners: int | None = Field(
        None, ge=1, le=1024, description="how many miners to ask; default the validator's"
    )
    callback_url: Printable | None = Field(None, min_length=1, max_length=MAX_CALLBACK_URL)
    external_id: Printable | None = Field(
        None,
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        pattern=r"^[\x21-\x7e]+$",
        description="your id for idempotency: the same id with the same body gives the same task",
    )
    visibility: Visibility = Field("private", description="private: never in the open dataset")

    @model_validator(mode="after")
    def _labels(self) -> TaskRequest:
        labels = self.labels()
        if len(set(labels)) != len(labels):
            raise ValueError("completion ids must be unique")
        return self

    def labels(self) -> list[str]:
        return [c.id or f"c{i}" for i, c in enumerate(self.completions, start=1)]


class TaskAccepted(_Wire):
    """The answer to ``POST /v1/tasks`` (202): the task is on disk and queued."""

    task_id: str
    status: TaskState
    created_at: AwareDatetime
    external_id: str | None = None
    # True when an earlier request with the same external id made this task.
    duplicate: bool = False


class CompletionResult(_Wire):
    id: str
    # 1 = best in the consensus; ties share the mean of their positions.
    consensus_rank: float
    # Ranking: the reliability-weighted mean rank (1 = best). Multi-score: the mean score.
    mean: float
    # Standard deviation of the workers' values, weighted as the mean is.
    spread: float


class WorkerAnswer(_Wire):
    worker: str = Field(description="a pseudonym, stable within this task only")
    values: dict[str, float]
    rationale: str | None = Field(None, description="the worker's one-line reason, when it gave one")


class TaskResult(_Wire):
    criteria_type: Literal["ranking", "multi-score"]
    ranking: list[str] = Field(description="completion ids, best first")
    completions: list[CompletionResult]
    agreement: float = Field(description="the miners' reliability-weighted multi-rater kappa, in [-1, 1]")
    miners: int
    workers: int
    raw: list[WorkerAnswer] | None = None


class Delivery(_Wire):
    webhook_id: str
    state: DeliveryState
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: AwareDatetime | None = None
    next_attempt_at: AwareDatetime | None = None


class TaskView(_Wire):
    """``GET /v1/tasks/{id}``: where a task is, and once scored its result."""

    task_id: str
    external_id: str | None = None
    status: TaskState
    status_detail: str | None = None
    visibility: Visibility
    created_at: AwareDatetime
    sent_at: AwareDatetime | None = None
    scored_at: AwareDatetime | None = None
    deadline: float
    result: TaskResult | None = None
    delivery: Delivery | None = None


class TaskPage(_Wire):
    tasks: list[TaskView]
    next_cursor: str | None = None


class RateUsage(_Wire):
    limit: int = Field(description="requests per minute")
    remaining: int
    reset: float = Field(description="seconds until a request is free again (0 when one is)")


class QuotaUsage(_Wire):
    limit: int = Field(description="tasks per UTC day")
    used: int
    remaining: int
    resets_at: AwareDatetime


class Usage(_Wire):
    caller: str
    kind: Literal["key", "hotkey"]
    rate: RateUsage
    daily_quota: QuotaUsage


class WebhookEvent(_Wire):
    """A webhook's body (Standard Webhooks' ``type``, ``timestamp``, ``data``)."""

    type: EventType
    timestamp: AwareDatetime
    data: TaskView


def event_type(status: str) -> EventType:
    return "task.scored" if status == "scored" else "task.expired" if status == "expired" else "task.failed"
