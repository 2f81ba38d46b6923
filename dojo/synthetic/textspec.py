"""Text and dialogue tasks whose ranking is known by construction, and the checker that confirms it.

A :class:`TextSpec` is what a response must get right: **facts** the prompt states (each a
value, with one or more *decoys*: other values of the same slot that the prompt also
mentions: the old date it moved from, the room being renovated, last year's budget) and
**steps** to cover in a given order. A response is described by a :class:`Plan`: the value it
states for each fact and the order it covers the steps in. Its number of defects is the facts
it states wrongly (a decoy in place of the value: the prompt contradicted, a requirement
violated) plus the inversions of its step order against the required one (steps wrong).

Deviation ``k`` of a task is a plan with exactly ``k`` defects, each level keeping the defects
of the one before and adding one (:func:`plan_levels`). Every defect keeps the surface of the
response: a value is swapped for another value *that the prompt itself contains*, and a step
trades places with its neighbour, so a defective response has the same words of the prompt,
the same numbers, about the same length, and says nothing a correct one would not.

:func:`count_defects` reads a response text back: for each fact, whether it states the value
or a decoy (exactly one of them must be there); the order in which the step phrases appear.
The pipeline accepts a task only when the defects counted are exactly ``0, 1, …, n-1`` in the
intended order. Both backends share the spec, the plans and the checker: the procedural one
renders responses from templates (:mod:`dojo.synthetic.textgen`), the LLM one asks a model to
write them and keeps only what the checker confirms.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

TextKind = Literal["text", "dialogue"]


@dataclass(frozen=True)
class Fact:
    """A value the prompt states, and the decoys it also mentions for the same slot."""

    key: str
    value: str
    decoys: tuple[str, ...]


@dataclass(frozen=True)
class TextSpec:
    """Everything a response must get right; ``style`` holds choices shared by a task's responses."""

    kind: TextKind
    facts: tuple[Fact, ...]
    steps: tuple[str, ...]
    scenario: str = ""
    style: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def problems(self) -> list[str]:
        """What makes the spec unusable for checking (an empty list when it is fine)."""
        found: list[str] = []
        phrases = [f.value for f in self.facts] + [d for f in self.facts for d in f.decoys] + list(self.steps)
        if len(self.facts) + len(self.steps) == 0:
            found.append("the spec has neither facts nor steps")
        lowered = [p.lower() for p in phrases]
        if len(set(lowered)) != len(lowered):
            found.append("two facts, decoys or steps are the same phrase")
        for i, a in enumerate(lowered):
            if not a.strip():
                found.append("an empty value, decoy or step")
            for j, b in enumerate(lowered):
                if i != j and a and _contains(b, a):
                    found.append(
                        f"{phrases[i]!r} is part of {phrases[j]!r}: the checker could not tell them apart"
                    )
        for f in self.facts:
            if not f.decoys:
                found.append(f"the fact {f.key} has no decoy")
        return found

    def capacity(self) -> int:
        """The most defects a response can carry: one per fact, one per disjoint pair of steps."""
        return len(self.facts) + len(self.steps) // 2


@dataclass(frozen=True)
class Plan:
    """One response: the value stated for each fact (by key) and the order of the steps
    (indices into ``spec.steps``)."""

    values: tuple[tuple[str, str], ...]
    order: tuple[int, ...]
    deviation: int = 0

    def value(self, key: str) -> str:
        return dict(self.values)[key]

    def describe(self, spec: TextSpec) -> list[str]:
        """The plan's defects in words (for a model asked to write the response)."""
        wrong = [
            f"state the {f.key.replace('_', ' ')} as {self.value(f.key)!r} (not {f.value!r})"
            for f in spec.facts
            if self.value(f.key) != f.value
        ]
        if list(self.order) != sorted(self.order):
            wrong.append("cover the steps in this order: " + "; ".join(spec.steps[i] for i in self.order))
        return wrong


def correct_plan(spec: TextSpec) -> Plan:
    return Plan(values=tuple((f.key, f.value) for f in spec.facts), order=tuple(range(len(spec.steps))))


def inversions(order: Sequence[int]) -> int:
    return sum(1 for i in range(len(order)) for j in range(i + 1, len(order)) if order[i] > order[j])


def defects(spec: TextSpec, plan: Plan) -> int:
    """How many defects ``plan`` carries against ``spec``."""
    return sum(plan.value(f.key) != f.value for f in spec.facts) + inversions(plan.order)


def plan_levels(spec: TextSpec, levels: int, rng: random.Random) -> list[Plan]:
    """``levels + 1`` plans: the correct one, then each with one more defect than the last.

    A new defect is a fact stated with one of its decoys, or two neighbouring steps (neither
    moved before) trading places; which, and in which order, is drawn from ``rng``.
    """
    if levels > spec.capacity():
        raise ValueError(f"the spec holds at most {spec.capacity()} defects, {levels} were asked for")
    moves: list[tuple[str, object]] = [("fact", f.key) for f in spec.facts]
    moves += [("steps", None)] * (len(spec.steps) // 2)
    rng.shuffle(moves)
    plans = [correct_plan(spec)]
    values = dict(plans[0].values)
    order = list(plans[0].order)
    moved: set[int] = set()
    for kind, key in moves:
        if len(plans) == levels + 1:
            break
        if kind == "fact":
            fact = next(f for f in spec.facts if f.key == key)
            values[fact.key] = rng.choice(fact.decoys)
        else:
            free = [i for i in range(len(order) - 1) if i not in moved and i + 1 not in moved]
            if not free:
                continue
            i = rng.choice(free)
            order[i], order[i + 1] = order[i + 1], order[i]
            moved.update((i, i + 1))
        plans.append(Plan(values=tuple(values.items()), order=tuple(order), deviation=len(plans)))
    if len(plans) != levels + 1:
        raise ValueError(f"could not plan {levels} defects")
    for plan in plans:
        assert defects(spec, plan) == plan.deviation
    return plans


# --- the checker --------------------------------------------------------------------------------


def _pattern(phrase: str) -> re.Pattern[str]:
    # Word boundaries where the phrase starts or ends with a word character, so that "4"
    # does not match inside "14" and "$2,400" is found after a space or a parenthesis.
    body = re.escape(phrase)
    start = r"(?<![\w])" if phrase[:1].isalnum() else ""
    end = r"(?![\w])" if phrase[-1:].isalnum() else ""
    return re.compile(start + body + end, re.IGNORECASE)


def _contains(text: str, phrase: str) -> bool:
    return _pattern(phrase).search(text) is not None


@dataclass(frozen=True)
class Reading:
    """What the checker read in one response: its defects, or why it could not count them."""

    defects: int | None
    problems: tuple[str, ...] = ()


def count_defects(spec: TextSpec, text: str) -> Reading:
    """The defects ``text`` carries against ``spec``, read from the text alone."""
    problems: list[str] = []
    wrong = 0
    for fact in spec.facts:
        has_value = _contains(text, fact.value)
        decoys = [d for d in fact.decoys if _contains(text, d)]
        if has_value and not decoys:
            continue
        if decoys and not has_value and len(decoys) == 1:
            wrong += 1
            continue
        if not has_value and not decoys:
            problems.append(
                f"the {fact.key.replace('_', ' ')} is not stated (expected {fact.value!r} written out)"
            )
        else:
            stated = [fact.value] * has_value + decoys
            problems.append(
                f"the {fact.key.replace('_', ' ')} is stated more than one way: {', '.join(map(repr, stated))}"
            )
    positions: list[tuple[int, int]] = []
    for i, step in enumerate(spec.steps):
        found = [m.start() for m in _pattern(step).finditer(text)]
        if len(found) != 1:
            problems.append(
                f"the step {step!r} appears {len(found)} times; each step is named exactly once, verbatim"
            )
        else:
            positions.append((found[0], i))
    if problems:
        return Reading(None, tuple(problems))
    order = [i for _, i in sorted(positions)]
    return Reading(wrong + inversions(order))


def confirm_order(spec: TextSpec, texts: Sequence[str], deviations: Sequence[int]) -> list[str]:
    """Problems found in confirming that ``texts[i]`` carries exactly ``deviations[i]`` defects
    (an empty list confirms the task's order)."""
    problems: list[str] = []
    for text, deviation in zip(texts, deviations, strict=True):
        reading = count_defects(spec, text)
        if reading.defects is None:
            problems.append(f"deviation {deviation}: " + "; ".join(reading.problems))
        elif reading.defects != deviation:
            problems.append(f"deviation {deviation}: the checker counts {reading.defects} defects")
    return problems
