"""The miner's task endpoints: create-tasks (JSON and the original form), status, results."""

from __future__ import annotations

import json

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
