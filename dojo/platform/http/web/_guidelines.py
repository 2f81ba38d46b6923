"""How to judge a task, as the task page's *How to judge* panel says it.

One entry per kind of task (the task's ``task_type``, lower case): what "better" means for
it and what to look at, most important first. The panel adds what the task's own criteria
ask (a ranking, a score from min to max). A new kind of task adds its entry here; a kind
without one gets :data:`GENERAL`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Guidelines:
    better: str  # what makes one response better than another, in a sentence
    look_for: tuple[str, ...]  # what to check, most important first


GENERAL = Guidelines(
    better="The better response is the one that does what the prompt asks, correctly and completely.",
    look_for=(
        "Does it answer what the prompt asks, all of it?",
        "Is it correct: nothing false, nothing broken?",
        "Is it clear, without padding or needless repetition?",
    ),
)

GUIDELINES: dict[str, Guidelines] = {
    "code_generation": Guidelines(
        better="The better response is the program that does what the prompt asks. Run each live "
        "preview and read the code: judge what it does, not how long or polished it looks.",
        look_for=(
            "Does it do what the prompt asks, every part of it? Try it in the preview.",
            "Does it work: no errors, nothing blank or frozen, nothing cut off?",
            "Is it complete: no missing files, placeholders or “TODO”s?",
            "Only between programs that work equally well: the clearer, simpler code is better.",
        ),
    ),
    "text": Guidelines(
        better="The better response answers the prompt correctly, completely and clearly.",
        look_for=(
            "Is it correct: no false facts, no wrong reasoning?",
            "Does it answer everything the prompt asks, and nothing it did not?",
            "Is it clear and well organised, without padding?",
        ),
    ),
    "dialogue": Guidelines(
        better="The better response is the reply that moves the conversation on helpfully: it "
        "follows from what was said before and answers the last message.",
        look_for=(
            "Does it answer the last message, in the light of the whole conversation?",
            "Is it correct and consistent with what was said before?",
            "Is it clear, and the right length for the conversation?",
        ),
    ),
    "image": Guidelines(
        better="The better response is the picture that shows what the prompt describes: the right "
        "objects, how many, what colour and where. Open each one large (click it, or Enter).",
        look_for=(
            "Are all the objects the prompt names there, and nothing it did not ask for?",
            "Are their counts, colours and shapes right, each on the right object?",
            "Is each where the prompt puts it, on the background it names?",
        ),
    ),
}


def guidelines_for(task_type: str) -> Guidelines:
    """The guidelines of a task type (``CODE_GENERATION`` and ``code_generation`` alike)."""
    return GUIDELINES.get(task_type.strip().lower(), GENERAL)


def criteria_lines(criteria: list[dict[str, Any]], n: int) -> list[str]:
    """What the task's criteria (as the page reads them) ask of the worker, one line each."""
    lines = []
    for c in criteria:
        if c["type"] == "ranking":
            lines.append(
                f"Rank all {n} responses, best first: every one gets its own place, no ties. When two "
                "seem equal, put first the one with fewer problems."
            )
        elif c["type"] == "multi-score":
            lines.append(
                f"{c['label']}: give each response a score from {c['min']} to {c['max']}; higher is better."
            )
    return lines
