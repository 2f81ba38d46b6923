"""The queue hands out only tasks a person can still finish, and holds them long enough.

A task is offered (next task, by the routes and by the hot path alike) only with at least
the time a person needs left before its deadline: the median time of the platform's recent
answers, never less than ``min_time_left_seconds``. A hold lasts at least that long, and
the task page's claim of a task too close to its deadline is refused, saying why.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from dojo.platform.services import queue
from tests.dojo.platform._support import (
    create_tasks,
    page_csrf,
    ranking,
    sign_in_worker,
    sql,
    subscribed_worker,
)


def _held_for(claimed: httpx.Response) -> float:
    """Seconds from now until the hold in a next-task reply ends."""
    held_until = datetime.fromisoformat(claimed.json()["heldUntil"].replace("Z", "+00:00"))
    return (held_until - datetime.now(timezone.utc)).total_seconds()


@pytest.fixture
def careful(start_platform, client):
    """A platform that wants two minutes left on a task, with holds of 30 s by their TTL."""
    platform = start_platform(min_time_left_seconds=120, hold_ttl_seconds=30)
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        yield platform, http


def test_next_task_skips_a_task_with_too_little_time_left_on_both_paths(careful, client, miner):
    _platform, http = careful
    (closing,) = create_tasks(client, miner, expire_in=90)  # due first, but with 1:30 left
    (roomy,) = create_tasks(client, miner, expire_in=3600, max_results=2)

    # The hot path: a bearer session.
    bearer = subscribed_worker(http, miner)
    http.cookies.clear()
    claimed = http.post("/api/v1/worker/tasks/next", headers=bearer.auth)
    assert claimed.status_code == 200 and claimed.json()["id"] == roomy
    # The hold lasts the time a person needs, not the 30 s TTL.
    assert _held_for(claimed) > 110

    # The routes: a cookie session with its CSRF header.
    cookie = sign_in_worker(http)
    http.post(
        "/api/v1/worker/subscriptions",
        json={"name": "team", "key": miner.subscription_key},
        headers=cookie.auth,
    ).raise_for_status()
    csrf = {"x-csrf-token": page_csrf(http)}
    claimed = http.post("/api/v1/worker/tasks/next", headers=csrf)
    assert claimed.status_code == 200 and claimed.json()["id"] == roomy
    assert _held_for(claimed) > 110

    # Only the closing task is left: neither path offers it.
    http.cookies.clear()
    third = subscribed_worker(http, miner)
    http.cookies.clear()
    assert http.post("/api/v1/worker/tasks/next", headers=third.auth).status_code == 204
    fourth = sign_in_worker(http)
    http.post(
        "/api/v1/worker/subscriptions",
        json={"name": "team", "key": miner.subscription_key},
        headers=fourth.auth,
    ).raise_for_status()
    assert (
        http.post("/api/v1/worker/tasks/next", headers={"x-csrf-token": page_csrf(http)}).status_code == 204
    )

    # Opened by its URL, the task page's claim is refused with the reason, in a person's time.
    http.cookies.clear()
    refused = http.post(f"/api/v1/worker/tasks/{closing}/hold", headers=third.auth)
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert (
        "left before its deadline" in detail and "UTC" in detail and "." not in detail.split("UTC")[0][-12:]
    )


def test_a_worker_whose_task_runs_short_is_handed_a_new_one(careful, client, miner):
    platform, http = careful
    (first,) = create_tasks(client, miner, expire_in=3600)
    worker = subscribed_worker(http, miner)
    http.cookies.clear()
    assert http.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == first
    # Time passes on the held task: a minute is left, too little to offer it again.
    (second,) = create_tasks(client, miner, expire_in=3600)
    sql(
        platform.database_url,
        "UPDATE tasks SET expire_at = :at WHERE id = :t",
        at=datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(minutes=1),
        t=first,
    )
    assert http.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == second


def test_the_time_needed_follows_the_median_of_recent_answers(careful, client, miner):
    platform, http = careful
    (done,) = create_tasks(client, miner, expire_in=3600, max_results=1)
    workers = [subscribed_worker(http, miner) for _ in range(queue.MIN_SAMPLES)]
    http.cookies.clear()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    sql(
        platform.database_url,
        "INSERT INTO results (task_id, worker_id, result_data, lead_time, created_at, updated_at)"
        " SELECT :t, id, '[]', 400.0, :now, :now FROM workers",
        t=done,
        now=now,
    )
    sql(platform.database_url, "UPDATE tasks SET num_results = 1 WHERE id = :t", t=done)
    (five_minutes,) = create_tasks(client, miner, expire_in=300)
    (an_hour,) = create_tasks(client, miner, expire_in=3600)
    queue.forget_time_needed(platform.database_url)
    # Workers take 6:40 on the median: a task with 5 minutes left is not offered (the floor
    # alone, 2 minutes, would offer it), and the hold lasts the 6:40.
    newcomer = subscribed_worker(http, miner)
    http.cookies.clear()
    claimed = http.post("/api/v1/worker/tasks/next", headers=newcomer.auth)
    assert claimed.json()["id"] == an_hour
    assert _held_for(claimed) > 390
    assert http.post(f"/api/v1/worker/tasks/{five_minutes}/hold", headers=workers[0].auth).status_code == 409


def test_the_rule_is_off_at_zero(start_platform, client, miner):
    platform = start_platform(min_time_left_seconds=0)
    (closing,) = create_tasks(client, miner, expire_in=20)
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        worker = subscribed_worker(http, miner)
        http.cookies.clear()
        assert http.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == closing


def test_a_late_answer_is_told_the_deadline_in_a_persons_time(client, miner, platform):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    client.cookies.clear()
    client.post("/api/v1/worker/tasks/next", headers=worker.auth).raise_for_status()
    sql(
        platform.database_url,
        "UPDATE tasks SET expire_at = '2026-12-01 10:30:05.123456' WHERE id = :t",
        t=task_id,
    )
    late = client.post(
        f"/api/v1/worker/tasks/{task_id}/result",
        json={"resultData": ranking(["c0", "c1", "c2"])},
        headers=worker.auth,
    )
    assert late.status_code == 410
    assert late.json()["detail"] == f"task {task_id} expired: its deadline passed at 2026-12-01 10:30:05 UTC"
