"""The queue's hot path (dojo.platform.http.hotpath) answers as the FastAPI routes do.

Bearer-authenticated next-task and submit are answered in plain ASGI; everything else (no
or unknown credentials, cookie sessions, unreadable or invalid bodies) goes to the routes.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import event, text

from dojo.platform.http.app import create_app
from dojo.platform.http.hotpath import QueueHotPath
from dojo.platform.storage.groupcommit import WriterLock
from tests.dojo.platform._support import (
    LiveServer,
    create_tasks,
    page_csrf,
    ranking,
    sign_in_worker,
    subscribed_worker,
)
from tests.dojo.platform.conftest import _settings

RESULT = {"resultData": ranking(["c1", "c0", "c2"])}


def test_bearer_next_and_submit_carry_the_security_headers(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    claimed = client.post("/api/v1/worker/tasks/next", headers=worker.auth)
    assert claimed.status_code == 200 and claimed.json()["id"] == task_id
    assert claimed.headers["content-type"] == "application/json"
    assert claimed.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in claimed.headers["content-security-policy"]
    done = client.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT, headers=worker.auth)
    assert done.status_code == 200
    body = done.json()
    assert (body["taskId"], body["status"], body["replaced"]) == (task_id, "done", False)
    assert body["updatedAt"].endswith("Z")
    assert done.headers["x-frame-options"] == "DENY"
    again = client.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT, headers=worker.auth)
    assert again.json()["replaced"] is True
    empty = client.post("/api/v1/worker/tasks/next", headers=worker.auth)
    assert empty.status_code == 204 and empty.content == b""


def test_queue_errors_keep_their_status_and_detail(client, miner):
    worker = subscribed_worker(client, miner)
    missing = client.post("/api/v1/worker/tasks/no-such-task/result", json=RESULT, headers=worker.auth)
    assert missing.status_code == 404 and "no such task" in missing.json()["detail"]
    (task_id,) = create_tasks(client, miner)
    wrong = {"resultData": ranking(["c1", "c0"])}
    refused = client.post(f"/api/v1/worker/tasks/{task_id}/result", json=wrong, headers=worker.auth)
    assert refused.status_code == 422 and "ranking" in refused.json()["detail"]


def test_bodies_the_model_refuses_get_the_routes_wording(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    url = f"/api/v1/worker/tasks/{task_id}/result"
    not_json = client.post(url, content=b"{nope", headers={**worker.auth, "content-type": "application/json"})
    # Not JSON at all is a 400 (docs/platform-api.md), JSON the model refuses a 422.
    assert not_json.status_code == 400 and isinstance(not_json.json()["detail"], str)
    no_data = client.post(url, json={}, headers=worker.auth)
    assert no_data.status_code == 422 and "resultData" in no_data.json()["detail"]
    bad_type = client.post(url, json={"resultData": [{"type": "vote", "value": {}}]}, headers=worker.auth)
    assert bad_type.status_code == 422
    # Nothing was stored by any of them: the one good submission is the first.
    assert client.post(url, json=RESULT, headers=worker.auth).json()["replaced"] is False


def test_unknown_bearer_tokens_and_cookie_sessions_go_through_the_routes(client, miner):
    (task_id,) = create_tasks(client, miner)
    forged = {"authorization": "Bearer dws_forged"}
    assert client.post("/api/v1/worker/tasks/next", headers=forged).status_code == 401
    assert (
        client.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT, headers=forged).status_code == 401
    )
    worker = sign_in_worker(client)  # the session cookie is now in the client
    client.post(
        "/api/v1/worker/subscriptions",
        json={"name": "team", "key": miner.subscription_key},
        headers=worker.auth,
    ).raise_for_status()
    # A cookie session must send the CSRF token on POSTs, next-task and submit included.
    assert client.post("/api/v1/worker/tasks/next").status_code == 403
    assert client.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT).status_code == 403
    csrf = {"x-csrf-token": page_csrf(client)}
    assert client.post("/api/v1/worker/tasks/next", headers=csrf).json()["id"] == task_id
    assert client.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT, headers=csrf).status_code == 200


def test_an_unknown_bearer_token_is_looked_up_once(platform, chain):
    """The hot path hands a request whose bearer token it found unknown to the routes, which
    answer 401 without looking the token up again: each forged or expired token costs the
    database one look-up, not two."""
    if not platform.database_url.startswith("sqlite"):
        pytest.skip(
            "on PostgreSQL the hot path looks sessions up on connections of its own, which the "
            "engine observed here does not see; the hand-over to the routes is the same code"
        )
    app = create_app(_settings(platform.database_url), chain=chain)
    statements: list[str] = []

    def trace(connection, _record, _proxy) -> None:
        connection.set_trace_callback(statements.append)

    event.listen(app.state.db.engine, "checkout", trace)
    server = LiveServer(app).start()
    forged = {"authorization": "Bearer dws_forged"}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for path in ("/api/v1/worker/tasks/next", "/api/v1/worker/tasks/some-task/result"):
                statements.clear()
                assert http.post(path, json=RESULT, headers=forged).status_code == 401
                lookups = [sql for sql in statements if "JOIN worker_sessions" in sql]  # the look-up
                assert len(lookups) == 1, (path, lookups)
    finally:
        server.stop()


def test_a_logged_out_bearer_token_stops_working_at_once(client, miner):
    create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).status_code == 200
    assert client.post("/api/v1/worker/logout", headers=worker.auth).status_code == 204
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).status_code == 401


def _waiting_behind(database, holder_pid: int | None) -> bool:
    """Whether a claim now waits for the other writer to let go. SQLite: a thread of the
    platform (which runs in this process) blocked taking the writer lock in the hot path's
    database thread (``QueueHotPath._in_transaction``). PostgreSQL: a backend that the
    other writer's backend, ``holder_pid``, blocks."""
    if database.is_sqlite:
        for frame in sys._current_frames().values():
            if frame.f_code is not WriterLock.__enter__.__code__:
                continue
            caller = frame.f_back
            while caller is not None and caller.f_code is not QueueHotPath._in_transaction.__code__:
                caller = caller.f_back
            if caller is not None:
                return True
        return False
    with database.engine.connect() as connection:
        blocked = connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"),
            {"holder": holder_pid},
        ).scalar_one()
    return blocked > 0


def test_a_claim_waits_its_turn_behind_another_writer(platform, client, miner):
    """On SQLite the hot path writes on the event loop only when the lock is free; behind
    another writer it hands the work to the database thread, which waits. On PostgreSQL a
    claim skips a locked task, then waits for the first open one. Either way the claim
    neither fails nor writes past the other transaction: once it is seen waiting behind the
    other writer it is not done, and it is answered when that writer lets go."""
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    database = platform.app.state.db
    holding, release = threading.Event(), threading.Event()
    holder: list[int] = []

    def other_writer() -> None:
        with database.session() as db:
            # SQLite: the session holds the database's one write lock. PostgreSQL: lock the task's row.
            db.execute(
                text("SELECT id FROM tasks WHERE id = :t" + ("" if database.is_sqlite else " FOR UPDATE")),
                {"t": task_id},
            )
            if not database.is_sqlite:
                holder.append(db.execute(text("SELECT pg_backend_pid()")).scalar_one())
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        assert holding.wait(5)
        with ThreadPoolExecutor(1) as pool:
            claim = pool.submit(client.post, "/api/v1/worker/tasks/next", headers=worker.auth)
            waiting = _waiting_behind(database, holder[0] if holder else None)
            deadline = time.monotonic() + 10
            while not waiting and not claim.done() and time.monotonic() < deadline:
                time.sleep(0.01)
                waiting = _waiting_behind(database, holder[0] if holder else None)
            assert waiting, "the claim never waited behind the other writer"
            assert not claim.done()
            release.set()
            claimed = claim.result(timeout=10)
    finally:
        release.set()
        writer.join()
    assert claimed.status_code == 200 and claimed.json()["id"] == task_id
