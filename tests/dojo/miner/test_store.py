"""The miner's store on real SQLite (and PostgreSQL where a server listens), and the handlers' pure mappings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect
from sqlalchemy.exc import IntegrityError

from commons.protocol import (
    CodeContent,
    CodeFile,
    Completion,
    DialogueContent,
    DialogueTurn,
    FeedbackRequest,
    MultiScoreCriteria,
    RankingCriteria,
    TextContent,
)
from dojo.miner.models import Base
from dojo.miner.neuron import (
    check_expiry,
    idempotency_key,
    platform_completion,
    platform_task_data,
    request_hash,
    worker_pseudonym_for_validators,
)
from dojo.miner.store import MIGRATIONS_DIR, MinerStore, miner_database_url
from template.storage import current_revision, head_revision
from template.transport import HandlerRefusal
from tests.dojo.platform._support import postgres_admin_url, postgres_schema

EXPIRE = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield miner_database_url(tmp_path / "data")
        return
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("no PostgreSQL server accepts connections on 127.0.0.1:5432 (database test)")
    with postgres_schema(admin) as schema_url:
        yield schema_url


def _save(store: MinerStore, validator: str = "5Validator", request_id: str = "r1", **kw) -> None:
    store.save_task(
        validator_hotkey=validator,
        request_id=request_id,
        dojo_task_id=kw.get("dojo_task_id", "task-1"),
        request_hash=kw.get("request_hash", "h1"),
        completion_ids=["c1", "c2"],
        criteria_types=["ranking"],
        expire_at=EXPIRE,
    )


def test_the_database_is_the_configured_url_else_a_file_in_the_data_dir(tmp_path):
    assert miner_database_url(tmp_path) == f"sqlite:///{(tmp_path / 'miner.sqlite').resolve()}"
    assert miner_database_url(tmp_path, "postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert (
        miner_database_url(tmp_path, str(tmp_path / "x.db")) == f"sqlite:///{(tmp_path / 'x.db').resolve()}"
    )


def test_the_schema_comes_from_the_migration_and_matches_the_models(url):
    store = MinerStore(url)
    try:
        assert current_revision(store.engine) == head_revision(MIGRATIONS_DIR) == "0004"
        assert set(inspect(store.engine).get_table_names()) == {
            "alembic_version",
            "miner_tasks",
            "miner_answers",
            "validator_scores",
            "miner_secrets",
        }
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        store.close()


def test_each_poll_reads_only_the_tasks_still_on_their_backend(tmp_path):
    """The open tasks and those due to be withdrawn are found by an index of the tasks not
    yet withdrawn, not by a scan of every task the miner ever took (it grows for ever)."""
    store = MinerStore(miner_database_url(tmp_path / "data"))
    reads: list[tuple[str, tuple]] = []

    def note(_conn, _cursor, statement, parameters, _context, _many):
        if statement.startswith("SELECT") and "FROM miner_tasks" in statement:
            reads.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        store.open_tasks("label-studio", EXPIRE)
        store.expired_tasks("label-studio", EXPIRE)
        assert len(reads) == 2
        with store.engine.connect() as conn:
            for statement, parameters in reads:
                plan = " ".join(
                    row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                )
                assert "USING INDEX ix_miner_tasks_unwithdrawn_due (backend=? AND expire_at" in plan, plan
    finally:
        event.remove(store.engine, "before_cursor_execute", note)
        store.close()


def test_tasks_from_before_worker_backends_migrate_as_dojo_tasks_and_answers_are_pinned_once(url):
    from sqlalchemy import text

    from dojo.miner.answers import Verdict
    from template.storage import make_engine, migrate

    engine = make_engine(url)
    try:
        assert migrate(engine, MIGRATIONS_DIR, label="miner", revision="0001") == "0001"
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO miner_tasks (validator_hotkey, request_id, dojo_task_id, request_hash, "
                    "completion_ids, criteria_types, expire_at, created_at) VALUES ('5V', 'old', 't-old', 'h', "
                    "'[\"c1\", \"c2\"]', '[\"ranking\"]', '2030-01-01 12:00:00', '2029-12-31 12:00:00')"
                )
            )
    finally:
        engine.dispose()
    store = MinerStore(url)  # migrates to head with the old row in place
    try:
        old = store.find_task("5V", "old")
        assert old is not None and (old.backend, old.max_results, old.completion_ids, old.withdrawn_at) == (
            "dojo",
            None,
            ("c1", "c2"),
            None,
        )
        store.save_task(
            validator_hotkey="5V", request_id="new", dojo_task_id="42", request_hash="h2", completion_ids=["a", "b"],
            criteria_types=["ranking"], expire_at=EXPIRE, backend="label-studio", max_results=3,
        )  # fmt: skip
        assert [t.request_id for t in store.open_tasks("label-studio", EXPIRE - timedelta(hours=1))] == [
            "new"
        ]
        assert store.open_tasks("label-studio", EXPIRE) == []

        def verdict(answer_id: str, counted: bool) -> Verdict:
            values = {"ranking": {"a": 1.0, "b": 2.0}} if counted else {}
            reason, rationale = (None, "it runs") if counted else ("partial", None)
            return Verdict(answer_id, f"w{answer_id}", counted, reason, EXPIRE, 3.5, values, rationale)

        store.pin_answers("5V", "new", [verdict("1", True), verdict("2", False)])
        # A second pin of answer 1 (a read that raced another) keeps the first verdict.
        store.pin_answers("5V", "new", [verdict("1", False), verdict("3", True)])
        pinned = store.pinned_answers("5V", "new")
        assert [(v.answer_id, v.counted, v.reason) for v in pinned] == [
            ("1", True, None),
            ("2", False, "partial"),
            ("3", True, None),
        ]
        assert pinned[0].values == {"ranking": {"a": 1.0, "b": 2.0}} and pinned[0].lead_time == 3.5
        assert (pinned[0].rationale, pinned[1].rationale) == ("it runs", None)
    finally:
        store.close()


def test_a_task_past_its_deadline_is_listed_for_withdrawal_once_and_only_on_its_backend(url):
    store = MinerStore(url)
    try:
        for request_id, backend, due in (
            ("late", "label-studio", EXPIRE),
            ("early", "label-studio", EXPIRE - timedelta(hours=2)),
            ("later", "label-studio", EXPIRE + timedelta(hours=1)),
            ("platform", "dojo", EXPIRE - timedelta(hours=3)),
        ):
            store.save_task(
                validator_hotkey="5V", request_id=request_id, dojo_task_id=request_id, request_hash="h",
                completion_ids=["a", "b"], criteria_types=["ranking"], expire_at=due, backend=backend,
            )  # fmt: skip
        after = EXPIRE + timedelta(seconds=1)
        assert [t.request_id for t in store.expired_tasks("label-studio", after)] == ["early", "late"]
        assert [t.request_id for t in store.expired_tasks("label-studio", EXPIRE)] == ["early"]
        assert [t.request_id for t in store.expired_tasks("label-studio", after, limit=1)] == ["early"]
        assert store.find_task("5V", "early").withdrawn_at is None
        store.mark_withdrawn("5V", "early", at=after)
        assert [t.request_id for t in store.expired_tasks("label-studio", after)] == ["late"]
        assert store.find_task("5V", "early").withdrawn_at == after
        assert [t.request_id for t in store.expired_tasks("dojo", after)] == ["platform"]
    finally:
        store.close()
    reopened = MinerStore(url)
    try:
        assert reopened.find_task("5V", "early").withdrawn_at == EXPIRE + timedelta(seconds=1)
    finally:
        reopened.close()


def test_everything_survives_reopening(url):
    store = MinerStore(url)
    _save(store)
    store.record_results_returned("5Validator", "r1", 4)
    store.save_score("5Validator", "r1", 0.5)
    secret = store.worker_secret()
    store.close()

    reopened = MinerStore(url)  # migrating again is a no-op
    try:
        task = reopened.find_task("5Validator", "r1")
        assert task is not None
        assert (task.dojo_task_id, task.request_hash, task.completion_ids, task.expire_at) == (
            "task-1",
            "h1",
            ("c1", "c2"),
            EXPIRE,
        )
        assert task.results_returned_at is not None and task.results_returned_at.tzinfo is not None
        mine = reopened.summary()["validators"]["5Validator"]
        assert (mine["results_returned"], mine["rankings_returned"], mine["latest_score"]) == (1, 4, 0.5)
        assert reopened.worker_secret() == secret and len(secret) == 32
    finally:
        reopened.close()


def test_a_mapping_is_per_validator_and_the_first_one_stays(url):
    store = MinerStore(url)
    try:
        _save(store, "5A", "same-id", dojo_task_id="task-a")
        _save(store, "5B", "same-id", dojo_task_id="task-b")
        # A second save of the same key (another process got there first) keeps the first.
        again = store.save_task(
            validator_hotkey="5A",
            request_id="same-id",
            dojo_task_id="task-other",
            request_hash="h2",
            completion_ids=["x"],
            criteria_types=["ranking"],
            expire_at=EXPIRE,
        )
        assert (again.dojo_task_id, again.request_hash) == ("task-a", "h1")
        assert store.find_task("5B", "same-id").dojo_task_id == "task-b"
        assert store.find_task("5C", "same-id") is None
    finally:
        store.close()


def test_a_repeated_score_overwrites_and_a_score_needs_a_task(url):
    store = MinerStore(url)
    try:
        _save(store)
        first = datetime(2029, 1, 1, tzinfo=timezone.utc)
        store.save_score("5Validator", "r1", 0.2, received_at=first)
        store.save_score("5Validator", "r1", 0.9, received_at=first + timedelta(minutes=1))
        summary = store.summary()
        assert summary["scores_received"] == 1
        latest = summary["validators"]["5Validator"]
        assert (latest["latest_score"], latest["latest_score_at"]) == (
            0.9,
            (first + timedelta(minutes=1)).isoformat(),
        )
        with pytest.raises(IntegrityError):
            store.save_score("5Validator", "no-such-request", 0.5)
    finally:
        store.close()


def test_the_secret_is_made_once(tmp_path):
    url = miner_database_url(tmp_path)
    one, two = MinerStore(url), MinerStore(url)
    other = MinerStore(miner_database_url(tmp_path / "other"))
    try:
        assert one.worker_secret() == two.worker_secret()
        assert other.worker_secret() != one.worker_secret()
    finally:
        for store in (one, two, other):
            store.close()


# --- the handlers' pure mappings ------------------------------------------------------------


def _request(**overrides) -> FeedbackRequest:
    fields = {
        "request_id": "req-1",
        "prompt": "Write a bouncing ball",
        "criteria": [RankingCriteria(), MultiScoreCriteria(min=1, max=10)],
        "completions": [
            Completion(completion_id="a", model="m-a", content=TextContent(text="one")),
            Completion(completion_id="b", model="m-b", content=TextContent(text="two")),
        ],
        "expire_at": EXPIRE,
        **overrides,
    }
    return FeedbackRequest(**fields)


def test_the_request_hash_ignores_the_protocol_version_and_the_offset_spelling():
    base = _request()
    assert request_hash(base) == request_hash(_request(protocol_version=0))
    other_zone = EXPIRE.astimezone(timezone(timedelta(hours=2)))
    assert request_hash(base) == request_hash(_request(expire_at=other_zone))
    assert request_hash(base) != request_hash(_request(prompt="Write a spinning cube"))
    assert request_hash(base) != request_hash(_request(expire_at=EXPIRE + timedelta(seconds=1)))


def test_the_idempotency_key_is_per_validator_and_request_and_fits_the_platform():
    key = idempotency_key("5Validator", "req-1")
    assert re.fullmatch(r"[\x21-\x7e]{1,128}", key)
    assert key == idempotency_key("5Validator", "req-1")
    assert key != idempotency_key("5Other", "req-1") and key != idempotency_key("5Validator", "req-2")


def test_content_becomes_what_the_platform_shows():
    code = CodeContent(files=[CodeFile(filename="a.py", content="print(1)", language="python")])
    assert platform_completion(code) == {
        "files": [{"filename": "a.py", "content": "print(1)", "language": "python"}]
    }
    assert platform_completion(TextContent(text="hello")) == "hello"
    dialogue = DialogueContent(
        turns=[DialogueTurn(role="user", message="hi"), DialogueTurn(role="assistant", message="yo")]
    )
    assert platform_completion(dialogue) == [
        {"role": "user", "message": "hi"},
        {"role": "assistant", "message": "yo"},
    ]
    data = platform_task_data(_request(task_type="dialogue"))
    assert data["task"] == "DIALOGUE"
    assert data["criteria"] == [{"type": "ranking"}, {"type": "multi-score", "min": 1.0, "max": 10.0}]
    assert data["responses"] == [
        {"model": "m-a", "completion": "one", "cid": "a"},
        {"model": "m-b", "completion": "two", "cid": "b"},
    ]


def test_worker_pseudonyms_are_stable_per_secret_and_hide_the_platform_id():
    one, two = b"\x01" * 32, b"\x02" * 32
    name = worker_pseudonym_for_validators(one, "worker-123")
    assert re.fullmatch(r"w[0-9a-f]{24}", name)
    assert name == worker_pseudonym_for_validators(one, "worker-123")
    assert name != worker_pseudonym_for_validators(
        two, "worker-123"
    ) and name != worker_pseudonym_for_validators(one, "worker-124")
    assert "worker-123" not in name


@pytest.mark.parametrize(
    ("ahead", "problem"),
    [
        (timedelta(seconds=-1), "in the past"),
        (timedelta(seconds=9), "less than 10 s ahead"),
        (timedelta(days=5, seconds=1), "more than 5 days ahead"),
    ],
)
def test_deadlines_out_of_bounds_are_refused(ahead, problem):
    now = datetime(2029, 6, 1, tzinfo=timezone.utc)
    with pytest.raises(HandlerRefusal) as refused:
        check_expiry(now + ahead, now)
    assert refused.value.status_code == 422 and problem in refused.value.detail


def test_deadlines_within_bounds_pass():
    now = datetime(2029, 6, 1, tzinfo=timezone.utc)
    check_expiry(now + timedelta(seconds=10), now)
    check_expiry(now + timedelta(days=5), now)
