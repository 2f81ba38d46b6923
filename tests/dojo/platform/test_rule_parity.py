"""The queue's two copies of the rules on taking a task agree, on SQLite and PostgreSQL.

Whether a worker may take a task is written twice (the rules are named in
:mod:`dojo.platform.services.queue`'s docstring, "The rules on taking a task"): in prepared SQL for
the hot path (``queue.next_task``, ``queue.submit_result``, ``queue.extend_hold``; on
PostgreSQL the functions of revisions 0008 and 0009) and in the ORM for the pages
(``subscriptions.worker_tasks``, ``subscriptions.worker_task``). Each case below builds one
task and its surroundings, states the answer, and asks every path: a change to one side
alone fails here, naming the rule the sides no longer agree on.

The full mark (``tasks.full_until``, revision 0009): on PostgreSQL the claim whose hold
takes a task's last place marks the task until the first of its holds lapses, and the search
passes over it until then without counting; whatever frees a place sooner clears the mark in
the database (triggers, and the resubmission in ``dojo_submit_result``). The last tests here:
each way of freeing a place, then the task is offered again at once; and random sequences of
every operation on a few tasks, where after each step no task is marked while a place is
free, and each claim agrees with the pages' list (the ORM's rules) at the same instant (on
SQLite too, whose search ignores the mark).
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dojo.platform.errors import PlatformError
from dojo.platform.services import queue, subscriptions
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import (
    DONE,
    HOLD,
    KEY_KIND_SUBSCRIPTION,
    SKIPPED,
    ApiKey,
    Assignment,
    Miner,
    Result,
    Subscription,
    Task,
    Worker,
)
from template.clock import utcnow
from tests.dojo.platform.conftest import empty_tables

# The rules' names, as queue.py's docstring gives them; None: the worker may take the task.
LIVE_SUBSCRIPTION = "live subscription"
CLOSED = "closed"
FULL = "full"
OTHERS_HOLDING = "others holding"
SKIPPED_BY_ME = "skipped"
# Claims only (the hot path's next task and the page's claim; the pages' lists do not apply it).
TIME_LEFT = "time left"

# The paths asked.
PAGE = "page: may answer"
LISTED = "page: listed"
PAGE_OFFERED = "page: offered (listed, not answered)"
NEXT = "hot path: next task"
SUBMIT = "hot path: submit"
CLAIM = "hot path: page's claim"

ANSWER = [{"type": "ranking", "value": {"a": 1, "b": 2}}]


@dataclass
class Scene:
    """One case's database: the worker asking (``me``), two others, a miner and its task."""

    db: Session
    me: Worker
    others: tuple[Worker, Worker]
    miner: Miner
    task: Task

    def subscribe(self, worker: Worker, key: str | None = "enabled", miner: Miner | None = None) -> None:
        """``key``: "enabled", "disabled" or None (an invite link)."""
        miner = miner or self.miner
        key_id = None
        if key is not None:
            row = ApiKey(
                miner_id=miner.id,
                kind=KEY_KIND_SUBSCRIPTION,
                key_hash=uuid.uuid4().hex,
                prefix="dsk_test",
                disabled_at=utcnow() if key == "disabled" else None,
            )
            self.db.add(row)
            self.db.flush()
            key_id = row.id
        self.db.add(Subscription(worker_id=worker.id, miner_id=miner.id, key_id=key_id, name="team"))
        self.db.flush()

    def hold(self, worker: Worker, live: bool = True) -> None:
        until = utcnow() + (timedelta(minutes=10) if live else -timedelta(minutes=1))
        self.db.add(Assignment(task_id=self.task.id, worker_id=worker.id, status=HOLD, held_until=until))
        self.db.flush()

    def answer(self, worker: Worker) -> None:
        """A stored result of ``worker`` (counted), its assignment done."""
        now = utcnow()
        self.db.add(Result(task_id=self.task.id, worker_id=worker.id, result_data=ANSWER, lead_time=5.0))
        self.db.add(Assignment(task_id=self.task.id, worker_id=worker.id, status=DONE, held_until=now))
        self.task.num_results += 1
        self.db.flush()

    def skip(self, worker: Worker) -> None:
        self.db.add(
            Assignment(task_id=self.task.id, worker_id=worker.id, status=SKIPPED, held_until=utcnow())
        )
        self.db.flush()


def _subscribed(scene: Scene) -> None:
    scene.subscribe(scene.me)


@dataclass(frozen=True)
class Case:
    """A state and the answer both sides must give: ``refused`` names the rule that refuses
    the worker an answer (None: it may answer), ``offered`` whether its next task is this one."""

    name: str
    build: Callable[[Scene], None]
    refused: str | None
    offered: bool
    max_results: int = 2
    expire_in: timedelta = timedelta(hours=1)
    # The seconds a person needs for the time-left rule, which only claims apply (0: off).
    time_needed: float = 0.0
    # What a path says where it differs from the above, by design or (DISAGREEMENTS) today.
    otherwise: tuple[tuple[str, Any], ...] = ()


def _steps(*steps: Callable[[Scene], None]) -> Callable[[Scene], None]:
    def build(scene: Scene) -> None:
        for step in steps:
            step(scene)

    return build


def _me(method: str, *args: Any, **kwargs: Any) -> Callable[[Scene], None]:
    return lambda scene: getattr(scene, method)(scene.me, *args, **kwargs)


def _other(index: int, method: str, *args: Any, **kwargs: Any) -> Callable[[Scene], None]:
    return lambda scene: getattr(scene, method)(scene.others[index], *args, **kwargs)


def _other_miner_subscription(scene: Scene) -> None:
    other = Miner(hotkey=f"5Other{uuid.uuid4().hex[:20]}")
    scene.db.add(other)
    scene.db.flush()
    scene.subscribe(scene.me, miner=other)


CASES = [
    # The live subscription: by an invite link, or by a key the miner has not disabled.
    Case("subscribed by a key", _subscribed, None, True),
    Case("subscribed by an invite", _me("subscribe", None), None, True),
    Case("the subscription's key disabled", _me("subscribe", "disabled"), LIVE_SUBSCRIPTION, False),
    Case("no subscription", lambda scene: None, LIVE_SUBSCRIPTION, False),
    Case("subscribed to another miner only", _other_miner_subscription, LIVE_SUBSCRIPTION, False),
    Case(
        "holding it, the key disabled since",
        _steps(_me("subscribe", "disabled"), _me("hold")),
        LIVE_SUBSCRIPTION,
        False,
    ),
    # Closed: the deadline has passed.
    Case("past its deadline", _subscribed, CLOSED, False, expire_in=-timedelta(minutes=1)),
    Case(
        "answered by me, past its deadline",
        _steps(_subscribed, _me("answer")),
        CLOSED,
        False,
        expire_in=-timedelta(seconds=1),
    ),
    Case(
        "holding it past its deadline",
        _steps(_subscribed, _me("hold")),
        CLOSED,
        False,
        expire_in=-timedelta(seconds=1),
    ),
    # Full: as many results as it takes.
    Case("full", _steps(_subscribed, _other(0, "answer"), _other(1, "answer")), FULL, False),
    # Others holding: results and other workers' live holds take every place.
    Case(
        "others hold the last place",
        _steps(_subscribed, _other(0, "answer"), _other(1, "hold")),
        OTHERS_HOLDING,
        False,
    ),
    Case(
        "others hold every place",
        _steps(_subscribed, _other(0, "hold"), _other(1, "hold")),
        OTHERS_HOLDING,
        False,
    ),
    Case("another holds one of two places", _steps(_subscribed, _other(0, "hold")), None, True),
    Case(
        "others' holds lapsed",
        _steps(_subscribed, _other(0, "hold", live=False), _other(1, "hold", live=False)),
        None,
        True,
    ),
    Case(
        "my hold lapsed, others hold every place",
        _steps(_subscribed, _me("hold", live=False), _other(0, "hold"), _other(1, "hold")),
        OTHERS_HOLDING,
        False,
    ),
    Case("my hold lapsed", _steps(_subscribed, _me("hold", live=False)), None, True),
    # A worker's own live hold keeps its place.
    Case("held by me", _steps(_subscribed, _me("hold")), None, True, max_results=1),
    Case(
        "held by me, another holds the other place",
        _steps(_subscribed, _me("hold"), _other(0, "hold")),
        None,
        True,
    ),
    # Answered: its place is kept (a resubmission replaces the answer), but it is not offered again.
    Case("answered by me", _steps(_subscribed, _me("answer")), None, False),
    Case("answered by me, now full", _steps(_subscribed, _me("answer"), _other(0, "answer")), None, False),
    Case("skipped by me", _steps(_subscribed, _me("skip")), SKIPPED_BY_ME, False),
    # Time left: a new hold only with the time a person needs left; the pages list the task and
    # take an answer, the claims refuse it.
    Case(
        "too little time left for a new hold",
        _subscribed,
        None,
        True,
        expire_in=timedelta(minutes=1),
        time_needed=120.0,
        otherwise=((NEXT, False), (CLAIM, TIME_LEFT)),
    ),
    # A live hold with too little time left: the next task passes over it, the page extends it.
    Case(
        "holding it with too little time left",
        _steps(_subscribed, _me("hold")),
        None,
        True,
        expire_in=timedelta(minutes=1),
        time_needed=120.0,
        otherwise=((NEXT, False),),
    ),
]

# Where the two sides disagree today (named in queue.py's rules): each path's answer pinned,
# so that a change to either side shows here and the case moves to CASES once they agree.
DISAGREEMENTS = [
    Case(
        "held by me, full",
        _steps(_subscribed, _me("hold"), _other(0, "answer")),
        FULL,
        False,
        max_results=1,
        # The hot path trusts a live hold to keep a place: it offers the task and stores the
        # answer (a state no claim makes: a hold is taken only while a place is free).
        otherwise=((NEXT, True), (SUBMIT, None), (CLAIM, None)),
    ),
]


def _orm_refusal(reason: str | None) -> str | None:
    """The rule behind a page's ``closed_reason``."""
    if reason is None:
        return None
    for words, rule in (
        ("deadline has passed", CLOSED),
        ("you skipped", SKIPPED_BY_ME),
        ("all the results", FULL),
        ("other workers hold", OTHERS_HOLDING),
    ):
        if words in reason:
            return rule
    raise AssertionError(f"a closed_reason no rule names: {reason!r}")


def _hot_refusal(exc: PlatformError) -> str:
    """The rule behind the hot path's refusal."""
    detail = str(exc.detail)
    for status, words, rule in (
        (404, queue.NOT_YOURS, LIVE_SUBSCRIPTION),
        (410, "expired", CLOSED),
        (409, queue.SKIPPED_DETAIL, SKIPPED_BY_ME),
        (409, "already has its", FULL),
        (409, "other workers hold", OTHERS_HOLDING),
        (409, "an answer takes", TIME_LEFT),
    ):
        if exc.status_code == status and words in detail:
            return rule
    raise AssertionError(f"a refusal no rule names: {exc.status_code} {detail!r}")


class _Rollback(Exception):
    pass


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    empty_tables(database_url)
    database = Database(database_url, pool_size=1)
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url: str) -> Iterator[PlatformSettings]:
    """No time-left rule (``min_time_left_seconds`` 0): the rules under test alone decide."""
    queue.forget_time_needed(database_url)
    yield PlatformSettings(database_url=database_url, min_time_left_seconds=0, hold_ttl_seconds=60)
    queue.forget_time_needed(database_url)


def _task(db: Session, miner: Miner, max_results: int, expire_in: timedelta) -> Task:
    task = Task(
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
        expire_at=utcnow() + expire_in,
    )
    db.add(task)
    db.flush()
    return task


def _people(db: Session) -> tuple[Miner, list[Worker]]:
    """A miner and three workers; the second and third subscribe to it by invite, as any
    holder or answerer would."""
    miner = Miner(hotkey=f"5Miner{uuid.uuid4().hex[:20]}")
    workers = [Worker(public_id=uuid.uuid4().hex[:16]) for _ in range(3)]
    db.add_all([miner, *workers])
    db.flush()
    for other in workers[1:]:
        db.add(Subscription(worker_id=other.id, miner_id=miner.id, key_id=None, name="team"))
    db.flush()
    return miner, workers


def _build(database: Database, case: Case) -> tuple[int, str]:
    with database.session() as db:
        miner, workers = _people(db)
        task = _task(db, miner, case.max_results, case.expire_in)
        case.build(Scene(db, workers[0], (workers[1], workers[2]), miner, task))
        return workers[0].id, task.id


def _hot(database: Database, work: Callable[[Any], Any]) -> Any:
    """``work(db)`` on the hot path's own connection (``raw_write``), rolled back after."""
    answer: list[Any] = []
    try:
        with database.raw_write() as db:
            try:
                answer.append(work(db))
            except PlatformError as exc:
                answer.append(exc)
            raise _Rollback
    except _Rollback:
        pass
    return answer[0]


def _answers(database: Database, settings: PlatformSettings, case: Case) -> dict[str, Any]:
    """What each path says about the case's task, for its worker."""
    settings = settings.model_copy(update={"min_time_left_seconds": case.time_needed})
    worker_id, task_id = _build(database, case)
    me = Worker(id=worker_id)
    with database.read_session() as db:
        listed = [summary.id for summary in subscriptions.worker_tasks(db, me)]
        try:
            page = subscriptions.worker_task(db, me, task_id)
            page_refusal = _orm_refusal(page.closed_reason)
            answered = page.my_result is not None
        except PlatformError as exc:
            page_refusal, answered = _hot_refusal(exc), False
    offered = _hot(database, lambda db: queue.next_task(db, settings, me))
    submitted = _hot(database, lambda db: queue.submit_result(db, settings, me, task_id, ANSWER))
    held = _hot(database, lambda db: queue.extend_hold(db, settings, me, task_id))
    return {
        # The pages (ORM).
        PAGE: page_refusal,
        LISTED: task_id in listed,
        PAGE_OFFERED: task_id in listed and not answered,
        # The hot path (prepared SQL; on PostgreSQL the functions of revisions 0008 and 0009).
        NEXT: offered is not None and offered.id == task_id,
        SUBMIT: _hot_refusal(submitted) if isinstance(submitted, PlatformError) else None,
        CLAIM: _hot_refusal(held) if isinstance(held, PlatformError) else None,
    }


def _check(database: Database, settings: PlatformSettings, case: Case) -> None:
    answers = _answers(database, settings, case)
    expected = {
        PAGE: case.refused,
        LISTED: case.refused is None,
        PAGE_OFFERED: case.offered,
        NEXT: case.offered,
        SUBMIT: case.refused,
        CLAIM: case.refused,
    }
    expected.update(case.otherwise)
    wrong = {path: (answers[path], want) for path, want in expected.items() if answers[path] != want}
    rule = f"the rule {case.refused!r} refuses" if case.refused else "no rule refuses"
    assert not wrong, f"{case.name!r} ({rule}); paths that answer otherwise (got, expected): " + "; ".join(
        f"{path}: {got!r} != {want!r}" for path, (got, want) in wrong.items()
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_both_sides_apply_the_same_rules(database: Database, settings: PlatformSettings, case: Case) -> None:
    _check(database, settings, case)


@pytest.mark.parametrize("case", DISAGREEMENTS, ids=[case.name for case in DISAGREEMENTS])
def test_where_the_sides_disagree_today(database: Database, settings: PlatformSettings, case: Case) -> None:
    _check(database, settings, case)


def test_the_cases_cover_every_rule() -> None:
    """Each rule refuses in some case and lets the worker take the task in another."""
    refused = {case.refused for case in CASES}
    assert refused >= {LIVE_SUBSCRIPTION, CLOSED, FULL, OTHERS_HOLDING, SKIPPED_BY_ME, None}
    assert any(case.offered for case in CASES) and any(
        case.refused is None and not case.offered for case in CASES
    )


def _listed(database: Database, me: Worker) -> list[tuple[str, str | None]]:
    with database.read_session() as db:
        return [(summary.id, summary.my_status) for summary in subscriptions.worker_tasks(db, me)]


def _take(database: Database, settings: PlatformSettings, me: Worker) -> str | None:
    """The hot path's next task for ``me``, its hold kept."""
    with database.raw_write() as db:
        view = queue.next_task(db, settings, me)
    return None if view is None else view.id


def test_the_next_task_is_one_the_pages_list_as_open(database: Database, settings: PlatformSettings) -> None:
    """Over one miner's tasks in every state, the hot path hands out exactly the tasks the
    pages list as open to the worker and not yet answered by it, its own hold first: on
    SQLite soonest deadline first, on PostgreSQL one of the ``queue.SPREAD`` soonest at
    random (so concurrent claims spread over tasks)."""
    with database.session() as db:
        miner, (me, first, second) = _people(db)
        db.add(Subscription(worker_id=me.id, miner_id=miner.id, key_id=None, name="team"))
        # One task in each state, a minute apart, the first already past its deadline.
        states: list[tuple[str, Callable[[Scene], Any]]] = [
            ("closed", lambda scene: None),
            ("full", lambda scene: (scene.answer(first), scene.answer(second))),
            ("others holding", lambda scene: (scene.answer(first), scene.hold(second))),
            ("skipped", lambda scene: scene.skip(me)),
            ("answered", lambda scene: scene.answer(me)),
            ("open", lambda scene: None),
            ("open later", lambda scene: scene.hold(first)),
        ]
        ids = {}
        for minutes, (name, build) in enumerate(states):
            scene = Scene(db, me, (first, second), miner, _task(db, miner, 2, timedelta(minutes=minutes - 1)))
            build(scene)
            ids[name] = scene.task.id
        me = Worker(id=me.id)
    names = {task_id: name for name, task_id in ids.items()} | {"none": "none"}

    def statuses() -> list[tuple[str, str | None]]:
        return [(names[task_id], status) for task_id, status in _listed(database, me)]

    assert statuses() == [("answered", DONE), ("open", None), ("open later", None)]
    handed = names[_take(database, settings, me) or "none"]
    assert handed in ("open", "open later")
    if database.is_sqlite:
        assert handed == "open"  # the soonest deadline
    # The worker's own hold comes first while it lasts, and the pages show it held.
    assert names[_take(database, settings, me) or "none"] == handed
    assert (handed, HOLD) in statuses()
    with database.raw_write() as db:
        queue.submit_result(db, settings, me, ids[handed], ANSWER)
    rest = "open later" if handed == "open" else "open"
    assert names[_take(database, settings, me) or "none"] == rest
    with database.raw_write() as db:
        queue.submit_result(db, settings, me, ids[rest], ANSWER)
    assert _take(database, settings, me) is None
    assert statuses() == [("answered", DONE), ("open", DONE), ("open later", DONE)]


# The hold the ``settings`` fixture gives (``hold_ttl_seconds``).
HOLD_SECONDS = 60


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


def _scene(database: Database, workers: int, tasks: int, max_results: int) -> tuple[list[int], list[str]]:
    """A miner with ``tasks`` tasks a minute apart and ``workers`` workers subscribed to it."""
    with database.session() as db:
        miner = Miner(hotkey=f"5Miner{uuid.uuid4().hex[:20]}")
        people = [Worker(public_id=uuid.uuid4().hex[:16]) for _ in range(workers)]
        db.add_all([miner, *people])
        db.flush()
        db.add_all(Subscription(worker_id=w.id, miner_id=miner.id, key_id=None, name="team") for w in people)
        made = [_task(db, miner, max_results, timedelta(days=1, minutes=i)) for i in range(tasks)]
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
        return exc.detail
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


# The mark is PostgreSQL's: SQLite's search counts every task it passes, so these run there only.
postgres_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@postgres_only
def test_the_hold_that_takes_the_last_place_marks_the_task_until_the_first_hold_lapses(
    database: Database, settings: PlatformSettings, clock: Clock
) -> None:
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


def _take_back(database: Database, task: str, worker: int | None = None) -> None:
    """A result of ``task`` deleted (``worker``'s, or any one) and the task's count with it."""
    with database.session() as db:
        query = select(Result).where(Result.task_id == task)
        if worker is not None:
            query = query.where(Result.worker_id == worker)
        result = db.scalar(query.limit(1))
        if result is not None:
            db.delete(result)
            db.execute(update(Task).where(Task.id == task).values(num_results=Task.num_results - 1))


def _more_places(database: Database, clock: Clock, worker: int, task: str) -> None:
    with database.session() as db:
        db.execute(update(Task).where(Task.id == task).values(max_results=Task.max_results + 1))


FREES: dict[str, Callable[[Database, Clock, int, str], None]] = {
    "skip": _skip,
    "release": _release,
    "hold shortened": _shorten,
    "more places": _more_places,
}


def _filled(database: Database, settings: PlatformSettings, first_answers: bool) -> tuple[int, int, str]:
    """A task with two places: the first worker's hold (or its answer, if ``first_answers``)
    and the second's hold take them, so it is marked full; the third finds no task. Returns
    the first and third workers and the task (PostgreSQL's tests only: :data:`postgres_only`)."""
    (first, second, third), (task,) = _scene(database, workers=3, tasks=1, max_results=2)
    assert _claim(database, settings, first) == task
    if first_answers:
        assert _submit(database, settings, first, task) is None
    assert _claim(database, settings, second) == task
    assert _marked(database, task) is not None
    assert _claim(database, settings, third) is None
    return first, third, task


@postgres_only
@pytest.mark.parametrize("free", list(FREES), ids=list(FREES))
def test_a_place_freed_before_the_mark_lapses_is_offered_again_at_once(
    database: Database, settings: PlatformSettings, clock: Clock, free: str
) -> None:
    first, third, task = _filled(database, settings, first_answers=False)
    FREES[free](database, clock, first, task)
    assert _marked(database, task) is None
    assert _claim(database, settings, third) == task


@postgres_only
def test_a_result_taken_back_frees_its_place_at_once(
    database: Database, settings: PlatformSettings, clock: Clock
) -> None:
    first, third, task = _filled(database, settings, first_answers=True)
    _take_back(database, task, first)
    assert _claim(database, settings, third) == task


@postgres_only
def test_a_resubmission_ending_a_hold_frees_its_place(
    database: Database, settings: PlatformSettings, clock: Clock
) -> None:
    """A worker with a result that holds the task again (the state the module docstring of
    ``queue`` leaves as it is): its resubmission ends a hold whose place the result had."""
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
            _take_back(database, task)
        else:
            clock.advance(rng.uniform(0, HOLD_SECONDS * 0.7))
        return kind

    for number in range(150):
        kind = step()
        wrong = _marked_with_a_free_place(database, clock.now)
        assert not wrong, f"seed {seed}, step {number} ({kind}): marked full with a place free: {wrong}"
        done.append(kind)
    assert done.count("claim") > 20
