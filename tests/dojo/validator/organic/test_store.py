"""The organic tables on SQLite and PostgreSQL: accepting in batches with idempotency, claiming
for the fan-out at most once, results and webhooks written with the round, paging; and the
migration that adds them, on a database of the previous revision with data in it."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from dojo.validator.organic.store import (
    AlreadyClaimed,
    NewOrganic,
    OrganicStore,
    claim_organic,
    record_organic_results,
)
from dojo.validator.store import TaskStore
from template.clock import utcnow


def _new(owner: str, external_id: str | None, request_hash: str = "h") -> NewOrganic:
    return NewOrganic(
        uuid.uuid4().hex,
        owner,
        external_id,
        request_hash,
        utcnow(),
        "private",
        None,
        60.0,
        3,
        {
            "prompt": "p",
            "task_type": "text",
            "criteria": [{"type": "ranking"}],
            "completions": [{"label": "a", "model": "", "content": {"kind": "text", "text": "x"}}],
        },
    )


def test_a_batch_of_several_callers_reads_each_callers_external_ids_as_its_own(store):
    organic = OrganicStore(store.engine)
    a, b, c = (organic.create_key(name, 10, 10, utcnow()).key_id for name in "abc")
    first = organic.accept([_new(a, "x"), _new(a, "y"), _new(b, "x", "b's")])
    again = organic.accept(
        [
            _new(c, "x"),
            _new(b, "y"),
            _new(a, "y", "changed"),
            _new(b, "x", "b's"),
            _new(a, "x"),
            _new(c, None),
        ]
    )
    # c and b's "y" are new although a has an "x" and a "y" with these bodies.
    assert [(r.duplicate, r.conflict) for r in again[:2]] == [(False, False)] * 2
    assert {again[0].task_id, again[1].task_id}.isdisjoint(r.task_id for r in first)
    assert again[2].conflict and again[2].task_id == first[1].task_id
    assert again[3].duplicate and again[3].task_id == first[2].task_id
    assert again[3].created_at == first[2].created_at and again[3].created_at.tzinfo is not None
    assert again[4].duplicate and again[4].task_id == first[0].task_id
    assert not again[5].duplicate and not again[5].conflict


def test_accept_claim_score_and_page(store):
    organic = OrganicStore(store.engine)
    a = organic.create_key("a", 10, 10, utcnow()).key_id
    b = organic.create_key("b", 10, 10, utcnow()).key_id
    first = organic.accept(
        [_new(a, "x"), _new(a, "x"), _new(a, "y", "other"), _new(b, "x", "other"), _new(a, None)]
    )
    # Within one batch: the second "x" is the first's duplicate; another caller's "x" is its own.
    assert not first[0].duplicate and first[1].duplicate and first[1].task_id == first[0].task_id
    assert not first[3].duplicate and first[3].task_id != first[0].task_id
    again = organic.accept([_new(a, "x"), _new(a, "y", "changed")])
    assert again[0].duplicate and again[0].task_id == first[0].task_id
    assert again[1].conflict and again[1].task_id == first[2].task_id
    # Round robin: b is not starved by a's three tasks.
    picked = organic.next_queued(2)
    assert {q.owner_id for q in picked} == {a, b}
    assert organic.next_queued(2, after_owner=a)[0].owner_id == b
    # Claimed at most once.
    with Session(store.engine) as db, db.begin():
        claim_organic(db, first[0].task_id, {"c1": "a"}, utcnow())
    with pytest.raises(AlreadyClaimed), Session(store.engine) as db, db.begin():
        claim_organic(db, first[0].task_id, {"c1": "a"}, utcnow())
    result = {
        "criteria_type": "ranking",
        "ranking": ["c1"],
        "agreement": 1.0,
        "miners": 1,
        "workers": 1,
        "completions": [{"id": "c1", "consensus_rank": 1.0, "mean": 1.0, "spread": 0.0}],
        "raw": [{"worker": "w-1", "values": {"c1": 1.0}}],
    }
    with Session(store.engine) as db, db.begin():
        record_organic_results(db, {first[0].task_id: result, first[2].task_id: result}, utcnow())
    view = organic.view(a, first[0].task_id, utcnow(), raw=True)
    assert (
        view.status == "scored" and view.result.ranking == ["a"] and view.result.raw[0].values == {"a": 1.0}
    )
    assert organic.view(a, first[0].task_id, utcnow()).result.raw is None
    assert organic.view(a, first[2].task_id, utcnow()).status == "queued"  # never sent: not scored
    assert organic.view(b, first[0].task_id, utcnow()) is None
    tasks, cursor = organic.page(a, utcnow(), status=None, since=None, cursor=None, limit=2)
    rest, end = organic.page(a, utcnow(), status=None, since=None, cursor=cursor, limit=2)
    assert len(tasks) == 2 and len(rest) == 1 and end is None
    assert organic.count_since(a, utcnow() - timedelta(hours=1)) == 3
    # Waiting past the queue's timeout: expired.
    assert organic.settle(utcnow() + timedelta(days=2), 86400) == 3
    assert organic.counts()["expired"] == 3 and organic.counts()["scored"] == 1


def test_revision_0005_adds_the_organic_tables_to_a_database_with_tasks(tmp_path):
    from dojo.validator.store import MIGRATIONS, TaskStore
    from template.storage import current_revision, make_engine, migrate

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    assert migrate(engine, MIGRATIONS, label="validator", revision="0004") == "0004"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (task_id, created_at, task_type, prompt, criteria, expire_at, status, source)"
                " VALUES ('old', '2026-11-30 10:00:00', 'code_generation', 'p', '[{\"type\": \"ranking\"}]',"
                " '2026-11-30 14:00:00', 'scored', 'in-process')"
            )
        )
    engine.dispose()
    store = TaskStore(url)
    try:
        assert current_revision(store.engine) == "0005"
        assert store.status()["tasks"]["total"] == 1 and store.status()["organic"]["total"] == 0
        organic = OrganicStore(store.engine)
        key = organic.create_key("k", 1, 1, utcnow())
        assert organic.owner_by_key(key.api_key).name == "k"
        assert store.recent_sources(5) == ["in-process"]
    finally:
        store.close()


def test_reads_do_not_wait_for_a_writer(tmp_path):
    """A caller's key, quota count, task and page are read while another writer holds the
    database's write lock (a group commit, a task round, a scoring round): a read that took
    the lock queued behind each of them, and each of them behind it."""
    store = TaskStore(f"sqlite:///{tmp_path / 'validator.sqlite'}")
    organic = OrganicStore(store.engine)
    made = organic.create_key("a", 10, 10, utcnow())
    (accepted,) = organic.accept([_new(made.key_id, "x")])
    writer = sqlite3.connect(tmp_path / "validator.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE organic_keys SET name = 'renamed'")
    try:
        owner = organic.owner_by_key(made.api_key)
        assert owner is not None and owner.key_id == made.key_id and owner.name == "a"
        assert organic.count_since(made.key_id, utcnow() - timedelta(days=1)) == 1
        view = organic.view(made.key_id, accepted.task_id, utcnow())
        assert view is not None and view.status == "queued"
        assert [
            v.task_id
            for v in organic.page(made.key_id, utcnow(), status=None, since=None, cursor=None, limit=5)[0]
        ] == [accepted.task_id]
        assert [q.task_id for q in organic.next_queued(5)] == [accepted.task_id]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        store.close()
