"""The ``llm`` backend's text, dialogue and image tasks, with the same verify-then-keep rule.

- :class:`LLMTextBackend` asks the model for a task with its facts (each with a decoy the
  prompt also states) and its steps, all written verbatim into the instruction or the
  conversation, and checks that they are (:meth:`~dojo.synthetic.textspec.TextSpec.problems`);
  the levels are planned here, not by the model (:func:`~dojo.synthetic.textspec.plan_levels`);
  each response is asked for with the values to state and the order of the steps, and the
  pipeline keeps it only when :func:`~dojo.synthetic.textspec.count_defects` reads exactly its
  level's defects back from what the model wrote (else it is asked again, told what was read).
- :class:`LLMImageBackend` draws the scene grammar's instructions with the provider's
  ``/images/generations`` and checks each picture by asking a vision model what it shows
  (GenEval's questions: which objects, how many, what colour, where); a picture is kept only
  when the scene read back is exactly its level's edits from the instruction's.
- :class:`EmbeddingFilter` keeps instructions distinct by the cosine similarity of their
  embeddings (``/embeddings``), which also catches a paraphrase that shares few words with
  the instruction it repeats; the vectors are kept in the task database.

All three use :class:`~dojo.synthetic.llm.ChatClient` (retries, time and token budgets).
"""

from __future__ import annotations

import asyncio
import base64
import random
import struct
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from commons.media import ImageRefused, decode, encode_within
from commons.protocol import Content, ImageContent
from dojo.synthetic.backend import GeneratedCompletion, GenerationError, Instruction, TaskBudget
from dojo.synthetic.filter import FilterDecision
from dojo.synthetic.imagegen import (
    BACKGROUNDS,
    COLOURS,
    REGIONS,
    SHAPES,
    Group,
    Scene,
    scene_distance,
)
from dojo.synthetic.kinds import (
    ImageLevel,
    Measure,
    SceneImageBackend,
    TextLevel,
    image_content,
    text_content,
    text_instruction,
    text_levels,
)
from dojo.synthetic.llm import ChatClient, LLMSettings, new_task_prompt
from dojo.synthetic.store import SyntheticStore
from dojo.synthetic.textspec import Fact, TextKind, TextSpec

TEXT_THEMES = (
    "an email to a team",
    "a recipe",
    "a customer support reply",
    "a travel itinerary",
    "a project status update",
    "a training plan",
    "a lab procedure",
    "an apartment listing",
    "a school trip letter",
    "a product announcement",
    "meeting minutes",
    "a packing list",
    "a volunteer schedule",
    "a garden plan",
    "a budget summary",
)


class FactAnswer(BaseModel):
    name: str = Field(min_length=1, max_length=60)
    value: str = Field(min_length=1, max_length=80)
    decoy: str = Field(min_length=1, max_length=80)


class TurnAnswer(BaseModel):
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str = Field(min_length=1, max_length=4000)


class ScenarioAnswer(BaseModel):
    """A text or dialogue task: the instruction (or the conversation so far), its facts with
    decoys and its steps, every one of them written verbatim in the instruction."""

    instruction: str | None = Field(None, max_length=6000)
    turns: list[TurnAnswer] | None = Field(None, max_length=12)
    facts: list[FactAnswer] = Field(min_length=3, max_length=6)
    steps: list[str] = Field(min_length=3, max_length=6)

    @model_validator(mode="after")
    def _checkable(self) -> ScenarioAnswer:
        if (self.instruction is None) == (self.turns is None):
            raise ValueError("give either instruction (a text task) or turns (a dialogue task)")
        if self.turns is not None and (not self.turns or self.turns[-1].role != "user"):
            raise ValueError("the conversation must end with the user's turn")
        written = self.instruction or "\n".join(t.content for t in self.turns or [])
        for phrase in [f.value for f in self.facts] + [f.decoy for f in self.facts] + self.steps:
            if phrase not in written:
                raise ValueError(f"{phrase!r} is not written, word for word, in the instruction")
        problems = self.spec("text").problems()
        if problems:
            raise ValueError(problems[0])
        return self

    def spec(self, kind: TextKind) -> TextSpec:
        turns = tuple((t.role, t.content) for t in self.turns or [])
        prompt = self.instruction or "\n\n".join(f"{role.capitalize()}: {text}" for role, text in turns)
        facts = tuple(Fact(f.name, f.value, (f.decoy,)) for f in self.facts)
        style: dict[str, object] = {"prompt": prompt, "turns": turns}
        return TextSpec(kind=kind, facts=facts, steps=tuple(self.steps), style=style)


class ResponseAnswer(BaseModel):
    response: str = Field(min_length=20, max_length=8000)


_SCENARIO_SYSTEM = (
    "You write tasks for a benchmark of everyday writing judged by humans. A task asks for one "
    "short text and states concrete facts the text must get right, each alongside a plausible "
    "wrong value that the task also mentions (the date it moved from, last year's price, the "
    "room being renovated), and 3 to 6 steps or points to cover in a given order. Answer with "
    'JSON: {"instruction": "...", "facts": [{"name", "value", "decoy"}], "steps": ["..."]} where '
    "every value, decoy and step appears word for word in the instruction, no two of them are the "
    "same, and none is part of another."
)
_DIALOGUE_SYSTEM = (
    "You write conversations for a benchmark of assistants judged by humans. The user asks for "
    "one short text over a few turns, states concrete facts it must get right and corrects at "
    "least one of them on the way (a plausible wrong value first, the right one later), and asks "
    "for 3 to 6 steps or points in a given order; the conversation ends with the user's turn. "
    'Answer with JSON: {"turns": [{"role", "content"}], "facts": [{"name", "value", "decoy"}], '
    '"steps": ["..."]} where every value, decoy and step appears word for word in the turns, no '
    "two are the same, and none is part of another."
)
_RESPONSE_SYSTEM = (
    "You write the response to a task exactly as instructed: natural, friendly, complete, about "
    "as long as a careful answer would be. State each listed fact using exactly the value given, "
    "word for word, once, as if it were right; never mention the values you are told not to use. "
    "Name each listed step word for word, once, in exactly the order given. Answer with JSON: "
    '{"response": "..."}.'
)


class LLMTextBackend:
    """Text or dialogue tasks from a chat model; see the module docstring."""

    name = "llm"

    def __init__(self, settings: LLMSettings, kind: TextKind, chat: ChatClient | None = None) -> None:
        self.settings = settings
        self.kind: TextKind = kind
        self.chat = chat or ChatClient(settings)
        self._owns_chat = chat is None

    async def aclose(self) -> None:
        if self._owns_chat:
            await self.chat.aclose()

    async def instruct(self, rng: random.Random, examples: Sequence[str], budget: TaskBudget) -> Instruction:
        prompt = new_task_prompt(examples, rng.sample(TEXT_THEMES, 2), clip=300)
        system = _SCENARIO_SYSTEM if self.kind == "text" else _DIALOGUE_SYSTEM
        answer = await self.chat.ask(
            self.settings.instruction_model or self.settings.models[0],
            [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            ScenarioAnswer,
            budget,
        )
        if (answer.turns is None) != (self.kind == "text"):
            raise GenerationError(f"asked for a {self.kind} task, the model wrote the other kind")
        return text_instruction(answer.spec(self.kind))

    async def augment(
        self, original: Instruction, levels: int, rng: random.Random, budget: TaskBudget
    ) -> list[Instruction]:
        try:
            return text_levels(original.payload.spec, levels, rng)
        except ValueError as exc:
            raise GenerationError(str(exc)) from None

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        level: TextLevel = instruction.payload
        spec, plan = level.spec, level.plan
        facts = "\n".join(f"- {f.key}: {plan.value(f.key)}" for f in spec.facts)
        avoid = sorted(
            {p for f in spec.facts for p in (f.value, *f.decoys)} - {plan.value(f.key) for f in spec.facts}
        )
        steps = "\n".join(f"{n}. {spec.steps[i]}" for n, i in enumerate(plan.order, start=1))
        ask = (
            f"The task:\n{spec.style['prompt']}\n\n"
            f"State these facts, each value word for word:\n{facts}\n\n"
            f"Never write: {', '.join(repr(a) for a in avoid)}\n\n"
            f"Cover these steps in exactly this order, each named word for word:\n{steps}"
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": _RESPONSE_SYSTEM},
            {"role": "user", "content": ask},
        ]
        if feedback:
            messages.append(
                {"role": "user", "content": f"Your previous response was refused: {feedback}. Fix it."}
            )
        model = rng.choice(self.settings.models)
        answer = await self.chat.ask(model, messages, ResponseAnswer, budget)
        return GeneratedCompletion(files=[], model=model, content=text_content(spec, answer.response.strip()))


# --- images --------------------------------------------------------------------------------------


class GroupAnswer(BaseModel):
    colour: str
    shape: str
    count: int = Field(ge=0, le=50)
    region: str


class SceneAnswer(BaseModel):
    groups: list[GroupAnswer] = Field(max_length=10)
    background: str


_VISION_SYSTEM = (
    "You describe pictures of flat coloured shapes, object by object, for a benchmark. For each "
    "colour of shape in the picture give its shape, how many there are, and the quadrant they are "
    f"in. Colours: {', '.join(COLOURS)}. Shapes: {', '.join(SHAPES)}. Quadrants: {', '.join(REGIONS)}. "
    f"Backgrounds: {', '.join(BACKGROUNDS)}. Answer with JSON: "
    '{"groups": [{"colour", "shape", "count", "region"}], "background": "..."}.'
)
IMAGE_BUDGET = 150_000  # bytes a generated picture is written within, so four fit a miner's request
PROVIDER_MAX_BYTES = 16 * 1024 * 1024  # a provider's PNG of 1024×1024 is a few MB


class LLMImageBackend(SceneImageBackend):
    """Pictures of the scene grammar from an images endpoint, checked by a vision model."""

    name = "llm"

    def __init__(self, settings: LLMSettings, chat: ChatClient | None = None, completions: int = 4) -> None:
        if not settings.image_model:
            raise ValueError("the llm image backend needs an image model (SYNTHETIC_LLM_IMAGE_MODEL)")
        super().__init__(completions)
        self.settings = settings
        self.chat = chat or ChatClient(settings)
        self._owns_chat = chat is None

    async def aclose(self) -> None:
        if self._owns_chat:
            await self.chat.aclose()

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        body = {
            "model": self.settings.image_model,
            "prompt": instruction.text,
            "n": 1,
            "size": "1024x1024",
            "response_format": "b64_json",
        }
        answer = await self.chat.post_json("/images/generations", body, budget, "an image")
        try:
            raw = base64.b64decode(str(answer["data"][0]["b64_json"]), validate=True)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise GenerationError(f"the images endpoint answered without an image: {exc!r}") from None
        try:
            # A provider's file is untrusted like any other: format, pixels and whole decode
            # are checked (only the byte cap is the provider's, as it is written anew below).
            _, image = decode(raw, max_bytes=PROVIDER_MAX_BYTES)
        except ImageRefused as exc:
            raise GenerationError(f"the images endpoint sent an image that is refused: {exc}") from None
        data = encode_within(image.convert("RGB"), IMAGE_BUDGET, "image/jpeg")
        return GeneratedCompletion(
            files=[],
            model=str(self.settings.image_model),
            content=image_content(data, "image/jpeg", image.width, image.height),
        )

    async def measure(self, instruction: Instruction, content: Content) -> Measure:
        """The edits between the scene a vision model reads in the picture and the instruction's."""
        level: ImageLevel = instruction.payload
        if not isinstance(content, ImageContent):
            return Measure(None, (f"an image task got a {content.kind} completion",))
        url = f"data:{content.media_type};base64,{content.data}"
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": _VISION_SYSTEM},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this picture."},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            },
        ]
        model = self.settings.vision_model or self.settings.models[0]
        answer = await self.chat.ask(
            model, messages, SceneAnswer, TaskBudget(seconds=self.settings.request_timeout)
        )
        found = Scene(
            groups=tuple(Group(g.colour, g.shape, g.count, g.region) for g in answer.groups if g.count > 0),
            background=answer.background,
        )
        distance = scene_distance(found, level.target)
        if distance >= 1000:
            return Measure(None, (f"the vision model reads {found}, not the scene's colours",))
        return Measure(distance)


# --- the semantic duplicate filter --------------------------------------------------------------------


async def embed(chat: ChatClient, model: str, texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings of ``texts`` from the provider's ``/embeddings``."""
    answer = await chat.post_json("/embeddings", {"model": model, "input": list(texts)}, None, "embeddings")
    try:
        rows = sorted(answer["data"], key=lambda row: int(row.get("index", 0)))
        vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise GenerationError(f"the embeddings endpoint answered without embeddings: {exc!r}") from None
    if vectors.ndim != 2 or len(vectors) != len(texts) or not np.all(np.isfinite(vectors)):
        raise GenerationError(f"the embeddings endpoint sent {vectors.shape} for {len(texts)} texts")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class EmbeddingFilter:
    """Accepts an instruction unless one accepted before is within ``threshold`` cosine
    similarity of it by the provider's embeddings. The first decision embeds whatever accepted
    instruction of this kind has no stored vector under ``model`` yet (a batch at a time)."""

    def __init__(
        self,
        store: SyntheticStore,
        threshold: float,
        *,
        kind: str,
        chat: ChatClient,
        model: str,
        batch: int = 64,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"the similarity threshold must be in (0, 1], got {threshold}")
        self.store = store
        self.threshold = threshold
        self.kind = kind
        self.chat = chat
        self.model = model
        self.batch = batch
        self._ids: list[int] = []
        self._texts: list[str] = []
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._ready = False
        self._lock = asyncio.Lock()
        self._sample_lock = threading.Lock()

    async def _warm(self) -> None:
        accepted = await asyncio.to_thread(self.store.accepted_instructions, self.kind)
        stored = await asyncio.to_thread(self.store.embeddings, self.model, self.kind)
        missing = [(i, t) for i, t in accepted if i not in stored]
        for start in range(0, len(missing), self.batch):
            chunk = missing[start : start + self.batch]
            vectors = await embed(self.chat, self.model, [t for _, t in chunk])
            for (row_id, _), vector in zip(chunk, vectors, strict=True):
                stored[row_id] = _pack(vector)
                await asyncio.to_thread(self.store.save_embedding, row_id, self.model, stored[row_id])
        rows = [(i, t) for i, t in accepted if i in stored]
        with self._sample_lock:
            self._ids = [i for i, _ in rows]
            self._texts = [t for _, t in rows]
        self._vectors = (
            np.stack([_unpack(stored[i]) for i, _ in rows]) if rows else np.zeros((0, 0), np.float32)
        )
        self._ready = True

    async def decide(self, text: str) -> FilterDecision:
        async with self._lock:
            if not self._ready:
                await self._warm()
            (vector,) = await embed(self.chat, self.model, [text])
            similarity, nearest = 0.0, None
            if len(self._ids):
                scores = self._vectors @ vector
                best = int(np.argmax(scores))
                similarity, nearest = float(scores[best]), self._ids[best]
            accepted = similarity < self.threshold
            row_id = await asyncio.to_thread(
                self.store.record_instruction,
                text,
                accepted=accepted,
                similarity=similarity,
                nearest_id=nearest,
                kind=self.kind,
            )
            if accepted:
                await asyncio.to_thread(self.store.save_embedding, row_id, self.model, _pack(vector))
                self._vectors = vector[None, :] if not len(self._ids) else np.vstack([self._vectors, vector])
                with self._sample_lock:
                    self._ids.append(row_id)
                    self._texts.append(text)
            return FilterDecision(accepted, similarity, nearest, row_id)

    def sample_accepted(self, rng: random.Random, k: int) -> list[str]:
        with self._sample_lock:
            return rng.sample(self._texts, min(k, len(self._texts)))

    async def aclose(self) -> None:
        return None


def _pack(vector: np.ndarray) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector.astype(np.float32).tolist())


def _unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


__all__ = ["EmbeddingFilter", "LLMImageBackend", "LLMTextBackend", "embed"]
