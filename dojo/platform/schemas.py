"""Request and response bodies of the Dojo API (camelCase on the wire, as the original).

The contract is ``docs/platform-api.md``; change both together.
"""

from __future__ import annotations

import functools
import json
import math
from datetime import datetime, timezone
from typing import Any, Literal, get_args, get_origin, overload

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from commons.protocol import MAX_RATIONALE, has_control_characters

MAX_TITLE = 200
MAX_TEXT = 64 * 1024
MAX_COMPLETION_BYTES = 512 * 1024
MIN_COMPLETIONS = 2
MAX_COMPLETIONS = 10
MAX_TASKS_PER_REQUEST = 10
MAX_RESULTS_LIMIT = 100
CRITERION_TYPES = ("ranking", "multi-score")
# Ids are 32-bit integers in the database; a larger one in a path is a 422, not a driver error.
DB_INT_MAX = 2**31 - 1


class Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="ignore",
    )


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """A time → ISO 8601 in UTC to the second, with ``Z`` (a naive time is taken as UTC)."""
    if value is None:
        return None
    return to_utc(value).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


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


def to_naive_utc(value: datetime) -> datetime:
    """``value`` in UTC without a zone: the form a request's times are validated to, so that
    a request's hash (its idempotency) is the one it had before the platform's times were
    aware."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC, timezone-aware; a naive time is taken as UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class ErrorOut(BaseModel):
    """Every error the API answers: a precise 4xx (or a 500) and what to do about it."""

    detail: str = Field(description="what was wrong and what to do")


# --- miner log-in and keys -------------------------------------------------------------------


class MinerChallengeIn(Camel):
    hotkey: str = Field(min_length=1, max_length=64)


class ChallengeOut(Camel):
    nonce: str
    expires_at: str
    message: str


class MinerSessionIn(Camel):
    hotkey: str = Field(min_length=1, max_length=64)
    nonce: str = Field(min_length=1, max_length=64)
    signature: str = Field(
        min_length=1, max_length=300, description="0x-hex sr25519 signature of the message"
    )


class SessionOut(Camel):
    token: str
    expires_at: str


class KeyCreatedOut(Camel):
    id: int
    key: str = Field(description="the full key; shown only in this response")
    prefix: str
    created_at: str


class KeyOut(Camel):
    id: int
    prefix: str
    created_at: str
    last_used_at: str | None
    disabled: bool
    in_use: bool = Field(
        False,
        description="the API key the running miner most likely uses: the active one used last, within a day",
    )


class KeyListOut(Camel):
    keys: list[KeyOut]


class KeyDisabledOut(Camel):
    id: int
    disabled: bool


# --- tasks -------------------------------------------------------------------------------------


class CompletionIn(Camel):
    model: str = Field("", max_length=200)
    completion: str | dict[str, Any] | list[Any]
    cid: str | None = Field(None, min_length=1, max_length=64)

    @field_validator("completion")
    @classmethod
    def _size(cls, value: Any) -> Any:
        size = len(value.encode()) if isinstance(value, str) else len(json.dumps(value).encode())
        if size > MAX_COMPLETION_BYTES:
            raise ValueError(
                f"a completion may hold at most {MAX_COMPLETION_BYTES} bytes; this one holds {size}"
            )
        if isinstance(value, dict) and value.get("kind") == "image":
            check_image_completion(value)
        return value


IMAGE_FIELDS = {"kind", "mediaType", "data", "width", "height", "alt"}
MAX_ALT = 2000


def check_image_completion(value: dict[str, Any]) -> None:
    """An image completion (``docs/platform-api.md``) must be a PNG, JPEG or WebP file that
    decodes whole, of the type and size it declares, within the byte and pixel caps; it is
    served to workers' browsers as it is, so nothing else passes (an SVG or a page dressed as
    an image, a truncated file, an image bomb)."""
    from commons.media import MEDIA_TYPES, ImageRefused, b64decode, decode

    extra = set(value) - IMAGE_FIELDS
    if extra:
        raise ValueError(f"an image completion has no field {sorted(extra)[0]!r}")
    media_type, data = value.get("mediaType"), value.get("data")
    width, height, alt = value.get("width"), value.get("height"), value.get("alt", "")
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"mediaType must be one of {', '.join(MEDIA_TYPES)}")
    if not isinstance(data, str) or not data:
        raise ValueError("data must be the image file in base64")
    if not isinstance(alt, str) or len(alt) > MAX_ALT:
        raise ValueError(f"alt must be a text of at most {MAX_ALT} characters")
    if type(width) is not int or type(height) is not int:
        raise ValueError("width and height must be integers")
    try:
        info, _ = decode(b64decode(data), media_type)
    except ImageRefused as exc:
        raise ValueError(str(exc)) from None
    if (info.width, info.height) != (width, height):
        raise ValueError(
            f"the image is {info.width}×{info.height} pixels but is declared as {width}×{height}"
        )


class CriterionIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # the original sent "options" too; kept as given

    type: Literal["ranking", "multi-score"]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _range(self) -> CriterionIn:
        if self.type == "multi-score":
            if self.min is None or self.max is None:
                raise ValueError("a multi-score criterion needs min and max")
            if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min >= self.max:
                raise ValueError("a multi-score criterion needs finite min < max")
        return self


class TaskDataIn(Camel):
    prompt: str = Field(max_length=MAX_TEXT)
    responses: list[CompletionIn] = Field(min_length=MIN_COMPLETIONS, max_length=MAX_COMPLETIONS)
    task: str = Field("CODE_GENERATION", min_length=1, max_length=64)
    criteria: list[CriterionIn] = Field(min_length=1, max_length=len(CRITERION_TYPES))

    @model_validator(mode="after")
    def _unique(self) -> TaskDataIn:
        types = [c.type for c in self.criteria]
        if len(set(types)) != len(types):
            raise ValueError("each criterion type may appear once")
        cids = [r.cid or r.model for r in self.responses]
        if any(not cid for cid in cids):
            raise ValueError("every response needs a cid (or a model name to stand for it)")
        if len(set(cids)) != len(cids):
            raise ValueError("completion ids (cid, or model where cid is absent) must be distinct")
        return self


class CreateTasksIn(Camel):
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    body: str = Field("", max_length=MAX_TEXT)
    expire_at: datetime
    task_data: list[TaskDataIn] = Field(min_length=1, max_length=MAX_TASKS_PER_REQUEST)
    max_results: int = Field(1, ge=1, le=MAX_RESULTS_LIMIT)

    @field_validator("expire_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        """Naive UTC, here: ``9999-12-31T23:59:59-12:00`` is a valid time whose UTC falls
        past the calendar's end (``datetime`` raises OverflowError), and a 422 must say so."""
        try:
            return to_naive_utc(value)
        except OverflowError:
            raise ValueError(
                f"{value.isoformat()} lies outside the calendar in UTC; send a time in the next 5 days"
            ) from None


class CreateTasksOut(BaseModel):
    success: bool = True
    body: list[str]
    error: str | None = None


class TaskStatusOut(Camel):
    id: str
    status: Literal["IN_PROGRESS", "COMPLETED", "EXPIRED"]
    num_results: int
    max_results: int
    expire_at: str


class ResultItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=32)
    value: dict[str, Any] | list[Any]


class TaskScoreIn(Camel):
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="the validator's score, 0..1")


class TaskScoreOut(Camel):
    task_id: str
    score: float
    scored_at: str


class TaskResultOut(Camel):
    id: int
    worker_id: str = Field(description="pseudonymous: stable per worker and miner, unlinkable across miners")
    status: Literal["COMPLETED"] = "COMPLETED"
    result_data: list[ResultItem]
    created_at: str
    updated_at: str
    rationale: str | None = Field(None, description="why the worker answered so, if it said; one line")


class TaskResultsBody(Camel):
    task_results: list[TaskResultOut]


class TaskResultsOut(BaseModel):
    success: bool = True
    body: TaskResultsBody
    error: str | None = None


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
    lead_time_median: float | None = Field(None, description="median seconds per result")
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
    """The worker's answer so far, in completion ids (see ``dojo.platform.drafts``)."""

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


class InviteOut(Camel):
    url: str = Field(description="the one-time link to hand to a worker, at the platform's base URL")
    expires_at: str


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
