"""Each synthetic completion carries its files before obfuscation, for the dataset export."""

from __future__ import annotations

import random

from commons.synthetic_api import SyntheticAPIClient, SyntheticCompletion, SyntheticTask
from dojo.synthetic.backend import GeneratedCompletion, Instruction, TaskBudget
from dojo.synthetic.pipeline import SyntheticPipeline
from dojo.synthetic.procedural import ProceduralBackend
from dojo.synthetic.settings import ServiceSettings
from tests.dojo.synthetic.test_service import running


class RecordingBackend(ProceduralBackend):
    """The procedural backend, remembering every completion it generated."""

    def __init__(self) -> None:
        super().__init__()
        self.generated: list[GeneratedCompletion] = []

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        done = await super().generate(instruction, rng, budget, feedback)
        self.generated.append(done)
        return done


async def test_each_completion_carries_the_files_it_was_generated_with():
    backend = RecordingBackend()
    pipeline = SyntheticPipeline(backend, seed="original")
    try:
        task = await pipeline.generate_task()
    finally:
        await pipeline.aclose()
    generated = [[f.model_dump() for f in g.files] for g in backend.generated]
    for response in task.responses:
        original = response.completion.original
        assert original is not None
        assert [f.model_dump() for f in original] in generated
        # What miners get is the obfuscated form: the same files, other text.
        assert [f.filename for f in original] == [f.filename for f in response.completion.files]
        assert [f.content for f in original] != [f.content for f in response.completion.files]
    # On the wire and back; a message without it (an older synthetic API) still parses.
    assert SyntheticTask.model_validate_json(task.model_dump_json()) == task
    assert (
        SyntheticCompletion.model_validate({"files": [{"filename": "a.js", "content": "x"}]}).original is None
    )


async def test_the_synthetic_api_hands_out_the_original(tmp_path):
    settings = ServiceSettings(db=str(tmp_path / "s.sqlite"), queue_size=1, seed="api", no_token=True)
    async with running(settings) as url, SyntheticAPIClient(url) as client:
        task = await client.next_task()
    assert all(r.completion.original for r in task.responses)
