"""The instructor: proposes a new task instruction and keeps only distinct ones.

It asks the backend for an instruction built from a random combination of task seeds,
handing it a few earlier accepted instructions as examples (self-instruct: the model sees
what exists and is asked for something new), then passes it through the filter. A
rejected proposal is recorded by the filter and replaced by a fresh one.
"""

from __future__ import annotations

import random

from loguru import logger

from dojo.synthetic.backend import Backend, GenerationError, Instruction, TaskBudget
from dojo.synthetic.filter import DuplicateFilter

EXAMPLES_PER_PROMPT = 3


class Instructor:
    def __init__(self, backend: Backend, instruction_filter: DuplicateFilter, max_attempts: int = 20) -> None:
        self.backend = backend
        self.filter = instruction_filter
        self.max_attempts = max_attempts

    async def propose(self, rng: random.Random, budget: TaskBudget) -> Instruction:
        """An instruction the filter accepted (and recorded)."""
        for attempt in range(1, self.max_attempts + 1):
            budget.check()
            instruction = await self.backend.instruct(
                rng, self.filter.sample_accepted(rng, EXAMPLES_PER_PROMPT), budget
            )
            decision = await self.filter.decide(instruction.text)
            if decision.accepted:
                return instruction
            logger.info(
                "instruction {} rejected: similarity {:.2f} to instruction #{} (threshold {:.2f})",
                attempt,
                decision.similarity,
                decision.nearest_id,
                self.filter.threshold,
            )
        raise GenerationError(
            f"no instruction passed the similarity filter in {self.max_attempts} attempts; "
            "raise the threshold or widen the task seeds"
        )
