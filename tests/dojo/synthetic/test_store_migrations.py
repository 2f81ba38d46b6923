"""The synthetic store's schema comes from its Alembic migrations: a new store is at the
head revision, and a store made before migrations existed (by ``create_all``, with or
without the ``kind`` columns) is upgraded on open with every row it held."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from commons.protocol import CodeFile
from commons.synthetic_api import SyntheticCompletion, SyntheticResponse, SyntheticTask
from dojo.synthetic.store import MIGRATIONS, SyntheticStore
from template.storage import current_revision, head_revision
from tests.dojo.synthetic._instructions import instruction_counts, rejected_instructions

# The DDL ``metadata.create_all`` ran before the store had migrations, as SQLite got it.
DDL_WITH_KINDS = [
    """CREATE TABLE instructions (
        id INTEGER NOT NULL, text TEXT NOT NULL, status VARCHAR(16) NOT NULL,
        similarity FLOAT NOT NULL, nearest_id INTEGER, created_at FLOAT NOT NULL,
        kind VARCHAR(16) DEFAULT 'code' NOT NULL, PRIMARY KEY (id))""",
    "CREATE INDEX ix_instructions_status ON instructions (status)",
    """CREATE TABLE task_queue (
        id INTEGER NOT NULL, task TEXT NOT NULL, created_at FLOAT NOT NULL,
        kind VARCHAR(16) DEFAULT 'code' NOT NULL, PRIMARY KEY (id))""",
    """CREATE TABLE instruction_embeddings (
        instruction_id INTEGER NOT NULL, model VARCHAR(200) NOT NULL, vector BLOB NOT NULL,
        PRIMARY KEY (instruction_id, model), FOREIGN KEY(instruction_id) REFERENCES instructions (id))""",
]
# Before content kinds: no kind columns and no stored embeddings.
DDL_BEFORE_KINDS = [
    """CREATE TABLE instructions (
        id INTEGER NOT NULL, text TEXT NOT NULL, status VARCHAR(16) NOT NULL,
        similarity FLOAT NOT NULL, nearest_id INTEGER, created_at FLOAT NOT NULL, PRIMARY KEY (id))""",
    "CREATE INDEX ix_instructions_status ON instructions (status)",
    """CREATE TABLE task_queue (
        id INTEGER NOT NULL, task TEXT NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (id))""",
]


def _task(prompt: str) -> SyntheticTask:
    def response(cid: str) -> SyntheticResponse:
        files = [CodeFile(filename="index.html", content=f"<p>{prompt} {cid}</p>")]
        return SyntheticResponse(model="m", completion=SyntheticCompletion(files=files), cid=cid)

    return SyntheticTask(
        prompt=prompt, responses=[response("a"), response("b")], ground_truth={"a": 1, "b": 2}
    )


def _old_store(path: Path, *, kinds: bool) -> None:
    """A store as the code before migrations left it, with rows in every table."""
    with sqlite3.connect(path) as conn:
        for statement in DDL_WITH_KINDS if kinds else DDL_BEFORE_KINDS:
            conn.execute(statement)
        kind_column, kind_value = (", kind", ", 'code'") if kinds else ("", "")
        conn.execute(
            f"INSERT INTO instructions (id, text, status, similarity, nearest_id, created_at{kind_column}) "
            f"VALUES (1, 'a counter page', 'accepted', 0.1, NULL, 1.0{kind_value})"
        )
        conn.execute(
            f"INSERT INTO instructions (id, text, status, similarity, nearest_id, created_at{kind_column}) "
            f"VALUES (2, 'a counter page again', 'rejected', 0.97, 1, 2.0{kind_value})"
        )
        conn.execute(
            f"INSERT INTO task_queue (task, created_at{kind_column}) VALUES (?, 3.0{kind_value})",
            (_task("queued before the upgrade").model_dump_json(),),
        )
        if kinds:
            conn.execute(
                "INSERT INTO instruction_embeddings (instruction_id, model, vector) VALUES (1, 'embed', ?)",
                (b"\x00\x00\x80?",),
            )
    conn.close()


@pytest.mark.parametrize("kinds", [True, False], ids=["with-kind-columns", "before-kind-columns"])
def test_a_store_made_before_migrations_is_upgraded_with_its_rows(tmp_path: Path, kinds: bool) -> None:
    path = tmp_path / "synthetic.sqlite"
    _old_store(path, kinds=kinds)

    store = SyntheticStore(path)
    try:
        assert current_revision(store.engine) == head_revision(MIGRATIONS)
        assert store.accepted_instructions("code") == [(1, "a counter page")]
        assert rejected_instructions(store) == [("a counter page again", 0.97, 1)]
        assert instruction_counts(store) == {"accepted": 1, "rejected": 1}
        assert store.embeddings("embed", "code") == ({1: b"\x00\x00\x80?"} if kinds else {})
        assert store.queue_sizes() == {"code": 1}
        queued = store.pop_task("code")
        assert queued is not None and queued.prompt == "queued before the upgrade"
        # and it takes new rows of every kind
        store.push_task(_task("queued after the upgrade"))
        new_id = store.record_instruction(
            "a poem", accepted=True, similarity=0.0, nearest_id=None, kind="text"
        )
        store.save_embedding(new_id, "embed", b"\x00\x00\x00@")
        assert store.accepted_instructions("text") == [(new_id, "a poem")]
    finally:
        store.close()

    # opened again: nothing to migrate, nothing lost
    again = SyntheticStore(path)
    try:
        assert again.queue_size() == 1
        assert instruction_counts(again) == {"accepted": 2, "rejected": 1}
    finally:
        again.close()


def test_a_new_store_is_made_by_the_migrations(tmp_path: Path) -> None:
    store = SyntheticStore(tmp_path / "new.sqlite")
    try:
        assert current_revision(store.engine) == head_revision(MIGRATIONS)
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("task_queue")}
        assert "kind" in columns
        store.push_task(_task("first"))
        assert store.queue_sizes() == {"code": 1}
    finally:
        store.close()


def test_the_migrations_build_the_tables_the_store_declares(tmp_path: Path) -> None:
    """The head revision and ``store.metadata`` describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from dojo.synthetic.store import metadata

    store = SyntheticStore(tmp_path / "compare.sqlite")
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


def test_an_in_memory_store_is_migrated_too() -> None:
    store = SyntheticStore(":memory:")
    try:
        assert current_revision(store.engine) == head_revision(MIGRATIONS)
        store.push_task(_task("in memory"))
        assert store.queue_size("code") == 1
    finally:
        store.close()
