"""A task marked full (``tasks.full_until``, revision 0009) is never passed over while a place is free.

On PostgreSQL the claim whose hold takes a task's last place marks the task until the first
of its holds lapses, and the search passes over it until then without counting. Whatever
frees a place sooner clears the mark in the database (triggers, and the resubmission in
``dojo_submit_result``). Here: each way of freeing a place, then the task is offered again
at once; and random sequences of every operation on a few tasks, where after each step no
task is marked while a place is free, and each claim agrees with the pages' list (the ORM's
rules) at the same instant. The random sequences run on SQLite too (its search ignores the
mark), against the same rules.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from dojo.platform.errors import PlatformError
from dojo.platform.services import queue, subscriptions
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import HOLD, Assignment, Miner, Result, Subscription, Task, Worker
from template.clock import utcnow
from tests.dojo.platform.conftest import empty_tables

ANSWER = [{"type": "ranking", "value": {"a": 1, "b": 2}}]
HOLD_SECONDS = 30


class Clock:
    """The queue's and the pages' ``utcnow``, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(queue, "utcnow", clock)
    monkeypatch.setattr(subscriptions, "utcnow", clock)
    return clock


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    empty_tables(database_url)
    database = Database(database_url, pool_size=1)
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url: str) -> Iterator[PlatformSettings]:
    queue.forget_time_needed(database_url)
    yield PlatformSettings(database_url=database_url, min_time_left_seconds=0, hold_ttl_seconds=HOLD_SECONDS)
    queue.forget_time_needed(database_url)


def _scene(database: Database, workers: int, tasks: int, max_results: int) -> tuple[list[int], list[str]]:
    """A miner with ``tasks`` tasks a minute apart and ``workers`` workers subscribed to it."""
    with database.session() as db:
        miner = Miner(hotkey=f"5Miner{uuid.uuid4().hex[:20]}")
        people = [Worker(public_id=uuid.uuid4().hex[:16]) for _ in range(workers)]
        db.add_all([miner, *people])
        db.flush()
        db.add_all(Subscription(worker_id=w.id, miner_id=miner.id, key_id=None, name="team") for w in people)
        made = [
            Task(
                id=str(uuid.uuid4()),
                miner_id=miner.id,
                title="compare",
                body="",
                prompt="which is better?",
                task_type="CODE_GENERATION",
                criteria=[{"type": "ranking"}],
                completions=[
                    {"cid": "a", "completion": "x", "model": "m1"},
                    {"cid": "b", "completion": "y", "model": "m2"},
                ],
                max_results=max_results,
                num_results=0,
                expire_at=utcnow() + timedelta(days=1, minutes=i),
            )
            for i in range(tasks)
        ]
        db.add_all(made)
        db.flush()
        return [w.id for w in people], [t.id for t in made]


def _claim(database: Database, settings: PlatformSettings, worker: int) -> str | None:
    with database.raw_write() as db:
        view = queue.next_task(db, settings, Worker(id=worker))
    return None if view is None else view.id


def _submit(database: Database, settings: PlatformSettings, worker: int, task: str) -> str | None:
    try:
        with database.raw_write() as db:
            queue.submit_result(db, settings, Worker(id=worker), task, ANSWER)
    except PlatformError as exc:
        return exc.detail if hasattr(exc, "detail") else str(exc)
    return None


def _marked(database: Database, task: str) -> datetime | None:
    with database.read_session() as db:
        return db.scalar(select(Task.full_until).where(Task.id == task))


def _marked_with_a_free_place(database: Database, now: datetime) -> list[str]:
    """Tasks marked full past ``now`` with fewer results and live holds than places."""
    with database.read_session() as db:
        return list(
            db.scalars(
                select(Task.id).where(
                    Task.full_until > now,
                    Task.num_results
                    + select(func.count())
                    .select_from(Assignment)
                    .where(
                        Assignment.task_id == Task.id, Assignment.status == HOLD, Assignment.held_until > now
                    )
                    .scalar_subquery()
                    < Task.max_results,
                )
            )
        )


def _postgres_only(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("the mark is PostgreSQL's: SQLite's search counts every task it passes")


def test_the_hold_that_takes_the_last_place_marks_the_task_until_the_first_hold_lapses(
    database: Database, settings: PlatformSettings, clock: Clock
) -> None:
    _postgres_only(database)
    (first, second, third), (task,) = _scene(database, workers=3, tasks=1, max_results=2)
    assert _claim(database, settings, first) == task
    assert _marked(database, task) is None  # a place is still free
    clock.advance(10)
    assert _claim(database, settings, second) == task
    until = clock.now + timedelta(seconds=HOLD_SECONDS - 10)
    assert _marked(database, task) == until
    # A holder's answer takes the place its hold had: the mark stays (no search counts again).
    assert _submit(database, settings, second, task) is None
    assert _marked(database, task) == until
    clock.advance(HOLD_SECONDS - 10 - 1)
    assert _claim(database, settings, third) is None
    clock.advance(1)  # the first hold lapses: its place is free at once
    assert _claim(database, settings, third) == task


def _skip(database: Database, clock: Clock, worker: int, task: str) -> None:
    with database.session() as db:
        queue.skip_task(db, Worker(id=worker), task)


def _release(database: Database, clock: Clock, worker: int, task: str) -> None:
    # As a miner taking the worker off its team does (services.team).
    with database.session() as db:
        db.execute(delete(Assignment).where(Assignment.worker_id == worker, Assignment.status == HOLD))


def _shorten(database: Database, clock: Clock, worker: int, task: str) -> None:
    with database.session() as db:
        db.execute(
            update(Assignment)
            .where(Assignment.worker_id == worker, Assignment.task_id == task)
            .values(held_until=clock.now)
        )


def _more_places(database: Database, clock: Clock, worker: int, task: str) -> None:
    with database.session() as db:
        db.execute(update(Task).where(Task.id == task).values(max_results=Task.max_results + 1))


FREES: dict[str, Callable[[Database, Clock, int, str], None]] = {
    "skip": _skip,
    "release": _release,
    "hold shortened": _shorten,
    "more places": _more_places,
}


@pytest.mark.parametrize("free", list(FREES), ids=list(FREES))
def test_a_place_freed_before_the_mark_lapses_is_offered_again_at_once(
    database: Database, settings: PlatformSettings, clock: Clock, free: str
) -> None:
    _postgres_only(database)
    (first, second, third), (task,) = _scene(database, workers=3, tasks=1, max_results=2)
    assert _claim(database, settings, first) == task
    assert _claim(database, settings, second) == task
    assert _marked(database, task) is not None
    assert _claim(database, settings, third) is None
    FREES[free](database, clock, first, task)
    assert _marked(database, task) is None
    assert _claim(database, settings, third) == task


def test_a_result_taken_back_frees_its_place_at_once(
    database: Database, settings: PlatformSettings, clock: Clock
) -> None:
    _postgres_only(database)
    (first, second, third), (task,) = _scene(database, workers=3, tasks=1, max_results=2)
    assert _claim(database, settings, first) == task
    assert _submit(database, settings, first, task) is None
    assert _claim(database, settings, second) == task
    assert _marked(database, task) is not None
    with database.session() as db:
        db.execute(delete(Result).where(Result.task_id == task, Result.worker_id == first))
        db.execute(update(Task).where(Task.id == task).values(num_results=Task.num_results - 1))
    assert _claim(database, settings, third) == task


def test_a_resubmission_ending_a_hold_frees_its_place(
    database: Database, settings: PlatformSettings, clock: Clock
) -> None:
    """A worker with a result that holds the task again (the state the module docstring of
    ``queue`` leaves as it is): its resubmission ends a hold whose place the result had."""
    _postgres_only(database)
    (first, second, third), (task,) = _scene(database, workers=3, tasks=1, max_results=3)
    assert _claim(database, settings, first) == task
    assert _submit(database, settings, first, task) is None
    with database.session() as db:
        db.execute(
            update(Assignment)
            .where(Assignment.worker_id == first)
            .values(status=HOLD, held_until=clock.now + timedelta(seconds=HOLD_SECONDS))
        )
    assert _claim(database, settings, second) == task  # 1 result + 2 holds: marked full
    assert _marked(database, task) is not None
    assert _claim(database, settings, third) is None
    assert _submit(database, settings, first, task) is None  # replaces its answer, ends its hold
    assert _claim(database, settings, third) == task


def _offered_by_the_pages(database: Database, worker: int) -> tuple[str | None, set[str]]:
    """The pages' view at the clock's instant: the worker's live hold (soonest first), and the
    tasks it could take (listed, not answered, not held by it)."""
    with database.read_session() as db:
        listed = subscriptions.worker_tasks(db, Worker(id=worker))
    held = [s.id for s in listed if s.my_status == HOLD]
    return (held[0] if held else None), {s.id for s in listed if s.my_status is None}


@pytest.mark.parametrize("seed", range(4))
def test_random_sequences_never_leave_a_free_place_marked_and_claims_follow_the_pages(
    database: Database, settings: PlatformSettings, clock: Clock, seed: int
) -> None:
    rng = random.Random(seed)
    workers, tasks = _scene(database, workers=5, tasks=4, max_results=2)
    done: list[str] = []

    def step() -> str:
        worker, task = rng.choice(workers), rng.choice(tasks)
        kind = rng.choices(
            [
                "claim",
                "submit",
                "skip",
                "page hold",
                "release",
                "shorten",
                "more places",
                "take back",
                "wait",
            ],
            weights=[8, 4, 1, 1, 1, 1, 1, 1, 3],
        )[0]
        if kind == "claim":
            hold, free = _offered_by_the_pages(database, worker)
            got = _claim(database, settings, worker)
            if hold is not None:
                assert got == hold, f"claim by {worker}: {got} where its hold is {hold}"
            elif free:
                assert got in free, f"claim by {worker}: {got} where the pages offer {sorted(free)}"
            else:
                assert got is None, f"claim by {worker}: {got} where the pages offer nothing"
            if got is not None and rng.random() < 0.7:
                _submit(database, settings, worker, got)
        elif kind == "submit":
            _submit(database, settings, worker, task)
        elif kind == "skip":
            with contextlib.suppress(PlatformError):
                _skip(database, clock, worker, task)
        elif kind == "page hold":
            with contextlib.suppress(PlatformError), database.session() as db:
                queue.extend_hold(db, settings, Worker(id=worker), task)
        elif kind == "release":
            _release(database, clock, worker, task)
        elif kind == "shorten":
            with database.session() as db:
                db.execute(
                    update(Assignment)
                    .where(Assignment.worker_id == worker, Assignment.status == HOLD)
                    .values(held_until=clock.now + timedelta(seconds=rng.uniform(0, 5)))
                )
        elif kind == "more places":
            _more_places(database, clock, worker, task)
        elif kind == "take back":
            with database.session() as db:
                result = db.scalar(select(Result).where(Result.task_id == task).limit(1))
                if result is not None:
                    db.delete(result)
                    db.execute(update(Task).where(Task.id == task).values(num_results=Task.num_results - 1))
        else:
            clock.advance(rng.uniform(0, HOLD_SECONDS * 0.7))
        return kind

    for number in range(150):
        kind = step()
        wrong = _marked_with_a_free_place(database, clock.now)
        assert not wrong, f"seed {seed}, step {number} ({kind}): marked full with a place free: {wrong}"
        done.append(kind)
    assert done.count("claim") > 20
