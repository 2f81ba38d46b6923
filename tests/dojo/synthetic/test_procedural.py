"""The procedural backend through the whole pipeline: determinism, valid completions,
ground truth, augmentation one property at a time, and no giveaways in the code."""

from __future__ import annotations

import random
import re

import pytest

from dojo.synthetic.checks import CompletionChecker
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.procedural import FileLayout, ProceduralBackend, render_scene
from dojo.synthetic.spec import (
    BACKGROUNDS,
    COLOURS,
    INTERACTIONS,
    LAYOUTS,
    MOTIONS,
    PLURALS,
    PROPERTIES,
    SPEEDS,
    describe,
    deviate,
    sample_spec,
)


async def _tasks(seed, n, completions=4):
    pipeline = SyntheticPipeline(
        ProceduralBackend(), seed=seed, options=PipelineOptions(n_completions=completions)
    )
    try:
        return [await pipeline.generate_task() for _ in range(n)]
    finally:
        await pipeline.aclose()


async def test_same_seed_same_tasks_other_seed_other_tasks():
    first = await _tasks(11, 2)
    again = await _tasks(11, 2)
    other = await _tasks(12, 2)
    assert [t.model_dump() for t in first] == [t.model_dump() for t in again]
    assert first[0].prompt != other[0].prompt


async def test_completions_are_valid_and_ground_truth_ranks_the_levels():
    checker = CompletionChecker()
    try:
        for completions, task in [(4, t) for t in await _tasks("valid", 3)] + [
            (6, t) for t in await _tasks("six", 1, 6)
        ]:
            assert len(task.responses) == completions
            assert sorted(task.ground_truth.values()) == list(range(1, completions + 1))
            assert {r.cid for r in task.responses} == set(task.ground_truth)
            for response in task.responses:
                assert checker.problems(response.completion.files) == []
                assert response.model == "dojo-procedural-1"
    finally:
        checker.close()


def test_each_level_changes_one_more_property():
    rng = random.Random(5)
    for _ in range(50):
        spec = sample_spec(rng)
        variants = deviate(spec, 6, rng)
        changed: set[str] = set()
        for k, variant in enumerate(variants, start=1):
            now = {name for name in PROPERTIES if getattr(variant, name) != getattr(spec, name)}
            assert len(now) == k and changed < now
            changed = now
    with pytest.raises(ValueError):
        deviate(sample_spec(rng), len(PROPERTIES) + 1, rng)


def test_levels_have_the_same_structure_and_files():
    rng = random.Random(9)
    for kind in ("inline", "script", "split"):
        spec = sample_spec(rng)
        layout = FileLayout(kind, "app.js", "style.css")
        renders = [render_scene(s, layout, rng) for s in [spec, *deviate(spec, 3, rng)]]
        assert len({tuple(f.filename for f in files) for files in renders}) == 1
        assert len({tuple(f.content.count("\n") for f in files) for files in renders}) == 1


async def test_the_instructions_words_are_not_in_the_code():
    words = (
        set(COLOURS)
        | set(BACKGROUNDS)
        | set(PLURALS)
        | set(PLURALS.values())
        | set(LAYOUTS)
        | set(MOTIONS)
        | set(INTERACTIONS)
        | set(SPEEDS)
    )
    words -= {"add"}  # as in addEventListener, never as a word on its own
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b", re.I
    )
    hex_colours = {f"#{r:02x}{g:02x}{b:02x}" for r, g, b in [*COLOURS.values(), *BACKGROUNDS.values()]}
    for task in await _tasks("words", 3):
        for response in task.responses:
            for file in response.completion.files:
                assert not pattern.search(file.content), pattern.search(file.content)
                assert not any(h in file.content.lower() for h in hex_colours)
                # Counts are arithmetic, never the number itself.
                assert not re.search(r"\bcount: \d+,", file.content)


def test_describe_mentions_every_property():
    rng = random.Random(1)
    spec = sample_spec(rng)
    text = describe(spec, rng)
    for value in (spec.fill, spec.accent, spec.background, spec.size, spec.speed, PLURALS[spec.shape]):
        assert value in text


async def test_the_validator_generates_in_process_without_a_synthetic_api_url(monkeypatch):
    from dojo.synthetic import InProcessTaskSource, default_task_source

    monkeypatch.delenv("SYNTHETIC_API_URL", raising=False)
    source = default_task_source()
    try:
        assert isinstance(source, InProcessTaskSource)
        task = await source.next_task()
        assert sorted(task.ground_truth.values()) == [1, 2, 3, 4]
    finally:
        await source.aclose()
