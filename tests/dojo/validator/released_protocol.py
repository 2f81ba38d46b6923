"""commons/protocol.py as released before the image kind (protocol version 1), its code verbatim
below this note: what a miner that has not upgraded validates requests with. Kept to test that
such a miner refuses a request it cannot read cleanly, and still takes every other."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from template import __version__

PROTOCOL_VERSION = 1

MAX_ID = 64
MAX_PROMPT = 20_000
MAX_CONTENT = 200_000
MAX_FILES = 20
MAX_TURNS = 100
MIN_COMPLETIONS = 2
MAX_COMPLETIONS = 10
MAX_RESULTS = 1_000

ShortId = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=r"^[A-Za-z0-9_.:\-]+$")]
# Strict: a version is a JSON integer. Lax mode reads "1", 1.0 and true as version 1, so a peer
# that does not follow the protocol's types would pass the version check.
ProtocolVersion = Annotated[int, Field(strict=True, ge=0, le=1_000)]


def new_request_id() -> str:
    return uuid.uuid4().hex


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_CONTENT)


class Request(Message):
    protocol_version: ProtocolVersion = PROTOCOL_VERSION


# --- task content --------------------------------------------------------------------------


class CodeFile(Message):
    filename: str = Field(min_length=1, max_length=256)
    content: str = Field(max_length=MAX_CONTENT)
    language: str = Field("", max_length=32)


class TextContent(Message):
    kind: Literal["text"] = "text"
    text: str = Field(max_length=MAX_CONTENT)


class DialogueTurn(Message):
    role: Literal["user", "assistant", "system"]
    message: str = Field(max_length=MAX_CONTENT)


class DialogueContent(Message):
    kind: Literal["dialogue"] = "dialogue"
    turns: list[DialogueTurn] = Field(min_length=1, max_length=MAX_TURNS)


class CodeContent(Message):
    kind: Literal["code"] = "code"
    files: list[CodeFile] = Field(min_length=1, max_length=MAX_FILES)


Content = Annotated[TextContent | DialogueContent | CodeContent, Field(discriminator="kind")]


class Completion(Message):
    completion_id: ShortId
    model: str = Field(max_length=128, description="obfuscated model id")
    content: Content


class RankingCriteria(Message):
    type: Literal["ranking"] = "ranking"


class MultiScoreCriteria(Message):
    type: Literal["multi-score"] = "multi-score"
    min: float = Field(allow_inf_nan=False)
    max: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _range(self) -> MultiScoreCriteria:
        if not self.max > self.min:
            raise ValueError("max must be greater than min")
        return self


Criteria = Annotated[RankingCriteria | MultiScoreCriteria, Field(discriminator="type")]

TaskType = Literal["code_generation", "text", "dialogue"]


# --- messages ------------------------------------------------------------------------------


class Heartbeat(Request):
    """Liveness and protocol check; the reply names the miner's software and protocol."""


class HeartbeatReply(Message):
    protocol_version: ProtocolVersion = PROTOCOL_VERSION
    software_version: str = Field(__version__, max_length=32)
    hotkey: str = Field(max_length=64)


class FeedbackRequest(Request):
    """A task for the miner's workers: rank (or score) the completions of one prompt."""

    request_id: ShortId = Field(default_factory=new_request_id)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    task_type: TaskType = "code_generation"
    criteria: list[Criteria] = Field(min_length=1, max_length=4)
    completions: list[Completion] = Field(min_length=MIN_COMPLETIONS, max_length=MAX_COMPLETIONS)
    expire_at: AwareDatetime

    @field_validator("completions")
    @classmethod
    def _unique_ids(cls, completions: list[Completion]) -> list[Completion]:
        ids = [c.completion_id for c in completions]
        if len(set(ids)) != len(ids):
            raise ValueError("completion ids must be unique")
        return completions


class FeedbackReply(Message):
    request_id: ShortId
    dojo_task_id: str = Field(min_length=1, max_length=128)


class TaskResultRequest(Request):
    """After the deadline: the workers' results for one earlier ``FeedbackRequest``."""

    request_id: ShortId


class WorkerResult(Message):
    worker_id: str = Field(min_length=1, max_length=128, description="pseudonymous worker id")
    criteria_type: Literal["ranking", "multi-score"]
    # Ranking: completion id -> rank (1 = best). Multi-score: completion id -> score.
    values: dict[ShortId, Annotated[float, Field(allow_inf_nan=False)]] = Field(max_length=MAX_COMPLETIONS)
    submitted_at: AwareDatetime


class TaskResultReply(Message):
    request_id: ShortId
    results: list[WorkerResult] = Field(default_factory=list, max_length=MAX_RESULTS)


class ScoringResult(Request):
    """The miner's own score for one request, and nothing of other miners."""

    request_id: ShortId
    hotkey: str = Field(min_length=1, max_length=64)
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


class Ack(Message):
    ok: bool = True


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
