"""The messages validators and miners exchange, one HTTP route each (``POST /<MessageName>``).

Every request carries ``protocol_version``, a JSON integer (``"1"``, ``1.0`` or ``true`` are
refused with 422 naming the field); a neuron refuses a request of another major version with
400 and says which it speaks. Every string and list has a size cap, so a request that passes
validation is bounded in memory, and validation errors name the field
(``completions.3.content.files.0.content: String should have at most 200000 characters``).

=====================  ==========================  =========================================
request                reply                       when
=====================  ==========================  =========================================
``Heartbeat``          ``HeartbeatReply``          liveness and version check, on an interval
``FeedbackRequest``    ``FeedbackReply``           a new task for the miner's workers
``TaskResultRequest``  ``TaskResultReply``         after the deadline: the workers' results
``ScoringResult``      ``Ack``                     the miner's own score for one request
=====================  ==========================  =========================================

``FeedbackRequest`` carries no ground truth, and each miner gets its own completion ids and
order, so miners cannot align answers by position or id.

Workers. A miner takes at most :data:`MAX_WORKERS_PER_TASK` workers' answers for a task (the
subnet fixes the number, so every validator knows how many it asked for) and names each worker
by a pseudonym of the form :data:`WORKER_PSEUDONYM`; a validator refuses a reply that names
more workers or another form of id (:func:`dojo.validator.results.check_results`).

Content kinds: ``code`` (files), ``text``, ``dialogue`` (turns with roles) and ``image`` (one
PNG, JPEG or WebP file in base64, at most :data:`~commons.media.MAX_IMAGE_BYTES` bytes and
:data:`~commons.media.MAX_IMAGE_PIXELS` pixels, its format read from its own magic bytes and
checked against ``media_type``; the images of one request hold at most
:data:`MAX_REQUEST_IMAGE_BYTES` together, so the request fits a miner's 1 MiB body limit).

Version rules. ``PROTOCOL_VERSION`` is the major version: it changes only when a message that
a neuron of the previous version accepts would change meaning or stop being valid, and a
neuron refuses every request of another major version (400), heartbeats included. An additive
change (a new content kind, a new task type) keeps the version: every message that was valid
stays valid and means what it meant. The models are closed (``extra="forbid"``, literal
discriminators), so a neuron that predates an addition refuses a request that uses it with 422
naming the field (``completions.0.content: Input tag 'image' found using 'kind' does not match
any of the expected tags``) and keeps taking everything else. The validator records such a
refusal as a refused send, and a miner that refused a task has no result for it and scores 0
on it, as for any task it did not answer.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from commons.media import MAX_BASE64, MAX_IMAGE_SIDE, ImageRefused, MediaType, b64decode, sniff
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
# The most workers a validator takes from one miner for one task: the subnet fixes it, so a
# validator knows how many it asked for without a field in the request (a miner's
# ``--task_max_results`` may not exceed it), and a reply that names more workers is refused.
MAX_WORKERS_PER_TASK = 10
# How a miner names a worker to validators: "w" and 24 hex digits, an HMAC of the worker
# backend's id under the miner's secret (:func:`dojo.miner.answers.worker_pseudonym_for_validators`).
WORKER_PSEUDONYM = r"^w[0-9a-f]{24}$"
MAX_RATIONALE = 1_000
MAX_ALT = 2_000
# All images of one request together: their base64 and the rest of the request stay under a
# miner's default body limit (1 MiB).
MAX_REQUEST_IMAGE_BYTES = 640 * 1024
CONTENT_KINDS = ("code", "text", "dialogue", "image")

# --- reply caps ----------------------------------------------------------------------------
# The most bytes a validator reads of a reply, on the wire and decoded (template.http_body):
# the largest reply the caps above allow, in compact JSON with every character of a string
# taken as 4 bytes (the longest UTF-8), doubled for another encoder's escapes and spacing.
# A miner's reply past its cap is refused as ``too_large``, having held at most the cap.
REPLY_MARGIN = 2
_CHAR = 4  # bytes per character at most, in UTF-8
_FIELD = 32  # a key with its quotes, colon and comma, at most
_NUMBER = 24  # a float as JSON writes it, at most (-1.2345678901234567e-308)
_TIMESTAMP = 40  # 2026-12-06T08:02:49.123456+00:00, quoted
_WORKER_RESULT_BYTES = (
    2  # braces
    + 5 * _FIELD
    + 128 * _CHAR  # worker_id
    + len('"multi-score"')
    + 2
    + MAX_COMPLETIONS * (MAX_ID + 4 + _NUMBER)  # values: ids are ASCII by their pattern
    + _TIMESTAMP
    + 2
    + MAX_RATIONALE * _CHAR
)
MAX_TASK_RESULT_REPLY_BYTES = REPLY_MARGIN * (
    4 * _FIELD + MAX_ID + MAX_RESULTS * (_WORKER_RESULT_BYTES + 1)
)  # ≈ 11 MiB
# The small replies: a few short fields; 4 KiB is many times what they take.
MAX_SMALL_REPLY_BYTES = 4 * 1024

ShortId = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=r"^[A-Za-z0-9_.:\-]+$")]
# Strict: a version is a JSON integer. Lax mode reads "1", 1.0 and true as version 1, so a peer
# that does not follow the protocol's types would pass the version check.
ProtocolVersion = Annotated[int, Field(strict=True, ge=0, le=1_000)]


def new_request_id() -> str:
    return uuid.uuid4().hex


# Unicode category Cc is these 65 code points in every Unicode version (a stability policy),
# Zl and Zp one each: a regular expression finds them without a Python step per character.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_OR_SEPARATOR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (Unicode category Cc: C0, DEL, C1)."""
    return _CONTROL.search(text) is not None


def _one_line(text: str) -> str:
    # Ids, names and versions end up in logs, databases and exports: a line break or a
    # terminal escape in one could forge a log line or rewrite a terminal.
    if _CONTROL_OR_SEPARATOR.search(text) is not None:
        raise ValueError("may not hold control characters (line breaks, escapes)")
    return text


# A name or id a peer chooses (a worker's pseudonym, a task id on the miner's platform, a
# hotkey, a file name): one line, no control characters.
Printable = Annotated[str, AfterValidator(_one_line)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_CONTENT)


class Request(Message):
    protocol_version: ProtocolVersion = PROTOCOL_VERSION


# --- task content --------------------------------------------------------------------------


class CodeFile(Message):
    filename: Printable = Field(min_length=1, max_length=256)
    content: str = Field(max_length=MAX_CONTENT)
    language: Printable = Field("", max_length=32)


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


class ImageContent(Message):
    """One image, in base64. Its header is checked here (format by magic bytes, the declared
    ``media_type`` and size, the byte and pixel caps); a receiver that shows or stores the
    image decodes it whole with :func:`commons.media.decode` first."""

    kind: Literal["image"] = "image"
    media_type: MediaType
    data: str = Field(min_length=1, max_length=MAX_BASE64, description="the file, base64 (RFC 4648, padded)")
    width: int = Field(ge=1, le=MAX_IMAGE_SIDE)
    height: int = Field(ge=1, le=MAX_IMAGE_SIDE)
    alt: str = Field("", max_length=MAX_ALT, description="what the image shows, for people who cannot see it")

    @model_validator(mode="after")
    def _is_the_image_it_says(self) -> ImageContent:
        try:
            info = sniff(b64decode(self.data), self.media_type)
        except ImageRefused as exc:
            raise ValueError(str(exc)) from None
        if (info.width, info.height) != (self.width, self.height):
            raise ValueError(
                f"the image is {info.width}×{info.height} pixels but is declared as {self.width}×{self.height}"
            )
        return self

    def image_bytes(self) -> bytes:
        return b64decode(self.data)

    @property
    def byte_size(self) -> int:
        """The file's size, from its base64 length (without decoding it)."""
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")


Content = Annotated[TextContent | DialogueContent | CodeContent | ImageContent, Field(discriminator="kind")]


class Completion(Message):
    completion_id: ShortId
    model: Printable = Field(max_length=128, description="obfuscated model id")
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

TaskType = Literal["code_generation", "text", "dialogue", "image"]
# The task type a task of each content kind is sent with.
TASK_TYPE_OF_KIND: dict[str, TaskType] = {
    "code": "code_generation",
    "text": "text",
    "dialogue": "dialogue",
    "image": "image",
}


# --- messages ------------------------------------------------------------------------------


class Heartbeat(Request):
    """Liveness and protocol check; the reply names the miner's software and protocol."""


class HeartbeatReply(Message):
    max_reply_bytes: ClassVar[int] = MAX_SMALL_REPLY_BYTES

    protocol_version: ProtocolVersion = PROTOCOL_VERSION
    software_version: Printable = Field(__version__, max_length=32)
    hotkey: Printable = Field(max_length=64)


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
        images = sum(c.content.byte_size for c in completions if isinstance(c.content, ImageContent))
        if images > MAX_REQUEST_IMAGE_BYTES:
            raise ValueError(
                f"the images hold {images} bytes together; at most {MAX_REQUEST_IMAGE_BYTES} per request"
            )
        return completions


class FeedbackReply(Message):
    max_reply_bytes: ClassVar[int] = MAX_SMALL_REPLY_BYTES

    request_id: ShortId
    dojo_task_id: Printable = Field(min_length=1, max_length=128)


class TaskResultRequest(Request):
    """After the deadline: the workers' results for one earlier ``FeedbackRequest``."""

    request_id: ShortId


class WorkerResult(Message):
    worker_id: Printable = Field(min_length=1, max_length=128, description="pseudonymous worker id")
    criteria_type: Literal["ranking", "multi-score"]
    # Ranking: completion id -> rank (1 = best). Multi-score: completion id -> score.
    values: dict[ShortId, Annotated[float, Field(allow_inf_nan=False)]] = Field(max_length=MAX_COMPLETIONS)
    submitted_at: AwareDatetime
    # Optional: why the worker answered so, in its words (one line: no control characters).
    rationale: str | None = Field(None, max_length=MAX_RATIONALE)

    @field_validator("rationale")
    @classmethod
    def _printable(cls, rationale: str | None) -> str | None:
        if rationale is not None and has_control_characters(rationale):
            raise ValueError("a rationale may not hold control characters (line breaks, escapes)")
        return rationale


class TaskResultReply(Message):
    max_reply_bytes: ClassVar[int] = MAX_TASK_RESULT_REPLY_BYTES

    request_id: ShortId
    results: list[WorkerResult] = Field(default_factory=list, max_length=MAX_RESULTS)


class ScoringResult(Request):
    """The miner's own score for one request, and nothing of other miners."""

    request_id: ShortId
    hotkey: Printable = Field(min_length=1, max_length=64)
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


class Ack(Message):
    max_reply_bytes: ClassVar[int] = MAX_SMALL_REPLY_BYTES

    ok: bool = True
