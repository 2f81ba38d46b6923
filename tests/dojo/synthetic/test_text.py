"""Text and dialogue tasks: the defects are there by construction, the checker reads them back
from the responses alone, a defect keeps the surface (values the prompt contains), and a task
the checker cannot confirm is discarded and counted."""

from __future__ import annotations

import random
import re

import pytest

from commons.protocol import DialogueContent, TextContent
from dojo.synthetic.backend import GeneratedCompletion, TaskDiscarded
from dojo.synthetic.kinds import ProceduralTextBackend, response_text
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.procedural import ProceduralBackend
from dojo.synthetic.textgen import sample_task
from dojo.synthetic.textspec import (
    Fact,
    TextSpec,
    count_defects,
    defects,
    plan_levels,
)


async def _tasks(kind: str, n: int, seed: str = "t", completions: int = 4):
    pipeline = SyntheticPipeline(
        ProceduralBackend(), seed=seed, options=PipelineOptions(n_completions=completions)
    )
    try:
        return [await pipeline.generate_task(kind) for _ in range(n)], pipeline.stats
    finally:
        await pipeline.aclose()


@pytest.mark.parametrize("kind", ["text", "dialogue"])
async def test_each_response_carries_as_many_defects_as_its_rank_says(kind):
    tasks, stats = await _tasks(kind, 12, completions=5)
    for task in tasks:
        assert task.kind == kind
        assert sorted(task.ground_truth.values()) == [1, 2, 3, 4, 5]
        contents = [r.completion.content for r in task.responses]
        if kind == "text":
            assert all(isinstance(c, TextContent) for c in contents)
        else:
            # The conversation, the same up to the assistant's last turn, which is ranked.
            assert all(isinstance(c, DialogueContent) for c in contents)
            prefixes = {tuple((t.role, t.message) for t in c.turns[:-1]) for c in contents}
            assert len(prefixes) == 1 and all(c.turns[-1].role == "assistant" for c in contents)
            assert [t.role for t in contents[0].turns[:-1]][-1] == "user"
        # The completion before obfuscation is the same text (words are not obfuscated).
        assert all(r.completion.original_content == r.completion.content for r in task.responses)
    assert stats[kind].generated == 12 and stats[kind].discarded == 0


@pytest.mark.parametrize("kind", ["text", "dialogue"])
def test_the_checker_reads_the_planned_defects_from_the_text_alone(kind):
    backend = ProceduralTextBackend(kind)  # type: ignore[arg-type]
    from dojo.synthetic.textgen import render_response

    for seed in range(300):
        rng = random.Random(seed)
        spec = sample_task(kind, rng)  # type: ignore[arg-type]
        assert spec.problems() == []
        for plan in plan_levels(spec, 4, rng):
            text = render_response(spec, plan, rng)
            assert count_defects(spec, text).defects == plan.deviation == defects(spec, plan)
    assert backend.kind == kind


@pytest.mark.parametrize("kind", ["text", "dialogue"])
def test_a_defect_keeps_the_surface_every_value_is_one_the_prompt_contains(kind):
    from dojo.synthetic.textgen import render_response

    for seed in range(200):
        rng = random.Random(seed)
        spec = sample_task(kind, rng)  # type: ignore[arg-type]
        prompt = str(spec.style["prompt"])
        every = [f.value for f in spec.facts] + [d for f in spec.facts for d in f.decoys] + list(spec.steps)
        for phrase in every:
            assert phrase in prompt, (phrase, prompt)
        for plan in plan_levels(spec, 4, rng):
            text = render_response(spec, plan, rng)
            # Each fact is stated once, by a value of the prompt's; each step named once.
            for fact in spec.facts:
                stated = [p for p in (fact.value, *fact.decoys) if p in text]
                assert stated == [plan.value(fact.key)]
            for step in spec.steps:
                assert text.count(step) == 1


def test_the_checker_says_what_it_cannot_read():
    spec = TextSpec(
        kind="text",
        facts=(Fact("day", "Thursday", ("Tuesday",)), Fact("room", "Room 4B", ("the library",))),
        steps=("the welcome", "the quiz", "the lunch"),
    )
    good = "On Thursday in Room 4B: the welcome, then the quiz, then the lunch."
    assert count_defects(spec, good).defects == 0
    # A decoy in place of the value, and two steps swapped: two defects.
    assert count_defects(spec, "On Tuesday in Room 4B: the quiz, the welcome, the lunch.").defects == 2
    # Both the value and a decoy: the checker cannot tell which the response means.
    both = count_defects(spec, "Thursday (not Tuesday) in Room 4B: the welcome, the quiz, the lunch.")
    assert both.defects is None and "more than one way" in both.problems[0]
    missing = count_defects(spec, "In Room 4B: the welcome, the quiz, the lunch.")
    assert missing.defects is None and "not stated" in missing.problems[0]
    twice = count_defects(spec, "Thursday, Room 4B: the welcome, the quiz, the welcome, the lunch.")
    assert twice.defects is None and "appears 2 times" in twice.problems[0]
    # "4" is not read inside "14", nor "Room 4B" inside "Room 4BC".
    assert count_defects(spec, "Thursday, Room 4BC: the welcome, the quiz, the lunch.").defects is None


def test_a_spec_whose_phrases_overlap_is_refused():
    spec = TextSpec(
        kind="text", facts=(Fact("fee", "$15", ("$150",)), Fact("day", "Monday", ("Mon",))), steps=()
    )
    assert spec.problems() == []  # "$15" is not "$150" once words are bounded
    clash = TextSpec(kind="text", facts=(Fact("room", "Room 4", ("the hall",)),), steps=("tour of Room 4",))
    assert any("part of" in p for p in clash.problems())


class OffByOne(ProceduralTextBackend):
    """Writes the response of the level below the one asked for (one defect short)."""

    async def generate(self, instruction, rng, budget, feedback=None):
        from dojo.synthetic.kinds import TextLevel, text_content
        from dojo.synthetic.textgen import render_response

        level: TextLevel = instruction.payload
        plans = (
            plan_levels(level.spec, level.plan.deviation, random.Random(0)) if level.plan.deviation else None
        )
        plan = plans[-2] if plans and len(plans) > 1 else level.plan
        text = render_response(level.spec, plan, rng)
        return GeneratedCompletion(files=[], model="off-by-one", content=text_content(level.spec, text))


async def test_a_task_the_checker_cannot_confirm_is_discarded_and_counted():
    pipeline = SyntheticPipeline(
        ProceduralBackend(),
        seed="bad",
        backends={"text": OffByOne("text")},
        options=PipelineOptions(max_generation_attempts=2),
    )
    try:
        with pytest.raises(TaskDiscarded, match="defects"):
            await pipeline.generate_task("text")
        assert pipeline.stats["text"].discarded == 1 and pipeline.stats["text"].generated == 0
        # The other kinds are unaffected.
        await pipeline.generate_task("dialogue")
        assert pipeline.stats["dialogue"].generated == 1
    finally:
        await pipeline.aclose()


async def test_the_responses_of_a_task_read_alike():
    # Same words of the prompt in every response, similar lengths: nothing but reading the
    # prompt tells the best one (benchmarks/synthetic_leakage.py measures it over many tasks).
    tasks, _ = await _tasks("text", 20, seed="alike")
    for task in tasks:
        texts = [response_text(r.completion.content) for r in task.responses]
        lengths = [len(t) for t in texts]
        assert max(lengths) / min(lengths) < 1.6
        prompt_words = set(re.findall(r"\w+", task.prompt.lower()))
        used = [len(set(re.findall(r"\w+", t.lower())) & prompt_words) for t in texts]
        assert max(used) - min(used) <= 12


def test_the_mix_is_checked_against_each_kinds_limits():
    with pytest.raises(ValueError, match="at most 8"):
        PipelineOptions(n_completions=10, mix={"text": 1.0})
    assert PipelineOptions(n_completions=10, mix={"code": 1.0}).kinds() == ["code"]
    assert PipelineOptions(mix="code:1,text:0").kinds() == ["code"]  # type: ignore[arg-type]
