"""The worker's day over the API: holds that last while a worker works, skipped tasks that
stay skipped, a task list that is true, lead times, history, flags, and recovery codes that
bring an invited worker back as the same person."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

import httpx
import pytest
from sqlalchemy import event, make_url, select

from dojo.platform.services import auth, queue, subscriptions, team
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import Worker
from tests.dojo.platform._support import (
    WorkerClient,
    create_tasks,
    ranking,
    sql,
    subscribed_worker,
)

RESULT = ranking(["c0", "c1", "c2"])


def _hold(client: httpx.Client, worker: WorkerClient, task_id: str) -> httpx.Response:
    return client.post(f"/api/v1/worker/tasks/{task_id}/hold", headers=worker.auth)


def _submit(client: httpx.Client, worker: WorkerClient, task_id: str, **extra: object) -> httpx.Response:
    return client.post(
        f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT, **extra}, headers=worker.auth
    )


def _listed(client: httpx.Client, worker: WorkerClient, include_closed: bool = False) -> dict[str, str]:
    query = "?include_closed=true" if include_closed else ""
    tasks = client.get(f"/api/v1/worker/tasks{query}", headers=worker.auth).json()["tasks"]
    return {t["id"]: t["status"] for t in tasks}


def test_a_task_opened_by_url_is_held_and_the_hold_extends(client, miner, platform):
    (task_id,) = create_tasks(client, miner, max_results=1)
    worker, other = subscribed_worker(client, miner), subscribed_worker(client, miner)
    page = client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).json()
    assert page["heldUntil"] is None and page["myStatus"] is None and page["closedReason"] is None

    first = _hold(client, worker, task_id)
    assert first.status_code == 200, first.text
    assert first.json()["taskId"] == task_id and first.json()["heldUntil"] is not None
    page = client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).json()
    assert page["myStatus"] == "held" and page["heldUntil"] == first.json()["heldUntil"]

    # The page is still active, so it asks again and the hold runs from now.
    again = _hold(client, worker, task_id)
    assert again.status_code == 200 and again.json()["heldUntil"] >= first.json()["heldUntil"]
    # A hold that lapsed while the place stayed free is taken again.
    sql(platform.database_url, "UPDATE assignments SET held_until = '2000-01-01 00:00:00'")
    assert client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).json()["myStatus"] is None
    assert _hold(client, worker, task_id).json()["heldUntil"] > "2001"

    # Its only place is held: the other worker can neither hold it nor sees it as open.
    refused = _hold(client, other, task_id)
    assert refused.status_code == 409 and "other workers hold" in refused.json()["detail"]
    assert task_id not in _listed(client, other)
    assert _listed(client, other, include_closed=True)[task_id] == "HELD_BY_OTHERS"
    seen = client.get(f"/api/v1/worker/tasks/{task_id}", headers=other.auth).json()
    assert "other workers hold" in seen["closedReason"]
    assert _listed(client, worker) == {task_id: "IN_PROGRESS"}

    assert _submit(client, worker, task_id).status_code == 200
    # A stored result keeps its place: no hold needed, and resubmitting still works.
    kept = _hold(client, worker, task_id)
    assert kept.status_code == 200 and kept.json()["heldUntil"] is None
    full = _hold(client, other, task_id)
    assert full.status_code == 409 and "already has its 1 results" in full.json()["detail"]
    assert client.get(f"/api/v1/worker/tasks/{task_id}", headers=other.auth).json()["closedReason"] == (
        "it has all the results it needs"
    )


def test_an_expired_task_cannot_be_held(client, miner, platform):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    sql(platform.database_url, "UPDATE tasks SET expire_at = '2000-01-01 00:00:00' WHERE id = :t", t=task_id)
    gone = _hold(client, worker, task_id)
    assert gone.status_code == 410 and "expired" in gone.json()["detail"]
    page = client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).json()
    assert page["closedReason"] == "its deadline has passed"


def test_a_skipped_task_cannot_be_answered_or_held_by_url(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == task_id
    client.post(f"/api/v1/worker/tasks/{task_id}/skip", headers=worker.auth).raise_for_status()
    for refused in (_submit(client, worker, task_id), _hold(client, worker, task_id)):
        assert refused.status_code == 409 and "you skipped this task" in refused.json()["detail"]
    page = client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).json()
    assert page["myStatus"] == "skipped" and page["closedReason"] == "you skipped this task"
    assert client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()["numResults"] == 0


def _lead_times(database_url: str) -> dict[str, float | None]:
    return {task: lead for task, lead in sql(database_url, "SELECT task_id, lead_time FROM results")}


def test_lead_time_is_recorded_capped_and_summed(client, miner, platform):
    first_id, second_id, third_id = create_tasks(client, miner, tasks=3)
    worker = subscribed_worker(client, miner)
    for task_id in (first_id, second_id, third_id):
        _hold(client, worker, task_id).raise_for_status()
    # Claimed ten minutes ago (as if), so up to 600 s is believable.
    sql(platform.database_url, "UPDATE assignments SET created_at = :t", t=_minutes_ago(10))

    assert _submit(client, worker, first_id, leadTime=42.5).status_code == 200
    assert _submit(client, worker, second_id, leadTime=5000).status_code == 200  # more than elapsed
    assert _submit(client, worker, third_id).status_code == 200  # an API client that measures nothing
    times = _lead_times(platform.database_url)
    assert times[first_id] == pytest.approx(42.5)
    assert 599 <= times[second_id] <= 602  # capped at the time since the claim
    assert 599 <= times[third_id] <= 602  # the time since the claim
    # Revising an answer adds the time spent revising.
    assert _submit(client, worker, first_id, leadTime=7.5).json()["replaced"] is True
    assert _lead_times(platform.database_url)[first_id] == pytest.approx(50.0)

    for bad in (-1, 86401, "soon"):
        refused = _submit(client, worker, first_id, leadTime=bad)
        assert refused.status_code == 422, refused.text
        assert "leadTime" in refused.text
    me = client.get("/api/v1/worker/me", headers=worker.auth).json()
    assert me["resultsTotal"] == 3
    assert me["leadTimeTotal"] == pytest.approx(sum(_lead_times(platform.database_url).values()), abs=0.01)
    assert me["leadTimeMedian"] == pytest.approx(
        sorted(_lead_times(platform.database_url).values())[1], abs=0.01
    )


def test_the_typical_time_covers_the_latest_answers_and_the_time_in_all_every_one(client, miner, platform):
    """A worker's own figures are counted as the team's are: totals over all time, the median
    over its latest answers, so that a page it opens all day does not fetch a year of them."""
    ids = create_tasks(client, miner, tasks=5)
    worker = subscribed_worker(client, miner)
    for task_id in ids:
        _hold(client, worker, task_id).raise_for_status()
    sql(platform.database_url, "UPDATE assignments SET created_at = :t", t=_minutes_ago(10))
    for task_id, lead in zip(ids, (300, 300, 300, 10, 20), strict=True):  # slow at first, then quick
        assert _submit(client, worker, task_id, leadTime=lead).status_code == 200
    database = Database(platform.database_url, pool_size=1)
    try:
        with database.session() as db:
            me = db.scalars(select(Worker).where(Worker.address == worker.address)).one()
            lately = queue.worker_progress(db, me, window=2)
            every = queue.worker_progress(db, me, window=5)
            default = queue.worker_progress(db, me)
    finally:
        database.dispose()
    assert (lately.results_total, lately.lead_time_total, lately.lead_time_median) == (5, 930, 15)
    assert (every.lead_time_total, every.lead_time_median) == (930, 300)
    assert default == every  # the window a page uses holds a thousand answers


def test_a_workers_latest_answers_are_read_from_an_index_not_sorted_from_all_of_them(client, miner, platform):
    """The pages a worker opens all day (a task's page with its progress, the history, its
    summary) read its latest answers: walking an index from the newest, not sorting every
    answer it ever gave, which after a year of work is tens of thousands on every page."""
    if not platform.settings.is_sqlite:
        pytest.skip("the plan checked is SQLite's; PostgreSQL's follows the tables' statistics")
    ids = create_tasks(client, miner, tasks=3)
    worker = subscribed_worker(client, miner)
    for task_id in ids:
        _hold(client, worker, task_id).raise_for_status()
        assert _submit(client, worker, task_id, leadTime=30).status_code == 200
    database = Database(platform.database_url, pool_size=1)
    statements: list[tuple[str, Any]] = []

    def trace(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        statements.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", trace)
    try:
        with database.session() as db:
            me = db.scalars(select(Worker).where(Worker.address == worker.address)).one()
            queue.worker_progress(db, me)
            team.worker_summary(db, me)
            assert subscriptions.history(db, me)[1] == 3
    finally:
        database.dispose()
    latest = [
        (q, p) for q, p in statements if "FROM results" in q and "ORDER BY results.updated_at DESC" in q
    ]
    assert len(latest) == 3, statements  # one read of the latest answers by each
    with contextlib.closing(sqlite3.connect(make_url(platform.database_url).database)) as raw:
        sorted_all = [
            q
            for q, p in latest
            if any("TEMP B-TREE FOR ORDER BY" in row[-1] for row in raw.execute(f"EXPLAIN QUERY PLAN {q}", p))
        ]
    assert sorted_all == []


def _minutes_ago(minutes: float) -> str:
    from datetime import datetime, timedelta, timezone

    then = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=minutes)
    return then.strftime("%Y-%m-%d %H:%M:%S")


def test_history_lists_own_submissions_newest_first(client, miner, platform):
    task_ids = create_tasks(client, miner, tasks=3)
    worker, other = subscribed_worker(client, miner), subscribed_worker(client, miner)
    for task_id in task_ids:
        _hold(client, worker, task_id).raise_for_status()
    sql(platform.database_url, "UPDATE assignments SET created_at = :t", t=_minutes_ago(10))
    for task_id in task_ids:
        assert _submit(client, worker, task_id, leadTime=3).status_code == 200
    _hold(client, other, task_ids[0]).raise_for_status()
    _submit(client, other, task_ids[0]).raise_for_status()
    client.post(
        f"/api/v1/worker/tasks/{task_ids[0]}/result",
        json={"resultData": ranking(["c2", "c1", "c0"]), "leadTime": 2},
        headers=worker.auth,
    ).raise_for_status()

    history = client.get("/api/v1/worker/history", headers=worker.auth).json()
    assert history["total"] == 3
    assert [r["taskId"] for r in history["results"]] == [task_ids[0], task_ids[2], task_ids[1]]
    newest = history["results"][0]
    assert newest["ranking"] == {"c2": 1, "c1": 2, "c0": 3}  # the revised answer
    assert newest["leadTime"] == pytest.approx(5.0)
    assert newest["title"] == "Rank the completions" and newest["taskStatus"] == "IN_PROGRESS"
    page = client.get("/api/v1/worker/history?limit=1&offset=1", headers=worker.auth).json()
    assert [r["taskId"] for r in page["results"]] == [task_ids[2]] and page["total"] == 3
    assert client.get("/api/v1/worker/history?limit=0", headers=worker.auth).status_code == 422
    assert client.get("/api/v1/worker/history", headers=other.auth).json()["total"] == 1


def test_a_worker_flags_a_broken_completion(client, miner, platform):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    url = f"/api/v1/worker/tasks/{task_id}/flags"
    flagged = client.post(url, json={"cid": "c1", "reason": "the preview is blank"}, headers=worker.auth)
    assert flagged.status_code == 201, flagged.text
    assert flagged.json()["cid"] == "c1" and flagged.json()["reason"] == "the preview is blank"
    again = client.post(url, json={"cid": "c1", "reason": "blank, and cut off"}, headers=worker.auth)
    assert again.status_code == 201 and again.json()["reason"] == "blank, and cut off"
    assert sql(platform.database_url, "SELECT cid, reason FROM flags") == [("c1", "blank, and cut off")]

    unknown = client.post(url, json={"cid": "c9", "reason": "x"}, headers=worker.auth)
    assert unknown.status_code == 422 and "no completion 'c9'" in unknown.json()["detail"]
    blank = client.post(url, json={"cid": "c0", "reason": "   "}, headers=worker.auth)
    assert blank.status_code == 422
    stranger = subscribed_worker(client, miner)
    (subscription,) = client.get("/api/v1/worker/subscriptions", headers=stranger.auth).json()[
        "subscriptions"
    ]
    client.delete(
        f"/api/v1/worker/subscriptions/{subscription['id']}", headers=stranger.auth
    ).raise_for_status()
    assert client.post(url, json={"cid": "c0", "reason": "x"}, headers=stranger.auth).status_code == 404
    # Flagging does not answer the task.
    assert client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()["numResults"] == 0


def _invited(platform, miner) -> tuple[WorkerClient, str]:
    """A new worker made by spending an invite link, with its session and recovery code."""
    settings = PlatformSettings(database_url=platform.database_url, public_url="http://platform.test")
    database = Database(platform.database_url, pool_size=1)
    try:
        with database.session() as db:
            url = auth.create_invite(db, settings, miner.hotkey)
        with database.session() as db:
            worker, opened, code = auth.accept_invite(db, settings, url.rsplit("/", 1)[1])
            assert opened is not None and code is not None
            return WorkerClient("", opened.token, worker.public_id, None), code
    finally:
        database.dispose()


def test_an_invited_worker_comes_back_as_the_same_worker(client, miner, platform):
    (task_id,) = create_tasks(client, miner, max_results=2)
    worker, code = _invited(platform, miner)
    assert code.startswith("dojo-rc-")
    assert client.get("/api/v1/worker/me", headers=worker.auth).json()["hasRecoveryCode"] is True
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == task_id
    assert _submit(client, worker, task_id).status_code == 200
    client.post("/api/v1/worker/logout", headers=worker.auth).raise_for_status()
    assert client.get("/api/v1/worker/me", headers=worker.auth).status_code == 401

    fresh = httpx.Client(base_url=str(client.base_url))
    try:
        # Typed by hand: lower case, spaces for dashes.
        back = fresh.post("/api/v1/worker/recover", json={"code": code.lower().replace("-", " ")})
        assert back.status_code == 200, back.text
        assert back.json()["workerId"] == worker.worker_id
        assert "dojo_worker_session=" in back.headers["set-cookie"]
        assert fresh.get("/api/v1/worker/me").json()["resultsTotal"] == 1  # the cookie works
        # The same person: the task it ranked is not offered again, and counts once.
        bearer = {"authorization": f"Bearer {back.json()['token']}"}
        assert fresh.post("/api/v1/worker/tasks/next", headers=bearer).status_code == 204
        assert client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()["numResults"] == 1

        # A new code replaces the old one.
        renewed = fresh.post("/api/v1/worker/recovery-code", headers=bearer)
        assert renewed.status_code == 201 and renewed.json()["code"] != code
        stale = fresh.post("/api/v1/worker/recover", json={"code": code})
        assert stale.status_code == 401 and "unknown recovery code" in stale.json()["detail"]
        again = fresh.post("/api/v1/worker/recover", json={"code": renewed.json()["code"]})
        assert again.json()["workerId"] == worker.worker_id
    finally:
        fresh.close()
    for wrong in ("dojo-rc-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA", "----"):
        assert client.post("/api/v1/worker/recover", json={"code": wrong}).status_code == 401
