"""The Dojo API's wire models: the request and response bodies of the endpoints a miner
calls (log-in, keys, invites, tasks), camelCase on the wire as the original Dojo API.

One declaration for the three parties of the contract (``docs/platform-api.md``): the
platform's server (its routes under ``dojo.platform``) validates requests and writes
replies with them, the miner's client (``commons.dojo_api``) reads the replies with them,
and the tests' in-memory platform answers with them. A request model holds the rules the
server enforces; a reply model is what the server sends. Times are ``datetime`` in Python
and ISO 8601 UTC to the second with ``Z`` on the wire (:data:`UtcTime`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, overload

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

MAX_TITLE = 200
MAX_TEXT = 64 * 1024
MAX_COMPLETION_BYTES = 512 * 1024
MIN_COMPLETIONS = 2
MAX_COMPLETIONS = 10
MAX_TASKS_PER_REQUEST = 10
MAX_RESULTS_LIMIT = 100
CRITERION_TYPES = ("ranking", "multi-score")


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


# A time on the wire: a ``datetime`` in Python, read from ISO 8601 and written by :func:`iso`;
# its JSON schema is a plain string, as the contract has always declared it.
UtcTime = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string"}),
]


# --- miner log-in, keys and invites -------------------------------------------------------------


class MinerChallengeIn(Camel):
    hotkey: str = Field(min_length=1, max_length=64)


class ChallengeOut(Camel):
    nonce: str
    expires_at: UtcTime
    message: str


class MinerSessionIn(Camel):
    hotkey: str = Field(min_length=1, max_length=64)
    nonce: str = Field(min_length=1, max_length=64)
    signature: str = Field(
        min_length=1, max_length=300, description="0x-hex sr25519 signature of the message"
    )


class SessionOut(Camel):
    token: str
    expires_at: UtcTime


class KeyCreatedOut(Camel):
    id: int
    key: str = Field(description="the full key; shown only in this response")
    prefix: str
    created_at: UtcTime


class KeyOut(Camel):
    id: int
    prefix: str
    created_at: UtcTime
    last_used_at: UtcTime | None
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


class InviteOut(Camel):
    url: str = Field(description="the one-time link to hand to a worker, at the platform's base URL")
    expires_at: UtcTime


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
    expire_at: UtcTime


class ResultItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=32)
    value: dict[str, Any] | list[Any]


class TaskScoreIn(Camel):
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="the validator's score, 0..1")


class TaskScoreOut(Camel):
    task_id: str
    score: float
    scored_at: UtcTime


class TaskResultOut(Camel):
    id: int
    worker_id: str = Field(description="pseudonymous: stable per worker and miner, unlinkable across miners")
    status: Literal["COMPLETED"] = "COMPLETED"
    result_data: list[ResultItem]
    created_at: UtcTime
    updated_at: UtcTime
    rationale: str | None = Field(None, description="why the worker answered so, if it said; one line")


class TaskResultsBody(Camel):
    task_results: list[TaskResultOut]


class TaskResultsOut(BaseModel):
    success: bool = True
    body: TaskResultsBody
    error: str | None = None
