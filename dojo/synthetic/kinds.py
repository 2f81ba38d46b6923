"""Text, dialogue and image tasks: the offline backends, and what the pipeline checks for each kind.

The backends (both deterministic in the ``rng`` they are handed):

- :class:`ProceduralTextBackend` (``text`` or ``dialogue``): a scenario from
  :mod:`dojo.synthetic.textgen`, plans with one more defect per level
  (:func:`~dojo.synthetic.textspec.plan_levels`), responses written from templates.
- :class:`ProceduralImageBackend`: a scene from :mod:`dojo.synthetic.imagegen`, one more
  edit per level, each drawn as a PNG. Its scenes and levels are those of every image backend
  (:class:`SceneImageBackend`, which :class:`~dojo.synthetic.llm_kinds.LLMImageBackend` shares).

The rules (:data:`RULES`) say, for a generated completion, how many defects the checker reads
in it (``measure``) and what miners get instead of it (``obfuscate``). The pipeline keeps a
completion only when the defects read equal its level, both in the completion and in what
miners get, and accepts the task only when the levels read back are exactly ``0 … n-1`` in the
intended order (:func:`confirm_order`).
"""

from __future__ import annotations

import asyncio
import functools
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from commons.media import ImageRefused, b64decode, b64encode, decode, sniff
from commons.obfuscation import obfuscate_pixels
from commons.protocol import Content, DialogueContent, DialogueTurn, ImageContent, TextContent
from dojo.synthetic.backend import GeneratedCompletion, GenerationError, Instruction, TaskBudget
from dojo.synthetic.imagegen import (
    Scene,
    describe,
    deviate,
    png_bytes,
    read_scene,
    render,
    sample_scene,
    scene_distance,
)
from dojo.synthetic.textgen import render_response, sample_task
from dojo.synthetic.textspec import Plan, TextKind, TextSpec, count_defects, plan_levels

PROCEDURAL_TEXT_LABEL = "dojo-procedural-text-1"
PROCEDURAL_IMAGE_LABEL = "dojo-procedural-image-1"
DEFAULT_IMAGE_SIZE = 1024
# The most completions a task of each kind can have (one defect per level must fit).
MAX_COMPLETIONS = {"code": 10, "text": 8, "dialogue": 8, "image": 8}


@dataclass(frozen=True)
class TextLevel:
    """The payload of a text or dialogue instruction: the task's spec and this level's plan."""

    spec: TextSpec
    plan: Plan


@dataclass(frozen=True)
class ImageLevel:
    """The payload of an image instruction: the instruction's scene and this level's."""

    target: Scene
    scene: Scene


def text_content(spec: TextSpec, text: str) -> Content:
    """A response as the protocol carries it: the text, or the conversation ending in it."""
    if spec.kind == "text":
        return TextContent(text=text)
    turns = [DialogueTurn(role=role, message=message) for role, message in spec.style["turns"]]  # type: ignore[attr-defined]
    return DialogueContent(turns=[*turns, DialogueTurn(role="assistant", message=text)])


def response_text(content: Content) -> str:
    """The part of a text or dialogue completion that is ranked."""
    if isinstance(content, TextContent):
        return content.text
    if isinstance(content, DialogueContent):
        return content.turns[-1].message
    raise TypeError(f"not a text or dialogue completion: {content.kind}")


def text_levels(spec: TextSpec, levels: int, rng: random.Random) -> list[Instruction]:
    """The variants of a text task: plans 1..levels, each an instruction the augmenter accepts."""
    plans = plan_levels(spec, levels, rng)
    return [
        Instruction(
            text=f"{spec.style['prompt']}\n[deviation {plan.deviation}: {'; '.join(plan.describe(spec))}]",
            deviation=plan.deviation,
            payload=TextLevel(spec, plan),
            kind=spec.kind,
        )
        for plan in plans[1:]
    ]


def text_instruction(spec: TextSpec) -> Instruction:
    from dojo.synthetic.textspec import correct_plan

    return Instruction(
        text=str(spec.style["prompt"]), payload=TextLevel(spec, correct_plan(spec)), kind=spec.kind
    )


class ProceduralTextBackend:
    """Text or dialogue tasks from the scenario grammar; no network, no model."""

    name = "procedural"

    def __init__(self, kind: TextKind = "text") -> None:
        self.kind: TextKind = kind

    async def instruct(self, rng: random.Random, examples: Sequence[str], budget: TaskBudget) -> Instruction:
        return text_instruction(sample_task(self.kind, rng))

    async def augment(
        self, original: Instruction, levels: int, rng: random.Random, budget: TaskBudget
    ) -> list[Instruction]:
        return text_levels(original.payload.spec, levels, rng)

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        level: TextLevel = instruction.payload
        text = render_response(level.spec, level.plan, rng)
        return GeneratedCompletion(
            files=[], model=PROCEDURAL_TEXT_LABEL, content=text_content(level.spec, text)
        )

    async def aclose(self) -> None:
        return None


def image_instruction(scene: Scene, rng: random.Random) -> Instruction:
    return Instruction(text=describe(scene, rng), payload=ImageLevel(scene, scene), kind="image")


def image_levels(original: Instruction, levels: int, rng: random.Random) -> list[Instruction]:
    target: Scene = original.payload.target
    try:
        scenes = deviate(target, levels, rng)
    except ValueError as exc:
        raise GenerationError(str(exc)) from None
    return [
        Instruction(text=describe(scene, rng), deviation=k, payload=ImageLevel(target, scene), kind="image")
        for k, scene in enumerate(scenes, start=1)
    ]


def image_content(data: bytes, media_type: str, width: int, height: int) -> ImageContent:
    # Synthetic images carry no alt text: words describing the picture would tell a reader
    # how it differs from the prompt. The task page says which response an image is.
    return ImageContent(media_type=media_type, data=b64encode(data), width=width, height=height)  # type: ignore[arg-type]


class SceneImageBackend:
    """What every image backend shares: instructions and levels from the scene grammar of
    :mod:`dojo.synthetic.imagegen`; a subclass draws them (``generate``)."""

    kind = "image"

    def __init__(self, completions: int) -> None:
        # Two groups hold five edits in a row, three hold seven.
        self.groups = (3,) if completions > 6 else (2, 2, 3)

    async def instruct(self, rng: random.Random, examples: Sequence[str], budget: TaskBudget) -> Instruction:
        return image_instruction(sample_scene(rng, groups=rng.choice(self.groups)), rng)

    async def augment(
        self, original: Instruction, levels: int, rng: random.Random, budget: TaskBudget
    ) -> list[Instruction]:
        return image_levels(original, levels, rng)


class ProceduralImageBackend(SceneImageBackend):
    """Scenes of coloured shapes drawn with Pillow; no network, no model."""

    name = "procedural"

    def __init__(self, size: int = DEFAULT_IMAGE_SIZE, completions: int = 4) -> None:
        super().__init__(completions)
        self.size = size

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        level: ImageLevel = instruction.payload
        seed = rng.getrandbits(64)
        data = await asyncio.to_thread(lambda: png_bytes(render(level.scene, self.size, random.Random(seed))))
        content = image_content(data, "image/png", self.size, self.size)
        return GeneratedCompletion(files=[], model=PROCEDURAL_IMAGE_LABEL, content=content)

    async def aclose(self) -> None:
        return None


# --- checks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """The defects the checker read in a completion, or why it could not read them."""

    defects: int | None
    problems: tuple[str, ...] = ()


class KindRules(Protocol):
    def measure(self, instruction: Instruction, content: Content) -> Measure: ...

    def obfuscate(self, content: Content, rng: random.Random) -> Content: ...


class TextRules:
    """Text and dialogue: the defects :func:`~dojo.synthetic.textspec.count_defects` reads;
    nothing to obfuscate in the words (model labels are the validator's to hide)."""

    def measure(self, instruction: Instruction, content: Content) -> Measure:
        level: TextLevel = instruction.payload
        reading = count_defects(level.spec, response_text(content))
        return Measure(reading.defects, reading.problems)

    def obfuscate(self, content: Content, rng: random.Random) -> Content:
        return content


@functools.lru_cache(maxsize=16)
def _pixels(data: str, media_type: str) -> Image.Image:
    """A completion's image decoded whole (commons.media's checks), for the checker and the
    obfuscator alike: each completion is decoded once."""
    return decode(b64decode(data), media_type)[1]


def _reading(data: str, media_type: str) -> Image.Image:
    """The picture the checker reads: a JPEG decoded at a quarter of its size by libjpeg's own
    scaling (the checker reads a small copy anyway), anything else whole."""
    if media_type != "image/jpeg":
        return _pixels(data, media_type)
    sniff(b64decode(data), media_type)
    with Image.open(io.BytesIO(b64decode(data)), formats=["JPEG"]) as image:
        image.draft("RGB", (image.width // 4, image.height // 4))
        image.load()
        picture: Image.Image = image.convert("RGB")  # Pillow types the opened file's ``__enter__`` loosely
        return picture


class ImageRules:
    """Images: the edits between the scene read from the pixels and the instruction's scene;
    obfuscated by :func:`~commons.obfuscation.obfuscate_pixels`."""

    def measure(self, instruction: Instruction, content: Content) -> Measure:
        level: ImageLevel = instruction.payload
        if not isinstance(content, ImageContent):
            return Measure(None, (f"an image task got a {content.kind} completion",))
        try:
            image = _reading(content.data, content.media_type)
        except (ImageRefused, OSError) as exc:
            return Measure(None, (f"the image does not decode: {exc}",))
        found = read_scene(image, level.target.background)
        distance = scene_distance(found, level.target)
        if distance >= 1000:
            return Measure(None, (f"the picture shows {found}, not the scene's colours",))
        return Measure(distance)

    def obfuscate(self, content: Content, rng: random.Random) -> Content:
        assert isinstance(content, ImageContent)
        info, data = obfuscate_pixels(_pixels(content.data, content.media_type), rng)
        return image_content(data, info.media_type, info.width, info.height)


RULES: dict[str, KindRules] = {"text": TextRules(), "dialogue": TextRules(), "image": ImageRules()}


def confirm_order(intended: Sequence[int], measured: Sequence[int | None]) -> str | None:
    """None when the defects read back are the intended ones, level by level; else why not."""
    if list(measured) == list(intended):
        return None
    return f"the checker read {list(measured)} defects where the levels are {list(intended)}"


__all__ = [
    "MAX_COMPLETIONS",
    "RULES",
    "ImageLevel",
    "ProceduralImageBackend",
    "ProceduralTextBackend",
    "SceneImageBackend",
    "TextLevel",
    "confirm_order",
    "response_text",
]
