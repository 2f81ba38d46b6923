"""The synthetic task pipeline: instructor → filter → augmenter → output generator →
obfuscator → checks → shuffle, for each content kind.

``SyntheticPipeline.generate_task(kind)`` returns a :class:`~commons.synthetic_api.SyntheticTask`
of that kind (drawn from ``PipelineOptions.mix`` when not given): the original instruction,
one completion per deviation level, each obfuscated and checked (what will be used is what
was checked; a completion that fails is regenerated), shuffled, with fresh completion ids,
and the ground truth ``{cid: deviation + 1}``. Each completion also carries its form before
obfuscation, which the validator keeps for the dataset export and never sends to miners.

Code: the levels are instructions asking for less of the original (see
:mod:`dojo.synthetic.spec`), the checks are :mod:`dojo.synthetic.checks`. Text, dialogue and
images (:mod:`dojo.synthetic.kinds`): the levels carry one more deliberate defect each, and the
checker reads the defects back from every completion, as miners will get it; a task whose
levels it cannot confirm is discarded (:class:`~dojo.synthetic.backend.TaskDiscarded`) and
counted in :attr:`SyntheticPipeline.stats`.

Determinism: task ``i`` of a pipeline seeded ``s`` draws everything from
``random.Random(f"{s}:{i}")`` and its children, so the same seed on the same database
gives the same tasks, however many are generated concurrently.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from commons.obfuscation import ObfuscationError, obfuscate_files
from commons.protocol import CONTENT_KINDS, CodeFile, Content
from commons.synthetic_api import (
    SyntheticCompletion,
    SyntheticResponse,
    SyntheticTask,
    parse_mix,
)
from dojo.synthetic.augmenter import Augmenter
from dojo.synthetic.backend import (
    Backend,
    GeneratedCompletion,
    GenerationError,
    Instruction,
    TaskBudget,
    TaskDiscarded,
)
from dojo.synthetic.checks import CompletionChecker
from dojo.synthetic.filter import DEFAULT_THRESHOLD, DuplicateFilter, InstructionFilter
from dojo.synthetic.instructor import Instructor
from dojo.synthetic.kinds import MAX_COMPLETIONS, RULES, KindRules, Measure, confirm_order
from dojo.synthetic.store import SyntheticStore


@dataclass(frozen=True)
class PipelineOptions:
    n_completions: int = 4
    similarity_threshold: float = DEFAULT_THRESHOLD
    max_instruction_attempts: int = 20
    max_generation_attempts: int = 3
    task_seconds: float = 600.0
    task_tokens: int | None = None
    # Content kinds and their shares, for tasks whose kind the caller leaves open.
    mix: Mapping[str, float] = field(default_factory=lambda: {"code": 1.0})

    def __post_init__(self) -> None:
        if not 2 <= self.n_completions <= 10:
            raise ValueError(f"a task needs 2 to 10 completions, got {self.n_completions}")
        given: object = self.mix  # a setting's text ("code:1,text:0") is taken as well
        if isinstance(given, str):
            object.__setattr__(self, "mix", parse_mix(given))
        for kind, share in self.mix.items():
            if kind not in CONTENT_KINDS:
                raise ValueError(f"unknown content kind {kind!r} in the mix")
            if share > 0 and self.n_completions > MAX_COMPLETIONS[kind]:
                raise ValueError(
                    f"{kind} tasks take at most {MAX_COMPLETIONS[kind]} completions, not {self.n_completions}"
                )

    def kinds(self) -> list[str]:
        return [kind for kind, share in self.mix.items() if share > 0]

    def draw_kind(self, rng: random.Random) -> str:
        kinds = self.kinds()
        if len(kinds) == 1:
            return kinds[0]
        return rng.choices(kinds, weights=[self.mix[k] for k in kinds])[0]


@dataclass
class KindStats:
    """What the pipeline did for one kind: tasks made, tasks the checker could not confirm
    (discarded, each logged with its reason), tasks that failed otherwise (a backend error,
    a budget)."""

    generated: int = 0
    discarded: int = 0
    failed: int = 0


def tfidf_filter(store: SyntheticStore, kind: str, threshold: float) -> DuplicateFilter:
    return InstructionFilter(store, threshold, kind=kind)


def default_backends(code: Backend, *, completions: int = 4) -> dict[str, Backend]:
    """Every kind's backend: ``code`` for code, the offline ones for the rest."""
    from dojo.synthetic.kinds import ProceduralImageBackend, ProceduralTextBackend

    return {
        "code": code,
        "text": ProceduralTextBackend("text"),
        "dialogue": ProceduralTextBackend("dialogue"),
        "image": ProceduralImageBackend(completions=completions),
    }


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
        backends: Mapping[str, Backend] | None = None,
        filter_factory: Callable[[SyntheticStore, str, float], DuplicateFilter] | None = None,
    ) -> None:
        """``backend`` makes code tasks; ``backends`` (kind → backend) the other kinds, by
        default the offline ones (:func:`default_backends`). ``filter_factory(store, kind,
        threshold)`` makes each kind's duplicate filter (default: TF-IDF)."""
        self.backend = backend
        self.options = options or PipelineOptions()
        defaults = default_backends(backend, completions=self.options.n_completions)
        self.backends: dict[str, Backend] = {**defaults, **dict(backends or {})}
        self.backends["code"] = backend
        # A path opens a store the pipeline owns: the instructions it has used outlive the
        # process, so the duplicate filter remembers them across restarts.
        self._owns_store = not isinstance(store, SyntheticStore)
        self.store = store if isinstance(store, SyntheticStore) else SyntheticStore(store)
        self.seed = seed if seed is not None else uuid.uuid4().hex
        make_filter = filter_factory or tfidf_filter
        # One filter per kind: an image scene and a code task are never near each other, and
        # each kind's instructions are compared with their own kind's.
        self.filters: dict[str, DuplicateFilter] = {
            kind: make_filter(self.store, kind, self.options.similarity_threshold) for kind in CONTENT_KINDS
        }
        self.filter = self.filters["code"]
        self.instructors = {
            kind: Instructor(self.backends[kind], self.filters[kind], self.options.max_instruction_attempts)
            for kind in CONTENT_KINDS
        }
        self.instructor = self.instructors["code"]
        self.augmenter = Augmenter(backend)
        self.checker = checker if checker is not None else CompletionChecker()
        self.stats: dict[str, KindStats] = {kind: KindStats() for kind in CONTENT_KINDS}
        self._index = 0

    async def aclose(self) -> None:
        closed: set[int] = set()
        for backend in self.backends.values():
            if id(backend) not in closed:
                closed.add(id(backend))
                await backend.aclose()
        await asyncio.to_thread(self.checker.close)
        for f in self.filters.values():
            await f.aclose()
        if self._owns_store:
            self.store.close()

    async def generate_task(self, kind: str | None = None) -> SyntheticTask:
        """A task of ``kind``, or of a kind drawn from the options' mix."""
        index = self._index
        self._index += 1
        rng = random.Random(f"{self.seed}:{index}")
        if kind is None:
            kind = self.options.draw_kind(rng)
        if kind not in CONTENT_KINDS:
            raise GenerationError(f"unknown content kind {kind!r}; one of {', '.join(CONTENT_KINDS)}")
        if self.options.n_completions > MAX_COMPLETIONS[kind]:
            raise GenerationError(f"{kind} tasks take at most {MAX_COMPLETIONS[kind]} completions")
        stats = self.stats[kind]
        try:
            if kind == "code":
                task = await self._code_task(index, rng)
            else:
                task = await self._kind_task(kind, index, rng)
        except TaskDiscarded as exc:
            stats.discarded += 1
            logger.warning("synthetic {} task discarded: {}", kind, exc)
            raise
        except GenerationError:
            stats.failed += 1
            raise
        stats.generated += 1
        return task

    async def _kind_task(self, kind: str, index: int, rng: random.Random) -> SyntheticTask:
        budget = TaskBudget(seconds=self.options.task_seconds, tokens=self.options.task_tokens)
        backend = self.backends[kind]
        original = await self.instructors[kind].propose(rng, budget)
        budget.check()
        variants = await backend.augment(original, self.options.n_completions - 1, rng, budget)
        levels = [original, *variants]
        if [v.deviation for v in levels] != list(range(len(levels))):
            raise GenerationError(f"the backend returned deviations {[v.deviation for v in levels]}")
        child_seeds = [rng.getrandbits(64) for _ in levels]
        jobs = [
            asyncio.ensure_future(self._kind_completion(kind, level, s, budget))
            for level, s in zip(levels, child_seeds, strict=True)
        ]
        try:
            results = await asyncio.gather(*jobs)
        except BaseException:
            # One level failed: the task is lost, so the others stop asking their backend.
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            raise
        problem = confirm_order(
            [level.deviation for level in levels], [measured for _, _, measured in results]
        )
        if problem is not None:
            raise TaskDiscarded(problem)
        order = list(range(len(levels)))
        rng.shuffle(order)
        responses: list[SyntheticResponse] = []
        ground_truth: dict[str, int] = {}
        for k in order:
            done, sent, _ = results[k]
            cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            responses.append(
                SyntheticResponse(
                    model=done.model,
                    completion=SyntheticCompletion(content=sent, original_content=done.as_content()),
                    cid=cid,
                )
            )
            ground_truth[cid] = levels[k].deviation + 1
        logger.info(
            "synthetic {} task {} ready: {} completions, {} tokens, {:.2f}s",
            kind,
            index,
            len(responses),
            budget.tokens_used,
            budget.seconds - budget.remaining(),
        )
        return SyntheticTask(prompt=original.text, kind=kind, responses=responses, ground_truth=ground_truth)  # type: ignore[arg-type]

    async def _kind_completion(
        self, kind: str, instruction: Instruction, seed: int, budget: TaskBudget
    ) -> tuple[GeneratedCompletion, Content, int]:
        """A completion at ``instruction``'s level, what miners get of it, and the defects the
        checker read in that. A completion whose defects read otherwise than its level (in
        itself or as miners get it) is generated again, told why, up to the options' limit;
        then the task is discarded."""
        rng, obfuscation_rng = random.Random(seed), random.Random(seed ^ 0x5EED)
        rules = RULES[kind]
        backend = self.backends[kind]
        # A backend that reads its own completions (a vision model for a model's pictures)
        # measures them itself, on the event loop; the offline checkers run in a thread.
        measure = getattr(backend, "measure", None)
        feedback: str | None = None
        for attempt in range(1, self.options.max_generation_attempts + 1):
            budget.check()
            done = await backend.generate(instruction, rng, budget, feedback)
            content = done.as_content()
            if content.kind != kind:
                raise GenerationError(f"the {kind} backend wrote a {content.kind} completion")

            def checked(content: Content = content) -> tuple[Content | None, int | None, str]:
                measured = rules.measure(instruction, content)
                if measured.defects != instruction.deviation:
                    return (
                        None,
                        measured.defects,
                        _why(measured.defects, measured.problems, instruction.deviation),
                    )
                sent = rules.obfuscate(content, obfuscation_rng)
                again = rules.measure(instruction, sent)
                if again.defects != instruction.deviation:
                    why = _why(again.defects, again.problems, instruction.deviation)
                    return None, again.defects, f"after obfuscation, {why}"
                return sent, again.defects, ""

            if measure is None:
                sent, measured, feedback = await asyncio.to_thread(checked)
            else:
                sent, measured, feedback = await self._checked_by_backend(
                    measure, rules, instruction, content, obfuscation_rng
                )
            if sent is not None and measured is not None:
                return done, sent, measured
            logger.warning(
                "{} completion for deviation {} failed its check (attempt {}): {}",
                kind,
                instruction.deviation,
                attempt,
                feedback,
            )
        raise TaskDiscarded(
            f"no {kind} completion with exactly {instruction.deviation} defects in "
            f"{self.options.max_generation_attempts} attempts: {feedback}"
        )

    @staticmethod
    async def _checked_by_backend(
        measure: Callable[[Instruction, Content], Awaitable[Measure]],
        rules: KindRules,
        instruction: Instruction,
        content: Content,
        rng: random.Random,
    ) -> tuple[Content | None, int | None, str]:
        measured = await measure(instruction, content)
        if measured.defects != instruction.deviation:
            return None, measured.defects, _why(measured.defects, measured.problems, instruction.deviation)
        sent = await asyncio.to_thread(rules.obfuscate, content, rng)
        again = await measure(instruction, sent)
        if again.defects != instruction.deviation:
            return (
                None,
                again.defects,
                "after obfuscation, " + _why(again.defects, again.problems, instruction.deviation),
            )
        return sent, again.defects, ""

    async def _code_task(self, index: int, rng: random.Random) -> SyntheticTask:
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
            index,
            len(responses),
            budget.tokens_used,
            budget.seconds - budget.remaining(),
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
                "completion for deviation {} failed its checks (attempt {}): {}",
                instruction.deviation,
                attempt,
                feedback,
            )
        raise GenerationError(
            f"no valid completion for deviation {instruction.deviation} in "
            f"{self.options.max_generation_attempts} attempts: {feedback}"
        )

    def _obfuscate_checked(
        self, files: list[CodeFile], rng: random.Random
    ) -> tuple[list[CodeFile] | None, list[str]]:
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
                logger.warning(
                    "obfuscated completion failed its checks (rename={}): {}", rename, "; ".join(problems)
                )
            if original_problems is None:
                original_problems = self.checker.problems(files)
                if original_problems:
                    return None, original_problems
        logger.error("using a completion without obfuscation: every obfuscated form failed its checks")
        return list(files), []


def _why(defects: int | None, problems: tuple[str, ...], deviation: int) -> str:
    if defects is None:
        return "; ".join(problems) or "the checker could not read it"
    return f"it has {defects} defects where {deviation} were asked for"


class InProcessTaskSource:
    """Generates tasks in the validator's own process (no ``SYNTHETIC_API_URL`` set)."""

    def __init__(self, pipeline: SyntheticPipeline | None = None, *, attempts: int = 3) -> None:
        if pipeline is None:
            from dojo.synthetic.procedural import ProceduralBackend

            pipeline = SyntheticPipeline(ProceduralBackend())
        self.pipeline = pipeline
        self.attempts = attempts

    async def next_task(self, kind: str | None = None) -> SyntheticTask:
        last: Exception | None = None
        for _ in range(self.attempts):
            try:
                return await self.pipeline.generate_task(kind)
            except GenerationError as exc:
                logger.warning("synthetic task generation failed: {}", exc)
                last = exc
        raise GenerationError(f"synthetic task generation failed {self.attempts} times; last: {last}")

    async def aclose(self) -> None:
        await self.pipeline.aclose()
