"""The validator's task database: a task's life written step by step, and read back."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dojo.validator.models import (
    Assignment,
    AssignmentCompletion,
    CollectStatus,
    MinerResult,
    SendStatus,
    Task,
    TaskCompletion,
    TaskStatus,
)
from dojo.validator.rounds import score_inputs
from dojo.validator.store import AcceptedResult, CollectionOutcome, SendOutcome, TaskStore
from template.clock import utcnow

MINERS = [(1, "hk-a"), (2, "hk-b"), (3, "hk-c")]
UIDS = dict(MINERS)


def _accept_all(store: TaskStore, outgoing) -> None:
    store.record_sends(
        [
            SendOutcome(o.assignment_id, SendStatus.ACCEPTED, dojo_task_id=f"d-{o.request_id}")
            for o in outgoing
        ],
        utcnow(),
    )


def _truthful(due, reverse: bool = False) -> list[AcceptedResult]:
    n = len(due.completion_ids)
    values = {}
    for cid in due.completion_ids.values():
        rank = int(cid.rsplit("c", 1)[1]) + 1
        values[cid] = float(n + 1 - rank if reverse else rank)
    return [AcceptedResult("w1", "ranking", values, utcnow())]


def test_task_and_assignments_are_written_together_with_each_miners_view(store, make_task):
    task, assignments = make_task(MINERS)
    outgoing = store.add_task(task, assignments)
    assert [o.miner_uid for o in outgoing] == [1, 2, 3]
    # Each miner's completions are in its own order, under its own ids.
    assert [cid for cid, _, _ in outgoing[0].completions] == [c for c, _ in assignments[0].completions]
    with Session(store.engine) as db:
        assert db.scalar(select(func.count()).select_from(TaskCompletion)) == 4
        assert db.scalar(select(func.count()).select_from(AssignmentCompletion)) == 12
        assert {a.send_status for a in db.scalars(select(Assignment))} == {SendStatus.PENDING}
        assert db.get(Task, task.task_id).status == TaskStatus.SENDING


def test_one_task_cannot_go_twice_to_one_miner(store, make_task):
    task, assignments = make_task([(1, "hk-a"), (1, "hk-a")])
    try:
        store.add_task(task, assignments)
    except Exception as exc:  # the unique (task, miner) constraint
        assert "UNIQUE" in str(exc).upper() or "unique" in str(exc)
    else:
        raise AssertionError("a second assignment of one task to one miner was stored")
    with Session(store.engine) as db:  # and nothing of the task is left half-written
        assert db.scalar(select(func.count()).select_from(Task)) == 0


def test_a_restart_sends_again_only_what_was_never_answered(store, make_task):
    task, assignments = make_task(MINERS)
    outgoing = store.add_task(task, assignments)
    store.record_sends(
        [SendOutcome(outgoing[0].assignment_id, SendStatus.ACCEPTED, dojo_task_id="d1")], utcnow()
    )
    again = store.pending_sends(utcnow(), timedelta(seconds=10))
    assert [o.request_id for o in again] == [outgoing[1].request_id, outgoing[2].request_id]
    assert again[0] == outgoing[1]  # the same request, id, order and content
    with Session(store.engine) as db:
        assert db.get(Task, task.task_id).status == TaskStatus.SENDING


def test_an_unsent_task_whose_deadline_is_too_near_is_marked_unsent(store, make_task):
    task, assignments = make_task(MINERS, deadline=5)
    store.add_task(task, assignments)
    assert store.pending_sends(utcnow(), timedelta(seconds=30)) == []
    with Session(store.engine) as db:
        assert db.get(Task, task.task_id).status == TaskStatus.UNSENT
        assert {a.send_status for a in db.scalars(select(Assignment))} == {SendStatus.UNSENT}


def test_collection_is_due_after_the_deadline_and_a_task_collects_when_every_miner_is_final(store, make_task):
    task, assignments = make_task(MINERS, deadline=0.2)
    outgoing = store.add_task(task, assignments)
    _accept_all(store, outgoing)
    assert store.due_collections(utcnow() - timedelta(seconds=1)) == []
    now = utcnow() + timedelta(seconds=1)
    due = store.due_collections(now)
    k = task.task_id.removeprefix("task")
    assert len(due) == 3 and due[0].completion_ids[f"t{k}m1c0"] == f"t{k}c0"
    store.record_collection(due[0].assignment_id, CollectStatus.COLLECTED, None, _truthful(due[0]), now)
    store.record_collections(
        [
            CollectionOutcome(
                due[1].assignment_id, CollectStatus.PENDING, "timeout", (), now + timedelta(seconds=30)
            )
        ],
        now,
    )
    assert [d.assignment_id for d in store.due_collections(now)] == [due[2].assignment_id]
    store.record_collection(due[2].assignment_id, CollectStatus.INVALID, "bad ranks", [], now)
    with Session(store.engine) as db:
        assert db.get(Task, task.task_id).status == TaskStatus.WAITING
    store.record_collection(due[1].assignment_id, CollectStatus.NO_RESULT, "grace over", [], now)
    # A second answer for a final assignment changes nothing.
    store.record_collection(due[1].assignment_id, CollectStatus.COLLECTED, None, _truthful(due[1]), now)
    with Session(store.engine) as db:
        assert db.get(Task, task.task_id).status == TaskStatus.COLLECTED
        assert db.scalar(select(func.count()).select_from(MinerResult)) == 1


def test_a_task_no_miner_accepted_is_collected_at_its_deadline(store, make_task):
    task, assignments = make_task(MINERS, deadline=0.1)
    outgoing = store.add_task(task, assignments)
    store.record_sends([SendOutcome(o.assignment_id, SendStatus.REFUSED, "503") for o in outgoing], utcnow())
    assert store.settle_due_tasks(utcnow() + timedelta(seconds=1)) == 1
    with Session(store.engine) as db:
        assert db.get(Task, task.task_id).status == TaskStatus.COLLECTED


def _collected_round(store: TaskStore, make_task, liar: str = "hk-c") -> int:
    task, assignments = make_task(MINERS, deadline=0.1)
    _accept_all(store, store.add_task(task, assignments))
    now = utcnow() + timedelta(seconds=1)
    for due in store.due_collections(now):
        store.record_collection(
            due.assignment_id,
            CollectStatus.COLLECTED,
            None,
            _truthful(due, reverse=due.miner_hotkey == liar),
            now,
        )
    round_id = store.open_round(1000, utcnow())
    assert round_id is not None
    return round_id


def test_a_round_is_committed_once_and_moves_only_its_miners(store, make_task):
    round_id = _collected_round(store, make_task)
    scores = score_inputs(store.round_inputs(round_id))
    assert scores.miner_round_scores["hk-a"][1] > 0.9 and scores.miner_round_scores["hk-c"][1] == 0.0
    store.commit_round(scores, 0.5, {1: "hk-a", 2: "hk-b", 3: "hk-c", 4: "hk-d"}, utcnow())
    assert store.commit_round(scores, 0.5, UIDS, utcnow()) is False  # a second commit changes nothing
    moving = store.moving_scores(0.5).scores()
    assert moving["hk-a"] > 0.45 and moving["hk-c"] == 0.0
    # A round with only hk-a and hk-b leaves hk-c's moving score where it was.
    task, assignments = make_task(MINERS[:2], deadline=0.1)
    _accept_all(store, store.add_task(task, assignments))
    now = utcnow() + timedelta(seconds=1)
    for due in store.due_collections(now):
        store.record_collection(due.assignment_id, CollectStatus.NO_RESULT, "none", [], now)
    second = store.open_round(1000, utcnow())
    store.commit_round(score_inputs(store.round_inputs(second)), 0.5, UIDS, utcnow())
    after = store.moving_scores(0.5).scores()
    assert after["hk-c"] == moving["hk-c"]
    assert after["hk-a"] < moving["hk-a"]  # it was assigned and gave no answer: 0 for that round
    status = store.status()
    assert status["rounds_scored"] == 2 and status["tasks"]["scored"] == 2
    assert status["miners"]["hk-a"]["tasks_sent"] == 2 and status["miners"]["hk-c"]["answered"] == 1


def test_a_new_hotkey_on_a_uid_starts_from_zero(store, make_task):
    round_id = _collected_round(store, make_task)
    store.commit_round(score_inputs(store.round_inputs(round_id)), 0.5, UIDS, utcnow())
    assert store.moving_scores(0.5).scores()["hk-a"] > 0
    assert store.sync_miners({1: "hk-new", 2: "hk-b", 3: "hk-c"}, 0.5, utcnow()) == ["hk-a"]
    scores = store.moving_scores(0.5).scores()
    assert "hk-a" not in scores and "hk-new" not in scores
    uids, _ = store.moving_scores(0.5).weights(4)
    assert 1 not in uids


def test_scores_to_send_and_weights_are_recorded(store, make_task):
    round_id = _collected_round(store, make_task)
    store.commit_round(score_inputs(store.round_inputs(round_id)), 0.5, UIDS, utcnow())
    pending = store.scores_to_send(utcnow() - timedelta(hours=1))
    assert {p.miner_hotkey for p in pending} == {"hk-a", "hk-b", "hk-c"}
    store.mark_scores_sent([pending[0].assignment_id], utcnow())
    assert len(store.scores_to_send(utcnow() - timedelta(hours=1))) == 2
    assert store.last_weights_block() is None
    store.record_weights(
        attempted_at=utcnow(),
        block=10,
        uids=[1, 2],
        weights=[65535, 65535],
        hotkeys=["hk-a", "hk-b"],
        version_key=1,
        outcome="rejected",
        detail="rate_limited",
        attempts=1,
    )
    assert store.last_weights_block() is None
    store.record_weights(
        attempted_at=utcnow(),
        block=12,
        uids=[1, 2],
        weights=[65535, 32767],
        hotkeys=["hk-a", "hk-b"],
        version_key=1,
        outcome="set",
        detail=None,
        attempts=2,
    )
    assert store.last_weights_block() == 12
    weights = store.status()["last_weights"]["weights"]
    assert abs(weights["hk-a"] - 2 / 3) < 1e-3


def test_the_store_is_migrated_from_the_previous_revision_with_its_data(tmp_path, make_task):
    from dojo.validator.store import MIGRATIONS
    from template.storage import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    assert migrate(engine, MIGRATIONS, label="validator", revision="0001") == "0001"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (task_id, created_at, task_type, prompt, criteria, expire_at, status, source)"
                " VALUES ('old', '2026-11-30 10:00:00', 'code_generation', 'p', '[{\"type\": \"ranking\"}]',"
                " '2026-11-30 14:00:00', 'waiting', 'in-process')"
            )
        )
    engine.dispose()
    store = TaskStore(url)  # opening migrates to head
    try:
        with Session(store.engine) as db:
            old = db.get(Task, "old")
            assert old.status == "waiting" and old.expire_at.tzinfo is not None
            assert "ix_tasks_created_at" in {
                row[1] for row in db.execute(text("PRAGMA index_list('tasks')")).all()
            }
        assert store.status()["tasks"]["total"] == 1
    finally:
        store.close()


def test_revision_0003_keeps_the_data_of_0002_and_adds_the_original_content(tmp_path, make_task):
    from dataclasses import replace

    from sqlalchemy.orm import undefer

    from dojo.validator.store import MIGRATIONS
    from template.storage import current_revision, head_revision, make_engine, migrate

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    assert migrate(engine, MIGRATIONS, label="validator", revision="0002") == "0002"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (task_id, created_at, task_type, prompt, criteria, expire_at, status, source)"
                " VALUES ('old', '2026-11-30 10:00:00', 'code_generation', 'p', '[{\"type\": \"ranking\"}]',"
                " '2026-11-30 14:00:00', 'scored', 'in-process')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO task_completions (task_id, completion_id, position, model, content, ground_truth_rank)"
                " VALUES ('old', 'c0', 0, 'm', '{\"kind\": \"text\", \"text\": \"sent\"}', 1)"
            )
        )
    engine.dispose()
    store = TaskStore(url)  # opening migrates to head
    try:
        assert current_revision(store.engine) == head_revision(MIGRATIONS)
        with Session(store.engine) as db:
            old = db.scalars(select(TaskCompletion).options(undefer(TaskCompletion.original_content))).one()
            assert old.content == {"kind": "text", "text": "sent"} and old.ground_truth_rank == 1
            assert old.original_content is None
            indexes = {row[1] for row in db.execute(text("PRAGMA index_list('tasks')")).all()}
            assert {"ix_tasks_created_at", "ix_tasks_status_created"} <= indexes
        task, assignments = make_task(MINERS)
        original = {"kind": "text", "text": "before obfuscation"}
        task = replace(
            task, completions=(replace(task.completions[0], original_content=original), *task.completions[1:])
        )
        outgoing = store.add_task(task, assignments)
        # What is sent is the content, never the original.
        assert all(content != original for o in outgoing for _, _, content in o.completions)
        with store.engine.connect() as conn:
            stored = (
                conn.execute(
                    text(
                        "SELECT original_content FROM task_completions WHERE task_id = :t ORDER BY position"
                    ),
                    {"t": task.task_id},
                )
                .scalars()
                .all()
            )
        assert stored[0] is not None and '"before obfuscation"' in stored[0]
        assert stored[1:] == [None] * (len(stored) - 1)  # unknown is SQL NULL, not JSON null
    finally:
        store.close()


def test_status_of_a_database_the_validator_is_still_making_says_so_not_an_sql_error(tmp_path, capsys):
    from dojo.cli import main as dojo_main

    # The validator has made the file; its first migration (one transaction) is not committed.
    db = tmp_path / "validator.sqlite"
    sqlite3.connect(db).close()
    assert not TaskStore.read_only(db).ready()
    assert dojo_main(["validator", "status", "--db", str(db), "--json"]) == 1
    captured = capsys.readouterr()
    assert "the validator is still making its database" in captured.err and captured.out == ""
    TaskStore(db).close()
    assert TaskStore.read_only(db).ready()
    assert dojo_main(["validator", "status", "--db", str(db), "--json"]) == 0
