"""Drafts kept with the hold, and the rationale a worker may give with its answer.

A draft (``PUT /api/v1/worker/tasks/{id}/draft``) is the worker's answer so far, kept on the
platform so that another session of the same worker takes it up; a submission or a skip
ends it. A rationale rides with the result (by the routes and the hot path alike), is
refused with control characters, and reaches the miner with the task's results.
"""

from __future__ import annotations

import pytest

from tests.dojo.platform._support import (
    create_tasks,
    page_csrf,
    ranking,
    sign_in_worker,
    sql,
    subscribed_worker,
)

DRAFT = {
    "order": ["c2", "c0", "c1"],
    "placed": ["c2"],
    "rationale": "c2 runs; the others do not",
    "leadTime": 12.5,
}


def _draft_url(task_id: str) -> str:
    return f"/api/v1/worker/tasks/{task_id}/draft"


def test_a_draft_is_kept_for_the_workers_other_sessions_and_ended_by_the_answer(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    client.cookies.clear()
    # Never held: nothing to keep a draft with.
    refused = client.put(_draft_url(task_id), json=DRAFT, headers=worker.auth)
    assert refused.status_code == 409 and "hold" in refused.json()["detail"]
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == task_id
    assert client.get(_draft_url(task_id), headers=worker.auth).status_code == 204

    saved = client.put(_draft_url(task_id), json=DRAFT, headers=worker.auth)
    assert saved.status_code == 200, saved.text
    assert saved.json()["savedAt"].endswith("Z")

    # Another session of the same worker (a log-in from another browser) reads it back.
    again = sign_in_worker(client, worker.account)
    client.cookies.clear()
    assert again.token != worker.token
    got = client.get(_draft_url(task_id), headers=again.auth).json()
    assert {k: got[k] for k in DRAFT} == DRAFT and got["taskId"] == task_id

    # Another worker neither reads it nor keeps one on a task it does not hold.
    other = subscribed_worker(client, miner)
    client.cookies.clear()
    assert client.get(_draft_url(task_id), headers=other.auth).status_code == 204

    # The answer ends the draft.
    done = client.post(
        f"/api/v1/worker/tasks/{task_id}/result",
        json={"resultData": ranking(["c2", "c0", "c1"])},
        headers=again.auth,
    )
    assert done.status_code == 200
    assert client.get(_draft_url(task_id), headers=worker.auth).status_code == 204


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"order": ["c0", "c1"]}, "every completion id"),
        ({"order": ["c0", "c1", "zz"]}, "every completion id"),
        ({"placed": ["c0", "c0"]}, "distinct"),
        ({"placed": ["nope"]}, "distinct"),
        ({"scores": {"zz": 3}}, "scores"),
        ({"rationale": "line one\nline two"}, "control characters"),
        ({"rationale": "x" * 1001}, "1000"),
    ],
)
def test_a_draft_that_does_not_fit_the_task_is_422_and_keeps_the_last_one(client, miner, change, words):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    client.cookies.clear()
    client.post("/api/v1/worker/tasks/next", headers=worker.auth).raise_for_status()
    assert client.put(_draft_url(task_id), json=DRAFT, headers=worker.auth).status_code == 200
    bad = client.put(_draft_url(task_id), json={**DRAFT, **change}, headers=worker.auth)
    assert bad.status_code == 422 and words in str(bad.json()["detail"])
    assert client.get(_draft_url(task_id), headers=worker.auth).json()["order"] == DRAFT["order"]


def test_skipped_and_expired_tasks_keep_no_new_draft(client, miner, platform):
    first, second = create_tasks(client, miner, tasks=2)
    worker = subscribed_worker(client, miner)
    client.cookies.clear()
    for task_id in (first, second):
        client.post(f"/api/v1/worker/tasks/{task_id}/hold", headers=worker.auth).raise_for_status()
        assert client.put(_draft_url(task_id), json=DRAFT, headers=worker.auth).status_code == 200
    client.post(f"/api/v1/worker/tasks/{first}/skip", headers=worker.auth).raise_for_status()
    assert client.get(_draft_url(first), headers=worker.auth).status_code == 204
    assert client.put(_draft_url(first), json=DRAFT, headers=worker.auth).status_code == 409
    sql(platform.database_url, "UPDATE tasks SET expire_at = '2000-01-01 00:00:00' WHERE id = :t", t=second)
    gone = client.put(_draft_url(second), json=DRAFT, headers=worker.auth)
    assert gone.status_code == 410 and "2000-01-01 00:00:00 UTC" in gone.json()["detail"]
    # What was kept before the deadline stays readable.
    assert client.get(_draft_url(second), headers=worker.auth).json()["order"] == DRAFT["order"]


def test_a_rationale_rides_with_the_result_to_the_miner_on_both_paths(client, miner):
    (task_id,) = create_tasks(client, miner)
    url = f"/api/v1/worker/tasks/{task_id}/result"
    # The hot path (bearer) ...
    bearer = subscribed_worker(client, miner)
    client.cookies.clear()
    client.post("/api/v1/worker/tasks/next", headers=bearer.auth).raise_for_status()
    sent = {"resultData": ranking(["c1", "c0", "c2"]), "rationale": "  c1 bounces; c0 is blank  "}
    assert client.post(url, json=sent, headers=bearer.auth).status_code == 200
    # ... and the routes (a cookie session).
    cookie = sign_in_worker(client)
    client.post(
        "/api/v1/worker/subscriptions",
        json={"name": "team", "key": miner.subscription_key},
        headers=cookie.auth,
    ).raise_for_status()
    csrf = {"x-csrf-token": page_csrf(client)}
    client.post("/api/v1/worker/tasks/next", headers=csrf).raise_for_status()
    for bad in ("two\nlines", "an \x1b[31mescape", "x" * 1001):
        refused = client.post(url, json={**sent, "rationale": bad}, headers=csrf)
        assert refused.status_code == 422, bad
    assert (
        client.post(url, json={**sent, "rationale": "Only c2 answers the prompt."}, headers=csrf).status_code
        == 200
    )
    # A third answers without one.
    silent = subscribed_worker(client, miner)
    client.cookies.clear()
    client.post("/api/v1/worker/tasks/next", headers=silent.auth).raise_for_status()
    assert (
        client.post(
            url, json={"resultData": sent["resultData"], "rationale": " "}, headers=silent.auth
        ).status_code
        == 200
    )

    results = client.get(f"/api/v1/tasks/task-result/{task_id}", headers=miner.key).json()["body"][
        "taskResults"
    ]
    assert [r["rationale"] for r in results] == [
        "c1 bounces; c0 is blank",
        "Only c2 answers the prompt.",
        None,
    ]
    # A resubmission replaces the rationale with the answer.
    again = {"resultData": ranking(["c0", "c1", "c2"]), "rationale": "on second look, c0"}
    assert client.post(url, json=again, headers=bearer.auth).json()["replaced"] is True
    results = client.get(f"/api/v1/tasks/task-result/{task_id}", headers=miner.key).json()["body"][
        "taskResults"
    ]
    assert results[0]["rationale"] == "on second look, c0"
