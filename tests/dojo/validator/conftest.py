"""Fixtures for the validator tests: a task database of each kind, and tasks to put in it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from dojo.validator.store import NewAssignment, NewCompletion, NewTask, TaskStore
from template.clock import utcnow


@pytest.fixture
def store(store_url: str) -> Iterator[TaskStore]:
    s = TaskStore(store_url)
    yield s
    s.close()


MakeTask = Callable[..., tuple[NewTask, list[NewAssignment]]]


@pytest.fixture
def make_task() -> MakeTask:
    """A task of ``n`` completions (ground truth c0 best … c{n-1} worst) assigned to ``miners``
    (uid, hotkey) pairs, each seeing the completions in reverse order under its own ids."""
    counter = iter(range(10**6))

    def _make(
        miners: list[tuple[int, str]], n: int = 4, deadline: float = 60.0, criteria: list | None = None
    ) -> tuple[NewTask, list[NewAssignment]]:
        k = next(counter)
        now = utcnow()
        task = NewTask(
            task_id=f"task{k}",
            created_at=now,
            task_type="code_generation",
            prompt=f"prompt {k}",
            criteria=criteria or [{"type": "ranking"}],
            expire_at=now + timedelta(seconds=deadline),
            source="test",
            completions=tuple(
                NewCompletion(f"t{k}c{i}", f"model-{i}", {"kind": "text", "text": f"answer {i}"}, i + 1)
                for i in range(n)
            ),
        )
        assignments = [
            NewAssignment(
                miner_hotkey=hotkey,
                miner_uid=uid,
                request_id=f"req{k}-{uid}",
                completions=tuple((f"t{k}m{uid}c{i}", f"t{k}c{i}") for i in reversed(range(n))),
            )
            for uid, hotkey in miners
        ]
        return task, assignments

    return _make
