"""The similarity filter over a real SQLite task database."""

from __future__ import annotations

import pytest

from dojo.synthetic.filter import InstructionFilter
from dojo.synthetic.store import SyntheticStore
from tests.dojo.synthetic._instructions import instruction_counts, rejected_instructions

BASE = (
    "Draw twelve small coral hexagons arranged in a ring on a midnight blue background. Each hexagon "
    "spins slowly. Clicking a hexagon toggles its colour to gold and back."
)
NEAR = BASE.replace("twelve", "eleven")
DISTINCT = [
    "Build a bar chart of monthly rainfall with tooltips that show the exact value on hover.",
    "Simulate a pendulum wave of fifteen pendulums with a slider that changes the gravity.",
    "Make a memory card game with sixteen cards, a move counter and a restart button.",
]


def test_rejects_near_duplicates_and_keeps_distinct_instructions(tmp_path):
    store = SyntheticStore(tmp_path / "synthetic.sqlite")
    gate = InstructionFilter(store, threshold=0.8)
    first = gate.check(BASE)
    assert first.accepted and first.nearest_id is None
    near = gate.check(NEAR)
    assert not near.accepted
    assert near.similarity >= 0.8 and near.nearest_id == first.instruction_id
    for text in DISTINCT:
        decision = gate.check(text)
        assert decision.accepted, (text, decision.similarity)
    assert not gate.check(DISTINCT[1]).accepted  # an exact repeat
    assert instruction_counts(store) == {"accepted": 4, "rejected": 2}
    rejected = rejected_instructions(store)
    assert rejected[0][0] == NEAR and rejected[0][2] == first.instruction_id
    store.close()

    # The database persists: a new filter on it still knows what was accepted.
    reopened = SyntheticStore(tmp_path / "synthetic.sqlite")
    again = InstructionFilter(reopened, threshold=0.8)
    assert not again.check(NEAR).accepted
    assert again.check("Render a fractal tree whose branching angle follows the mouse.").accepted
    reopened.close()


def test_threshold_is_configurable():
    strict = InstructionFilter(SyntheticStore(), threshold=0.2)
    assert strict.check(BASE).accepted
    assert not strict.check(
        BASE.replace("coral", "teal").replace("ring", "grid").replace("slowly", "fast")
    ).accepted
    loose = InstructionFilter(SyntheticStore(), threshold=1.0)
    assert loose.check(BASE).accepted and loose.check(NEAR).accepted
    with pytest.raises(ValueError):
        InstructionFilter(SyntheticStore(), threshold=0.0)


def test_new_words_count_as_the_corpus_grows():
    gate = InstructionFilter(SyntheticStore(), threshold=0.9)
    texts = [
        f"Task {n}: draw {n} shapes of kind k{n} moving in pattern p{n % 7} with colour c{n % 5}"
        for n in range(40)
    ]
    assert all(gate.check(t).accepted for t in texts)
    assert gate.similarity(texts[17])[0] == pytest.approx(1.0)
