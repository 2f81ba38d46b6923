"""Migrations: upgrading a database that holds data, and the models matching the head.

Revision 0002 adds ``tasks.num_results`` and backfills it from the results table, so a
database written at 0001 must come out with the right counts, and the API must then serve
its old tasks and results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from dojo.cli import main as dojo_main
from dojo.platform.credentials import hash_secret
from dojo.platform.http.app import create_app
from dojo.platform.services import subscriptions
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import MIGRATIONS_DIR, Database, current_revision, head_revision, migrate
from dojo.platform.storage.models import Base, Result, Task, Worker
from dojo.platform.storage.rawsql import RawStatement
from tests.dojo.platform._support import LiveServer, postgres_schema

API_KEY = "sk-" + "k" * 43
HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all (a fresh file, or a fresh PostgreSQL schema)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'old.sqlite'}", pool_size=1)
        yield database
        database.dispose()
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        database = Database(url, pool_size=1)
        yield database
        database.dispose()


def _fill_at_0001(database: Database) -> None:
    completions = [{"cid": c, "model": f"m-{c}", "completion": f"answer {c}"} for c in ("a", "b", "c")]
    rows = [
        (
            "INSERT INTO miners (id, hotkey, created_at) VALUES (1, :hk, '2026-11-20 10:00:00')",
            {"hk": HOTKEY},
        ),
        (
            "INSERT INTO api_keys (id, miner_id, kind, key_hash, prefix, created_at)"
            " VALUES (1, 1, 'api', :h, 'sk-kkkkkkkk', '2026-11-20 10:00:00')",
            {"h": hash_secret(API_KEY)},
        ),
        *[
            (
                "INSERT INTO workers (id, public_id, address, created_at) VALUES (:i, :p, NULL, '2026-11-20 10:00:00')",
                {"i": i, "p": f"{i:032x}"},
            )
            for i in (1, 2)
        ],
        *[
            (
                "INSERT INTO tasks (id, miner_id, title, body, prompt, task_type, criteria, completions,"
                " max_results, expire_at, created_at) VALUES (:id, 1, 'old task', '', 'prompt', 'CODE_GENERATION',"
                " :crit, :comp, 3, '2099-01-01 00:00:00', '2026-11-20 10:00:00')",
                {"id": task_id, "crit": json.dumps([{"type": "ranking"}]), "comp": json.dumps(completions)},
            )
            for task_id in ("task-two-results", "task-no-results")
        ],
        *[
            (
                "INSERT INTO results (task_id, worker_id, result_data, created_at, updated_at)"
                " VALUES ('task-two-results', :w, :d, '2026-11-20 11:00:00', '2026-11-20 11:00:00')",
                {"w": w, "d": json.dumps([{"type": "ranking", "value": {"a": 1, "b": 2, "c": 3}}])},
            )
            for w in (1, 2)
        ],
    ]
    with database.session() as db:
        for statement, params in rows:
            db.execute(text(statement), params)


def _in_use_at(database: Database, revision: str) -> Engine:
    """``database`` filled at 0001 (:func:`_fill_at_0001`) and migrated to ``revision``."""
    migrate(database.engine, "0001")
    _fill_at_0001(database)
    migrate(database.engine, revision)
    return database.engine


def _downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_upgrade_from_0001_keeps_data_and_backfills_counts(empty_database: Database, chain):
    migrate(empty_database.engine, "0001")
    assert current_revision(empty_database.engine) == "0001"
    assert "invites" not in inspect(empty_database.engine).get_table_names()
    _fill_at_0001(empty_database)

    settings = PlatformSettings(database_url=empty_database.url, public_url="http://platform.test", netuid=7)
    server = LiveServer(create_app(settings, chain=chain)).start()  # migrates at start
    try:
        assert current_revision(empty_database.engine) == head_revision() == "0011"
        with empty_database.read_session() as db:
            counts = dict(db.execute(text("SELECT id, num_results FROM tasks")).all())
            # 0006: no task has a validator's score yet; no miner a message; the CSRF secret was made.
            scores = db.execute(text("SELECT score, scored_at FROM tasks")).all()
            messages = db.execute(text("SELECT team_message FROM miners")).all()
            secrets = db.execute(text("SELECT name FROM platform_state")).scalars().all()
        assert counts == {"task-two-results": 2, "task-no-results": 0}
        assert scores == [(None, None)] * 2 and messages == [(None,)] and secrets == ["csrf_secret"]
        with httpx.Client(base_url=server.url, headers={"x-api-key": API_KEY}) as http:
            status = http.get("/api/v1/tasks/task-two-results").json()
            assert (status["numResults"], status["maxResults"], status["status"]) == (2, 3, "IN_PROGRESS")
            results = http.get("/api/v1/tasks/task-result/task-two-results").json()["body"]["taskResults"]
            assert [r["resultData"][0]["value"] for r in results] == [{"a": 1, "b": 2, "c": 3}] * 2
    finally:
        server.stop()


def test_head_matches_the_models_and_downgrades_cleanly(empty_database: Database):
    migrate(empty_database.engine)
    with empty_database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    _downgrade(empty_database.engine, "base")
    assert set(inspect(empty_database.engine).get_table_names()) <= {"alembic_version"}
    migrate(empty_database.engine)
    assert current_revision(empty_database.engine) == "0011"


def test_migrate_command(tmp_path: Path, capsys):
    path = tmp_path / "cli.sqlite"
    assert dojo_main(["platform", "migrate", "--db", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "platform database at revision 0011"
    assert dojo_main(["platform", "migrate", "--db", f"sqlite:///{path}"]) == 0  # idempotent
    assert current_revision(Database(f"sqlite:///{path}").engine) == "0011"


def test_times_of_a_database_written_before_aware_times_read_back_as_utc(empty_database: Database, chain):
    """The rows of a database of today's schema hold naive UTC (written before the platform's
    times were aware): the ORM, the hot path's own statements and the API read them as the
    UTC times they were, and compare them with now as before."""
    utc = timezone.utc
    migrate(empty_database.engine, "0001")
    _fill_at_0001(empty_database)
    migrate(empty_database.engine)
    live, expired = "dws_" + "l" * 43, "dws_" + "e" * 43
    with empty_database.session() as db:
        for token, expires in ((live, "2099-01-01 00:00:00"), (expired, "2026-11-20 10:30:00")):
            db.execute(
                text(
                    "INSERT INTO worker_sessions (token_hash, worker_id, created_at, expires_at)"
                    " VALUES (:h, 1, '2026-11-20 10:00:00', :e)"
                ),
                {"h": hash_secret(token), "e": expires},
            )

    with empty_database.read_session() as db:
        task = db.get(Task, "task-two-results")
        assert task is not None
        assert (task.created_at, task.expire_at) == (
            datetime(2026, 11, 20, 10, tzinfo=utc),
            datetime(2099, 1, 1, tzinfo=utc),
        )
        assert (
            db.execute(select(Result.updated_at)).scalars().all()
            == [datetime(2026, 11, 20, 11, tzinfo=utc)] * 2
        )
    with empty_database.raw_read() as raw:
        expire = RawStatement("SELECT expire_at FROM tasks WHERE id = :t", columns=["datetime"])
        assert raw.execute(expire, {"t": "task-no-results"}) == [(datetime(2099, 1, 1, tzinfo=utc),)]

    settings = PlatformSettings(database_url=empty_database.url, public_url="http://platform.test", netuid=7)
    server = LiveServer(create_app(settings, chain=chain)).start()
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": API_KEY}) as http:
            results = http.get("/api/v1/tasks/task-result/task-two-results").json()["body"]["taskResults"]
            assert [(r["createdAt"], r["updatedAt"]) for r in results] == [("2026-11-20T11:00:00Z",) * 2] * 2
        with httpx.Client(base_url=server.url) as http:
            # the session's expiry, read by the hot path, is compared with now in UTC
            assert (
                http.post(
                    "/api/v1/worker/tasks/next", headers={"Authorization": f"Bearer {expired}"}
                ).status_code
                == 401
            )
            assert (
                http.post(
                    "/api/v1/worker/tasks/next", headers={"Authorization": f"Bearer {live}"}
                ).status_code
                == 204
            )
            # a score recorded now is stored as naive UTC, as the rows before it
            scored = http.put(
                "/api/v1/tasks/task-two-results/score", headers={"x-api-key": API_KEY}, json={"score": 0.5}
            )
    finally:
        server.stop()
    assert scored.status_code == 200, scored.text
    assert scored.json()["scoredAt"].endswith("Z")
    with empty_database.read_session() as db:
        stored = db.execute(
            text("SELECT CAST(scored_at AS VARCHAR) FROM tasks WHERE id = 'task-two-results'")
        ).scalar_one()
        scored_at = db.execute(select(Task.scored_at).where(Task.id == "task-two-results")).scalar_one()
    assert scored_at is not None and scored_at.tzinfo is not None
    assert stored.startswith(scored_at.astimezone(utc).replace(tzinfo=None).isoformat(" ")[:19])


def _claim_at_0008_or_later(database: Database, worker: int) -> str | None:
    """The task PostgreSQL's claim function hands ``worker`` now (its hold kept)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with database.session() as db:
        return db.execute(
            text(
                "SELECT id FROM dojo_next_task(CAST(:w AS integer), CAST(:now AS timestamp),"
                " CAST(:now AS timestamp), 60, 16, 8)"
            ),
            {"w": worker, "now": now},
        ).scalar()


def test_0009_upgrades_a_database_in_use_at_0008_and_downgrades_to_it(empty_database: Database):
    """Revision 0009 (``tasks.full_until``, and on PostgreSQL the claim and submission that keep
    it, with their triggers) on a database with tasks, results and live holds; then back to
    0008's functions, which claim as before."""
    engine = _in_use_at(empty_database, "0008")
    with empty_database.session() as db:
        db.execute(
            text("INSERT INTO workers (id, public_id, created_at) VALUES (3, :p, '2026-11-20 10:00:00')"),
            {"p": f"{3:032x}"},
        )
        for worker in (1, 2, 3):
            db.execute(
                text(
                    "INSERT INTO subscriptions (worker_id, miner_id, name, created_at)"
                    " VALUES (:w, 1, 'team', '2026-11-20 10:00:00')"
                ),
                {"w": worker},
            )
        # Worker 2 holds the task without results until long after now; worker 3 skipped it.
        for worker, status in ((2, "held"), (3, "skipped")):
            db.execute(
                text(
                    "INSERT INTO assignments (task_id, worker_id, status, held_until, created_at, updated_at)"
                    " VALUES ('task-no-results', :w, :s, '2099-01-01 00:00:00', '2026-11-20 10:00:00',"
                    " '2026-11-20 10:00:00')"
                ),
                {"w": worker, "s": status},
            )
    migrate(engine, "0009")
    assert current_revision(engine) == "0009"
    with empty_database.read_session() as db:
        assert db.execute(text("SELECT id, full_until FROM tasks ORDER BY id")).all() == [
            ("task-no-results", None),
            ("task-two-results", None),
        ]
    postgres = not empty_database.is_sqlite
    if postgres:
        # Worker 3 takes the last place of the task with two results: it is marked full.
        assert _claim_at_0008_or_later(empty_database, 3) == "task-two-results"
        with empty_database.read_session() as db:
            marked = db.execute(text("SELECT id FROM tasks WHERE full_until IS NOT NULL")).scalars().all()
        assert marked == ["task-two-results"]

    _downgrade(engine, "0008")
    assert current_revision(engine) == "0008"
    assert "full_until" not in {c["name"] for c in inspect(engine).get_columns("tasks")}
    if postgres:
        with empty_database.read_session() as db:
            leftovers = db.execute(
                text(
                    "SELECT g.tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid"
                    " WHERE NOT g.tgisinternal AND c.relnamespace = CAST(current_schema() AS regnamespace)"
                    " UNION ALL SELECT proname FROM pg_proc"
                    " WHERE pronamespace = CAST(current_schema() AS regnamespace)"
                    " AND proname IN ('dojo_hold_ended', 'dojo_places_added')"
                )
            ).all()
        assert leftovers == []
        # 0008's claim again, which reads no full_until: the other task is full, so worker 1
        # takes a place of the one worker 2 holds.
        assert _claim_at_0008_or_later(empty_database, 1) == "task-no-results"
    migrate(engine, "0009")
    assert current_revision(engine) == "0009"


def _claim_settings(database: Database) -> list[str]:
    """How PostgreSQL plans the claim and the submission: their functions' own settings."""
    with database.read_session() as db:
        rows = db.execute(
            text(
                "SELECT proname, array_to_string(proconfig, ',') FROM pg_proc"
                " WHERE pronamespace = CAST(current_schema() AS regnamespace)"
                " AND proname IN ('dojo_next_task', 'dojo_submit_result') ORDER BY proname"
            )
        ).all()
    return [f"{name}: {config}" for name, config in rows]


def test_0010_upgrades_a_database_in_use_at_0009_and_downgrades_to_it(empty_database: Database):
    """Revision 0010 (on PostgreSQL only: the claim asks about the worker's own answer task by
    task, and both functions plan with their indexes) on a database with tasks and results,
    then back to 0009; the claim hands out the open task at each."""
    if empty_database.is_sqlite:
        pytest.skip("0010 changes PostgreSQL's functions only; on SQLite it is an empty step")
    engine = _in_use_at(empty_database, "0009")
    with empty_database.session() as db:
        db.execute(
            text(
                "INSERT INTO subscriptions (worker_id, miner_id, name, created_at) VALUES (1, 1, 'team', now())"
            )
        )
        # Worker 1's answer to the task with two results, as the queue records it.
        db.execute(
            text(
                "INSERT INTO assignments (task_id, worker_id, status, held_until, created_at, updated_at)"
                " VALUES ('task-two-results', 1, 'done', now(), now(), now())"
            )
        )
    at_0009 = _claim_settings(empty_database)
    assert all("enable_seqscan" not in row for row in at_0009)
    migrate(engine, "0010")
    assert current_revision(engine) == "0010"
    assert _claim_settings(empty_database) == [
        "dojo_next_task: plan_cache_mode=force_generic_plan,enable_seqscan=off",
        "dojo_submit_result: plan_cache_mode=force_generic_plan,enable_seqscan=off",
    ]
    # Worker 1 answered the task with two results; the other is open to it.
    assert _claim_at_0008_or_later(empty_database, 1) == "task-no-results"

    _downgrade(engine, "0009")
    assert current_revision(engine) == "0009"
    assert _claim_settings(empty_database) == at_0009
    assert _claim_at_0008_or_later(empty_database, 1) == "task-no-results"  # its own hold, kept


def _results_indexes(engine: Engine) -> dict[str, list[str | None]]:
    return {index["name"]: index["column_names"] for index in inspect(engine).get_indexes("results")}


def test_0011_upgrades_a_database_in_use_at_0010_and_downgrades_to_it(empty_database: Database):
    """Revision 0011 replaces the index of a worker's results by one that gives them the
    latest first, on a database with results; the worker's history reads the same, and back
    at 0010 the old index is there again."""
    engine = _in_use_at(empty_database, "0010")
    at_0010 = _results_indexes(engine)
    assert at_0010["ix_results_worker_id"] == ["worker_id"] and "ix_results_worker_latest" not in at_0010
    with empty_database.read_session() as db:
        before = db.execute(text("SELECT worker_id, task_id, result_data FROM results ORDER BY id")).all()
    migrate(engine, "0011")
    assert current_revision(engine) == "0011"
    at_0011 = _results_indexes(engine)
    assert at_0011["ix_results_worker_latest"] == ["worker_id", "updated_at", "id"]
    assert "ix_results_worker_id" not in at_0011
    with empty_database.session() as db:
        after = db.execute(text("SELECT worker_id, task_id, result_data FROM results ORDER BY id")).all()
        worker = db.get(Worker, before[0][0])
        assert worker is not None
        entries, total = subscriptions.history(db, worker)
    assert after == before and total == 1 and [e.task_id for e in entries] == ["task-two-results"]
    _downgrade(engine, "0010")
    assert current_revision(engine) == "0010" and _results_indexes(engine) == at_0010
