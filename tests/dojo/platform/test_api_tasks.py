"""The miner's task endpoints: create-tasks (JSON and the original form), status, results."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.dojo.platform._support import (
    create_tasks,
    iso_in,
    miner_with_keys,
    ranking,
    sql,
    subscribed_worker,
    task_body,
)


def test_create_tasks_json_returns_ids_and_status(client, miner):
    ids = create_tasks(client, miner, tasks=2, max_results=4)
    assert len(ids) == 2 and len(set(ids)) == 2
    status = client.get(f"/api/v1/tasks/{ids[0]}", headers=miner.key)
    assert status.status_code == 200
    body = status.json()
    assert body["id"] == ids[0] and body["status"] == "IN_PROGRESS"
    assert body["numResults"] == 0 and body["maxResults"] == 4 and body["expireAt"].endswith("Z")
    assert client.get(f"/api/v1/tasks/task-result/{ids[0]}", headers=miner.key).json() == {
        "success": True,
        "body": {"taskResults": []},
        "error": None,
    }


def test_create_tasks_multipart_form_as_the_original_miner_sent_it(client, miner):
    body = task_body(criteria=[{"type": "multi-score", "options": ["a", "b", "c"], "min": 1.0, "max": 100.0}])
    form = {
        "title": (None, body["title"]),
        "body": (None, body["body"]),
        "expireAt": (None, body["expireAt"]),
        "taskData": (None, json.dumps(body["taskData"])),
        "maxResults": (None, "2"),
    }
    response = client.post("/api/v1/tasks/create-tasks", files=form, headers=miner.key)
    assert response.status_code == 200, response.text
    (task_id,) = response.json()["body"]
    assert client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()["maxResults"] == 2
    # A single taskData object (not a list) is accepted too.
    form["taskData"] = (None, json.dumps(body["taskData"][0]))
    assert client.post("/api/v1/tasks/create-tasks", files=form, headers=miner.key).status_code == 200


def _mutate(change):
    body = task_body()
    change(body)
    return body


INVALID_BODIES = [
    (lambda b: b.update(expireAt=iso_in(-60)), "in the past"),
    (lambda b: b.update(expireAt=iso_in(5 * 86400 + 600)), "5 days"),
    (lambda b: b["taskData"][0].update(responses=b["taskData"][0]["responses"][:1]), "at least 2"),
    (lambda b: b["taskData"][0].update(responses=b["taskData"][0]["responses"] * 4), "at most 10"),
    (lambda b: b["taskData"][0]["responses"][1].update(cid="c0"), "distinct"),
    (lambda b: b["taskData"][0].update(criteria=[{"type": "multi-score"}]), "min and max"),
    (lambda b: b["taskData"][0].update(criteria=[{"type": "multi-score", "min": 5, "max": 1}]), "min < max"),
    (lambda b: b["taskData"][0].update(criteria=[{"type": "multi-select"}]), "type"),
    (lambda b: b["taskData"][0].update(criteria=[]), "criteria"),
    (lambda b: b.update(title="x" * 201), "title"),
    (lambda b: b.update(maxResults=0), "maxResults"),
    (lambda b: b.update(maxResults=101), "maxResults"),
    (lambda b: b.update(taskData=[]), "taskData"),
    (lambda b: b["taskData"][0]["responses"][0].update(completion="x" * (512 * 1024 + 1)), "at most"),
    (lambda b: b.pop("expireAt"), "expireAt"),
]


def test_create_tasks_validation(client, miner):
    for change, needle in INVALID_BODIES:
        response = client.post("/api/v1/tasks/create-tasks", json=_mutate(change), headers=miner.key)
        assert response.status_code == 422, (needle, response.text)
        assert needle in response.json()["detail"], needle
    assert client.get("/api/v1/miner/dashboard", headers=miner.session).json()["totalTasks"] == 0


def test_create_tasks_rejects_bad_json_and_oversized_bodies(client, miner, platform):
    bad = client.post(
        "/api/v1/tasks/create-tasks",
        content=b"{not json",
        headers={**miner.key, "content-type": "application/json"},
    )
    assert bad.status_code == 400
    huge = b"x" * (platform.settings.max_task_body_bytes + 1)
    response = client.post(
        "/api/v1/tasks/create-tasks", content=huge, headers={**miner.key, "content-type": "application/json"}
    )
    assert response.status_code == 413


def test_task_endpoints_need_a_valid_api_key(client, miner):
    (task_id,) = create_tasks(client, miner)
    for headers in ({}, {"x-api-key": "sk-unknown"}, miner.session):
        assert client.post("/api/v1/tasks/create-tasks", json=task_body(), headers=headers).status_code == 401
        assert client.get(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 401
        assert client.get(f"/api/v1/tasks/task-result/{task_id}", headers=headers).status_code == 401
    # A subscription key is not an API key.
    assert (
        client.get(f"/api/v1/tasks/{task_id}", headers={"x-api-key": miner.subscription_key}).status_code
        == 401
    )


def test_another_miners_task_is_404(client, miner, register_hotkey):
    other = miner_with_keys(client, register_hotkey())
    (task_id,) = create_tasks(client, miner)
    assert client.get(f"/api/v1/tasks/{task_id}", headers=other.key).status_code == 404
    response = client.get(f"/api/v1/tasks/task-result/{task_id}", headers=other.key)
    assert response.status_code == 404
    assert client.get("/api/v1/tasks/task-result/no-such-task", headers=miner.key).status_code == 404


def test_results_carry_pseudonymous_worker_ids_that_differ_across_miners(client, miner, register_hotkey):
    other = miner_with_keys(client, register_hotkey())
    worker = subscribed_worker(client, miner)
    client.post(
        "/api/v1/worker/subscriptions", json={"name": "b", "key": other.subscription_key}, headers=worker.auth
    ).raise_for_status()
    (mine,) = create_tasks(client, miner)
    (theirs,) = create_tasks(client, other)
    for task_id in (mine, theirs):
        response = client.post(
            f"/api/v1/worker/tasks/{task_id}/result",
            json={"resultData": ranking(["c2", "c0", "c1"])},
            headers=worker.auth,
        )
        assert response.status_code == 200, response.text
    result_a = client.get(f"/api/v1/tasks/task-result/{mine}", headers=miner.key).json()["body"][
        "taskResults"
    ]
    result_b = client.get(f"/api/v1/tasks/task-result/{theirs}", headers=other.key).json()["body"][
        "taskResults"
    ]
    assert result_a[0]["resultData"] == [{"type": "ranking", "value": {"c0": 2, "c1": 3, "c2": 1}}]
    assert result_a[0]["status"] == "COMPLETED"
    ids = {result_a[0]["workerId"], result_b[0]["workerId"]}
    assert (
        len(ids) == 2
        and worker.worker_id not in ids
        and worker.address not in json.dumps([result_a, result_b])
    )


def test_status_turns_completed_and_expired(client, miner, platform):
    (done, late) = create_tasks(client, miner, tasks=2, max_results=1)
    worker = subscribed_worker(client, miner)
    client.post(
        f"/api/v1/worker/tasks/{done}/result",
        json={"resultData": ranking(["c0", "c1", "c2"])},
        headers=worker.auth,
    ).raise_for_status()
    assert client.get(f"/api/v1/tasks/{done}", headers=miner.key).json()["status"] == "COMPLETED"
    sql(platform.database_url, "UPDATE tasks SET expire_at = '2000-01-01 00:00:00' WHERE id = :id", id=late)
    assert client.get(f"/api/v1/tasks/{late}", headers=miner.key).json()["status"] == "EXPIRED"


def test_the_platform_stores_no_ground_truth(client, miner, platform):
    body = task_body()
    body["taskData"][0]["groundTruth"] = {"c0": 1, "c1": 2, "c2": 3}
    body["taskData"][0]["responses"][0]["rank"] = 1
    response = client.post("/api/v1/tasks/create-tasks", json=body, headers=miner.key)
    assert response.status_code == 200
    stored = sql(platform.database_url, "SELECT criteria, completions FROM tasks")
    assert "groundTruth" not in str(stored) and '"rank"' not in str(stored)


# --- Idempotency-Key: a retried create-tasks creates nothing twice ------------------------


def _tasks_of(platform, miner) -> int:
    rows = sql(
        platform.database_url,
        "SELECT count(*) FROM tasks t JOIN miners m ON m.id = t.miner_id WHERE m.hotkey = :h",
        h=miner.hotkey,
    )
    return int(rows[0][0])


def test_a_repeated_idempotency_key_returns_the_first_tasks_and_creates_none(platform, client, miner):
    body = task_body(tasks=2)
    headers = {**miner.key, "idempotency-key": "retry-me-1"}
    first = client.post("/api/v1/tasks/create-tasks", json=body, headers=headers)
    again = client.post("/api/v1/tasks/create-tasks", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["body"] == first.json()["body"] and len(first.json()["body"]) == 2
    assert _tasks_of(platform, miner) == 2
    # Without a key, or with another one, the same body creates new tasks.
    assert client.post("/api/v1/tasks/create-tasks", json=body, headers=miner.key).status_code == 200
    other = client.post(
        "/api/v1/tasks/create-tasks", json=body, headers={**miner.key, "idempotency-key": "2"}
    )
    assert other.status_code == 200 and set(other.json()["body"]).isdisjoint(first.json()["body"])
    assert _tasks_of(platform, miner) == 6


def test_an_idempotency_key_reused_for_other_tasks_is_refused(platform, client, miner):
    headers = {**miner.key, "idempotency-key": "once"}
    assert client.post("/api/v1/tasks/create-tasks", json=task_body(), headers=headers).status_code == 200
    refused = client.post("/api/v1/tasks/create-tasks", json=task_body(max_results=5), headers=headers)
    assert refused.status_code == 409 and "Idempotency-Key" in refused.json()["detail"]
    assert _tasks_of(platform, miner) == 1


def test_a_malformed_idempotency_key_is_a_400(platform, client, miner):
    for key in ("x" * 129, "has space"):
        refused = client.post(
            "/api/v1/tasks/create-tasks", json=task_body(), headers={**miner.key, "idempotency-key": key}
        )
        assert refused.status_code == 400 and "Idempotency-Key" in refused.json()["detail"]
    assert _tasks_of(platform, miner) == 0


def test_idempotency_keys_belong_to_one_miner(platform, client, miner, register_hotkey):
    other = miner_with_keys(client, register_hotkey())
    mine = client.post(
        "/api/v1/tasks/create-tasks", json=task_body(), headers={**miner.key, "idempotency-key": "k"}
    )
    theirs = client.post(
        "/api/v1/tasks/create-tasks", json=task_body(), headers={**other.key, "idempotency-key": "k"}
    )
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["body"] != theirs.json()["body"]
    assert _tasks_of(platform, miner) == _tasks_of(platform, other) == 1


def test_concurrent_requests_with_one_idempotency_key_create_one_set_of_tasks(platform, client, miner):
    body = task_body(tasks=3)
    headers = {**miner.key, "idempotency-key": "raced"}
    with httpx.Client(base_url=platform.url, timeout=30) as http, ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(lambda _: http.post("/api/v1/tasks/create-tasks", json=body, headers=headers), range(8))
        )
    assert [r.status_code for r in replies] == [200] * 8
    assert len({tuple(r.json()["body"]) for r in replies}) == 1
    assert _tasks_of(platform, miner) == 3
