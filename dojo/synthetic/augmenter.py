"""The augmenter: variants of an instruction that deviate further from it step by step.

Variant ``k`` (``k = 1 .. n-1``) answers the original instruction ``k`` steps worse; a
completion's deviation is its ground-truth rank minus one. The backend writes the
variants; this stage checks that they are what the pipeline needs (the right number,
deviations 1..n-1 in order, each text different from the original and from the others).
"""

from __future__ import annotations

import random

from dojo.synthetic.backend import Backend, GenerationError, Instruction, TaskBudget


class Augmenter:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def augment(
        self, original: Instruction, levels: int, rng: random.Random, budget: TaskBudget
    ) -> list[Instruction]:
        budget.check()
        variants = await self.backend.augment(original, levels, rng, budget)
        if [v.deviation for v in variants] != list(range(1, levels + 1)):
            raise GenerationError(
                f"the backend returned deviations {[v.deviation for v in variants]}, expected 1..{levels}"
            )
        texts = [original.text.strip(), *(v.text.strip() for v in variants)]
        if len(set(texts)) != len(texts):
            raise GenerationError("the augmented instructions repeat the original or each other")
        return variants
