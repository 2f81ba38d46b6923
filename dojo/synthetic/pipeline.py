"""The synthetic task pipeline: instructor → filter → augmenter → output generator →
obfuscator → checks → shuffle.

``SyntheticPipeline.generate_task()`` returns a :class:`~commons.synthetic_api.SyntheticTask`:
the original instruction, one completion per deviation level (the original's and each
variant's), each obfuscated with its own random names and checked (the files that will be
used are the files checked; a completion that fails is regenerated), shuffled, with fresh
completion ids, and the ground truth ``{cid: deviation + 1}``. Each completion also carries
its files before obfuscation (``SyntheticCompletion.original``), which the validator keeps
for the dataset export and never sends to miners.

Determinism: task ``i`` of a pipeline seeded ``s`` draws everything from
``random.Random(f"{s}:{i}")`` and its children, so the same seed on the same database
gives the same tasks, however many are generated concurrently.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from commons.obfuscation import ObfuscationError, obfuscate_files
from commons.protocol import CodeFile
from commons.synthetic_api import (
    SyntheticCompletion,
    SyntheticResponse,
    SyntheticTask,
    SyntheticTaskSource,
    task_source_from_env,
)
from dojo.synthetic.augmenter import Augmenter
from dojo.synthetic.backend import Backend, GeneratedCompletion, GenerationError, Instruction, TaskBudget
from dojo.synthetic.checks import CompletionChecker
from dojo.synthetic.filter import DEFAULT_THRESHOLD, InstructionFilter
from dojo.synthetic.instructor import Instructor
from dojo.synthetic.store import SyntheticStore


@dataclass(frozen=True)
class PipelineOptions:
    n_completions: int = 4
    similarity_threshold: float = DEFAULT_THRESHOLD
    max_instruction_attempts: int = 20
    max_generation_attempts: int = 3
    task_seconds: float = 600.0
    task_tokens: int | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.n_completions <= 10:
            raise ValueError(f"a task needs 2 to 10 completions, got {self.n_completions}")


class SyntheticPipeline:
    """Generates synthetic tasks with a known ranking; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        store: SyntheticStore | str | Path | None = None,
        *,
        seed: int | str | None = None,
        options: PipelineOptions | None = None,
        checker: CompletionChecker | None = None,
    ) -> None:
        self.backend = backend
        # A path opens a store the pipeline owns: the instructions it has used outlive the
        # process, so the duplicate filter remembers them across restarts.
        self._owns_store = not isinstance(store, SyntheticStore)
        self.store = store if isinstance(store, SyntheticStore) else SyntheticStore(store)
        self.options = options or PipelineOptions()
        self.seed = seed if seed is not None else uuid.uuid4().hex
        self.filter = InstructionFilter(self.store, self.options.similarity_threshold)
        self.instructor = Instructor(backend, self.filter, self.options.max_instruction_attempts)
        self.augmenter = Augmenter(backend)
        self.checker = checker if checker is not None else CompletionChecker()
        self._index = 0

    async def aclose(self) -> None:
        await self.backend.aclose()
        await asyncio.to_thread(self.checker.close)
        if self._owns_store:
            self.store.close()

    async def generate_task(self) -> SyntheticTask:
        index = self._index
        self._index += 1
        rng = random.Random(f"{self.seed}:{index}")
        budget = TaskBudget(seconds=self.options.task_seconds, tokens=self.options.task_tokens)
        original = await self.instructor.propose(rng, budget)
        variants = await self.augmenter.augment(original, self.options.n_completions - 1, rng, budget)
        levels = [original, *variants]
        child_seeds = [rng.getrandbits(64) for _ in levels]
        results = await asyncio.gather(
            *(self._completion(level, s, budget) for level, s in zip(levels, child_seeds, strict=True))
        )
        completions = [done for done, _ in results]
        obfuscated = [files for _, files in results]
        order = list(range(len(levels)))
        rng.shuffle(order)
        responses: list[SyntheticResponse] = []
        ground_truth: dict[str, int] = {}
        for k in order:
            cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            responses.append(
                SyntheticResponse(
                    model=completions[k].model,
                    # The files before obfuscation go along for the validator's dataset export.
                    completion=SyntheticCompletion(files=obfuscated[k], original=list(completions[k].files)),
                    cid=cid,
                )
            )
            ground_truth[cid] = levels[k].deviation + 1
        logger.info(
            "synthetic task {} ready: {} completions, {} tokens, {:.2f}s",
            index, len(responses), budget.tokens_used, budget.seconds - budget.remaining(),
        )
        return SyntheticTask(prompt=original.text, responses=responses, ground_truth=ground_truth)

    async def _completion(
        self, instruction: Instruction, seed: int, budget: TaskBudget
    ) -> tuple[GeneratedCompletion, list[CodeFile]]:
        """A completion for ``instruction`` and its obfuscated, checked files; a completion
        that fails its checks is generated again, told what failed."""
        rng, obfuscation_rng = random.Random(seed), random.Random(seed ^ 0x5EED)
        feedback: str | None = None
        for attempt in range(1, self.options.max_generation_attempts + 1):
            budget.check()
            done = await self.backend.generate(instruction, rng, budget, feedback)
            files, problems = await asyncio.to_thread(self._obfuscate_checked, done.files, obfuscation_rng)
            if files is not None:
                return done, files
            feedback = "; ".join(problems)
            logger.warning(
                "completion for deviation {} failed its checks (attempt {}): {}", instruction.deviation, attempt, feedback
            )
        raise GenerationError(
            f"no valid completion for deviation {instruction.deviation} in "
            f"{self.options.max_generation_attempts} attempts: {feedback}"
        )

    def _obfuscate_checked(self, files: list[CodeFile], rng: random.Random) -> tuple[list[CodeFile] | None, list[str]]:
        """``(obfuscated files, [])`` when they pass the checks, ``(None, problems)`` when the
        completion itself fails them.

        The obfuscated form is checked first: it is what will be used, and when it passes,
        so did the completion. Only when it fails is the completion checked on its own, to
        tell a bad completion (regenerate) from an obfuscation the code did not survive
        (fall back to a lighter form: renaming is the step most likely to go wrong).
        """
        original_problems: list[str] | None = None
        for rename in (True, False):
            try:
                result = obfuscate_files(files, random.Random(rng.random()), rename=rename)
            except ObfuscationError as exc:
                logger.warning("obfuscation failed ({})", exc)
            else:
                problems = self.checker.problems(result)
                if not problems:
                    return result, []
                logger.warning("obfuscated completion failed its checks (rename={}): {}", rename, "; ".join(problems))
            if original_problems is None:
                original_problems = self.checker.problems(files)
                if original_problems:
                    return None, original_problems
        logger.error("using a completion without obfuscation: every obfuscated form failed its checks")
        return list(files), []


class InProcessTaskSource:
    """Generates tasks in the validator's own process (no ``SYNTHETIC_API_URL`` set)."""

    def __init__(self, pipeline: SyntheticPipeline | None = None, *, attempts: int = 3) -> None:
        if pipeline is None:
            from dojo.synthetic.procedural import ProceduralBackend

            pipeline = SyntheticPipeline(ProceduralBackend())
        self.pipeline = pipeline
        self.attempts = attempts

    async def next_task(self) -> SyntheticTask:
        last: Exception | None = None
        for _ in range(self.attempts):
            try:
                return await self.pipeline.generate_task()
            except GenerationError as exc:
                logger.warning("synthetic task generation failed: {}", exc)
                last = exc
        raise GenerationError(f"synthetic task generation failed {self.attempts} times; last: {last}")

    async def aclose(self) -> None:
        await self.pipeline.aclose()


def default_task_source(
    *, url: str | None = None, store_path: str | Path | None = None, **client_options: object
) -> SyntheticTaskSource:
    """What the validator pulls tasks from: the service at ``url`` (default
    ``SYNTHETIC_API_URL``, with ``SYNTHETIC_API_TOKEN``) when set, otherwise in-process
    procedural generation, whose duplicate filter keeps the instructions it used in the
    SQLite file ``store_path`` (in memory when ``None``)."""

    def in_process() -> InProcessTaskSource:
        from dojo.synthetic.procedural import ProceduralBackend

        return InProcessTaskSource(SyntheticPipeline(ProceduralBackend(), store_path))

    return task_source_from_env(in_process, url=url, **client_options)  # type: ignore[arg-type]
