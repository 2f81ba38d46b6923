"""What a generation backend provides to the pipeline, and the per-task limits it honours.

A backend makes tasks of one content kind. It turns task seeds into an instruction
(instructor), an instruction into variants that deviate from it step by step (augmenter:
for code, instructions that ask for less of what the original asks; for text, dialogue and
images, plans of responses with one more defect each), and a variant into a completion
(output generator). The pipeline owns everything else: filtering, checking, obfuscation,
shuffling and ground truth. Two families exist: ``procedural`` (offline, deterministic) and
``llm`` (any OpenAI-compatible endpoint).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from commons.protocol import CodeContent, CodeFile, Content


class GenerationError(RuntimeError):
    """A backend could not produce what was asked (bad model output, limits reached)."""


class TaskDiscarded(GenerationError):
    """The checker could not confirm the task's ranking; the task is thrown away."""


class BudgetExceeded(GenerationError):
    """The task ran out of its time or token allowance."""


@dataclass(frozen=True)
class Instruction:
    """An instruction at some deviation from the task's original (0 = the original).

    ``payload`` is the backend's own representation (the procedural backend's
    :class:`~dojo.synthetic.spec.SceneSpec`); ``style`` holds choices shared by every
    completion of one task (file layout), so that they cannot differ between levels.
    """

    text: str
    deviation: int = 0
    payload: Any = None
    style: Any = None
    kind: str = "code"


@dataclass(frozen=True)
class GeneratedCompletion:
    """A completion: ``files`` for code, ``content`` (the protocol's) for any other kind."""

    files: list[CodeFile]
    model: str
    content: Content | None = None

    def as_content(self) -> Content:
        return self.content if self.content is not None else CodeContent(files=self.files)


@dataclass
class TaskBudget:
    """Time and token allowance for one task, shared by every backend call it makes."""

    seconds: float
    tokens: int | None = None
    started: float = field(default_factory=time.monotonic)
    tokens_used: int = 0

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def check(self) -> None:
        if self.remaining() <= 0:
            raise BudgetExceeded(f"the task took longer than its {self.seconds:.0f}s limit")
        if self.tokens is not None and self.tokens_used >= self.tokens:
            raise BudgetExceeded(f"the task used {self.tokens_used} tokens, over its limit of {self.tokens}")

    def spend(self, tokens: int) -> None:
        self.tokens_used += max(0, tokens)

    def tokens_left(self) -> int | None:
        return None if self.tokens is None else max(0, self.tokens - self.tokens_used)


class Backend(Protocol):
    """Makes tasks of one kind (``kind``, default code)."""

    name: str

    async def instruct(self, rng: random.Random, examples: Sequence[str], budget: TaskBudget) -> Instruction:
        """A new instruction from a random combination of task seeds (``examples``: a few
        earlier accepted instructions, for self-instruct style prompting)."""
        ...

    async def augment(
        self, original: Instruction, levels: int, rng: random.Random, budget: TaskBudget
    ) -> list[Instruction]:
        """``levels`` variants; variant ``k`` (1-based) has ``deviation == k``."""
        ...

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        """A completion answering ``instruction``; ``feedback`` says why the previous one failed."""
        ...

    async def aclose(self) -> None: ...
