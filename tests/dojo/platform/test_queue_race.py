"""20 workers race for one task with maxResults 3 over real HTTP: never more than 3 results.

Each worker runs in its own thread with its own connection to the uvicorn server, and all
start together at a barrier, so the claims and submissions really overlap in the server's
thread pool and in the database.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from tests.dojo.platform._support import create_tasks, ranking, sql, workers_by_invite

WORKERS = 20
MAX_RESULTS = 3
RESULT = {"resultData": ranking(["c0", "c2", "c1"])}


def _race(platform, workers, action) -> list[int]:
    barrier = threading.Barrier(len(workers))
    codes: list[int] = [0] * len(workers)

    def run(index: int) -> None:
        with httpx.Client(base_url=platform.url, timeout=60, headers=workers[index].auth) as http:
            barrier.wait()
            codes[index] = action(http)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return codes


def _stored(platform, task_id: str) -> tuple[int, int]:
    (count,) = sql(platform.database_url, "SELECT count(*) FROM results WHERE task_id = :t", t=task_id)[0]
    (counter,) = sql(platform.database_url, "SELECT num_results FROM tasks WHERE id = :t", t=task_id)[0]
    return count, counter


def test_twenty_workers_claiming_and_submitting_fill_exactly_three_places(platform, client, miner):
    (task_id,) = create_tasks(client, miner, max_results=MAX_RESULTS)
    workers = workers_by_invite(platform.database_url, miner.hotkey, WORKERS)

    def claim_then_submit(http: httpx.Client) -> int:
        claimed = http.post("/api/v1/worker/tasks/next")
        if claimed.status_code == 204:
            # No place: a submission anyway must be refused too.
            return http.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT).status_code + 1000
        assert claimed.status_code == 200 and claimed.json()["id"] == task_id
        return http.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT).status_code

    codes = Counter(_race(platform, workers, claim_then_submit))
    assert codes == {200: MAX_RESULTS, 1409: WORKERS - MAX_RESULTS}
    assert _stored(platform, task_id) == (MAX_RESULTS, MAX_RESULTS)
    status = client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()
    assert (status["status"], status["numResults"]) == ("COMPLETED", MAX_RESULTS)


def test_twenty_workers_submitting_without_a_hold_fill_exactly_three_places(platform, client, miner):
    (task_id,) = create_tasks(client, miner, max_results=MAX_RESULTS)
    workers = workers_by_invite(platform.database_url, miner.hotkey, WORKERS)

    def submit(http: httpx.Client) -> int:
        return http.post(f"/api/v1/worker/tasks/{task_id}/result", json=RESULT).status_code

    codes = Counter(_race(platform, workers, submit))
    assert codes == {200: MAX_RESULTS, 409: WORKERS - MAX_RESULTS}
    assert _stored(platform, task_id) == (MAX_RESULTS, MAX_RESULTS)
    results = client.get(f"/api/v1/tasks/task-result/{task_id}", headers=miner.key).json()["body"][
        "taskResults"
    ]
    assert len({r["workerId"] for r in results}) == MAX_RESULTS
