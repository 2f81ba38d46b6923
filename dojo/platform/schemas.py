"""Request and response bodies of the platform's own endpoints: the workers' API, the miner's
dashboard and team (camelCase on the wire, as the original). The bodies a miner's client
shares with the server (log-in, keys, invites, tasks) are ``commons.dojo_wire``'s.

The contract is ``docs/platform-api.md``; change both together.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, Field, field_validator

from commons.dojo_wire import (
    CRITERION_TYPES,
    MAX_COMPLETIONS,
    MIN_COMPLETIONS,
    Camel,
    ResultItem,
    iso,
)
from commons.protocol import MAX_RATIONALE, has_control_characters

# Ids are 32-bit integers in the database; a larger one in a path is a 422, not a driver error.
DB_INT_MAX = 2**31 - 1


@functools.cache
def _wire_fields(model: type[BaseModel]) -> tuple[tuple[str, str, type[BaseModel] | None], ...]:
    """Each field's name, JSON name, and the model of its items when it is a list of models."""
    fields = []
    for name, field in model.model_fields.items():
        args = get_args(field.annotation)
        item = args[0] if get_origin(field.annotation) is list and args else None
        nested = item if isinstance(item, type) and issubclass(item, BaseModel) else None
        fields.append((name, field.serialization_alias or name, nested))
    return tuple(fields)


M = TypeVar("M", bound=BaseModel)


def wire(record: Any, model: type[BaseModel]) -> dict[str, Any]:
    """``record`` (a service's dataclass) as ``model``'s JSON: each of the model's fields
    read from the attribute of the same name, under its camelCase name, datetimes as
    :func:`iso`, a list of records as the list of its items' JSON (items that are already
    JSON objects pass as they are). The models here are the one declaration of each
    record's wire form; the services' records carry the same names, so nothing copies a
    field list by hand."""
    out = {}
    for name, alias, nested in _wire_fields(model):
        value = getattr(record, name)
        if isinstance(value, datetime):
            value = iso(value)
        elif nested is not None and value is not None:
            value = [item if isinstance(item, dict) else wire(item, nested) for item in value]
        out[alias] = value
    return out


def wired(record: Any, model: type[M]) -> M:
    """``record`` as an instance of ``model``, read through :func:`wire` (for routes that
    return the model; the hot path sends :func:`wire`'s dictionary as it is)."""
    return model.model_validate(wire(record, model))


class ErrorOut(BaseModel):
    """Every error the API answers: a precise 4xx (or a 500) and what to do about it."""

    detail: str = Field(description="what was wrong and what to do")


# --- workers ---------------------------------------------------------------------------------


class WorkerChallengeIn(Camel):
    address: str = Field(min_length=1, max_length=64)


class WorkerLoginIn(Camel):
    address: str = Field(min_length=1, max_length=64)
    signature: str = Field(min_length=1, max_length=300)
    nonce: str | None = Field(
        None, max_length=64, description="the challenge's nonce; the latest one if absent"
    )


class WorkerSessionOut(Camel):
    token: str
    expires_at: str
    worker_id: str


class WorkerMeOut(Camel):
    worker_id: str
    address: str | None
    results_today: int
    results_total: int
    skipped_total: int = 0
    lead_time_total: float = Field(0.0, description="seconds spent on all results")
    lead_time_median: float | None = Field(
        None, description="median seconds per result, over the latest 1000"
    )
    has_recovery_code: bool = False


class RecoverIn(Camel):
    code: str = Field(min_length=1, max_length=100, description="the recovery code shown when you joined")


class RecoveryCodeOut(Camel):
    code: str = Field(description="shown only in this response; it replaces any earlier code")


class SubscriptionIn(Camel):
    name: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=200)


class SubscriptionOut(Camel):
    id: int
    name: str
    miner_hotkey: str
    key_prefix: str | None
    active: bool
    created_at: str


class SubscriptionListOut(Camel):
    subscriptions: list[SubscriptionOut]


class CompletionOut(Camel):
    cid: str
    completion: str | dict[str, Any] | list[Any]


class WorkerTaskSummary(Camel):
    id: str
    title: str
    task_type: str
    num_results: int
    max_results: int
    expire_at: str
    status: Literal["IN_PROGRESS", "HELD_BY_OTHERS", "COMPLETED", "EXPIRED"]
    my_status: Literal["held", "done", "skipped"] | None


class WorkerTaskListOut(Camel):
    tasks: list[WorkerTaskSummary]


class WorkerTaskOut(Camel):
    id: str
    title: str
    body: str
    prompt: str
    task_type: str
    criteria: list[dict[str, Any]]
    completions: list[CompletionOut]
    num_results: int
    max_results: int
    expire_at: str
    held_until: str | None
    my_result: list[ResultItem] | None
    my_status: Literal["held", "done", "skipped"] | None = None
    closed_reason: str | None = Field(
        None, description="why this worker cannot answer the task now; null when it can"
    )


MAX_LEAD_TIME = 24 * 3600.0


def _rationale(value: str | None) -> str | None:
    """A rationale as stored: trimmed, none when blank; refused with control characters."""
    if value is None:
        return None
    value = value.strip()
    if has_control_characters(value):
        raise ValueError("a rationale is one line of text: no line breaks or other control characters")
    return value or None


RATIONALE_DESCRIPTION = (
    "optional: why the worker answered so, in its words; one line (no control characters), "
    f"at most {MAX_RATIONALE} characters; kept with the result and handed to the miner"
)


class SubmitResultIn(Camel):
    result_data: list[ResultItem] = Field(min_length=1, max_length=len(CRITERION_TYPES))
    lead_time: float | None = Field(
        None,
        ge=0,
        le=MAX_LEAD_TIME,
        allow_inf_nan=False,
        description="seconds the worker spent on this answer (the page measures it)",
    )
    rationale: str | None = Field(None, max_length=MAX_RATIONALE, description=RATIONALE_DESCRIPTION)

    _check_rationale = field_validator("rationale")(_rationale)


class DraftIn(Camel):
    """The worker's answer so far, in completion ids (see ``dojo.platform.services.drafts``)."""

    order: list[str] = Field(
        min_length=MIN_COMPLETIONS,
        max_length=MAX_COMPLETIONS,
        description="every completion id, in the order the worker's list shows them (best first)",
    )
    placed: list[str] = Field(
        default_factory=list,
        max_length=MAX_COMPLETIONS,
        description="the completion ids the worker has placed so far; all of them: a whole ranking",
    )
    scores: dict[str, float] | None = Field(
        None, max_length=MAX_COMPLETIONS, description="multi-score: the scores set so far, by completion id"
    )
    rationale: str | None = Field(None, max_length=MAX_RATIONALE, description=RATIONALE_DESCRIPTION)
    lead_time: float | None = Field(
        None, ge=0, le=MAX_LEAD_TIME, allow_inf_nan=False, description="seconds spent on the task so far"
    )

    _check_rationale = field_validator("rationale")(_rationale)

    @field_validator("scores")
    @classmethod
    def _finite(cls, scores: dict[str, float] | None) -> dict[str, float] | None:
        if scores is not None and not all(math.isfinite(v) for v in scores.values()):
            raise ValueError("scores must be finite numbers")
        return scores


class DraftOut(DraftIn):
    task_id: str
    saved_at: str = Field(description="when the platform stored this draft (UTC)")


class SubmitResultOut(Camel):
    task_id: str
    status: Literal["done"] = "done"
    replaced: bool
    updated_at: str


class SkipOut(Camel):
    task_id: str
    status: Literal["skipped"] = "skipped"


class HoldOut(Camel):
    task_id: str
    held_until: str | None = Field(description="null when the worker's stored result keeps its place")
    expire_at: str


MAX_FLAG_REASON = 500


class FlagIn(Camel):
    cid: str = Field(min_length=1, max_length=64, description="the completion that is broken")
    reason: str = Field(min_length=1, max_length=MAX_FLAG_REASON)


class FlagOut(Camel):
    task_id: str
    cid: str
    reason: str
    created_at: str
    updated_at: str


class HistoryItem(Camel):
    task_id: str
    title: str
    task_type: str
    task_status: Literal["IN_PROGRESS", "COMPLETED", "EXPIRED"]
    submitted_at: str
    updated_at: str
    lead_time: float | None
    ranking: dict[str, int] | None = Field(description="{cid: rank}, 1 best")
    agreement: float | None = Field(
        None,
        description="how this answer agrees with the other workers' answers to the task (the validator's "
        "quadratic-weighted kappa against their consensus, -1..1); null without another complete answer",
    )
    validator_score: float | None = Field(
        None, description="the validator's score for the task (0..1), once the miner reported it"
    )


class HistoryOut(Camel):
    results: list[HistoryItem]
    total: int


# --- miner dashboard ----------------------------------------------------------------------------


class DashboardAnswer(Camel):
    worker: str = Field(alias="workerId", description="pseudonymous, as in task results")
    ranking: dict[str, int] | None = Field(description="{cid: rank}, 1 best; null without a ranking")
    scores: dict[str, float] | None = Field(description="{cid: score} of a multi-score criterion, else null")
    lead_time: float | None = Field(description="seconds the worker spent on it; null when unknown")
    submitted_at: str
    updated_at: str


class DashboardFlag(Camel):
    worker: str = Field(alias="workerId", description="pseudonymous, as in task results")
    cid: str
    reason: str
    created_at: str
    updated_at: str


class DashboardTask(Camel):
    id: str
    title: str
    prompt_start: str = Field(description="the prompt's first characters, to tell tasks apart")
    task_type: str
    status: Literal["IN_PROGRESS", "COMPLETED", "EXPIRED"]
    num_results: int
    max_results: int
    expire_at: str
    created_at: str
    agreement: float | None = Field(
        description="the validator's agreement measure over the workers' answers (multi-rater "
        "quadratic-weighted kappa, -1..1); null below 2 complete answers"
    )
    score: float | None = Field(description="the validator's score for the task (0..1), once reported")
    answers: list[DashboardAnswer]
    flags: list[DashboardFlag]


class DashboardOut(Camel):
    hotkey: str
    tasks: list[DashboardTask]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next (older) page with the same filters; null on the last page"
    )
    matching: int = Field(description="how many tasks match the filters, over all pages")
    total_tasks: int
    open_tasks: int
    total_results: int
    workers: int


# --- the miner's team ---------------------------------------------------------------------------

MAX_TEAM_MESSAGE = 1000


class TeamMemberOut(Camel):
    worker: str = Field(alias="workerId", description="pseudonymous, as in task results")
    member: bool = Field(description="on the team now; false for one who left or was removed")
    by_invite: bool
    joined_at: str | None
    done: int
    skipped: int
    last_answer_at: str | None
    median_time: float | None = Field(description="median seconds per answer, over the latest tasks")
    agreement: float | None = Field(
        description="mean agreement with the rest of the team (kappa against their consensus), latest tasks"
    )
    agreement_tasks: int
    latest_score: float | None = Field(description="the latest validator score of a task they answered")
    latest_score_at: str | None


class TeamInviteOut(Camel):
    id: int
    created_at: str
    expires_at: str
    used_at: str | None
    revoked_at: str | None
    worker: str | None = Field(alias="workerId", description="who joined with it (pseudonymous)")
    state: Literal["unused", "used", "expired", "revoked"]


class TeamOut(Camel):
    hotkey: str
    message: str | None
    message_at: str | None
    members: list[TeamMemberOut]
    invites: list[TeamInviteOut]
    window: int = Field(description="how many of the latest tasks the times, agreement and scores cover")


class TeamMessageIn(Camel):
    message: str = Field(max_length=MAX_TEAM_MESSAGE, description="blank clears it")


class TeamMessageOut(Camel):
    message: str | None
    updated_at: str | None


class InviteRevokedOut(Camel):
    id: int
    revoked: bool
